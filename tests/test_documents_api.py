"""Documents over real HTTP: add from text, file and URL; list, get, rename, content, chunks, delete."""

from __future__ import annotations

import http.server
import threading
from functools import partial

import pytest

from helpers import add_text, retrieve, wait_indexed

KB = "/v1/convai/knowledge-base"

WHALES = (
    "The blue whale is the largest animal known to have ever existed. Adult blue whales can reach "
    "thirty metres in length and weigh up to two hundred tonnes. They feed almost exclusively on krill."
)
BREAD = (
    "To bake sourdough bread, mix flour, water and salt with an active starter, let the dough rise "
    "overnight, shape it into a loaf and bake it in a hot Dutch oven for forty minutes."
)
TAXES = (
    "Quarterly estimated tax payments are due in April, June, September and January. Self-employed "
    "people who expect to owe more than a thousand dollars should pay them to avoid penalties."
)


def test_text_upload_is_indexed_and_retrieved_among_several(client):
    ids = {name: add_text(client, text, name) for name, text in [("whales", WHALES), ("bread", BREAD), ("taxes", TAXES)]}

    result = retrieve(client, "How heavy can a blue whale get?")
    assert result["chunks"], result
    top = result["chunks"][0]
    assert top["document_id"] == ids["whales"]
    assert top["document_name"] == "whales"
    assert "two hundred tonnes" in top["text"]
    assert 0.0 <= top["vector_distance"] < 0.6
    assert result["embedding_model"] == "all-MiniLM-L6-v2"
    assert result["retrieval_query"] == "How heavy can a blue whale get?"
    assert result["rag_latency_secs"] > 0

    assert retrieve(client, "when are estimated taxes due")["chunks"][0]["document_id"] == ids["taxes"]
    assert retrieve(client, "how long to bake a loaf")["chunks"][0]["document_id"] == ids["bread"]


def test_document_ids_restrict_retrieval(client):
    whales = add_text(client, WHALES, "whales")
    bread = add_text(client, BREAD, "bread")
    result = retrieve(client, "blue whale weight", document_ids=[bread], max_vector_distance=2.0)
    assert {c["document_id"] for c in result["chunks"]} == {bread}
    assert whales not in {c["document_id"] for c in result["chunks"]}


def test_pdf_upload_is_parsed_indexed_and_retrievable(client, corpus):
    pdf = corpus / "pdf" / "pdflatex-4-pages.pdf"
    response = client.post(f"{KB}/file", files={"file": (pdf.name, pdf.read_bytes(), "application/pdf")})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["name"] == pdf.name
    assert wait_indexed(client, doc["id"])["status"] == "succeeded"

    content = client.get(f"{KB}/{doc['id']}/content")
    assert content.status_code == 200
    first_sentence = " ".join(content.text.split()[5:15])
    hits = retrieve(client, first_sentence, max_vector_distance=1.0)["chunks"]
    assert hits and hits[0]["document_id"] == doc["id"]


def test_get_rename_list_content_and_chunk(client):
    document_id = add_text(client, WHALES, "Whale facts")
    doc = client.get(f"{KB}/{document_id}").json()
    assert doc["id"] == document_id and doc["name"] == "Whale facts" and doc["type"] == "text"
    assert doc["metadata"]["size_bytes"] == len(WHALES.encode())
    assert "blue whale" in doc["extracted_inner_html"]

    renamed = client.patch(f"{KB}/{document_id}", json={"name": "Cetaceans"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Cetaceans"
    assert client.get(f"{KB}/{document_id}").json()["name"] == "Cetaceans"

    assert client.get(f"{KB}/{document_id}/content").text.strip() == WHALES

    hit = retrieve(client, "what do blue whales eat")["chunks"][0]
    chunk = client.get(f"{KB}/{document_id}/chunk/{hit['chunk_id']}")
    assert chunk.status_code == 200
    assert chunk.json()["content"] == hit["text"]
    assert chunk.json()["name"] == "Cetaceans"


def test_list_pages_with_cursor_and_filters_by_name_prefix(client):
    names = [f"doc {i:02d}" for i in range(7)] + ["other"]
    for name in names:
        add_text(client, f"Document body for {name}.", name, wait=False)

    seen, cursor = [], None
    while True:
        params = {"page_size": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get(KB, params=params).json()
        seen += [d["name"] for d in page["documents"]]
        assert len(page["documents"]) <= 3
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(names)
    assert seen == list(reversed(names))  # newest first

    found = client.get(KB, params={"search": "doc"}).json()["documents"]
    assert sorted(d["name"] for d in found) == sorted(names[:-1])
    assert client.get(KB, params={"page_size": 101}).status_code == 422


def test_delete_removes_document_from_retrieval(client):
    whales = add_text(client, WHALES, "whales")
    add_text(client, BREAD, "bread")
    assert retrieve(client, "blue whale")["chunks"][0]["document_id"] == whales

    assert client.delete(f"{KB}/{whales}").status_code == 200
    assert client.get(f"{KB}/{whales}").status_code == 404
    hits = retrieve(client, "blue whale", max_vector_distance=2.0)["chunks"]
    assert hits and whales not in {h["document_id"] for h in hits}
    assert client.delete(f"{KB}/{whales}").status_code == 404


def test_unknown_document_is_404_with_json_error(client):
    for response in (
        client.get(f"{KB}/nope"),
        client.get(f"{KB}/nope/content"),
        client.get(f"{KB}/nope/chunk/nope"),
        client.patch(f"{KB}/nope", json={"name": "x"}),
        client.delete(f"{KB}/nope"),
        client.get(f"{KB}/nope/rag-index"),
    ):
        assert response.status_code == 404
        assert "not found" in response.json()["detail"]["message"]


def test_empty_inputs_get_4xx_with_message(client):
    empty_text = client.post(f"{KB}/text", json={"text": "   \n "})
    assert empty_text.status_code == 400
    assert "empty" in empty_text.json()["detail"]["message"]

    empty_file = client.post(f"{KB}/file", files={"file": ("empty.txt", b"", "text/plain")})
    assert empty_file.status_code == 400
    assert empty_file.json()["detail"]["message"]
    assert client.get(KB).json()["documents"] == []


def test_unsupported_file_is_415_listing_supported_types(client):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    response = client.post(f"{KB}/file", files={"file": ("picture.png", png, "image/png")})
    assert response.status_code == 415
    body = response.json()["detail"]
    for fmt in ("pdf", "docx", "epub", "html", "txt", "markdown"):
        assert fmt in body["supported_formats"]
        assert fmt in body["message"].lower()


@pytest.fixture
def html_site(corpus):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(corpus / "html"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_url_document_is_fetched_extracted_and_indexed(client, html_site):
    response = client.post(f"{KB}/url", json={"url": f"{html_site}/blog.python.org.html"})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert wait_indexed(client, doc["id"])["status"] == "succeeded"
    stored = client.get(f"{KB}/{doc['id']}").json()
    assert stored["type"] == "url" and stored["url"].endswith("/blog.python.org.html")
    text = client.get(f"{KB}/{doc['id']}/content").text
    assert "Python" in text


def _blank_pdf() -> bytes:
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": "Scanned contract"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_without_text_is_kept_with_a_failed_index_that_says_why(client):
    response = client.post(f"{KB}/file", files={"file": ("scan.pdf", _blank_pdf(), "application/pdf")})
    assert response.status_code == 200, response.text
    document_id = response.json()["id"]
    index = wait_indexed(client, document_id)
    assert index["status"] == "failed"
    assert "no text could be extracted" in index["error"] and "OCR" in index["error"]
    assert client.get(f"{KB}/{document_id}").json()["type"] == "file"


def test_broken_files_get_4xx_and_change_nothing(client, corpus):
    keep = add_text(client, WHALES, "whales")
    cases = [
        ("junk.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 20, 400),
        ("truncated.pdf", (corpus / "pdf" / "pdflatex-4-pages.pdf").read_bytes()[:3000], 400),
        ("locked.pdf", (corpus / "pdf" / "libreoffice-writer-password.pdf").read_bytes(), 400),
        ("random.docx", b"PK\x03\x04" + bytes(range(256)) * 20, None),
    ]
    for filename, data, status in cases:
        response = client.post(f"{KB}/file", files={"file": (filename, data, "application/octet-stream")})
        assert 400 <= response.status_code < 500, (filename, response.text)
        if status:
            assert response.status_code == status, (filename, response.text)
        assert response.json()["detail"]["message"], filename
    locked = client.post(f"{KB}/file", files={"file": ("locked.pdf", cases[2][1], "application/pdf")})
    assert "password" in locked.json()["detail"]["message"]
    assert [d["id"] for d in client.get(KB).json()["documents"]] == [keep]
    assert retrieve(client, "blue whale")["chunks"][0]["document_id"] == keep

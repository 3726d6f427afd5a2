"""Hostile and broken uploads over HTTP: each gets a clear 4xx and the workspace is untouched."""

from __future__ import annotations

import http.server
import io
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import LiveServer, add_text, make_kb, retrieve, wait_indexed

KB = "/v1/convai/knowledge-base"
KEEP = "Penguins live in the southern hemisphere and cannot fly, but they swim very well."


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[tuple]:
    """A server with small limits, and a client of a workspace that already holds one document."""
    kb = make_kb(
        tmp_path / "data",
        max_upload_bytes=2_000_000,
        max_pages=3,
        max_unzipped_bytes=5_000_000,
        parse_timeout_secs=1.0,
        url_timeout_secs=1.0,
        url_allow_hosts=("127.0.0.1",),
    )
    server = LiveServer(kb).start()
    _, key = kb.workspaces.create("strict")
    with server.client(key) as client:
        keep = add_text(client, KEEP, "penguins")
        yield client, keep
    server.stop()


def assert_untouched(client, keep: str) -> None:
    assert [d["id"] for d in client.get(KB).json()["documents"]] == [keep]
    assert retrieve(client, "birds that swim but cannot fly")["chunks"][0]["document_id"] == keep


def upload(client, filename: str, data: bytes, content_type: str = "application/octet-stream"):
    return client.post(f"{KB}/file", files={"file": (filename, data, content_type)})


def test_oversized_upload_is_413(strict):
    client, keep = strict
    response = upload(client, "big.txt", b"word " * 500_000)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]["message"]
    assert_untouched(client, keep)


def test_zero_length_and_empty_uploads(strict):
    client, keep = strict
    for filename, data in [("empty.pdf", b""), ("blank.txt", b"   \n\n  "), ("empty.docx", b"")]:
        response = upload(client, filename, data)
        assert response.status_code == 400, (filename, response.text)
        message = response.json()["detail"]["message"]
        assert "empty" in message or "only whitespace" in message, message
    assert_untouched(client, keep)


def test_decompression_bomb_docx_is_refused(strict):
    client, keep = strict
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            chunk = b"\0" * (1 << 20)
            for _ in range(20):  # 20 MB of zeros: a few KB compressed
                member.write(chunk)
    assert len(buffer.getvalue()) < 200_000
    response = upload(client, "bomb.docx", buffer.getvalue())
    assert response.status_code == 413, response.text
    assert_untouched(client, keep)


def test_too_many_pages_is_413(strict, corpus):
    client, keep = strict
    response = upload(client, "four.pdf", (corpus / "pdf" / "pdflatex-4-pages.pdf").read_bytes(), "application/pdf")
    assert response.status_code == 413
    assert "pages" in response.json()["detail"]["message"]
    assert_untouched(client, keep)


@pytest.fixture
def parse_timer_only(tmp_path: Path) -> Iterator[tuple]:
    kb = make_kb(tmp_path / "data2", parse_timeout_secs=1.0)
    server = LiveServer(kb).start()
    _, key = kb.workspaces.create("timer")
    with server.client(key) as client:
        yield client, add_text(client, KEEP, "penguins")
    server.stop()


def test_parser_time_limit_stops_a_slow_parse_and_the_server_keeps_serving(parse_timer_only, corpus):
    client, keep = parse_timer_only
    geotopo = corpus / "pdf" / "GeoTopo-komprimiert.pdf"  # 117 pages: ~3 s of parsing here, limit 1 s
    started = time.monotonic()
    response = upload(client, geotopo.name, geotopo.read_bytes(), "application/pdf")
    assert time.monotonic() - started < 10
    assert response.status_code == 422, response.text
    assert "longer than" in response.json()["detail"]["message"]
    assert_untouched(client, keep)


def test_wrong_extension_still_parses(strict, corpus):
    client, _ = strict
    pdf = (corpus / "pdf" / "google-doc-document.pdf").read_bytes()
    response = upload(client, "notes.txt", pdf, "text/plain")
    assert response.status_code == 200, response.text
    assert wait_indexed(client, response.json()["id"])["status"] == "succeeded"
    assert "Errors should never pass silently" in client.get(f"{KB}/{response.json()['id']}/content").text


# --- URLs ------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    corpus: Path

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        routes = {
            "/doc.pdf": ("application/pdf", (self.corpus / "pdf" / "google-doc-document.pdf").read_bytes()),
            "/page": ("text/html; charset=utf-8", (self.corpus / "html" / "blog.python.org.html").read_bytes()),
        }
        if self.path.startswith("/hop/"):
            remaining = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hop/{remaining - 1}" if remaining > 1 else "/download")
            self.end_headers()
        elif self.path == "/download":  # a PDF served without a .pdf name: dispatched by content type
            content_type, body = routes["/doc.pdf"]
            self._send(content_type, body)
        elif self.path == "/huge":
            self._send("text/plain", b"x" * 3_000_000)
        elif self.path == "/slow":
            time.sleep(3)
            self._send("text/plain", b"too late")
        elif self.path in routes:
            self._send(*routes[self.path])
        else:
            self.send_error(404)

    def _send(self, content_type: str, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # clients that gave up (timeouts) are expected
        pass


@pytest.fixture
def site(corpus) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"corpus": corpus})
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_url_serving_a_pdf_through_redirects_is_parsed_as_pdf_and_keeps_the_final_url(strict, site):
    client, _ = strict
    response = client.post(f"{KB}/url", json={"url": f"{site}/hop/3"})
    assert response.status_code == 200, response.text
    doc = client.get(f"{KB}/{response.json()['id']}").json()
    assert doc["url"] == f"{site}/download"
    assert doc["format"] == "pdf"
    assert wait_indexed(client, doc["id"])["status"] == "succeeded"


def test_bad_urls_get_4xx_and_change_nothing(strict, site):
    client, keep = strict
    cases = {
        f"{site}/hop/9": "redirect",
        f"{site}/huge": "limit",
        f"{site}/slow": "timed out",
        f"{site}/missing": "404",
        "file:///etc/passwd": "only http and https",
        "ftp://127.0.0.1/x": "only http and https",
        "not a url": "",
    }
    for url, phrase in cases.items():
        response = client.post(f"{KB}/url", json={"url": url})
        assert 400 <= response.status_code < 500, (url, response.text)
        assert phrase.lower() in response.json()["detail"]["message"].lower(), (url, response.json())
    assert_untouched(client, keep)


def test_default_settings_refuse_private_addresses(tmp_path, site):
    kb = make_kb(tmp_path / "default")  # no KB_URL_ALLOW_HOSTS
    server = LiveServer(kb).start()
    try:
        _, key = kb.workspaces.create("default")
        with server.client(key) as client:
            for url in (f"{site}/page", "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/",
                        "http://localhost/", "http://[::1]/"):
                response = client.post(f"{KB}/url", json={"url": url})
                assert response.status_code == 400, (url, response.text)
                message = response.json()["detail"]["message"]
                assert "refusing to fetch" in message and "KB_URL_ALLOW_HOSTS" in message, message
            assert client.get(KB).json()["documents"] == []
    finally:
        server.stop()

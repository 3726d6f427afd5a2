"""Drop-in proof: the official `elevenlabs` Python SDK (v2.78.0) drives kb's knowledge-base API.

Every call goes through `ElevenLabs(api_key=..., base_url=<live kb>)` over real HTTP, with real
documents (texts written here, files from the shared corpus, pages served by a local http.server).
The SDK parses leniently (a missing required field silently becomes None, a missing `type`
silently picks the first union member), so every test checks values and the exact union member
classes, not just the absence of errors.

One kb server is shared by the whole module; every test works in a fresh workspace of its own,
so listings, searches and usage totals only see that test's documents.
"""

from __future__ import annotations

import http.server
import string
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pydantic
import pytest
from elevenlabs import (
    AddKnowledgeBaseResponseModel,
    AutoSyncInfo,
    CreateCrawlJobResponseModel,
    GetCrawlJobResponseModel,
    ListCrawlJobsResponseModel,
    CreateAgentResponseModel,
    ElevenLabs,
    GetAgentKnowledgebaseSizeResponseModel,
    GetAgentResponseModel,
    GetAgentsPageResponseModel,
    GetKnowledgeBaseDependentAgentsResponseModel,
    GetKnowledgeBaseDependentAgentsResponseModelAgentsItem_Available,
    GetKnowledgeBaseListResponseModel,
    GetKnowledgeBaseListResponseModelDocumentsItem_File,
    GetKnowledgeBaseListResponseModelDocumentsItem_Folder,
    GetKnowledgeBaseListResponseModelDocumentsItem_Text,
    GetKnowledgeBaseListResponseModelDocumentsItem_Url,
    GetOrCreateRagIndexRequestModel,
    KnowledgeBaseContentSearchResponseModel,
    KnowledgeBaseContentSearchResult,
    KnowledgeBaseContentSearchResultDocument_File,
    KnowledgeBaseContentSearchResultDocument_Text,
    KnowledgeBaseDocumentChunkResponseModel,
    KnowledgeBaseDocumentChunksResponseModel,
    KnowledgeBaseSourceFileUrlResponseModel,
    KnowledgeBaseSummaryBatchSuccessfulResponseModelData_File,
    KnowledgeBaseSummaryBatchSuccessfulResponseModelData_Text,
    RagDocumentIndexesResponseModel,
    RagDocumentIndexResponseModel,
    RagIndexOverviewResponseModel,
    SearchHighlightSegment,
    UnprocessableEntityError,
)
from elevenlabs.conversational_ai.knowledge_base import (
    KnowledgeBaseGetOrCreateRagIndexesResponseValue,
    KnowledgeBaseGetOrCreateRagIndexesResponseValue_Failure,
    KnowledgeBaseGetOrCreateRagIndexesResponseValue_Success,
)
from elevenlabs.conversational_ai.knowledge_base.document import (
    DocumentRefreshResponse,
    DocumentRefreshResponse_Url,
    DocumentUpdateFileResponse,
    DocumentUpdateFileResponse_File,
)
from elevenlabs.conversational_ai.knowledge_base.documents import (
    DocumentsBulkDeleteResponseValue,
    DocumentsBulkDeleteResponseValue_Failure,
    DocumentsBulkDeleteResponseValue_Success,
    DocumentsGetResponse,
    DocumentsGetResponse_File,
    DocumentsGetResponse_Folder,
    DocumentsGetResponse_Text,
    DocumentsGetResponse_Url,
    DocumentsUpdateResponse,
    DocumentsUpdateResponse_File,
    DocumentsUpdateResponse_Text,
    DocumentsUpdateResponse_Url,
)
from websites import TestSite
from elevenlabs.conversational_ai.knowledge_base.documents.summaries import (
    SummariesGetResponseValue,
    SummariesGetResponseValue_Failure,
    SummariesGetResponseValue_Success,
)
from elevenlabs.core.api_error import ApiError

from helpers import LiveServer, make_kb

KB = "/v1/convai/knowledge-base"
MODEL = "all-MiniLM-L6-v2"
NO_RETRY = {"max_retries": 0}  # the SDK retries 408/409/429/5xx twice with backoff; keep failures fast
ROLES = {"admin", "editor", "commenter", "viewer"}
USAGES = {"prompt", "auto"}
UNKNOWN_ID = "doc_does_not_exist_0000"

WHALES = (
    "The blue whale is the largest animal known to have ever existed. Adult blue whales can reach "
    "thirty metres in length and weigh up to two hundred tonnes. They feed almost exclusively on krill."
)
BREAD = (
    "To bake sourdough bread, mix flour, water and salt with an active starter, let the dough rise "
    "overnight, shape it into a loaf and bake it in a hot Dutch oven for forty minutes. A longer, "
    "colder rise gives the loaf a better crumb."
)
TAXES = (
    "Quarterly estimated tax payments are due in April, June, September and January. Self-employed "
    "people who expect to owe more than a thousand dollars should pay them to avoid penalties."
)

PDF_NAME = "google-doc-document.pdf"  # the Zen of Python, one page
PDF_SENTENCES = ("Beautiful is better than ugly.", "Explicit is better than implicit.")
DOCX_NAME = "txt-font-props.docx"
DOCX_SENTENCE = "Text having some superscript and some subscript."


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdk_kb(tmp_path_factory):
    instance = make_kb(tmp_path_factory.mktemp("sdk") / "data", url_allow_hosts=("127.0.0.1",), crawl_delay_secs=0.1,
                       url_timeout_secs=5.0)
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def sdk_server(sdk_kb) -> Iterator[LiveServer]:
    live = LiveServer(sdk_kb).start()
    yield live
    live.stop()


@pytest.fixture
def key(sdk_kb) -> str:
    """A fresh workspace per test: listings, searches and usage totals see only this test's documents."""
    return sdk_kb.workspaces.create(f"sdk-{uuid.uuid4().hex[:8]}")[1]


@pytest.fixture
def el(sdk_server, key) -> ElevenLabs:
    return ElevenLabs(api_key=key, base_url=sdk_server.url, timeout=60)


@pytest.fixture
def raw(sdk_server, key) -> Iterator[httpx.Client]:
    """Plain HTTP with the same key, for what the SDK has no method for (retrieval)."""
    with sdk_server.client(key) as client:
        yield client


class Site:
    """A local web server on 127.0.0.1 whose pages the test sets (and changes) as it goes."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[bytes, str]] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                page = pages.get(self.path)
                if page is None:
                    self.send_error(404)
                    return
                body, content_type = page
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, path: str, body: bytes, content_type: str = "text/html; charset=utf-8") -> str:
        self.pages[path] = (body, content_type)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    server = Site()
    yield server
    server.httpd.shutdown()


def html_page(title: str, *paragraphs: str) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
        f"<nav><a href='/'>Home</a></nav><article><h1>{title}</h1>{body}</article>"
        f"<footer>Copyright nobody</footer></body></html>"
    ).encode()


# --- helpers --------------------------------------------------------------------------------------


def wait_index(
    el: ElevenLabs, document_id: str, model: str = MODEL, timeout: float = 60
) -> RagDocumentIndexResponseModel:
    """Poll the document's RAG indexes (through the SDK) until the model's index is done."""
    deadline = time.monotonic() + timeout
    while True:
        indexes = el.conversational_ai.get_document_rag_indexes(document_id)
        assert isinstance(indexes, RagDocumentIndexesResponseModel)
        mine = [i for i in indexes.indexes if i.model == model]
        if mine and mine[0].status in ("succeeded", "failed"):
            return mine[0]
        if time.monotonic() > deadline:
            raise TimeoutError(f"index of {document_id} for {model} not done: {indexes}")
        time.sleep(0.05)


def add_text(el: ElevenLabs, text: str, name: str, wait: bool = False, **kwargs) -> str:
    added = el.conversational_ai.knowledge_base.documents.create_from_text(text=text, name=name, **kwargs)
    assert isinstance(added, AddKnowledgeBaseResponseModel)
    assert isinstance(added.id, str) and added.id
    assert added.name == name
    if wait:
        assert wait_index(el, added.id).status == "succeeded"
    return added.id


def list_all(el: ElevenLabs, page_size: int = 100, **params) -> list:
    """Every document of a listing, following next_cursor while has_more."""
    documents, cursor, pages = [], None, 0
    while True:
        page = el.conversational_ai.knowledge_base.list(page_size=page_size, cursor=cursor, **params)
        assert isinstance(page, GetKnowledgeBaseListResponseModel)
        assert isinstance(page.has_more, bool), page
        assert len(page.documents) <= page_size
        documents += page.documents
        pages += 1
        assert pages < 100, "listing never ends"
        if not page.has_more:
            assert page.next_cursor is None
            return documents
        assert isinstance(page.next_cursor, str) and page.next_cursor
        cursor = page.next_cursor


def api_error(call, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, request_options=NO_RETRY, **kwargs)
    return caught.value


def error_message(error: ApiError) -> str:
    """The `detail.message` of kb's JSON error body (and check it is JSON of that shape)."""
    body = error.body
    assert isinstance(body, dict) and isinstance(body.get("detail"), dict), f"not a JSON error body: {body!r}"
    message = body["detail"].get("message")
    assert isinstance(message, str) and message, body
    return message


def assert_not_found(error: ApiError) -> None:
    assert error.status_code == 404, (error.status_code, error.body)
    assert "not found" in error_message(error).lower()


def retrieve(raw: httpx.Client, query: str, document_id: str) -> list[dict]:
    response = raw.post(
        f"{KB}/rag/retrieve", json={"query": query, "document_ids": [document_id], "max_vector_distance": 2.0}
    )
    assert response.status_code == 200, response.text
    return response.json()["chunks"]


def wait_retrievable(raw: httpx.Client, query: str, document_id: str, new: str, old: str, timeout: float = 60) -> None:
    """Poll retrieval until the document's passages contain `new` and none contain `old`."""
    deadline = time.monotonic() + timeout
    while True:
        texts = [c["text"] for c in retrieve(raw, query, document_id)]
        if texts and any(new in t for t in texts) and not any(old in t for t in texts):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"retrieval never returned the new text {new!r} only: {texts}")
        time.sleep(0.1)


def assert_common(doc, *, name: str, size: int, t0: float) -> None:
    """Fields every document shape (detail or summary) must carry, with real values."""
    assert doc.name == name
    assert doc.metadata is not None, doc
    assert doc.metadata.size_bytes == size
    created = doc.metadata.created_at_unix_secs
    updated = doc.metadata.last_updated_at_unix_secs
    assert isinstance(created, int) and isinstance(updated, int), doc.metadata
    assert int(t0) - 2 <= created <= time.time() + 2
    assert updated >= created
    assert isinstance(doc.supported_usages, list), doc
    info = doc.access_info
    assert info is not None, doc
    assert info.is_creator is True
    assert isinstance(info.creator_name, str) and isinstance(info.creator_email, str), info
    assert info.role in ROLES, info


def assert_summary(item) -> None:
    """List/search/summaries items carry `dependent_agents` (required) as a list."""
    assert isinstance(item.dependent_agents, list), item
    assert item.metadata is not None and isinstance(item.metadata.size_bytes, int), item
    assert item.access_info is not None and item.access_info.role in ROLES, item
    assert isinstance(item.supported_usages, list), item


def strict(response: httpx.Response, type_, member: str | None = None):
    """Validate a raw JSON response strictly against the SDK's own model (the SDK itself never validates,
    so this is what catches a missing required field or a float where an int belongs)."""
    assert response.status_code == 200, (response.request.url, response.status_code, response.text)
    try:
        parsed = pydantic.TypeAdapter(type_).validate_python(response.json(), strict=True)
    except pydantic.ValidationError as error:
        raise AssertionError(f"{response.request.method} {response.request.url.path}: {error}") from None
    if member is not None:
        assert type(parsed).__name__ == member, (response.request.url.path, type(parsed).__name__)
    return parsed


def squash(text: str) -> str:
    return " ".join(text.split())


# --- 1. create ------------------------------------------------------------------------------------


def test_create_from_text_in_a_folder_and_get_it(el):
    t0 = time.time()
    docs = el.conversational_ai.knowledge_base.documents
    folder = docs.create_folder(name="Marine life")
    assert isinstance(folder, AddKnowledgeBaseResponseModel)
    assert isinstance(folder.id, str) and folder.id and folder.name == "Marine life"
    assert folder.folder_path == []  # root to parent: a folder at the root has none above it

    added = docs.create_from_text(text=WHALES, name="Whale facts", parent_folder_id=folder.id)
    assert isinstance(added, AddKnowledgeBaseResponseModel)
    assert added.name == "Whale facts" and isinstance(added.id, str) and added.id
    assert added.id != folder.id

    doc = docs.get(added.id)
    assert isinstance(doc, DocumentsGetResponse_Text), type(doc)
    assert doc.type == "text" and doc.id == added.id
    assert_common(doc, name="Whale facts", size=len(WHALES.encode()), t0=t0)
    assert set(doc.supported_usages) == USAGES
    assert isinstance(doc.extracted_inner_html, str)
    assert "They feed almost exclusively on krill." in doc.extracted_inner_html
    assert doc.folder_parent_id == folder.id
    assert [s.id for s in doc.folder_path] == [folder.id]
    assert doc.folder_path[0].name == "Marine life"

    assert docs.get_content(added.id).strip() == WHALES
    assert wait_index(el, added.id).status == "succeeded"


def test_create_from_pdf_and_docx_files_and_get_them(el, corpus):
    t0 = time.time()
    docs = el.conversational_ai.knowledge_base.documents
    pdf = (corpus / "pdf" / PDF_NAME).read_bytes()
    docx = (corpus / "docx" / DOCX_NAME).read_bytes()

    added_pdf = docs.create_from_file(file=(PDF_NAME, pdf, "application/pdf"))
    assert isinstance(added_pdf, AddKnowledgeBaseResponseModel)
    assert added_pdf.name == PDF_NAME  # no name given: the file name
    added_docx = docs.create_from_file(
        file=(DOCX_NAME, docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        name="Font properties",
    )
    assert added_docx.name == "Font properties"
    assert len({added_pdf.id, added_docx.id}) == 2

    got_pdf = docs.get(added_pdf.id)
    assert isinstance(got_pdf, DocumentsGetResponse_File), type(got_pdf)
    assert got_pdf.type == "file" and got_pdf.id == added_pdf.id
    assert_common(got_pdf, name=PDF_NAME, size=len(pdf), t0=t0)
    assert set(got_pdf.supported_usages) == USAGES
    assert got_pdf.filename == PDF_NAME
    assert PDF_SENTENCES[0] in got_pdf.extracted_inner_html
    assert got_pdf.folder_parent_id is None and not got_pdf.folder_path
    content = docs.get_content(added_pdf.id)
    assert all(s in content for s in PDF_SENTENCES)

    got_docx = docs.get(added_docx.id)
    assert isinstance(got_docx, DocumentsGetResponse_File), type(got_docx)
    assert_common(got_docx, name="Font properties", size=len(docx), t0=t0)
    assert got_docx.filename == DOCX_NAME
    assert DOCX_SENTENCE in got_docx.extracted_inner_html
    assert DOCX_SENTENCE in docs.get_content(added_docx.id)

    assert wait_index(el, added_pdf.id).status == "succeeded"
    assert wait_index(el, added_docx.id).status == "succeeded"


def test_create_from_url_and_get_it(el, site):
    t0 = time.time()
    docs = el.conversational_ai.knowledge_base.documents
    page = html_page(
        "Lighthouse keeping",
        "The keeper of the Skerryvore lighthouse trimmed the lamp wicks every evening at dusk.",
        "Fog signals were sounded every thirty seconds during heavy weather on the rocks.",
    )
    url = site.serve("/create/lighthouse.html", page)

    added = docs.create_from_url(url=url, name="Lighthouse keeping")
    assert isinstance(added, AddKnowledgeBaseResponseModel)
    assert added.name == "Lighthouse keeping"

    doc = docs.get(added.id)
    assert isinstance(doc, DocumentsGetResponse_Url), type(doc)
    assert doc.type == "url" and doc.id == added.id
    assert doc.url == url
    assert_common(doc, name="Lighthouse keeping", size=len(page), t0=t0)
    assert set(doc.supported_usages) == USAGES
    assert "trimmed the lamp wicks every evening at dusk" in doc.extracted_inner_html
    content = docs.get_content(added.id)
    assert "Fog signals were sounded every thirty seconds" in content
    assert "Copyright nobody" not in content  # main content only

    unnamed = docs.create_from_url(url=url)
    assert isinstance(unnamed.name, str) and unnamed.name.strip()
    assert wait_index(el, added.id).status == "succeeded"


def test_create_from_url_with_auto_sync_and_folders_and_updates(el, raw, site):
    """create_from_url / create_folder / documents.update with auto-sync, through the SDK; strict shapes."""
    docs = el.conversational_ai.knowledge_base.documents
    folder = docs.create_folder(name="Synced pages", enable_auto_sync=True, auto_remove=True, minimum_frequency_days=2)
    assert isinstance(folder, AddKnowledgeBaseResponseModel)
    url = site.serve("/autosync.html", html_page("Auto sync", "This page is synced automatically by kb."))
    added = docs.create_from_url(url=url, enable_auto_sync=True, minimum_frequency_days=5, parent_folder_id=folder.id)
    page = docs.get(added.id)
    assert isinstance(page, DocumentsGetResponse_Url), type(page)
    assert isinstance(page.auto_sync_info, AutoSyncInfo), page
    # tightened to the folder's frequency; auto_remove inherited from it
    assert page.auto_sync_info.minimum_frequency_days == 2 and page.auto_sync_info.auto_remove is True
    assert page.auto_sync_info.consec_failures == 0 and page.auto_sync_info.next_refresh_by > time.time() + 86400
    got_folder = docs.get(folder.id)
    assert isinstance(got_folder, DocumentsGetResponse_Folder) and got_folder.auto_sync_info.next_refresh_by is None
    strict(raw.get(f"{KB}/{added.id}"), DocumentsGetResponse, "DocumentsGetResponse_Url")
    strict(raw.get(f"{KB}/{folder.id}"), DocumentsGetResponse, "DocumentsGetResponse_Folder")
    listing = strict(raw.get(KB), GetKnowledgeBaseListResponseModel)
    assert {d.id: d.auto_sync_info is not None for d in listing.documents} == {added.id: True, folder.id: True}
    updated = docs.update(added.id, minimum_frequency_days=1, auto_remove=False)
    assert isinstance(updated, DocumentsUpdateResponse_Url)
    assert updated.auto_sync_info.minimum_frequency_days == 1 and updated.auto_sync_info.auto_remove is False
    strict(raw.patch(f"{KB}/{folder.id}", json={"minimum_frequency_days": 3, "tighten_only": True}),
           DocumentsUpdateResponse, "DocumentsUpdateResponse_Folder")
    assert docs.get(added.id).auto_sync_info.minimum_frequency_days == 1  # stricter than the folder: kept
    off = docs.update(added.id, enable_auto_sync=False)
    assert isinstance(off, DocumentsUpdateResponse_Url) and off.auto_sync_info is None
    error = api_error(docs.create_from_url, url=url, auto_remove=True)
    assert error.status_code == 400 and "enable_auto_sync" in error_message(error)


def test_crawl_jobs_create_list_get_and_cancel(el, raw):
    crawl_jobs = el.conversational_ai.knowledge_base.crawl_jobs
    with TestSite() as website:
        created = crawl_jobs.create(url=website.url("/"), max_pages=20, max_depth=2, exclude_patterns=["/docs/orphan"],
                                    enable_auto_sync=True, auto_remove=True, auto_discover=True,
                                    minimum_frequency_days=2)
        assert isinstance(created, CreateCrawlJobResponseModel)
        assert created.status == "queued" and created.type == "sitemap" and created.root_folder_id
        deadline = time.monotonic() + 120
        while (job := crawl_jobs.get(created.id)).status in ("queued", "processing"):
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
        assert isinstance(job, GetCrawlJobResponseModel)
        assert job.status == "succeeded" and job.type == "sitemap" and job.seed_url == website.url("/")
        assert job.max_pages == 20 and job.auto_discover is True and job.exclude_patterns == ["/docs/orphan"]
        assert job.pages_scraped == 6 and job.pages_skipped == 1 and job.pages_failed == 0  # /private/hidden: robots
        assert job.pages_identified == 7 and job.root_folder_id == created.root_folder_id
        strict(raw.get(f"{KB}/crawl/{created.id}"), GetCrawlJobResponseModel)
        pages = list_all(el, ancestor_folder_id=created.root_folder_id)
        assert len(pages) == 6 and all(isinstance(p, GetKnowledgeBaseListResponseModelDocumentsItem_Url) for p in pages)
        assert all(p.auto_sync_info.minimum_frequency_days == 2 for p in pages)
        # a second crawl, cancelled while it runs: its folder and documents go
        second = strict(raw.post(f"{KB}/crawl", json={"url": website.url("/"), "sitemap_urls": [website.url("/slow")]}),
                        CreateCrawlJobResponseModel)
        listed = crawl_jobs.list(page_size=1)
        assert isinstance(listed, ListCrawlJobsResponseModel)
        assert [j.id for j in listed.crawl_jobs] == [second.id] and listed.next_cursor
        rest = crawl_jobs.list(page_size=1, cursor=listed.next_cursor)
        assert [j.id for j in rest.crawl_jobs] == [created.id] and rest.next_cursor is None
        strict(raw.get(f"{KB}/crawl"), ListCrawlJobsResponseModel)
        crawl_jobs.cancel(second.id)
        assert crawl_jobs.get(second.id).status == "cancelled"
        assert_not_found(api_error(el.conversational_ai.knowledge_base.documents.get, second.root_folder_id))
        assert_not_found(api_error(crawl_jobs.get, "cj_unknown"))


# --- 2. list --------------------------------------------------------------------------------------

# Created in this order; names, sizes and creation order all sort differently.
SORTABLE = [("delta", 4), ("alpha", 1), ("echo", 3), ("bravo", 5), ("charlie", 2)]


def _add_sortable(el) -> dict[str, tuple[str, int]]:
    made = {}
    for name, words in SORTABLE:
        text = f"The {name} document. " + "padding " * (words * 10)
        made[name] = (add_text(el, text, name), len(text.encode()))
    return made


def test_list_pages_with_cursor_newest_first(el):
    made = _add_sortable(el)
    creation = [made[name][0] for name, _ in SORTABLE]

    page = el.conversational_ai.knowledge_base.list(page_size=2)
    assert isinstance(page, GetKnowledgeBaseListResponseModel)
    assert len(page.documents) == 2 and page.has_more is True and page.next_cursor

    listed = list_all(el, page_size=2)
    ids = [d.id for d in listed]
    assert ids == list(reversed(creation))  # newest first, no duplicates, nothing lost
    for item in listed:
        assert isinstance(item, GetKnowledgeBaseListResponseModelDocumentsItem_Text), type(item)
        assert item.type == "text"
        assert_summary(item)
        assert set(item.supported_usages) == USAGES
        assert item.dependent_agents == []
        assert item.metadata.size_bytes == made[item.name][1]

    # paging also holds together with an explicit sort
    by_name = list_all(el, page_size=2, sort_by="name", sort_direction="asc")
    assert [d.name for d in by_name] == sorted(made)


def test_list_sorts_by_name_created_at_and_size(el):
    made = _add_sortable(el)
    creation = [name for name, _ in SORTABLE]
    by_size = [name for name, _ in sorted(SORTABLE, key=lambda e: made[e[0]][1])]

    def names(**params) -> list[str]:
        return [d.name for d in el.conversational_ai.knowledge_base.list(**params).documents]

    assert names(sort_by="name", sort_direction="asc") == sorted(creation)
    assert names(sort_by="name", sort_direction="desc") == sorted(creation, reverse=True)
    assert names(sort_by="created_at", sort_direction="asc") == creation
    assert names(sort_by="created_at", sort_direction="desc") == list(reversed(creation))
    assert names(sort_by="size", sort_direction="asc") == by_size
    assert names(sort_by="size", sort_direction="desc") == list(reversed(by_size))
    by_size_docs = el.conversational_ai.knowledge_base.list(sort_by="size", sort_direction="asc").documents
    sizes = [d.metadata.size_bytes for d in by_size_docs]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_list_search_is_a_name_prefix_filter(el):
    for name in ("Report 2023", "Report 2024", "Reports archive", "Quarterly Report"):
        add_text(el, f"Body of the document called {name}.", name)

    def names(search: str) -> set[str]:
        page = el.conversational_ai.knowledge_base.list(search=search)
        assert page.has_more is False
        return {d.name for d in page.documents}

    assert names("Report") == {"Report 2023", "Report 2024", "Reports archive"}
    assert names("Report 20") == {"Report 2023", "Report 2024"}
    assert names("Quarterly") == {"Quarterly Report"}
    assert names("Annual") == set()


def test_list_filters_by_type(el, site):
    docs = el.conversational_ai.knowledge_base.documents
    texts = {add_text(el, WHALES, "whales"), add_text(el, BREAD, "bread")}
    file_id = docs.create_from_file(file=("taxes.txt", TAXES.encode(), "text/plain")).id
    url = site.serve("/types/page.html", html_page("A page", "A page about the types filter of the listing."))
    url_id = docs.create_from_url(url=url, name="page").id
    folder_id = docs.create_folder(name="Empty folder").id

    def listed(types: list[str]) -> dict:
        return {d.id: d for d in list_all(el, types=types)}

    only_text = listed(["text"])
    assert set(only_text) == texts
    assert all(isinstance(d, GetKnowledgeBaseListResponseModelDocumentsItem_Text) for d in only_text.values())

    file_and_url = listed(["file", "url"])
    assert set(file_and_url) == {file_id, url_id}
    assert isinstance(file_and_url[file_id], GetKnowledgeBaseListResponseModelDocumentsItem_File)
    assert file_and_url[file_id].metadata.size_bytes == len(TAXES.encode())
    url_item = file_and_url[url_id]
    assert isinstance(url_item, GetKnowledgeBaseListResponseModelDocumentsItem_Url), type(url_item)
    assert url_item.url == url
    for item in file_and_url.values():
        assert_summary(item)

    only_folders = listed(["folder"])
    assert set(only_folders) == {folder_id}
    folder = only_folders[folder_id]
    assert isinstance(folder, GetKnowledgeBaseListResponseModelDocumentsItem_Folder), type(folder)
    assert folder.name == "Empty folder"
    assert folder.children_count == 0 and folder.document_count == 0
    assert folder.supported_usages == []
    assert_summary(folder)

    assert {d.id for d in list_all(el)} == texts | {file_id, url_id, folder_id}


# --- 3. get, rename, content, chunks --------------------------------------------------------------


def test_rename_and_get_content(el):
    docs = el.conversational_ai.knowledge_base.documents
    document_id = add_text(el, WHALES, "Whale facts")
    before = docs.get(document_id)

    renamed = docs.update(document_id, name="Cetaceans")
    assert isinstance(renamed, DocumentsUpdateResponse_Text), type(renamed)
    assert renamed.id == document_id and renamed.name == "Cetaceans"
    assert "largest animal known to have ever existed" in renamed.extracted_inner_html
    assert renamed.metadata.size_bytes == len(WHALES.encode())
    assert renamed.metadata.last_updated_at_unix_secs >= before.metadata.last_updated_at_unix_secs

    got = docs.get(document_id)
    assert isinstance(got, DocumentsGetResponse_Text) and got.name == "Cetaceans"
    assert [d.id for d in el.conversational_ai.knowledge_base.list(search="Ceta").documents] == [document_id]
    assert el.conversational_ai.knowledge_base.list(search="Whale").documents == []

    content = docs.get_content(document_id)
    assert isinstance(content, str)
    assert content.strip() == WHALES
    assert "Adult blue whales can reach thirty metres in length" in content


TOPICS = [
    "harbours", "glaciers", "violins", "beekeeping", "railways", "volcanoes", "orchards",
    "telescopes", "chess openings", "bridges", "deserts", "typefaces", "tides", "mushrooms",
]


def _long_text() -> tuple[str, list[str]]:
    markers, paragraphs = [], []
    for i, topic in enumerate(TOPICS):
        marker = f"Marker {i} says this paragraph is about {topic}."
        markers.append(marker)
        filler = " ".join(
            f"Sentence {j} of the {topic} paragraph adds a few more plain words about {topic} to fill it."
            for j in range(5)
        )
        paragraphs.append(f"{marker} {filler}")
    return "\n\n".join(paragraphs), markers


def test_chunks_list_pages_and_chunk_get(el):
    text, markers = _long_text()
    document_id = add_text(el, text, "Fourteen topics", wait=True)
    docs = el.conversational_ai.knowledge_base.documents
    content = squash(docs.get_content(document_id))

    chunks, cursor, pages = [], None, 0
    while True:
        page = docs.chunks.list(document_id, embedding_model=MODEL, page_size=2, cursor=cursor)
        assert isinstance(page, KnowledgeBaseDocumentChunksResponseModel)
        assert isinstance(page.chunks, list) and len(page.chunks) <= 2
        chunks += page.chunks
        pages += 1
        assert pages < 100
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages >= 2 and len(chunks) >= 3
    assert len({c.id for c in chunks}) == len(chunks)
    for chunk in chunks:
        assert isinstance(chunk, KnowledgeBaseDocumentChunkResponseModel)
        assert isinstance(chunk.id, str) and chunk.id
        assert chunk.name == "Fourteen topics"
        assert isinstance(chunk.content, str) and squash(chunk.content) in content
    joined = " ".join(squash(c.content) for c in chunks)
    assert all(m in joined for m in markers)  # nothing of the document is lost

    middle = chunks[len(chunks) // 2]
    one = docs.chunk.get(document_id, middle.id, embedding_model=MODEL)
    assert isinstance(one, KnowledgeBaseDocumentChunkResponseModel)
    assert one.id == middle.id and one.content == middle.content and one.name == "Fourteen topics"
    assert docs.chunk.get(document_id, middle.id).content == middle.content

    assert_not_found(api_error(docs.chunk.get, document_id, "chunk_does_not_exist"))


# --- 4. RAG indexes -------------------------------------------------------------------------------


def test_rag_index_compute_poll_overview_batch_and_delete(el):
    cai = el.conversational_ai
    whales = add_text(el, WHALES, "whales")
    bread = add_text(el, BREAD, "bread")
    sizes = {whales: len(WHALES.encode()), bread: len(BREAD.encode())}

    started = cai.knowledge_base.document.compute_rag_index(whales, model=MODEL)
    assert isinstance(started, RagDocumentIndexResponseModel)
    assert isinstance(started.id, str) and started.id
    assert started.model == MODEL
    assert started.status in ("created", "processing", "succeeded"), started
    assert isinstance(started.progress_percentage, (int, float))

    done = wait_index(el, whales)
    assert done.id == started.id
    assert done.status == "succeeded" and done.progress_percentage == 100
    assert done.document_model_index_usage.used_bytes == sizes[whales]
    listed = cai.get_document_rag_indexes(whales)
    assert isinstance(listed, RagDocumentIndexesResponseModel)
    assert [i.id for i in listed.indexes if i.model == MODEL] == [started.id]

    again = cai.knowledge_base.document.compute_rag_index(whales, model=MODEL)
    assert again.id == started.id and again.status == "succeeded"  # reports, does not duplicate
    assert wait_index(el, bread).status == "succeeded"

    overview = cai.rag_index_overview()
    assert isinstance(overview, RagIndexOverviewResponseModel)
    assert overview.total_used_bytes == sum(sizes.values())
    assert isinstance(overview.total_max_bytes, int) and overview.total_max_bytes >= overview.total_used_bytes > 0
    per_model = {m.model: m.used_bytes for m in overview.models}
    assert per_model[MODEL] == sum(sizes.values())

    batch = cai.knowledge_base.get_or_create_rag_indexes(
        items=[
            GetOrCreateRagIndexRequestModel(document_id=whales, create_if_missing=True, model=MODEL),
            GetOrCreateRagIndexRequestModel(document_id=bread, create_if_missing=False, model=MODEL),
            GetOrCreateRagIndexRequestModel(document_id=UNKNOWN_ID, create_if_missing=True, model=MODEL),
        ]
    )
    assert isinstance(batch, dict) and set(batch) == {whales, bread, UNKNOWN_ID}
    for document_id in (whales, bread):
        entry = batch[document_id]
        assert isinstance(entry, KnowledgeBaseGetOrCreateRagIndexesResponseValue_Success), entry
        assert entry.status == "success"
        assert isinstance(entry.data, RagDocumentIndexResponseModel)
        assert entry.data.model == MODEL and entry.data.status == "succeeded"
        assert entry.data.document_model_index_usage.used_bytes == sizes[document_id]
    assert batch[whales].data.id == started.id
    missing = batch[UNKNOWN_ID]
    assert isinstance(missing, KnowledgeBaseGetOrCreateRagIndexesResponseValue_Failure), missing
    assert missing.status == "failure" and missing.error_code == 404
    assert isinstance(missing.error_status, str) and missing.error_status
    assert isinstance(missing.error_message, str) and missing.error_message

    deleted = cai.delete_document_rag_index(whales, started.id)
    assert isinstance(deleted, RagDocumentIndexResponseModel)
    assert deleted.id == started.id and deleted.model == MODEL
    assert deleted.document_model_index_usage.used_bytes == sizes[whales]
    assert [i for i in cai.get_document_rag_indexes(whales).indexes if i.model == MODEL] == []

    after = cai.rag_index_overview()
    assert after.total_used_bytes == sizes[bread]
    assert {m.model: m.used_bytes for m in after.models}.get(MODEL) == sizes[bread]

    assert_not_found(api_error(cai.delete_document_rag_index, whales, started.id))


# --- 5. folders -----------------------------------------------------------------------------------


def test_folders_nesting_move_bulk_move_and_counts(el):
    kb = el.conversational_ai.knowledge_base
    docs = kb.documents
    projects = docs.create_folder(name="Projects").id
    nested_added = docs.create_folder(name="2024", parent_folder_id=projects)
    assert isinstance(nested_added, AddKnowledgeBaseResponseModel) and nested_added.name == "2024"
    assert [(p.id, p.name) for p in nested_added.folder_path] == [(projects, "Projects")]  # not the folder itself
    nested = nested_added.id
    d1, d2, d3 = (add_text(el, text, name) for name, text in [("whales", WHALES), ("bread", BREAD), ("taxes", TAXES)])

    assert docs.move(d1, move_to=projects) is None
    assert docs.bulk_move(document_ids=[d2, d3], move_to=nested) is None

    def children(folder_id: str) -> set[str]:
        return {d.id for d in list_all(el, parent_folder_id=folder_id)}

    assert children(projects) == {nested, d1}
    assert children(nested) == {d2, d3}
    descendants = {d.id for d in list_all(el, ancestor_folder_id=projects)}
    assert {d1, d2, d3} <= descendants and projects not in descendants

    moved = docs.get(d2)
    assert isinstance(moved, DocumentsGetResponse_Text)
    assert moved.folder_parent_id == nested
    assert [s.id for s in moved.folder_path] == [projects, nested]  # root to parent
    assert [s.name for s in moved.folder_path] == ["Projects", "2024"]

    top = docs.get(projects)
    assert isinstance(top, DocumentsGetResponse_Folder), type(top)
    assert top.type == "folder" and top.name == "Projects" and top.folder_parent_id is None
    assert top.children_count == 2  # direct children: the nested folder and d1
    assert top.document_count == 3  # non-folder documents in the whole subtree
    assert top.supported_usages == []
    assert top.access_info is not None and top.access_info.role in ROLES

    inner = docs.get(nested)
    assert isinstance(inner, DocumentsGetResponse_Folder), type(inner)
    assert inner.name == "2024" and inner.folder_parent_id == projects
    assert inner.folder_path and inner.folder_path[0].id == projects
    assert inner.children_count == 2 and inner.document_count == 2

    docs.move(d1)  # no move_to: back to the root
    back = docs.get(d1)
    assert back.folder_parent_id is None and not back.folder_path
    assert children(projects) == {nested}
    after = docs.get(projects)
    assert after.children_count == 1 and after.document_count == 2

    assert_not_found(api_error(docs.move, d1, move_to=UNKNOWN_ID))


def test_deleting_a_non_empty_folder_needs_force(el):
    docs = el.conversational_ai.knowledge_base.documents
    projects = docs.create_folder(name="Projects").id
    nested = docs.create_folder(name="Drafts", parent_folder_id=projects).id
    inside = add_text(el, WHALES, "whales", parent_folder_id=nested)
    outside = add_text(el, BREAD, "bread")

    refused = api_error(docs.delete, projects)
    assert 400 <= refused.status_code < 500 and refused.status_code != 404, (refused.status_code, refused.body)
    assert error_message(refused)
    assert isinstance(docs.get(projects), DocumentsGetResponse_Folder)
    assert docs.get(inside).id == inside

    docs.delete(projects, force=True)
    for gone in (projects, nested, inside):
        assert_not_found(api_error(docs.get, gone))
    assert {d.id for d in list_all(el)} == {outside}


# --- 6. full-text search --------------------------------------------------------------------------


def _hit_words(result) -> list[str]:
    return [s.value.strip(string.punctuation + string.whitespace).lower() for s in result.search_snippet if s.is_hit]


def test_content_search_finds_words_with_highlighted_snippets(el, corpus):
    kb = el.conversational_ai.knowledge_base
    whales = add_text(el, WHALES, "Ocean notes")  # the names do not contain the searched words
    bread = add_text(el, BREAD, "Kitchen notes")
    add_text(el, TAXES, "Money notes")
    pdf = kb.documents.create_from_file(file=(PDF_NAME, (corpus / "pdf" / PDF_NAME).read_bytes(), "application/pdf")).id

    found = kb.search(query="Krill")
    assert isinstance(found, KnowledgeBaseContentSearchResponseModel)
    assert len(found.results) == 1, found
    result = found.results[0]
    assert isinstance(result, KnowledgeBaseContentSearchResult)
    assert isinstance(result.document, KnowledgeBaseContentSearchResultDocument_Text), type(result.document)
    assert result.document.id == whales and result.document.name == "Ocean notes"
    assert_summary(result.document)
    assert isinstance(result.score, float) and result.score > 0
    assert result.search_snippet, result
    assert all(isinstance(s, SearchHighlightSegment) and isinstance(s.is_hit, bool) for s in result.search_snippet)
    hits = _hit_words(result)
    assert hits and all(h == "krill" for h in hits), result.search_snippet
    assert any(not s.is_hit for s in result.search_snippet)  # context around the hit
    assert "exclusively on krill" in "".join(s.value for s in result.search_snippet)

    better = kb.search(query="better")
    assert {r.document.id for r in better.results} == {bread, pdf}
    scores = [r.score for r in better.results]
    assert scores == sorted(scores, reverse=True)
    by_id = {r.document.id: r for r in better.results}
    assert isinstance(by_id[pdf].document, KnowledgeBaseContentSearchResultDocument_File), type(by_id[pdf].document)
    for r in better.results:
        hits = _hit_words(r)
        assert hits and all(h == "better" for h in hits), r.search_snippet

    assert [r.document.id for r in kb.search(query="better", types=["text"]).results] == [bread]

    first = kb.search(query="better", page_size=1)
    assert len(first.results) == 1 and first.next_cursor
    second = kb.search(query="better", page_size=1, cursor=first.next_cursor)
    assert len(second.results) == 1 and second.next_cursor is None
    assert {first.results[0].document.id, second.results[0].document.id} == {bread, pdf}

    assert kb.search(query="zeppelin").results == []


# --- 7. refresh and update-file -------------------------------------------------------------------


def test_refresh_url_document_picks_up_the_new_page(el, raw, site):
    docs = el.conversational_ai.knowledge_base.documents
    old = "The ferry to the island leaves the harbour at seven every morning."
    new = "The cable car to the summit departs from the valley station every twenty minutes."
    url = site.serve("/refresh/timetable.html", html_page("Timetable", old))
    document_id = docs.create_from_url(url=url, name="Timetable").id
    assert wait_index(el, document_id).status == "succeeded"
    assert old in docs.get_content(document_id)

    new_page = html_page("Timetable", new)
    site.serve("/refresh/timetable.html", new_page)
    refreshed = el.conversational_ai.knowledge_base.document.refresh(document_id)
    assert isinstance(refreshed, DocumentRefreshResponse_Url), type(refreshed)
    assert refreshed.id == document_id and refreshed.url == url and refreshed.name == "Timetable"
    assert new in refreshed.extracted_inner_html

    content = docs.get_content(document_id)
    assert new in content and old not in content
    assert docs.get(document_id).metadata.size_bytes == len(new_page)
    assert [d.id for d in list_all(el)] == [document_id]
    wait_retrievable(raw, "When does the cable car go up the mountain?", document_id, new="cable car", old="ferry")


def test_update_file_replaces_content_and_reindexes(el, raw):
    docs = el.conversational_ai.knowledge_base.documents
    old = "The museum is open from ten in the morning until five in the afternoon."
    new = "The botanical garden greenhouse keeps orchids at twenty-four degrees all year."
    document_id = docs.create_from_file(file=("notes.txt", old.encode(), "text/plain")).id
    assert wait_index(el, document_id).status == "succeeded"
    assert old in docs.get_content(document_id)

    updated = el.conversational_ai.knowledge_base.document.update_file(
        document_id, file=("notes.txt", new.encode(), "text/plain")
    )
    assert isinstance(updated, DocumentUpdateFileResponse_File), type(updated)
    assert updated.id == document_id
    assert new in updated.extracted_inner_html and old not in updated.extracted_inner_html
    assert updated.filename == "notes.txt"

    content = docs.get_content(document_id)
    assert new in content and old not in content
    got = docs.get(document_id)
    assert isinstance(got, DocumentsGetResponse_File)
    assert got.metadata.size_bytes == len(new.encode())
    assert [d.id for d in list_all(el)] == [document_id]
    wait_retrievable(raw, "What temperature are the orchids kept at?", document_id, new="orchids", old="museum")
    assert wait_index(el, document_id).status == "succeeded"


# --- 8. source file -------------------------------------------------------------------------------


def test_source_file_url_downloads_the_original_bytes_without_a_key(el, corpus):
    docs = el.conversational_ai.knowledge_base.documents
    pdf = (corpus / "pdf" / PDF_NAME).read_bytes()
    document_id = docs.create_from_file(file=(PDF_NAME, pdf, "application/pdf")).id

    signed = docs.get_source_file_url(document_id)
    assert isinstance(signed, KnowledgeBaseSourceFileUrlResponseModel)
    assert isinstance(signed.signed_url, str) and signed.signed_url.startswith("http"), signed

    download = httpx.get(signed.signed_url, timeout=30)  # no xi-api-key
    assert download.status_code == 200
    assert download.content == pdf

    tampered = signed.signed_url[:-1] + ("A" if signed.signed_url[-1] != "A" else "B")
    assert httpx.get(tampered, timeout=30).status_code in (400, 401, 403, 404)

    assert_not_found(api_error(docs.get_source_file_url, UNKNOWN_ID))


# --- 9. agents ------------------------------------------------------------------------------------


def test_agents_depend_on_documents_and_block_deletion_without_force(el, raw):
    cai = el.conversational_ai
    docs = cai.knowledge_base.documents
    used = add_text(el, WHALES, "Whale facts", wait=True)
    unused = add_text(el, BREAD, "Bread notes")

    created = cai.agents.create(
        name="Marine guide",
        conversation_config={
            "agent": {
                "prompt": {
                    "prompt": "You answer questions about sea animals.",
                    "knowledge_base": [{"type": "text", "name": "Whale facts", "id": used, "usage_mode": "auto"}],
                    "rag": {"enabled": True},
                }
            }
        },
    )
    assert isinstance(created, CreateAgentResponseModel)
    agent_id = created.agent_id
    assert isinstance(agent_id, str) and agent_id

    agent = cai.agents.get(agent_id)
    assert isinstance(agent, GetAgentResponseModel)
    assert agent.agent_id == agent_id and agent.name == "Marine guide"
    prompt = agent.conversation_config.agent.prompt
    assert prompt.prompt == "You answer questions about sea animals."
    assert [(k.id, k.type, k.name) for k in prompt.knowledge_base] == [(used, "text", "Whale facts")]
    assert prompt.rag.enabled is True

    dependents = docs.get_agents(used)
    assert isinstance(dependents, GetKnowledgeBaseDependentAgentsResponseModel)
    assert dependents.has_more is False
    assert len(dependents.agents) == 1
    dependent = dependents.agents[0]
    assert isinstance(dependent, GetKnowledgeBaseDependentAgentsResponseModelAgentsItem_Available), type(dependent)
    assert dependent.type == "available" and dependent.id == agent_id and dependent.name == "Marine guide"
    assert isinstance(dependent.created_at_unix_secs, int) and dependent.access_level in ROLES
    assert docs.get_agents(unused).agents == []

    bulk = docs.get_bulk_agents(document_ids=[used, unused])
    assert isinstance(bulk, GetKnowledgeBaseDependentAgentsResponseModel)
    assert [a.id for a in bulk.agents] == [agent_id] and bulk.has_more is False

    summaries = docs.summaries.get(document_ids=[used, unused, UNKNOWN_ID])
    assert isinstance(summaries, dict) and set(summaries) == {used, unused, UNKNOWN_ID}
    ok = summaries[used]
    assert isinstance(ok, SummariesGetResponseValue_Success), ok
    assert isinstance(ok.data, KnowledgeBaseSummaryBatchSuccessfulResponseModelData_Text), type(ok.data)
    assert ok.data.id == used and ok.data.name == "Whale facts"
    assert ok.data.metadata.size_bytes == len(WHALES.encode())
    assert [a.id for a in ok.data.dependent_agents] == [agent_id]
    assert ok.data.dependent_agents[0].type == "available"
    other = summaries[unused]
    assert isinstance(other, SummariesGetResponseValue_Success) and other.data.dependent_agents == []
    missing = summaries[UNKNOWN_ID]
    assert isinstance(missing, SummariesGetResponseValue_Failure), missing
    assert missing.error_code == 404 and missing.error_message

    size = cai.agents.knowledge_base.size(agent_id)
    assert isinstance(size, GetAgentKnowledgebaseSizeResponseModel)
    assert isinstance(size.number_of_pages, (int, float)) and size.number_of_pages > 0

    # the same responses, validated strictly against the SDK models
    strict(raw.get(f"/v1/convai/agents/{agent_id}"), GetAgentResponseModel)
    strict(raw.get(f"/v1/convai/agent/{agent_id}/knowledge-base/size"), GetAgentKnowledgebaseSizeResponseModel)
    strict(raw.get(f"{KB}/{used}/dependent-agents"), GetKnowledgeBaseDependentAgentsResponseModel)
    dependents_raw = raw.post(f"{KB}/dependent-agents", json={"document_ids": [used]})
    strict(dependents_raw, GetKnowledgeBaseDependentAgentsResponseModel)
    strict(raw.get(f"{KB}/summaries", params={"document_ids": used}), dict[str, SummariesGetResponseValue])
    strict(raw.get(KB), GetKnowledgeBaseListResponseModel)

    refused = api_error(docs.delete, used)
    assert refused.status_code == 409, (refused.status_code, refused.body)
    assert error_message(refused)
    assert docs.get(used).id == used

    docs.delete(used, force=True)
    assert_not_found(api_error(docs.get, used))
    after = cai.agents.get(agent_id)
    assert used not in [k.id for k in (after.conversation_config.agent.prompt.knowledge_base or [])]
    assert docs.get_agents(unused).agents == []


# --- 10. bulk delete ------------------------------------------------------------------------------


def test_bulk_delete_reports_per_document_results(el):
    docs = el.conversational_ai.knowledge_base.documents
    a = add_text(el, WHALES, "whales")
    b = add_text(el, BREAD, "bread")
    keep = add_text(el, TAXES, "taxes")

    result = docs.bulk_delete(document_ids=[a, b, UNKNOWN_ID])
    assert isinstance(result, dict) and set(result) == {a, b, UNKNOWN_ID}
    for document_id in (a, b):
        entry = result[document_id]
        assert isinstance(entry, DocumentsBulkDeleteResponseValue_Success), entry
        assert entry.status == "success" and entry.data.id == document_id
    failure = result[UNKNOWN_ID]
    assert isinstance(failure, DocumentsBulkDeleteResponseValue_Failure), failure
    assert failure.status == "failure" and failure.error_code == 404
    assert isinstance(failure.error_status, str) and failure.error_status
    assert isinstance(failure.error_message, str) and failure.error_message

    for gone in (a, b):
        assert_not_found(api_error(docs.get, gone))
    assert [d.id for d in list_all(el)] == [keep]


# --- 12. ElevenLabs' embedding model names --------------------------------------------------------

E5 = "e5_mistral_7b_instruct"
MULTILINGUAL = "multilingual_e5_large_instruct"


def elevenlabs_agent_config(document_id: str, name: str, model: str) -> dict:
    """The knowledge-base part of an agent as ElevenLabs' own default agent config has it."""
    return {"agent": {"prompt": {
        "prompt": "You answer questions using the knowledge base.",
        "knowledge_base": [{"type": "text", "name": name, "id": document_id, "usage_mode": "auto"}],
        "rag": {"enabled": True, "embedding_model": model, "max_vector_distance": 0.6,
                "max_documents_length": 50000, "max_retrieved_rag_chunks_count": 20},
    }}}


def test_elevenlabs_model_names_work_everywhere_a_model_is_taken(el, raw):
    cai = el.conversational_ai
    docs = cai.knowledge_base.documents
    text, markers = _long_text()
    document_id = add_text(el, text, "Fourteen topics", wait=True)
    [own] = cai.get_document_rag_indexes(document_id).indexes
    assert own.model == MODEL

    for name in (E5, MULTILINGUAL):
        index = cai.knowledge_base.document.compute_rag_index(document_id, model=name)
        assert isinstance(index, RagDocumentIndexResponseModel)
        assert index.model == name and index.id == own.id and index.status == "succeeded"  # one index, shared
        assert getattr(index, "served_model") == MODEL  # kb's field: the model that actually ran
        assert wait_index(el, document_id, model=name).id == own.id  # a listing filtered by the name finds it
        strict(raw.post(f"{KB}/{document_id}/rag-index", json={"model": name}), RagDocumentIndexResponseModel)
    listed = strict(raw.get(f"{KB}/{document_id}/rag-index"), RagDocumentIndexesResponseModel)
    assert [(i.model, i.id) for i in listed.indexes] == [(MODEL, own.id), (E5, own.id), (MULTILINGUAL, own.id)]

    overview = strict(raw.get(f"{KB}/rag-index"), RagIndexOverviewResponseModel)
    assert overview.total_used_bytes == len(text.encode())  # counted once, under the model that serves them all
    assert [(m.model, m.used_bytes) for m in overview.models] == [(MODEL, len(text.encode()))]

    batch = cai.knowledge_base.get_or_create_rag_indexes(
        items=[GetOrCreateRagIndexRequestModel(document_id=document_id, create_if_missing=True, model=E5)]
    )
    assert isinstance(batch[document_id], KnowledgeBaseGetOrCreateRagIndexesResponseValue_Success)
    assert batch[document_id].data.model == E5 and batch[document_id].data.id == own.id
    strict(raw.post(f"{KB}/rag-index", json={"items": [{"document_id": document_id, "create_if_missing": False,
                                                        "model": MULTILINGUAL}]}),
           dict[str, KnowledgeBaseGetOrCreateRagIndexesResponseValue])

    by_e5 = docs.chunks.list(document_id, embedding_model=E5, page_size=100)
    unnamed = docs.chunks.list(document_id, embedding_model=None, page_size=100)  # no model: the workspace's
    assert isinstance(by_e5, KnowledgeBaseDocumentChunksResponseModel) and by_e5.chunks
    assert [c.id for c in by_e5.chunks] == [c.id for c in unnamed.chunks]
    assert all(m in " ".join(squash(c.content) for c in by_e5.chunks) for m in markers)
    one = docs.chunk.get(document_id, by_e5.chunks[0].id, embedding_model=MULTILINGUAL)
    assert one.content == by_e5.chunks[0].content
    strict(raw.get(f"{KB}/{document_id}/chunks"), KnowledgeBaseDocumentChunksResponseModel)
    strict(raw.get(f"{KB}/{document_id}/chunks", params={"embedding_model": E5}), KnowledgeBaseDocumentChunksResponseModel)
    strict(raw.get(f"{KB}/{document_id}/chunk/{one.id}", params={"embedding_model": E5}),
           KnowledgeBaseDocumentChunkResponseModel)

    # Agents in the shape of ElevenLabs' default config retrieve, with either name
    for name in (E5, MULTILINGUAL):
        agent_id = cai.agents.create(name=f"{name} agent",
                                     conversation_config=elevenlabs_agent_config(document_id, "Topics", name)).agent_id
        agent = strict(raw.get(f"/v1/convai/agents/{agent_id}"), GetAgentResponseModel)
        assert agent.conversation_config.agent.prompt.rag.embedding_model == name
        answer = raw.post(f"/v1/convai/agents/{agent_id}/rag/retrieve", json={"query": "Which paragraph is about glaciers?"})
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["embedding_model"] == name and result["served_model"] == MODEL
        assert result["chunks"] and "glaciers" in result["chunks"][0]["text"]


# --- 13. agent read-back --------------------------------------------------------------------------


def test_an_agent_reads_back_with_elevenlabs_knowledge_base_defaults(el, raw):
    cai = el.conversational_ai
    document_id = add_text(el, WHALES, "Whale facts", wait=True)
    sent = {"agent": {"prompt": {"prompt": "Talk about whales.",
                                 "knowledge_base": [{"type": "text", "name": "Whale facts", "id": document_id}]}}}
    agent_id = cai.agents.create(name="No rag block", conversation_config=sent).agent_id

    agent = cai.agents.get(agent_id)
    prompt = agent.conversation_config.agent.prompt
    assert prompt.rag.max_vector_distance == 0.6
    assert (prompt.rag.enabled, prompt.rag.embedding_model) == (False, E5)
    assert (prompt.rag.max_documents_length, prompt.rag.max_retrieved_rag_chunks_count) == (50000, 20)
    assert [(k.id, k.usage_mode) for k in prompt.knowledge_base] == [(document_id, "auto")]
    assert prompt.prompt == "Talk about whales."
    strict(raw.get(f"/v1/convai/agents/{agent_id}"), GetAgentResponseModel)

    empty = cai.agents.create(conversation_config={}).agent_id
    bare = strict(raw.get(f"/v1/convai/agents/{empty}"), GetAgentResponseModel)
    assert bare.conversation_config.agent.prompt.knowledge_base == []
    assert bare.conversation_config.agent.prompt.rag.max_vector_distance == 0.6

    # What is read back is what retrieval applies: enabling rag alone (as the SDK's GET-then-PATCH
    # pattern does) retrieves with the defaults shown.
    updated = cai.agents.update(agent_id, conversation_config={"agent": {"prompt": {"rag": {"enabled": True}}}})
    assert updated.conversation_config.agent.prompt.rag.enabled is True
    assert updated.conversation_config.agent.prompt.rag.max_retrieved_rag_chunks_count == 20
    answer = raw.post(f"/v1/convai/agents/{agent_id}/rag/retrieve", json={"query": "What do blue whales eat?"}).json()
    assert answer["chunks"] and all(c["vector_distance"] <= 0.6 for c in answer["chunks"])
    assert answer["embedding_model"] == E5 and answer["served_model"] == MODEL  # as read back


# --- 14. dependent agents -------------------------------------------------------------------------


def test_dependent_agents_page_by_type_and_through_folders(el, raw):
    cai = el.conversational_ai
    docs = cai.knowledge_base.documents
    folder = docs.create_folder(name="Ocean").id
    inner = docs.create_folder(name="Deep sea", parent_folder_id=folder).id
    whales = add_text(el, WHALES, "Whale facts", parent_folder_id=inner)
    bread = add_text(el, BREAD, "Bread notes")

    def agent(name: str, *locators: tuple[str, str, str]) -> str:
        knowledge = [{"type": kind, "name": label, "id": i} for kind, label, i in locators]
        return cai.agents.create(name=name, conversation_config={"agent": {"prompt": {"knowledge_base": knowledge}}}).agent_id

    direct = [agent(f"direct {n}", ("text", "Whale facts", whales)) for n in range(3)]
    via_folder = agent("via folder", ("folder", "Ocean", folder))
    via_inner = agent("via inner folder", ("folder", "Deep sea", inner))
    both = agent("both", ("text", "Whale facts", whales), ("folder", "Ocean", folder))
    agent("unrelated", ("text", "Bread notes", bread))
    newest_first = [both, via_inner, via_folder, *reversed(direct)]

    def pages(call, **params) -> list:
        agents, cursor, count = [], None, 0
        while True:
            page = call(page_size=2, cursor=cursor, **params)
            assert isinstance(page, GetKnowledgeBaseDependentAgentsResponseModel) and len(page.agents) <= 2
            agents += page.agents
            count += 1
            assert count < 20
            if not page.has_more:
                assert page.next_cursor is None
                return agents
            assert page.next_cursor
            cursor = page.next_cursor

    everything = pages(lambda **p: docs.get_agents(whales, **p))  # dependent_type defaults to all
    assert [a.id for a in everything] == newest_first
    assert all(isinstance(a, GetKnowledgeBaseDependentAgentsResponseModelAgentsItem_Available) for a in everything)
    first = docs.get_agents(whales, page_size=2)
    assert first.has_more is True and len(first.agents) == 2

    only_direct = pages(lambda **p: docs.get_agents(whales, dependent_type="direct", **p))
    assert [a.id for a in only_direct] == [both, *reversed(direct)]
    transitive = pages(lambda **p: docs.get_agents(whales, dependent_type="transitive", **p))
    assert [(a.id, a.referenced_resource_ids) for a in transitive] == [(via_inner, [inner]), (via_folder, [folder])]
    assert [a.id for a in docs.get_agents(inner, dependent_type="direct").agents] == [via_inner]
    assert [a.id for a in docs.get_agents(inner, dependent_type="transitive").agents] == [both, via_folder]

    bulk = pages(lambda **p: docs.get_bulk_agents(document_ids=[whales, bread], **p))
    assert len(bulk) == len(newest_first) + 1 and len({a.id for a in bulk}) == len(bulk)
    strict(raw.get(f"{KB}/{whales}/dependent-agents", params={"page_size": 2}), GetKnowledgeBaseDependentAgentsResponseModel)
    for kind in ("direct", "transitive", "all"):
        strict(raw.get(f"{KB}/{whales}/dependent-agents", params={"dependent_type": kind}),
               GetKnowledgeBaseDependentAgentsResponseModel)
        strict(raw.post(f"{KB}/dependent-agents", params={"dependent_type": kind, "page_size": 3},
                        json={"document_ids": [whales, bread]}), GetKnowledgeBaseDependentAgentsResponseModel)
    bad = raw.get(f"{KB}/{whales}/dependent-agents", params={"dependent_type": "sideways"})
    assert bad.status_code == 422


# --- 15. content of file and URL documents ---------------------------------------------------------


def test_update_content_of_file_and_url_documents(el, raw, site, corpus):
    docs = el.conversational_ai.knowledge_base.documents
    pdf = (corpus / "pdf" / PDF_NAME).read_bytes()
    file_id = docs.create_from_file(file=(PDF_NAME, pdf, "application/pdf")).id
    page = html_page("Timetable", "The ferry to the island leaves the harbour at seven every morning.")
    url = site.serve("/content/timetable.html", page)
    url_id = docs.create_from_url(url=url, name="Timetable").id
    for document_id in (file_id, url_id):
        assert wait_index(el, document_id).status == "succeeded"

    edited = "Corrected text: the orchid greenhouse is kept at twenty-four degrees all year."
    updated = docs.update(file_id, content=edited)
    assert isinstance(updated, DocumentsUpdateResponse_File), type(updated)
    assert updated.id == file_id and updated.filename == PDF_NAME and updated.name == PDF_NAME
    assert "orchid greenhouse" in updated.extracted_inner_html and PDF_SENTENCES[0] not in updated.extracted_inner_html
    assert docs.get_content(file_id).strip() == edited
    assert updated.metadata.size_bytes == len(edited.encode())
    source = httpx.get(docs.get_source_file_url(file_id).signed_url, timeout=30)
    assert source.content == pdf  # the uploaded file stays its source file
    wait_retrievable(raw, "What temperature is the greenhouse?", file_id, new="orchid", old="Beautiful")

    moved = "The cable car to the summit departs from the valley station every twenty minutes."
    updated_url = docs.update(url_id, content=moved)
    assert isinstance(updated_url, DocumentsUpdateResponse_Url), type(updated_url)
    assert updated_url.url == url and updated_url.name == "Timetable" and moved in updated_url.extracted_inner_html
    assert docs.get_content(url_id).strip() == moved
    wait_retrievable(raw, "When does the cable car leave?", url_id, new="cable car", old="ferry")
    assert "ferry" in el.conversational_ai.knowledge_base.document.refresh(url_id).extracted_inner_html  # the page again

    strict(raw.patch(f"{KB}/{file_id}", json={"content": "Plain text, again."}), DocumentsUpdateResponse,
           "DocumentsUpdateResponse_File")
    strict(raw.patch(f"{KB}/{url_id}", json={"content": "Another text."}), DocumentsUpdateResponse,
           "DocumentsUpdateResponse_Url")
    folder = docs.create_folder(name="Empty").id
    refused = api_error(docs.update, folder, content="text")
    assert refused.status_code == 400 and "folder" in error_message(refused)


# --- 16. agents: tags filter and duplicate --------------------------------------------------------


def test_agents_list_filters_by_tags_and_duplicate_copies_an_agent(el, raw):
    agents = el.conversational_ai.agents
    document_id = add_text(el, WHALES, "Whale facts")
    config = {"agent": {"prompt": {"prompt": "Help.", "knowledge_base": [
        {"type": "text", "name": "Whale facts", "id": document_id, "usage_mode": "prompt"}]}}}
    made = {name: agents.create(name=name, tags=tags, conversation_config=config).agent_id
            for name, tags in [("support", ["support"]), ("sales", ["sales"]), ("vip", ["support", "vip"]),
                               ("untagged", []), ("Support", ["Support"])]}

    def names(**params) -> set[str]:
        listed, cursor = set(), None
        while True:
            page = agents.list(page_size=1, cursor=cursor, **params)
            assert isinstance(page, GetAgentsPageResponseModel)
            listed |= {a.name for a in page.agents}
            if not page.has_more:
                return listed
            cursor = page.next_cursor

    assert names(tags="support") == {"support", "vip"}  # exact tags, any case not folded
    assert names(tags=["sales", "vip"]) == {"sales", "vip"}  # any of several
    assert names(tags="nobody") == set()
    assert names() == set(made)
    strict(raw.get("/v1/convai/agents", params=[("tags", "support"), ("tags", "sales")]), GetAgentsPageResponseModel)

    copy = agents.duplicate(made["vip"])
    assert isinstance(copy, CreateAgentResponseModel) and copy.agent_id not in made.values()
    original, duplicate = agents.get(made["vip"]), agents.get(copy.agent_id)
    assert duplicate.name == "vip (copy)" and duplicate.tags == ["support", "vip"]
    assert duplicate.conversation_config.agent.prompt.prompt == original.conversation_config.agent.prompt.prompt
    assert [k.id for k in duplicate.conversation_config.agent.prompt.knowledge_base] == [document_id]
    named = agents.duplicate(made["sales"], name="Sales, second")
    assert agents.get(named.agent_id).name == "Sales, second"
    dependents = el.conversational_ai.knowledge_base.documents.get_agents(document_id, page_size=100)
    assert {copy.agent_id, named.agent_id} <= {a.id for a in dependents.agents}  # the copies use the document too
    strict(raw.post(f"/v1/convai/agents/{made['support']}/duplicate", json={}), CreateAgentResponseModel)
    assert_not_found(api_error(agents.duplicate, "agent_does_not_exist"))


# --- strict shapes --------------------------------------------------------------------------------


def test_every_response_validates_strictly_against_the_sdk_models(el, raw, site, corpus):
    """Each endpoint's raw JSON passes the SDK models with strict validation (all required fields, right types)."""
    folder = strict(raw.post(f"{KB}/folder", json={"name": "Shapes"}), AddKnowledgeBaseResponseModel).id
    text = strict(
        raw.post(f"{KB}/text", json={"text": WHALES, "name": "whales", "parent_folder_id": folder}),
        AddKnowledgeBaseResponseModel,
    ).id
    pdf_bytes = (corpus / "pdf" / PDF_NAME).read_bytes()
    pdf = strict(
        raw.post(f"{KB}/file", files={"file": (PDF_NAME, pdf_bytes, "application/pdf")}), AddKnowledgeBaseResponseModel
    ).id
    url = site.serve("/shapes/page.html", html_page("Shapes", "A page whose response shapes are checked strictly."))
    page = strict(raw.post(f"{KB}/url", json={"url": url}), AddKnowledgeBaseResponseModel).id
    for document_id in (text, pdf, page):
        wait_index(el, document_id)

    listing = strict(raw.get(KB, params={"page_size": 100}), GetKnowledgeBaseListResponseModel)
    assert {type(d).__name__ for d in listing.documents} >= {
        "GetKnowledgeBaseListResponseModelDocumentsItem_Folder",
        "GetKnowledgeBaseListResponseModelDocumentsItem_File",
        "GetKnowledgeBaseListResponseModelDocumentsItem_Url",
    }
    strict(raw.get(KB, params={"parent_folder_id": folder}), GetKnowledgeBaseListResponseModel)
    strict(raw.get(f"{KB}/{text}"), DocumentsGetResponse, "DocumentsGetResponse_Text")
    strict(raw.get(f"{KB}/{pdf}"), DocumentsGetResponse, "DocumentsGetResponse_File")
    strict(raw.get(f"{KB}/{page}"), DocumentsGetResponse, "DocumentsGetResponse_Url")
    strict(raw.get(f"{KB}/{folder}"), DocumentsGetResponse, "DocumentsGetResponse_Folder")
    renamed = raw.patch(f"{KB}/{text}", json={"name": "whales 2"})
    strict(renamed, DocumentsUpdateResponse, "DocumentsUpdateResponse_Text")

    search = strict(raw.get(f"{KB}/search", params={"query": "krill"}), KnowledgeBaseContentSearchResponseModel)
    assert [r.document.id for r in search.results] == [text]
    summaries = strict(
        raw.get(f"{KB}/summaries", params=[("document_ids", d) for d in (text, pdf, UNKNOWN_ID)]),
        dict[str, SummariesGetResponseValue],
    )
    assert isinstance(summaries[pdf].data, KnowledgeBaseSummaryBatchSuccessfulResponseModelData_File)
    strict(raw.get(f"{KB}/{text}/dependent-agents"), GetKnowledgeBaseDependentAgentsResponseModel)
    dependents = raw.post(f"{KB}/dependent-agents", json={"document_ids": [text, pdf]})
    strict(dependents, GetKnowledgeBaseDependentAgentsResponseModel)

    chunks_raw = raw.get(f"{KB}/{pdf}/chunks", params={"embedding_model": MODEL})
    chunks = strict(chunks_raw, KnowledgeBaseDocumentChunksResponseModel)
    strict(raw.get(f"{KB}/{pdf}/chunk/{chunks.chunks[0].id}"), KnowledgeBaseDocumentChunkResponseModel)
    strict(raw.get(f"{KB}/{pdf}/source-file-url"), KnowledgeBaseSourceFileUrlResponseModel)

    index = strict(raw.post(f"{KB}/{text}/rag-index", json={"model": MODEL}), RagDocumentIndexResponseModel)
    strict(raw.get(f"{KB}/{text}/rag-index"), RagDocumentIndexesResponseModel)
    strict(raw.get(f"{KB}/rag-index"), RagIndexOverviewResponseModel)
    strict(
        raw.post(
            f"{KB}/rag-index",
            json={"items": [{"document_id": d, "create_if_missing": True, "model": MODEL} for d in (pdf, UNKNOWN_ID)]},
        ),
        dict[str, KnowledgeBaseGetOrCreateRagIndexesResponseValue],
    )

    strict(raw.post(f"{KB}/{page}/refresh"), DocumentRefreshResponse, "DocumentRefreshResponse_Url")
    strict(
        raw.patch(f"{KB}/{pdf}/update-file", files={"file": ("notes.txt", b"Plain replacement text.", "text/plain")}),
        DocumentUpdateFileResponse,
        "DocumentUpdateFileResponse_File",
    )
    strict(raw.delete(f"{KB}/{text}/rag-index/{index.id}"), RagDocumentIndexResponseModel)
    strict(
        raw.post(f"{KB}/bulk-delete", json={"document_ids": [text, UNKNOWN_ID]}),
        dict[str, DocumentsBulkDeleteResponseValue],
    )


# --- 11. errors -----------------------------------------------------------------------------------


def test_unknown_document_is_404_with_a_json_body(el):
    kb = el.conversational_ai.knowledge_base
    docs = kb.documents
    for call, args, kwargs in [
        (docs.get, (UNKNOWN_ID,), {}),
        (docs.update, (UNKNOWN_ID,), {"name": "x"}),
        (docs.delete, (UNKNOWN_ID,), {}),
        (docs.get_content, (UNKNOWN_ID,), {}),
        (docs.get_agents, (UNKNOWN_ID,), {}),
        (docs.chunks.list, (UNKNOWN_ID,), {"embedding_model": MODEL}),
        (kb.document.compute_rag_index, (UNKNOWN_ID,), {"model": MODEL}),
        (kb.document.refresh, (UNKNOWN_ID,), {}),
        (kb.document.update_file, (UNKNOWN_ID,), {"file": ("a.txt", b"some text", "text/plain")}),
        (el.conversational_ai.get_document_rag_indexes, (UNKNOWN_ID,), {}),
        (el.conversational_ai.agents.get, ("agent_does_not_exist",), {}),
    ]:
        error = api_error(call, *args, **kwargs)
        assert error.status_code == 404, (call.__name__, error.status_code, error.body)
        assert "not found" in error_message(error).lower(), (call.__name__, error.body)


def test_wrong_api_key_is_401(sdk_server, el):
    add_text(el, WHALES, "whales")  # the right key works and has something to show
    stranger = ElevenLabs(api_key="kb_wrong_key", base_url=sdk_server.url, timeout=30)
    with pytest.raises(ApiError) as caught:
        stranger.conversational_ai.knowledge_base.list(request_options=NO_RETRY)
    assert caught.value.status_code == 401, caught.value.body
    assert error_message(caught.value)
    with pytest.raises(ApiError) as caught:
        stranger.conversational_ai.knowledge_base.documents.create_from_text(text=WHALES, request_options=NO_RETRY)
    assert caught.value.status_code == 401
    with sdk_server.client(None) as anonymous:  # no xi-api-key header at all
        response = anonymous.get(KB)
        assert response.status_code == 401 and response.json()["detail"]["message"]
    assert len(el.conversational_ai.knowledge_base.list().documents) == 1


def test_validation_errors_are_422_in_fastapi_shape(el, raw):
    response = raw.post(f"{KB}/text", json={})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    assert all({"loc", "msg", "type"} <= set(item) for item in detail)
    assert any(item["loc"][-1] == "text" for item in detail), detail

    with pytest.raises(UnprocessableEntityError) as caught:
        el.conversational_ai.knowledge_base.list(page_size=1000, request_options=NO_RETRY)
    assert caught.value.status_code == 422
    assert isinstance(caught.value.body, dict) and isinstance(caught.value.body["detail"], list)
    assert any(item["loc"][-1] == "page_size" for item in caught.value.body["detail"])

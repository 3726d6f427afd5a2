"""Crawl jobs and auto-sync against a real website on 127.0.0.1 (`tests/websites.py`), through
kb's HTTP API on a live server, with the real model, parser sandbox and job workers.

The site records every request, so robots.txt, patterns, politeness and "nothing fetched twice"
are checked from its side; documents and chunks are checked through the API.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websites import SITEMAP_DOCS, TestSite, article

from helpers import LiveServer, invoke_cli, make_kb
from kb.records import Workspace
from kb.services.crawls import CrawlRequest

KB = "/v1/convai/knowledge-base"
DONE = ("succeeded", "failed", "skipped", "cancelled")
SETTINGS = dict(url_allow_hosts=("127.0.0.1",), crawl_delay_secs=0.0, url_timeout_secs=3.0,
                max_upload_bytes=1_000_000)


@pytest.fixture(scope="module")
def crawl_kb(tmp_path_factory):
    instance = make_kb(tmp_path_factory.mktemp("crawl") / "data", **SETTINGS)
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def live(crawl_kb) -> Iterator[LiveServer]:
    server = LiveServer(crawl_kb).start()
    yield server
    server.stop()


def new_client(live: LiveServer, name: str) -> httpx.Client:
    return live.client(live.kb.workspaces.create(name)[1])


@pytest.fixture
def http(live, request) -> Iterator[httpx.Client]:
    with new_client(live, request.node.name[:40]) as client:
        yield client


@pytest.fixture
def site() -> Iterator[TestSite]:
    with TestSite() as served:
        yield served


def wait_crawl(http: httpx.Client, crawl_id: str, timeout: float = 120, until=DONE) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(f"{KB}/crawl/{crawl_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in until:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def crawl(http: httpx.Client, **body) -> dict:
    response = http.post(f"{KB}/crawl", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def documents_in(http: httpx.Client, folder_id: str) -> dict[str, dict]:
    """URL documents below the folder, by URL path."""
    found, cursor = {}, None
    while True:
        params = {"ancestor_folder_id": folder_id, "page_size": 100, **({"cursor": cursor} if cursor else {})}
        body = http.get(KB, params=params).json()
        for doc in body["documents"]:
            if doc["type"] == "url":
                found[httpx.URL(doc["url"]).path] = doc
        if not body["has_more"]:
            return found
        cursor = body["next_cursor"]


def wait_indexed(http: httpx.Client, document_ids, timeout: float = 180) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    indexes: dict[str, dict] = {}
    for document_id in document_ids:
        while True:
            listed = http.get(f"{KB}/{document_id}/rag-index").json()["indexes"]
            if listed and listed[0]["status"] not in ("created", "processing"):
                indexes[document_id] = listed[0]
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.2)
    return indexes


def page_requests(site: TestSite) -> Counter:
    return Counter(p for p in site.paths() if p not in ("/robots.txt",) and not p.startswith("/sitemap"))


# --- crawling ------------------------------------------------------------------------------------


def test_sitemap_crawl_counts_documents_robots_and_patterns(http, site):
    created = crawl(http, url=site.url("/"), exclude_patterns=["/blog/second"], max_depth=3)
    assert created["status"] == "queued" and created["type"] == "sitemap" and created["folder_path"] == []
    done = wait_crawl(http, created["id"])
    assert done["status"] == "succeeded", done
    assert done["type"] == "sitemap" and done["seed_url"] == site.url("/")
    assert done["exclude_patterns"] == ["/blog/second"] and done["max_pages"] == 1000
    # identified = scraped + skipped + failed; the disallowed sitemap entry is skipped without a request
    assert done["pages_identified"] == done["pages_scraped"] + done["pages_skipped"] + done["pages_failed"]
    docs = documents_in(http, done["root_folder_id"])
    assert set(docs) == {"/", "/docs/intro", "/docs/guide", "/docs/orphan", "/files/report.pdf", "/blog/first"}
    assert done["pages_scraped"] == len(docs) and done["pages_skipped"] == 1 and done["pages_failed"] == 0
    assert site.requested("/private/hidden") == [] and site.requested("/blog/second") == []
    assert site.requested("/docs/intro?utm_source=home&utm_medium=link") == []  # a sitemap crawl follows no link
    assert max(page_requests(site).values()) == 1
    # the root folder is named after the site and holds every page
    folder = http.get(f"{KB}/{done['root_folder_id']}").json()
    assert folder["type"] == "folder" and folder["name"] == f"127.0.0.1:{site.port}"
    assert folder["document_count"] == len(docs)
    # each page is a URL document, indexed like any other; the PDF is parsed like an upload
    pdf = http.get(f"{KB}/{docs['/files/report.pdf']['id']}").json()
    assert pdf["format"] == "pdf" and pdf["url"] == site.url("/files/report.pdf")
    indexes = wait_indexed(http, [d["id"] for d in docs.values()])
    assert {i["status"] for i in indexes.values()} == {"succeeded"}
    intro = http.get(f"{KB}/{docs['/docs/intro']['id']}/content").text
    assert "Example site footer" not in intro and len(intro) > 200  # boilerplate removed
    hits = http.post(f"{KB}/rag/retrieve", json={"query": intro[:200]}).json()["chunks"]
    assert hits and hits[0]["document_id"] == docs["/docs/intro"]["id"]


def test_discovery_crawl_follows_links_and_records_every_outcome(http):
    with TestSite(sitemaps=False) as site:
        done = wait_crawl(http, crawl(http, url=site.url("/"), pattern="/*", exclude_patterns=["/blog/*"])["id"])
        assert done["status"] == "succeeded" and done["type"] == "discovery", done
        docs = documents_in(http, done["root_folder_id"])
        paths = page_requests(site)
    expected = {"/", "/docs/intro", "/docs/guide", "/docs/moved-here", "/files/report.pdf", "/copy-a", "/changing",
                "/removable", "/docs/from-noindex"}
    assert set(docs) == expected
    assert done["pages_scraped"] == len(expected)
    assert done["pages_identified"] == done["pages_scraped"] + done["pages_skipped"] + done["pages_failed"]
    # the slow page timed out (failed) and the oversized one was skipped; /missing is a 404 (failed)
    assert paths["/slow"] == 1 and paths["/huge"] == 1 and paths["/missing"] == 1
    assert done["pages_failed"] >= 2 and done["pages_skipped"] >= 5  # huge, duplicate, near, canonical, noindex
    # robots.txt, nofollow and the exclude pattern are honoured; no page is fetched twice
    for never in ("/private/secret", "/nofollowed", "/blog/first", "/blog/second", "/logo.png"):
        assert paths[never] == 0, never
    assert max(paths.values()) == 1, paths


def test_crawl_requests_are_checked_and_isolated(live, http, site):
    for body, field in (({"url": "ftp://example.com"}, "url"), ({"url": site.url("/"), "max_pages": 0}, "max_pages"),
                        ({"url": site.url("/"), "max_pages": 10_001}, "max_pages"),
                        ({"url": site.url("/"), "auto_remove": True}, "auto_remove"),
                        ({"url": site.url("/"), "enable_auto_sync": True, "minimum_frequency_days": 0},
                         "minimum_frequency_days")):
        response = http.post(f"{KB}/crawl", json=body)
        assert response.status_code == 400, (body, response.text)
        assert field.split("_")[0] in response.json()["detail"]["message"], response.text
    assert http.post(f"{KB}/crawl", json={"url": site.url("/"), "parent_folder_id": "nope"}).status_code == 404
    assert http.get(f"{KB}/crawl").json()["crawl_jobs"] == []  # nothing stored by the refusals
    assert http.get(KB).json()["documents"] == []
    mine = crawl(http, url=site.url("/"), sitemap_urls=[site.url("/sitemaps/blog.xml.gz")])
    listed = http.get(f"{KB}/crawl").json()
    assert [c["id"] for c in listed["crawl_jobs"]] == [mine["id"]]
    with new_client(live, "other-tenant") as other:
        assert other.get(f"{KB}/crawl").json() == {"crawl_jobs": [], "next_cursor": None}
        assert other.get(f"{KB}/crawl/{mine['id']}").status_code == 404
        assert other.post(f"{KB}/crawl/{mine['id']}/cancel").status_code == 404
        assert other.get(f"{KB}/crawl", params={"include_job_ids": mine["id"]}).json()["crawl_jobs"] == []
        assert other.get(f"{KB}/{mine['root_folder_id']}").status_code == 404
    done = wait_crawl(http, mine["id"])
    assert done["status"] == "succeeded" and done["type"] == "sitemap"
    assert set(documents_in(http, done["root_folder_id"])) == {"/blog/first", "/blog/second"}
    # the crawl route no longer falls through to the document route
    assert http.get(f"{KB}/crawl/unknown").json()["detail"]["message"].startswith("crawl job")
    assert http.post(f"{KB}/crawl/{mine['id']}/cancel").status_code == 409  # it has ended


def test_cancel_stops_the_crawl_and_removes_its_documents_and_folders(http):
    with TestSite(crawl_delay=1.0) as site:  # one page a second: still running when cancelled
        created = crawl(http, url=site.url("/"))
        running = wait_crawl(http, created["id"], until=("processing",))
        deadline = time.monotonic() + 60
        while not documents_in(http, created["root_folder_id"]):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        started = time.monotonic()
        response = http.post(f"{KB}/crawl/{created['id']}/cancel")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        assert time.monotonic() - started < 5
        assert http.get(f"{KB}/{created['root_folder_id']}").status_code == 404
        assert http.get(KB).json()["documents"] == []
        time.sleep(2.5)  # anything still in flight ends within a request
        before = len(site.requested())
        time.sleep(2.5)
        assert len(site.requested()) == before, "the cancelled crawl still fetches pages"
    final = http.get(f"{KB}/crawl/{created['id']}").json()
    assert final["status"] == "cancelled" and running["status"] == "processing"
    assert http.get(KB).json()["documents"] == []


def test_a_crawl_survives_a_restart_and_fetches_nothing_twice(tmp_path):
    data = tmp_path / "data"
    with TestSite(crawl_delay=0.5, sitemaps=False) as site:
        first = make_kb(data, **SETTINGS)
        workspace, _ = first.workspaces.create("restart")
        first.start_workers()
        try:
            job = first.crawls.create(workspace, CrawlRequest(url=site.url("/"), exclude_patterns=("/slow", "/huge")))
            deadline = time.monotonic() + 60
            while first.crawls.get(workspace, job.id).pages_scraped < 3:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        finally:
            first.close()  # stops the workers: the crawl job is handed back mid-crawl
        stopped = _reopen_state(data, workspace)
        assert stopped.status == "processing" and 3 <= stopped.pages_scraped < 11, stopped
        second = make_kb(data, **SETTINGS)
        second.start_workers()
        try:
            deadline = time.monotonic() + 120
            while (done := second.crawls.get(workspace, job.id)).active:
                assert time.monotonic() < deadline, done
                time.sleep(0.2)
            docs = [d for d in _all_documents(second, workspace) if d.type == "url"]
        finally:
            second.close()
        paths = page_requests(site)
    assert done.status == "succeeded" and done.pages_scraped == len(docs) == 11, done
    assert max(paths.values()) == 1, paths  # nothing fetched twice
    assert Counter(p for p in site.paths())["/robots.txt"] == 1  # robots.txt read once, kept in the frontier


def _reopen_state(data: Path, workspace: Workspace):
    probe = make_kb(data, **SETTINGS, workers=0)
    try:
        return probe.crawls.get(workspace, probe.crawls.list(workspace).crawl_jobs[0].id)
    finally:
        probe.close()


def _all_documents(kb, workspace):
    from kb.records import ListQuery

    return kb.documents.list(workspace, ListQuery(page_size=100)).documents


# --- auto-sync -----------------------------------------------------------------------------------


def long_article(title: str, first: int, last: str | None = None) -> bytes:
    """A page of 16 passages (several chunks); `last` replaces the text of the last one."""
    body = article(title, first, count=16)
    if last is not None:
        from websites import passages

        from html import escape
        body = body.replace(escape(passages()[first + 15]).encode(), escape(last).encode())
    return body


def test_auto_sync_of_a_crawl_unchanged_changed_removed_and_discovered(live, http, site):
    site.set_page("/changing", long_article("A page the test changes", 60))
    site.set_sitemap("/sitemaps/docs.xml", list(SITEMAP_DOCS) + [("/changing", "2024-07-01"), ("/removable", "2024-07-01")])
    created = crawl(http, url=site.url("/"), enable_auto_sync=True, auto_remove=True, auto_discover=True,
                    minimum_frequency_days=3)
    done = wait_crawl(http, created["id"])
    assert done["status"] == "succeeded" and done["auto_discover"] is True and done["enable_auto_sync"] is True
    docs = documents_in(http, done["root_folder_id"])
    assert {"/changing", "/removable", "/docs/orphan"} <= set(docs)
    before = wait_indexed(http, [d["id"] for d in docs.values()])
    changing = docs["/changing"]["id"]
    info = http.get(f"{KB}/{changing}").json()["auto_sync_info"]
    assert info["minimum_frequency_days"] == 3 and info["auto_remove"] is True and info["consec_failures"] == 0
    assert info["next_refresh_by"] > time.time() + 2.9 * 86400
    folder = http.get(f"{KB}/{done['root_folder_id']}").json()
    assert folder["auto_sync_info"]["next_refresh_by"] is None and folder["auto_sync_info"]["minimum_frequency_days"] == 3
    kb = live.kb

    # 1. nothing changed: every page answers 304 to its ETag; no chunk is embedded again
    site.clear_requests()
    report = kb.auto_sync.run_pass(force=True)
    assert sorted(report.unchanged) == sorted(d["id"] for d in docs.values()), report
    assert not (report.changed or report.removed or report.discovered or report.failed)
    assert all(r.headers.get("If-None-Match") for r in site.requested() if r.path in docs)
    assert wait_indexed(http, [d["id"] for d in docs.values()]) == before  # untouched: same counts, same status

    # 2. one paragraph of one page changed: only the chunks with new text are embedded
    site.set_page("/changing", long_article("A page the test changes", 60, last="Completely new closing words. " * 12))
    # 3. a page is gone (404) and another is no longer in the sitemap; 4. a new page is listed
    site.remove("/removable")
    site.set_sitemap("/sitemaps/docs.xml", [e for e in SITEMAP_DOCS if e[0] != "/docs/orphan"]
                     + [("/changing", "2024-07-02"), ("/nofollowed", "2024-07-02")])
    report = kb.auto_sync.run_pass(force=True)
    assert report.changed == [changing], report
    assert sorted(report.removed) == sorted([docs["/removable"]["id"], docs["/docs/orphan"]["id"]]), report
    after = documents_in(http, done["root_folder_id"])
    assert set(after) == set(docs) - {"/removable", "/docs/orphan"} | {"/nofollowed"}
    assert report.discovered == [after["/nofollowed"]["id"]]
    assert http.get(f"{KB}/{docs['/removable']['id']}").status_code == 404
    reindexed = wait_indexed(http, [changing])[changing]
    total = reindexed["chunks_embedded"] + reindexed["chunks_reused"]
    assert reindexed["status"] == "succeeded" and total >= 3, reindexed
    assert 1 <= reindexed["chunks_embedded"] < total and reindexed["chunks_reused"] >= 1, reindexed
    assert "Completely new closing words" in http.get(f"{KB}/{changing}/content").text
    discovered = wait_indexed(http, [after["/nofollowed"]["id"]])
    assert next(iter(discovered.values()))["status"] == "succeeded"
    status = http.get(f"{KB}/{changing}").json()["refresh_status"]
    assert status["status"] == "succeeded" and status["last_synced_at"] >= int(time.time()) - 60


def test_auto_sync_of_url_documents_and_folders(live, http, site):
    folder = http.post(f"{KB}/folder", json={"name": "synced", "enable_auto_sync": True, "minimum_frequency_days": 2,
                                             "auto_remove": True}).json()
    added = http.post(f"{KB}/url", json={"url": site.url("/docs/guide"), "parent_folder_id": folder["id"],
                                         "enable_auto_sync": True, "minimum_frequency_days": 5})
    assert added.status_code == 200, added.text
    doc_id = added.json()["id"]
    info = http.get(f"{KB}/{doc_id}").json()["auto_sync_info"]
    assert info["minimum_frequency_days"] == 2 and info["auto_remove"] is True  # tightened to the folder's
    plain = http.post(f"{KB}/url", json={"url": site.url("/blog/first")}).json()["id"]
    assert http.get(f"{KB}/{plain}").json()["auto_sync_info"] is None
    # refused: settings without auto-sync, auto-sync on a text document, content of a synced page
    assert http.post(f"{KB}/url", json={"url": site.url("/"), "auto_remove": True}).status_code == 400
    text = http.post(f"{KB}/text", json={"text": "Some words to keep.", "name": "t"}).json()["id"]
    refused = http.patch(f"{KB}/{text}", json={"enable_auto_sync": True})
    assert refused.status_code == 400 and "URL documents and folders" in refused.json()["detail"]["message"]
    assert http.patch(f"{KB}/{doc_id}", json={"content": "new text"}).status_code == 400
    assert http.patch(f"{KB}/{doc_id}", json={"minimum_frequency_days": 400}).status_code == 400
    # turning it on for a plain URL document, and the folder tightening what is inside
    on = http.patch(f"{KB}/{plain}", json={"enable_auto_sync": True, "minimum_frequency_days": 10})
    assert on.status_code == 200 and on.json()["auto_sync_info"]["minimum_frequency_days"] == 10
    assert http.post(f"{KB}/{plain}/move", json={"move_to": folder["id"]}).status_code == 200
    tightened = http.patch(f"{KB}/{folder['id']}", json={"minimum_frequency_days": 1, "tighten_only": True})
    assert tightened.status_code == 200 and tightened.json()["auto_sync_info"]["minimum_frequency_days"] == 1
    assert http.get(f"{KB}/{plain}").json()["auto_sync_info"]["minimum_frequency_days"] == 1
    assert http.get(f"{KB}/{doc_id}").json()["auto_sync_info"]["minimum_frequency_days"] == 1
    loosened = http.patch(f"{KB}/{folder['id']}", json={"minimum_frequency_days": 4, "tighten_only": True})
    assert loosened.status_code == 200
    assert http.get(f"{KB}/{plain}").json()["auto_sync_info"]["minimum_frequency_days"] == 1  # stricter: kept
    exact = http.patch(f"{KB}/{folder['id']}", json={"minimum_frequency_days": 4, "tighten_only": False})
    assert exact.status_code == 200
    assert http.get(f"{KB}/{plain}").json()["auto_sync_info"]["minimum_frequency_days"] == 4
    # failures are counted and back off; a success resets the count
    workspace = live.kb.workspaces.authenticate(http.headers["xi-api-key"])
    site.remove("/docs/guide", status=503)
    first = live.kb.auto_sync.run_pass(force=True, workspace_id=workspace.id)
    assert doc_id in first.failed
    one = http.get(f"{KB}/{doc_id}").json()
    assert one["auto_sync_info"]["consec_failures"] == 1 and one["refresh_status"]["status"] == "failed"
    assert "503" in one["refresh_status"]["error_message"]
    live.kb.auto_sync.run_pass(force=True, workspace_id=workspace.id)
    two = http.get(f"{KB}/{doc_id}").json()["auto_sync_info"]
    assert two["consec_failures"] == 2
    assert two["next_refresh_by"] - time.time() > (one["auto_sync_info"]["next_refresh_by"] - time.time()) * 1.5
    site.set_page("/docs/guide", article("User guide", 4))
    live.kb.auto_sync.run_pass(force=True, workspace_id=workspace.id)
    assert http.get(f"{KB}/{doc_id}").json()["auto_sync_info"]["consec_failures"] == 0
    # a gone page of a folder with auto_remove is removed
    site.remove("/blog/first", status=410)
    report = live.kb.auto_sync.run_pass(force=True, workspace_id=workspace.id)
    assert report.removed == [plain] and http.get(f"{KB}/{plain}").status_code == 404


def test_the_periodic_sync_job_refetches_what_is_due(tmp_path, site):
    kb = make_kb(tmp_path / "data", **{**SETTINGS, "sync_day_secs": 2.0, "sync_check_secs": 1.0})
    workspace, _ = kb.workspaces.create("periodic")
    from kb.services.auto_sync import SyncRequest

    site.set_page("/changing", article("A page the test changes", 44))
    doc = kb.auto_sync.add_url(workspace, site.url("/changing"), None, None, SyncRequest(enable_auto_sync=True,
                                                                                       minimum_frequency_days=1))
    kb.start_workers()
    try:
        site.set_page("/changing", article("A page the test changes", 100))
        deadline = time.monotonic() + 60
        while kb.documents.get(workspace, doc.id).content_hash == doc.content_hash:
            assert time.monotonic() < deadline, "the due page was not synced"
            time.sleep(0.3)
        assert kb.scheduler.get("auto_sync") is not None
        assert kb.auto_sync.states(workspace, [doc.id])[doc.id].last_synced_at > doc.created_at
    finally:
        kb.close()


def test_kb_sync_now_on_the_command_line(tmp_path, site):
    from kb.services.auto_sync import SyncRequest

    data = tmp_path / "data"
    kb = make_kb(data, **SETTINGS)
    workspace, _ = kb.workspaces.create("cli")
    site.set_page("/changing", article("A page the test changes", 44))
    doc = kb.auto_sync.add_url(workspace, site.url("/changing"), None, None, SyncRequest(enable_auto_sync=True))
    while kb.run_queued_jobs():
        pass
    kb.close()
    site.set_page("/changing", article("A page the test changes", 120))
    env = {"KB_URL_ALLOW_HOSTS": "127.0.0.1", "KB_CRAWL_DELAY_SECS": "0"}
    due = invoke_cli(["sync", "--data-dir", str(data)], env=env, catch_exceptions=False)
    assert due.exit_code == 0 and '"changed": 0' in due.output, due.output  # not due for 7 days
    now = invoke_cli(["sync", "--now", "--data-dir", str(data), "--workspace", "cli"], env=env,
                     catch_exceptions=False)
    assert now.exit_code == 0 and '"changed": 1' in now.output, now.output
    kb = make_kb(data, **SETTINGS)
    try:
        assert kb.documents.get(workspace, doc.id).content_hash != doc.content_hash
        assert kb.rag_indexes.first_statuses(workspace, [doc.id])[doc.id] == "succeeded"
    finally:
        kb.close()

"""The web dashboard in a real browser: Debian's Chromium driven by Playwright, against a live kb with the real model.

The tests share one server and one signed-in browser and run in file order (each builds on the one before:
upload, then folders, then the playground, ...). Each page's screenshot goes to docs/screenshots/ with KB_UPDATE_SCREENSHOTS=1.

Chromium: `/usr/bin/chromium` (Debian's package); Playwright's own browser downloads are not used. When it is
missing and we are root on a Debian machine, it is installed with apt-get; Playwright (the PyPI package) is
installed with pip when it cannot be imported. Otherwise the module fails saying what to install.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from helpers import CORPUS, REPO, LiveServer, make_kb, wait_indexed
from websites import TestSite

CHROMIUM = Path(os.environ.get("KB_TEST_CHROMIUM", "/usr/bin/chromium"))
# KB_UPDATE_SCREENSHOTS=1 writes them over the README's (docs/screenshots/); otherwise to a scratch folder,
# so a test run leaves the checkout as it was.
SHOTS = REPO / "docs" / "screenshots" if os.environ.get("KB_UPDATE_SCREENSHOTS") == "1" else \
    Path(tempfile.gettempdir()) / "kb-dashboard-screenshots"
PDF = CORPUS / "pdf" / "google-doc-document.pdf"
SECOND_PDF = CORPUS / "pdf" / "multicolumn.pdf"
TIMEOUT_MS = 180_000  # indexing on a shared CI machine: generous


def _run(command: list[str], timeout: int = 1_800) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}", pytrace=False)


def _ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() == 0 and shutil.which("apt-get"):
        _run(["apt-get", "update", "-q"])
        _run(["apt-get", "install", "-y", "-q", "chromium"])
    if not CHROMIUM.exists():
        pytest.fail(f"the dashboard tests need Chromium at {CHROMIUM}: run `apt-get install -y chromium` as root "
                    "(Debian), or set KB_TEST_CHROMIUM to a Chromium binary", pytrace=False)
    return CHROMIUM


def _ensure_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _run([sys.executable, "-m", "pip", "install", "-q", "playwright"])  # the PyPI package only, no browser download
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            pytest.fail("the dashboard tests need Playwright: pip install playwright (never `playwright install`)",
                        pytrace=False)
    return sync_playwright


# --- fixtures: one server, two workspaces, one browser ------------------------------------------------


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    instance = make_kb(tmp_path_factory.mktemp("dashboard") / "data", url_allow_hosts=("127.0.0.1",))
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def server(kb):
    live = LiveServer(kb).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def keys(kb) -> dict[str, str]:
    return {"a": kb.workspaces.create("Acme support")[1], "b": kb.workspaces.create("Other tenant")[1]}


@pytest.fixture(scope="module")
def browser():
    chromium = _ensure_chromium()
    sync_playwright = _ensure_playwright()
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def page(browser, server):
    """Workspace A's browser tab (signed in by the first tests)."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())  # the delete confirmations
    yield tab
    context.close()


@pytest.fixture(scope="module")
def api(server, keys):
    with server.client(keys["a"]) as client:
        yield client


def shot(page, name: str, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def sign_in(page, key: str):
    page.goto("/dashboard")
    assert "/dashboard/sign-in" in page.url  # a page needs a session: sent to sign in first
    page.fill("#api_key", key)
    with page.expect_navigation():
        page.click("button:text('Sign in')")


def flash(page) -> str:
    return " | ".join(page.locator(".flash").all_inner_texts())


def drop_files(page, selector: str, files: list[tuple[str, bytes, str]]) -> None:
    """Drop files on `selector` as a user dragging them from the desktop would (a DataTransfer with File objects)."""
    payload = [{"name": n, "b64": base64.b64encode(d).decode(), "type": t} for n, d, t in files]
    transfer = page.evaluate_handle("""(files) => {
        const dt = new DataTransfer();
        for (const f of files) {
            const raw = atob(f.b64), bytes = new Uint8Array(raw.length);
            for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
            dt.items.add(new File([bytes], f.name, {type: f.type}));
        }
        return dt;
    }""", payload)
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def row(page, name: str):
    return page.locator("table.documents tbody tr", has=page.get_by_role("link", name=name, exact=True))


# --- 1. signing in --------------------------------------------------------------------------------------


def test_root_leads_to_the_sign_in_page_and_a_wrong_key_is_refused(page, server):
    response = page.goto("/")
    assert "/dashboard/sign-in" in page.url and response.ok
    shot(page, "sign-in")
    page.fill("#api_key", "not-a-key")
    with page.expect_response(lambda r: r.url.endswith("/dashboard/sign-in") and r.request.method == "POST") as answer:
        page.click("button:text('Sign in')")
    assert answer.value.status == 401
    assert "not valid" in page.locator("#sign-in-error").inner_text()
    assert "/dashboard/sign-in" in page.url
    assert not [c for c in page.context.cookies() if c["name"] == "kb_dashboard_session"]


def test_sign_in_gives_an_http_only_session_cookie_without_the_key(page, keys):
    sign_in(page, keys["a"])
    assert page.url.rstrip("/").endswith("/dashboard")
    assert "Signed in to workspace Acme support" in flash(page)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "kb_dashboard_session"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # plain http on loopback; Secure is set when served over https
    assert keys["a"] not in cookie["value"]
    assert "kb_dashboard_session" not in page.evaluate("document.cookie")  # out of the page's scripts' reach
    headers = page.context.request.get("/dashboard").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    assert page.locator(".empty").inner_text().startswith("No documents yet")
    shot(page, "documents-empty")


def test_a_post_without_the_csrf_token_is_refused(page, api):
    # The browser's own cookies (the session), but no token: as a forged cross-site form would send.
    refused = page.context.request.post("/dashboard/folders", form={"name": "forged"}, max_redirects=0)
    assert refused.status == 403 and "CSRF" in refused.text()
    wrong = page.context.request.post("/dashboard/folders", form={"name": "forged", "csrf_token": "guess"},
                                      max_redirects=0)
    assert wrong.status == 403
    upload = page.context.request.post("/dashboard/upload", multipart={
        "file": {"name": "x.txt", "mimeType": "text/plain", "buffer": b"forged " * 200}})
    assert upload.status == 403
    assert api.get("/v1/convai/knowledge-base").json()["documents"] == []  # nothing was made


# --- 2. documents ------------------------------------------------------------------------------------------


def test_upload_pdfs_by_drag_and_drop_with_progress_and_errors(page, api):
    page.goto("/dashboard")
    drop_files(page, "#dropzone", [
        (PDF.name, PDF.read_bytes(), "application/pdf"),
        (SECOND_PDF.name, SECOND_PDF.read_bytes(), "application/pdf"),
        ("broken.pdf", b"%PDF-1.4 this is not really a PDF", "application/pdf"),
    ])
    uploads = page.locator("#uploads li")
    good = uploads.filter(has_text=PDF.name)
    good.locator(".state", has_text="succeeded").wait_for(timeout=TIMEOUT_MS)
    uploads.filter(has_text=SECOND_PDF.name).locator(".state", has_text="succeeded").wait_for(timeout=TIMEOUT_MS)
    broken = uploads.filter(has_text="broken.pdf").locator(".state.error")
    broken.wait_for()
    assert broken.inner_text()  # its own error, next to the file
    assert uploads.count() == 3
    page.locator("#uploads-done").wait_for()
    shot(page, "upload")
    with page.expect_navigation():
        page.click("#uploads-done a")
    line = row(page, PDF.name)
    assert "succeeded" in line.inner_text() and "pdf" in line.inner_text()
    names = {d["name"] for d in api.get("/v1/convai/knowledge-base").json()["documents"]}
    assert names == {PDF.name, SECOND_PDF.name}


def test_add_text_and_search_by_name(page):
    page.goto("/dashboard")
    page.click("summary:text('Add text')")
    page.fill("#text-name", "Opening hours")
    page.fill("#text", "Our shop in Lyon is open Monday to Saturday from 9:00 to 19:00 and closed on Sundays. "
                       "Bank holidays follow the Sunday hours. Deliveries arrive on Tuesday mornings. " * 4)
    with page.expect_navigation():
        page.click("form[action^='/dashboard/text'] button")
    assert "being indexed" in flash(page)
    row(page, "Opening hours").locator(".badge", has_text="succeeded").wait_for(timeout=TIMEOUT_MS)  # polled live
    page.fill("#search", "open")
    with page.expect_navigation():
        page.click("form[role=search] button")
    names = page.locator("table.documents td.name a").all_inner_texts()
    assert names == ["Opening hours"]
    page.select_option("select[name=in]", "text")
    page.fill("#search", "silently")
    with page.expect_navigation():
        page.click("form[role=search] button")
    assert page.locator("table.documents td.name a").all_inner_texts() == [PDF.name]
    assert "silently" in page.locator(".snippet mark").first.inner_text().lower()


def test_create_a_folder_and_move_the_document_into_it(page, api):
    page.goto("/dashboard")
    page.click("summary:text('New folder')")
    page.fill("#folder-name", "Manuals")
    with page.expect_navigation():
        page.click("form[action^='/dashboard/folders'] button")
    assert "Folder 'Manuals' created" in flash(page)
    row(page, PDF.name).locator("input[type=checkbox]").check()
    page.select_option("#action", "move")
    page.select_option("#move_to", label="Manuals")
    with page.expect_navigation():
        page.click("#bulk button")
    assert "Moved 1 item" in flash(page)
    assert row(page, PDF.name).count() == 0  # the top level shows what is in no folder
    page.goto("/dashboard?all=1")
    assert "Manuals" in row(page, PDF.name).locator("td").nth(4).inner_text()  # its folder column
    with page.expect_navigation():
        page.locator("td.name").get_by_role("link", name="Manuals", exact=True).click()
    assert page.locator(".crumbs li").all_inner_texts() == ["All documents", "Manuals"]
    assert page.locator("table.documents td.name a").all_inner_texts() == [PDF.name]
    shot(page, "folder")
    [doc] = [d for d in api.get("/v1/convai/knowledge-base").json()["documents"] if d["name"] == PDF.name]
    assert [s["name"] for s in doc["folder_path"]] == ["Manuals"]


def test_filter_documents_by_type_and_format_with_sort_and_search(page):
    page.goto("/dashboard")
    names = lambda: page.locator("table.documents td.name a").all_inner_texts()  # noqa: E731
    page.select_option("#type", "file")
    with page.expect_navigation():
        page.click("form[role=search] button")
    assert sorted(names()) == sorted([PDF.name, SECOND_PDF.name])  # in every folder: Manuals' PDF too
    with page.expect_navigation():
        page.locator("thead").get_by_role("link", name="Name").click()  # sorting keeps the filter
    assert "type=file" in page.url and names() == sorted([PDF.name, SECOND_PDF.name], reverse=True)
    with page.expect_navigation():
        page.locator("thead").get_by_role("link", name="Name").click()
    assert names() == sorted([PDF.name, SECOND_PDF.name])
    page.select_option("#type", "text")
    with page.expect_navigation():
        page.click("form[role=search] button")
    assert "sort=name" in page.url and "dir=asc" in page.url  # the search form keeps the sort
    assert names() == ["Opening hours"]
    page.select_option("#format", "pdf")
    with page.expect_navigation():
        page.click("form[role=search] button")
    assert page.locator(".empty").inner_text() == "Nothing matches of type text in format pdf."
    page.select_option("#type", "")
    page.fill("#search", "multi")
    with page.expect_navigation():
        page.click("form[role=search] button")
    assert names() == [SECOND_PDF.name]  # a name search and a format filter together
    page.select_option("select[name=in]", "text")
    page.fill("#search", "silently")
    page.select_option("#format", "txt")
    with page.expect_navigation():
        page.click("form[role=search] button")
    assert page.locator(".empty").count() == 1  # full text: the PDF's words, but not in a txt
    page.select_option("#format", "pdf")
    with page.expect_navigation():
        page.click("form[role=search] button")
    assert names() == [PDF.name]
    page.goto("/dashboard?type=folder")
    assert names() == ["Manuals"]


def test_the_document_page(page):
    page.goto("/dashboard")
    with page.expect_navigation():
        page.locator("td.name").get_by_role("link", name="Manuals", exact=True).click()
    with page.expect_navigation():
        page.get_by_role("link", name=PDF.name, exact=True).click()
    assert page.locator("h1").inner_text() == PDF.name
    assert "Manuals" in page.locator(".crumbs").inner_text()
    indexes = page.locator("section[aria-labelledby=idx-h]")
    assert "succeeded" in indexes.inner_text()
    chunks = page.locator("ol.chunks li")
    assert chunks.count() >= 1 and "page 1" in chunks.first.inner_text()
    page.click("summary:text('Show the text')")
    assert "Errors should never pass silently" in page.locator("pre.text").inner_text()
    with page.expect_download() as download:
        page.evaluate("url => { const a = document.createElement('a'); a.href = url; a.download = ''; "
                      "document.body.appendChild(a); a.click(); }",
                      page.get_by_role("link", name="Download the source file").get_attribute("href"))
    assert Path(download.value.path()).read_bytes() == PDF.read_bytes()
    shot(page, "document")


def test_rename_a_folder(page, api):
    page.goto("/dashboard")
    with page.expect_navigation():
        page.locator("td.name").get_by_role("link", name="Manuals", exact=True).click()
    page.click("summary:text('Rename this folder')")
    page.fill("#folder-new-name", "Handbooks")
    with page.expect_navigation():
        page.click(".rename-folder button")
    assert "Renamed to 'Handbooks'" in flash(page)
    assert page.locator("h1").inner_text() == "Handbooks" and "folder=" in page.url  # still in the folder
    assert page.locator(".crumbs li").all_inner_texts() == ["All documents", "Handbooks"]
    [doc] = [d for d in api.get("/v1/convai/knowledge-base").json()["documents"] if d["name"] == PDF.name]
    assert [s["name"] for s in doc["folder_path"]] == ["Handbooks"]
    page.click("summary:text('Rename this folder')")
    page.fill("#folder-new-name", "Manuals")
    with page.expect_navigation():
        page.click(".rename-folder button")
    assert page.locator("h1").inner_text() == "Manuals"


# --- 3. the playground ----------------------------------------------------------------------------------


def test_playground_query_shows_the_top_chunk_highlighted_with_timings(page):
    page.goto("/dashboard/playground")
    assert page.locator(".results").count() == 0
    page.fill("#query", "Should errors pass silently?")
    with page.expect_navigation():
        page.click("form.playground button[type=submit]")
    top = page.locator("ol.hits li").first
    assert top.locator("a.doc").inner_text() == PDF.name
    assert "Errors should never pass silently" in top.locator(".chunk-text").inner_text()
    marked = {m.lower() for m in top.locator("mark").all_inner_texts()}
    assert {"errors", "silently"} <= marked
    assert 0 <= float(top.locator(".distance").inner_text()) <= 2  # hybrid: a complete lexical match is kept at any distance
    timings = page.locator("dl.timings").inner_text()
    assert "embed" in timings and "total" in timings
    shot(page, "playground", full_page=False)
    # A tight distance: the cut removes chunks and says so.
    page.fill("input[name=max_vector_distance]", "0.05")
    page.select_option("#search_mode", "dense")
    with page.expect_navigation():
        page.click("form.playground button[type=submit]")
    assert "distance cut removed" in page.locator("#distance-cut").inner_text()
    # A bad value is explained, not a traceback (the browser's own check taken away, the server's stays).
    page.evaluate("document.querySelector('input[name=max_vector_distance]').removeAttribute('max')")
    page.fill("input[name=max_vector_distance]", "7")
    with page.expect_navigation():
        page.click("form.playground button[type=submit]")
    assert "less than or equal to 2" in page.locator(".flash.error").inner_text()


# --- 4. usage and knowledge gaps ----------------------------------------------------------------------


def test_usage_page_shows_tier_and_bars(page, kb):
    page.goto("/dashboard/usage")
    assert page.locator(".tier").inner_text() == kb.workspaces.get(kb.workspaces.find_by_name("Acme support").id).tier
    bars = page.locator(".bar")
    assert bars.count() >= 4  # bytes, characters, all models, the default model
    assert "all-MiniLM-L6-v2" in page.locator("section[aria-labelledby=rag-h]").inner_text()
    assert float(page.locator("meter").nth(2).get_attribute("value")) > 0
    shot(page, "usage")


def test_knowledge_gaps_page_lists_questions_that_found_nothing(page, kb):
    page.goto("/dashboard/playground")
    page.fill("#query", "What is the warranty on quantum refrigerators?")
    page.fill("input[name=max_vector_distance]", "0.05")
    with page.expect_navigation():
        page.click("form.playground button[type=submit]")
    deadline = time.monotonic() + 30
    while True:
        page.goto("/dashboard/gaps")
        if page.locator("table").count() or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "quantum refrigerators" in page.locator("table").inner_text()
    link = page.locator("tr", has_text="quantum refrigerators").get_by_role("link", name="Try in the playground")
    with page.expect_navigation():
        link.click()
    assert "quantum refrigerators" in page.locator("#query").input_value()
    page.goto("/dashboard/gaps")
    shot(page, "gaps")


def _gap_questions(page, kb) -> list[str]:
    kb.gaps.flush()  # the log is written in the background
    page.goto("/dashboard/gaps")
    return [t.split("\n")[0] for t in page.locator("table tbody tr td:first-child").all_inner_texts()]


def _ask_for_nothing(page, question: str) -> None:
    page.goto("/dashboard/playground")
    page.fill("#query", question)
    page.fill("input[name=max_vector_distance]", "0.05")
    with page.expect_navigation():
        page.click("form.playground button[type=submit]")


def test_knowledge_gaps_delete_one_clear_all_and_the_switch(page, kb):
    _ask_for_nothing(page, "Which dinosaurs played the saxophone in 1850?")
    questions = _gap_questions(page, kb)
    assert any("quantum" in q for q in questions) and any("saxophone" in q for q in questions)
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert page.context.request.post("/dashboard/gaps/clear", form={}, max_redirects=0).status == 403  # no token
    assert page.context.request.post("/dashboard/gaps/settings", form={"csrf_token": "guess"},
                                     max_redirects=0).status == 403
    assert len(_gap_questions(page, kb)) == len(questions) and token
    with page.expect_navigation():
        page.locator("tr", has_text="quantum refrigerators").get_by_role("button", name="Delete").click()
    assert "Removed that question" in flash(page)
    left = [t for t in page.locator("table tbody tr td:first-child").all_inner_texts()]
    assert not any("quantum" in q for q in left) and any("saxophone" in q for q in left)
    # Off: a question that finds nothing is not recorded.
    with page.expect_navigation():
        page.click("#gap-switch button")
    assert "gap log is off" in flash(page)
    assert page.locator("#gap-switch button").inner_text() == "Turn the gap log on"
    _ask_for_nothing(page, "How tall is the lighthouse on planet Zorblax?")
    assert not any("Zorblax" in q for q in _gap_questions(page, kb))
    with page.expect_navigation():
        page.click("#gap-switch button")
    assert "gap log is on" in flash(page)
    assert page.locator("#gap-switch button").inner_text() == "Turn the gap log off"
    with page.expect_navigation():
        page.click("#gap-clear button")
    assert "Cleared the gap log" in flash(page)
    assert page.locator(".empty").inner_text().startswith("No gaps recorded")
    assert _gap_questions(page, kb) == []


# --- 5. web sources ----------------------------------------------------------------------------------


def test_start_a_crawl_and_watch_its_counters(page):
    with TestSite() as site:
        page.goto("/dashboard/crawls")
        assert page.locator(".empty").count() == 1
        page.fill("#crawl-url", site.url("/"))
        page.fill("#max_pages", "5")
        with page.expect_navigation():
            page.click("form[action='/dashboard/crawls'] button")
        assert "started" in flash(page)
        crawl = page.locator("tr[data-crawl]").first
        # The counters rise live (the page polls), until the crawl ends.
        crawl.locator("[data-field=pages_scraped]").filter(has_text=re.compile(r"^[1-9]")).wait_for(timeout=TIMEOUT_MS)
        crawl.locator("[data-field=status]").filter(has_text=re.compile("succeeded|failed")).wait_for(timeout=TIMEOUT_MS)
        assert crawl.locator("[data-field=status]").inner_text() == "succeeded"
        shot(page, "crawls")


def _start_crawl(page, site, max_pages: int, **options) -> None:
    page.goto("/dashboard/crawls")
    page.click("summary:text('Crawl a website')")  # folded once there are crawls
    page.fill("#crawl-url", site.url("/"))
    page.fill("#max_pages", str(max_pages))
    if options.get("days"):
        page.check("input[name=enable_auto_sync]")
        page.fill("#minimum_frequency_days", str(options["days"]))
    with page.expect_navigation():
        page.click("form[action='/dashboard/crawls'] button")
    assert "started" in flash(page)


def test_cancel_a_running_crawl(page):
    with TestSite(crawl_delay=20) as site:  # robots.txt asks 20 s between pages: still running when cancelled
        _start_crawl(page, site, 20)
        crawl = page.locator("tr[data-crawl]", has_text=site.base)
        assert crawl.locator("[data-field=status]").inner_text() in ("queued", "processing")
        with page.expect_navigation():
            crawl.get_by_role("button", name="Cancel").click()  # its confirmation is accepted
        assert "Crawl cancelled" in flash(page)
        crawl = page.locator("tr[data-crawl]", has_text=site.base)
        assert crawl.locator("[data-field=status]").inner_text() == "cancelled"
        assert crawl.get_by_role("button", name="Cancel").count() == 0
        token = page.locator("meta[name=csrf-token]").get_attribute("content")
        again = page.context.request.post(f"/dashboard/crawls/{crawl.get_attribute('data-crawl')}/cancel",
                                          form={"csrf_token": token})
        assert "has ended (cancelled)" in again.text()  # a second cancel is explained


def test_a_synced_crawl_shows_its_last_and_next_refresh(page):
    with TestSite() as site:
        _start_crawl(page, site, 2, days=3)
        crawl = page.locator("tr[data-crawl]", has_text=site.base)
        crawl.locator("[data-field=status]").filter(has_text=re.compile("succeeded|failed")).wait_for(timeout=TIMEOUT_MS)
        page.reload()
        crawl = page.locator("tr[data-crawl]", has_text=site.base)
        assert crawl.locator("[data-field=status]").inner_text() == "succeeded"
        assert "every 3 d" in crawl.inner_text()
        stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$")
        last = crawl.locator("[data-field=last_refresh]").inner_text()
        upcoming = crawl.locator("[data-field=next_refresh]").inner_text()
        assert stamp.match(last) and stamp.match(upcoming) and upcoming > last
        shot(page, "crawls")


def test_a_url_documents_auto_sync_settings(page, api):
    with TestSite() as site:
        page.goto("/dashboard")
        page.click("summary:text('Add a URL')")
        page.fill("#url", site.url("/"))
        page.fill("#url-name", "Site home")
        with page.expect_navigation():
            page.click("form[action^='/dashboard/url'] button")
        assert "Added 'Site home'" in flash(page)
    with page.expect_navigation():
        page.get_by_role("link", name="Site home", exact=True).click()
    doc_id = page.url.rsplit("/", 1)[1]
    details = page.locator("section[aria-labelledby=meta-h] dl")
    assert "Auto-sync\noff" in details.inner_text()
    form = page.locator("#sync-form")
    assert not form.locator("#enable_auto_sync").is_checked()
    page.click("summary:text('Auto-sync settings')")  # folded while auto-sync is off
    form.locator("#enable_auto_sync").check()
    form.locator("#sync-days").fill("3")
    form.locator("#sync-remove").check()
    with page.expect_navigation():
        form.locator("button").click()
    assert "Auto-sync is on" in flash(page)
    assert "every 3 day(s), removed when gone" in details.inner_text()
    assert form.locator("#enable_auto_sync").is_checked() and form.locator("#sync-days").input_value() == "3"
    info = api.get(f"/v1/convai/knowledge-base/{doc_id}").json()["auto_sync_info"]
    assert info["minimum_frequency_days"] == 3 and info["auto_remove"] is True
    # A value the API refuses is refused here too, explained.
    page.evaluate("document.querySelector('#sync-days').removeAttribute('max')")
    form.locator("#sync-days").fill("5000")
    with page.expect_navigation():
        form.locator("button").click()
    assert "less than or equal to 3650" in page.locator(".flash.error").inner_text()
    page.goto(f"/dashboard/documents/{doc_id}")
    form.locator("#enable_auto_sync").uncheck()
    with page.expect_navigation():
        form.locator("button").click()
    assert "Auto-sync is off" in flash(page) and "Auto-sync\noff" in details.inner_text()
    assert api.get(f"/v1/convai/knowledge-base/{doc_id}").json().get("auto_sync_info") is None


# --- 6. isolation, then deleting with the agent guard ------------------------------------------------------


def test_a_second_workspace_sees_none_of_it(browser, server, keys, api):
    context = browser.new_context(base_url=server.url)
    other = context.new_page()
    try:
        sign_in(other, keys["b"])
        assert "Other tenant" in other.locator(".who").inner_text()
        assert other.locator(".empty").inner_text().startswith("No documents yet")
        [doc] = [d for d in api.get("/v1/convai/knowledge-base").json()["documents"] if d["name"] == PDF.name]
        response = other.goto(f"/dashboard/documents/{doc['id']}")
        assert response.status == 404 and "not found" in other.locator(".flash.error").inner_text()
        assert other.context.request.get(f"/dashboard/documents/status?ids={doc['id']}").json() == {}
        folder = doc["folder_path"][0]["id"]
        assert other.goto(f"/dashboard?folder={folder}").status == 404
        other.goto("/dashboard/playground")
        other.fill("#query", "Should errors pass silently?")
        with other.expect_navigation():
            other.click("form.playground button[type=submit]")
        assert other.locator("ol.hits li").count() == 0
        # Its own token, a document of A's: moved nowhere.
        token = other.locator("meta[name=csrf-token]").get_attribute("content")
        other.context.request.post("/dashboard/bulk", form={"csrf_token": token, "ids": doc["id"], "action": "delete",
                                                            "force": "on"})
        assert api.get(f"/v1/convai/knowledge-base/{doc['id']}").status_code == 200
        for path in ("/dashboard/usage", "/dashboard/gaps", "/dashboard/crawls"):
            other.goto(path)
            text = other.locator("main").inner_text()
            assert PDF.name not in text and "quantum" not in text and "127.0.0.1" not in text
    finally:
        context.close()


def test_delete_is_guarded_while_an_agent_uses_the_document(page, api):
    [doc] = [d for d in api.get("/v1/convai/knowledge-base").json()["documents"] if d["name"] == PDF.name]
    created = api.post("/v1/convai/agents/create", json={"name": "Zen helper", "conversation_config": {"agent": {"prompt": {
        "knowledge_base": [{"type": "file", "name": PDF.name, "id": doc["id"], "usage_mode": "auto"}],
        "rag": {"enabled": True, "max_vector_distance": 0.9}}}}})
    assert created.status_code == 200, created.text
    page.goto(f"/dashboard?folder={doc['folder_path'][0]['id']}")
    assert "Zen helper" in row(page, PDF.name).inner_text()  # its dependent agents
    # The playground as the agent, with its own settings.
    page.goto("/dashboard/playground")
    page.select_option("#agent_id", label="Zen helper")
    page.fill("#query", "Should errors pass silently?")
    with page.expect_navigation():
        page.click("form.playground button[type=submit]")
    assert page.locator("ol.hits li a.doc").first.inner_text() == PDF.name
    page.goto(f"/dashboard/documents/{doc['id']}")
    with page.expect_navigation():
        page.click("button.danger")
    assert "agents depend on" in flash(page) and "Zen helper" in flash(page)
    assert api.get(f"/v1/convai/knowledge-base/{doc['id']}").status_code == 200
    shot(page, "delete-guard", full_page=False)
    page.check("form.danger input[name=force]")
    with page.expect_navigation():
        page.click("button.danger")
    assert f"Deleted '{PDF.name}'" in flash(page)
    assert "Manuals" in page.locator("h1").inner_text()  # back in its folder, now empty
    assert page.locator(".empty").inner_text().startswith("This folder is empty")
    assert api.get(f"/v1/convai/knowledge-base/{doc['id']}").status_code == 404


def test_phone_screen_and_sign_out(page):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/dashboard")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # the table scrolls inside its box
    shot(page, "documents-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/dashboard")
    shot(page, "documents")
    page.keyboard.press("Tab")  # the first stop is the skip link
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    with page.expect_navigation():
        page.click("button:text('Sign out')")
    assert "/dashboard/sign-in" in page.url
    assert not [c for c in page.context.cookies() if c["name"] == "kb_dashboard_session"]
    assert "/dashboard/sign-in" in (page.goto("/dashboard/usage") and page.url)

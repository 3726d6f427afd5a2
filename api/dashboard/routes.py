"""The dashboard's pages: server-rendered Jinja2 templates over kb's services (no business logic here).

Every page but sign-in needs a session (see `sessions.py`); every POST checks the session's CSRF token
(form field `csrf_token` or header `X-CSRF-Token`). A page only ever reads or changes the session's
workspace: the workspace comes from the session, never from the request. kb's errors become a message
on the page (or `{"error": ...}` for the script's calls), with the status `api/errors.py` gives them;
anything unexpected is logged and shown as a plain "something went wrong", never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from pydantic import ValidationError

from kb.errors import Conflict, InvalidRequest, KBError, NotFound, Unauthorized
from kb.filters import parse_filter
from kb.knowledge_base import KnowledgeBase
from kb.records import ListQuery, Workspace
from kb.services.agents import RetrieveOverrides
from kb.services.auto_sync import SyncRequest
from kb.services.crawls import ACTIVE as ACTIVE_CRAWL
from kb.services.rag_indexes import RETRYABLE_STATUSES
from kb.services.retrieval import RetrievalLimits, SearchOptions

from .. import presenters
from ..agent_schemas import AgentRetrieveRequest
from ..crawl_schemas import CrawlJobRequest
from ..errors import status_for
from ..offload import on_ingest_pool
from ..schemas import FolderRequest, RetrieveRequest, TextDocumentRequest, UpdateDocumentRequest, UrlDocumentRequest
from .sessions import COOKIE, PRE_COOKIE, Session, Sessions, TTL_SECS

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
PAGE_SIZE = 50
FOLDER_CHOICES = 200  # folders offered in the "move to" and "in folder" lists
TEXT_SHOWN = 200_000  # characters of a document's extracted text shown on its page
TERMINAL = ("succeeded", "failed", "rag_limit_exceeded", "document_too_small")
SORTS = ("name", "created_at", "updated_at", "size")
TYPES = ("file", "url", "text", "folder")  # the documents table's type filter
FORMATS = ("pdf", "docx", "epub", "html", "txt", "markdown")  # and its format filter


# --- plumbing: the signed-in context, errors, CSRF --------------------------------------------------


class SignInRequired(Exception):
    pass


class CsrfRefused(Exception):
    pass


@dataclass
class Ctx:
    request: Request
    kb: KnowledgeBase
    workspace: Workspace
    session: Session

    def page(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return templates.TemplateResponse(self.request, template, {
            "workspace": self.workspace, "csrf_token": self.session.csrf_token,
            "flashes": self.session.take_flashes(), **values,
        }, status_code=status_code)

    @contextlib.contextmanager
    def flashing(self, error_prefix: str = "") -> Iterator[None]:
        """Run a form's action: kb's error (a KBError) becomes an error flash on the page it goes back to."""
        try:
            yield
        except KBError as exc:
            self.session.flash("error", error_prefix + exc.message)

    def back(self, fallback: str = "/dashboard") -> RedirectResponse:
        """303 to the form's `back` (a dashboard path only), else `fallback`."""
        return RedirectResponse(_safe_back(self.request.query_params.get("back"), fallback), status_code=303)


def _safe_back(value: str | None, fallback: str) -> str:
    if value and value.startswith("/dashboard") and "//" not in value and "\\" not in value:
        return value
    return fallback


def _sessions(request: Request) -> Sessions:
    return request.app.state.dashboard_sessions


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or request.headers.get("x-requested-with") == "fetch"


def current(request: Request) -> Ctx:
    kb: KnowledgeBase = request.app.state.kb
    session = _sessions(request).get(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired()
    try:
        workspace = kb.workspaces.get(session.workspace_id)
    except NotFound:  # the workspace was deleted since
        _sessions(request).close(request.cookies.get(COOKIE))
        raise SignInRequired() from None
    return Ctx(request, kb, workspace, session)


async def checked(request: Request) -> tuple[Ctx, dict]:
    """The signed-in context and the form of a POST whose CSRF token matches the session's."""
    ctx = current(request)
    form: dict = {}
    if request.headers.get("content-type", "").startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()
    token = request.headers.get("x-csrf-token") or form.get("csrf_token")
    if not isinstance(token, str) or not ctx.session.csrf_ok(token):
        raise CsrfRefused()
    return ctx, form


Checked = Annotated[tuple, Depends(checked)]  # for sync routes: the form is read on the event loop, the work in a thread


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    session = _sessions(request).get(request.cookies.get(COOKIE))
    return templates.TemplateResponse(request, "error.html", {
        "title": title, "message": message, "csrf_token": session.csrf_token if session else None,
        "workspace": None, "flashes": [],
    }, status_code=status)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{field}: {error.get('msg')}" if field else str(error.get("msg")))
    return "; ".join(parts) or "invalid input"


# Scripts and styles from the dashboard's own files only; no framing (clickjacking); no referrer to other sites.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class DashboardRoute(APIRoute):
    """Turns every error of a dashboard route into a page (or JSON for the script), never a traceback."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            response = await answer(request)
            response.headers.update(SECURITY_HEADERS)
            return response

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                if _wants_json(request):
                    return JSONResponse({"error": "signed out: sign in again"}, status_code=401)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/dashboard/sign-in?" + urlencode({"next": target}), status_code=303)
            except CsrfRefused:
                return _error_page(request, 403, "Refused",
                                   "This form has expired or did not come from this dashboard (CSRF check failed). "
                                   "Reload the page and try again.")
            except ValidationError as exc:
                return _error_page(request, 400, "Invalid input", _validation_message(exc))
            except KBError as exc:
                return _error_page(request, status_for(exc.code), "Error", exc.message)
            except Exception:
                log.exception("dashboard error on %s %s", request.method, request.url.path)
                return _error_page(request, 500, "Something went wrong",
                                   "The server could not complete this request; the details are in the server log.")

        return handle


router = APIRouter(prefix="/dashboard", include_in_schema=False, route_class=DashboardRoute)


def install(app: FastAPI) -> None:
    """The one registration of the dashboard in the app: its pages, its static files, and `/` → `/dashboard`."""
    app.state.dashboard_sessions = Sessions()
    # The static files first: the router ends with a catch-all "not found" page under /dashboard.
    app.mount("/dashboard/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard", status_code=307)


# --- template helpers -----------------------------------------------------------------------------


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "–"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def when(secs: float | int | None) -> str:
    if not secs:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(secs))


def percent(used: float, limit: float) -> float:
    return 0.0 if not limit else min(100.0, 100.0 * used / limit)


templates.env.filters["bytes"] = human_bytes
templates.env.filters["when"] = when
templates.env.globals["percent"] = percent
templates.env.globals["human_bytes"] = human_bytes
templates.env.globals["thousands"] = lambda n: f"{n:,}"


def _query(**params: Any) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "", False)})


templates.env.globals["query"] = _query

_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset("a an and are as at be by do does for from how i in is it of on or the to what when where which "
                      "who why with you your can my me we our".split())


def query_terms(query: str) -> list[str]:
    words = {w.lower() for w in _WORD.findall(query) if len(w) > 1 and w.lower() not in STOPWORDS}
    return sorted(words, key=len, reverse=True)


def highlight(text: str, terms: list[str]) -> Markup:
    """`text` escaped, with the words that start with one of `terms` in <mark> (a prefix stands in for a stem)."""
    if not terms:
        return escape(text)
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(t[:max(4, len(t) - 2)]) for t in terms) + r")\w*",
                         re.IGNORECASE | re.UNICODE)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(escape(text[last:match.start()]))
        out.append(Markup("<mark>") + escape(match.group(0)) + Markup("</mark>"))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


# --- sign in and out ------------------------------------------------------------------------------


def _cookie_args(request: Request) -> dict:
    return {"httponly": True, "samesite": "lax", "secure": request.url.scheme == "https", "path": "/dashboard"}


def _sign_in_page(request: Request, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    import secrets

    token = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(32)
    response = templates.TemplateResponse(request, "sign_in.html", {
        "error": error, "signin_token": token, "next": _safe_back(request.query_params.get("next"), "/dashboard"),
        "workspace": None, "csrf_token": None, "flashes": [],
    }, status_code=status_code)
    response.set_cookie(PRE_COOKIE, token, max_age=3600, **_cookie_args(request))
    return response


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request) -> Response:
    if _sessions(request).get(request.cookies.get(COOKIE)) is not None:
        return RedirectResponse("/dashboard", status_code=303)
    return _sign_in_page(request)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await request.form()
    expected, given = request.cookies.get(PRE_COOKIE), form.get("csrf_token")
    import hmac

    if not expected or not isinstance(given, str) or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfRefused()
    api_key = form.get("api_key")
    kb: KnowledgeBase = request.app.state.kb
    try:
        workspace = kb.workspaces.authenticate(api_key.strip() if isinstance(api_key, str) else None)
    except Unauthorized:
        return _sign_in_page(request, "That API key is not valid. Check it (kb workspace create prints a new one).", 401)
    _sessions(request).close(request.cookies.get(COOKIE))  # a new session on every sign-in (no fixation)
    token, session = _sessions(request).open(workspace.id)
    session.flash("ok", f"Signed in to workspace {workspace.name}.")
    response = RedirectResponse(_safe_back(form.get("next") if isinstance(form.get("next"), str) else None,
                                           "/dashboard"), status_code=303)
    response.set_cookie(COOKIE, token, max_age=TTL_SECS, **_cookie_args(request))
    response.delete_cookie(PRE_COOKIE, path="/dashboard")
    return response


@router.post("/sign-out")
def sign_out(request: Request, checked_: Checked) -> Response:
    _sessions(request).close(request.cookies.get(COOKIE))
    response = RedirectResponse("/dashboard/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response


# --- documents ------------------------------------------------------------------------------------


def _folder_choices(ctx: Ctx) -> list[tuple[str, str]]:
    """(id, "A / B / C") of the workspace's folders, by name, for the forms' folder lists."""
    page = ctx.kb.documents.list(ctx.workspace, ListQuery(page_size=100, types=("folder",), sort_by="name",
                                                          sort_direction="asc"))
    folders = list(page.documents)
    while page.has_more and len(folders) < FOLDER_CHOICES:
        page = ctx.kb.documents.list(ctx.workspace, ListQuery(page_size=100, cursor=page.next_cursor, types=("folder",),
                                                              sort_by="name", sort_direction="asc"))
        folders += page.documents
    paths = ctx.kb.folders.paths(ctx.workspace, [f.parent_folder_id for f in folders])
    labelled = [(f.id, " / ".join([n for _, n in paths[f.parent_folder_id]] + [f.name])) for f in folders]
    return sorted(labelled, key=lambda item: item[1].lower())


def _index_view(index) -> dict:
    return {"id": index.id, "model": index.model, "status": index.status, "progress": index.progress_percentage,
            "error": index.error, "used_bytes": index.used_bytes, "retryable": index.status in RETRYABLE_STATUSES,
            "chunks_embedded": index.chunks_embedded, "chunks_reused": index.chunks_reused}


def _param(request: Request, name: str, limit: int = 1_000) -> str | None:
    value = request.query_params.get(name)
    return value[:limit] if value else None


@router.get("", response_class=HTMLResponse)
def documents_page(request: Request) -> Response:
    ctx = current(request)
    kb, workspace = ctx.kb, ctx.workspace
    folder_id = _param(request, "folder", 128)
    search = _param(request, "search")
    text_search = request.query_params.get("in") == "text"
    sort = request.query_params.get("sort") if request.query_params.get("sort") in SORTS else "created_at"
    direction = "asc" if request.query_params.get("dir") == "asc" else "desc"
    cursor = _param(request, "cursor", 2_000)
    every = request.query_params.get("all") == "1"  # every document, whatever its folder
    kind = request.query_params.get("type") if request.query_params.get("type") in TYPES else None
    fmt = request.query_params.get("format") if request.query_params.get("format") in FORMATS else None
    filtered = bool(search or kind or fmt)  # a search or a filter looks below the folder, not only in it
    folder = kb.documents.get(workspace, folder_id) if folder_id else None
    if folder is not None and not folder.is_folder:
        return RedirectResponse(f"/dashboard/documents/{folder.id}", status_code=303)
    breadcrumbs = kb.folders.path(workspace, folder.id) if folder else []
    hits: dict[str, Any] = {}
    if search and text_search:
        found, next_cursor = kb.search.search(
            workspace, search, page_size=PAGE_SIZE, cursor=cursor, types=(kind,) if kind else (),
            filters=parse_filter({"type": "eq", "key": "format", "value": fmt}) if fmt else None,
            folder_ids=[folder.id] if folder else None)
        docs = [doc for doc, _ in found]
        hits = {doc.id: hit for doc, hit in found}
        has_more = next_cursor is not None
    else:
        page = kb.documents.list(workspace, ListQuery(
            PAGE_SIZE, cursor, search, (kind,) if kind else (), None if filtered else (folder.id if folder else None),
            folder.id if (filtered and folder) else None, sort, direction, folders_first=not filtered,
            top_level_only=not (filtered or folder or every), formats=(fmt,) if fmt else ()))
        docs, next_cursor, has_more = page.documents, page.next_cursor, page.has_more
    summaries = presenters.summaries(kb, workspace, docs)
    indexes = kb.rag_indexes.of_documents(workspace, [d.id for d in docs if not d.is_folder])
    rows = [{
        "doc": doc, "summary": summary, "indexes": [_index_view(i) for i in indexes.get(doc.id, [])],
        "snippet": hits[doc.id].snippet if doc.id in hits else None,
    } for doc, summary in zip(docs, summaries)]
    return ctx.page(
        "documents.html", nav="documents", rows=rows, folder=folder, breadcrumbs=breadcrumbs, search=search or "",
        text_search=text_search, every=every, kind=kind, fmt=fmt, types=TYPES, formats=FORMATS, sort=sort, direction=direction, cursor=cursor,
        next_cursor=next_cursor if has_more else None, folders=_folder_choices(ctx),
        here=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
    )


@router.get("/documents/status")
def documents_status(request: Request) -> JSONResponse:
    """The indexes of up to 100 documents (`ids`, comma-separated), for the page's live status cells."""
    ctx = current(request)
    ids = [i for i in (request.query_params.get("ids") or "").split(",") if i][:100]
    found = ctx.kb.documents.get_many(ctx.workspace, ids)
    indexes = ctx.kb.rag_indexes.of_documents(ctx.workspace, list(found))
    return JSONResponse({doc_id: [_index_view(i) for i in indexes.get(doc_id, [])] for doc_id in found})


def _form_str(form, name: str, limit: int | None = None) -> str | None:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip() if limit is None else value.strip()[:limit]


@router.post("/folders")
def create_folder(request: Request, checked_: Checked) -> Response:
    ctx, form = checked_
    body = FolderRequest(name=_form_str(form, "name") or "", parent_folder_id=_form_str(form, "parent_folder_id"))
    with ctx.flashing():
        created = ctx.kb.auto_sync.create_folder(ctx.workspace, body.name, body.parent_folder_id, SyncRequest())
        ctx.session.flash("ok", f"Folder {created.name!r} created.")
    return ctx.back()


@router.post("/bulk")
def bulk_action(request: Request, checked_: Checked) -> Response:
    """The documents table's action on the ticked rows: move them into a folder, or delete them."""
    ctx, form = checked_
    ids = [i for i in form.getlist("ids") if isinstance(i, str) and i][:PAGE_SIZE * 2]
    if not ids:
        ctx.session.flash("error", "Tick the documents (or folders) to act on first.")
        return ctx.back()
    action = form.get("action")
    if action == "move":
        target = _form_str(form, "move_to", 128)
        failures = ctx.kb.folders.move_each(ctx.workspace, ids, target)
        moved = len(ids) - len(failures)
        if moved:
            ctx.session.flash("ok", f"Moved {moved} item{'s' if moved != 1 else ''}.")
        for exc in failures.values():
            ctx.session.flash("error", exc.message)
    elif action == "delete":
        force = form.get("force") == "on"
        deleted = 0
        for document_id in dict.fromkeys(ids):
            try:
                ctx.kb.documents.delete(ctx.workspace, document_id, force=force)
                deleted += 1
            except Conflict as exc:
                ctx.session.flash("error", exc.message + " (tick “even if agents use them or folders are not empty”)")
            except KBError as exc:
                ctx.session.flash("error", exc.message)
        if deleted:
            ctx.session.flash("ok", f"Deleted {deleted} item{'s' if deleted != 1 else ''}.")
    else:
        ctx.session.flash("error", "Choose an action.")
    return ctx.back()


@router.post("/upload")
async def upload(request: Request) -> JSONResponse:
    """One file of a drag-and-drop upload (the script sends each file on its own, for per-file progress)."""
    ctx, form = await checked(request)
    file = form.get("file")
    if file is None or isinstance(file, str):
        return JSONResponse({"error": "no file in the request"}, status_code=400)
    folder_id = _form_str(form, "parent_folder_id", 128)
    limit = ctx.kb.settings.ingest.max_upload_bytes

    def add() -> dict:
        data = file.file.read(limit + 1)
        if len(data) > limit:
            raise KBError(f"the file is over the upload limit of {limit:,} bytes (KB_MAX_UPLOAD_BYTES)",
                          code="document_too_large")
        doc = ctx.kb.documents.add_file(ctx.workspace, data, file.filename, file.content_type, None, folder_id)
        return {"id": doc.id, "name": doc.name, "url": f"/dashboard/documents/{doc.id}"}

    try:
        return JSONResponse(await on_ingest_pool(request, add))
    except KBError as exc:
        return JSONResponse({"error": exc.message, "code": exc.code}, status_code=status_for(exc.code))


@router.post("/url")
async def add_url(request: Request) -> Response:
    ctx, form = await checked(request)
    body = UrlDocumentRequest(url=_form_str(form, "url") or "", name=_form_str(form, "name"),
                              parent_folder_id=_form_str(form, "parent_folder_id"))

    def add():
        return ctx.kb.auto_sync.add_url(ctx.workspace, body.url, body.name, body.parent_folder_id, SyncRequest())

    with ctx.flashing(f"Could not add {body.url}: "):
        doc = await on_ingest_pool(request, add)
        ctx.session.flash("ok", f"Added {doc.name!r} from {body.url}; it is being indexed.")
    return ctx.back()


@router.post("/text")
async def add_text(request: Request) -> Response:
    ctx, form = await checked(request)
    text = form.get("text") if isinstance(form.get("text"), str) else ""
    body = TextDocumentRequest(text=text, name=_form_str(form, "name"), parent_folder_id=_form_str(form, "parent_folder_id"))

    def add():
        return ctx.kb.documents.add_text(ctx.workspace, body.text, body.name, body.parent_folder_id)

    with ctx.flashing("Could not add the text: "):
        doc = await on_ingest_pool(request, add)
        ctx.session.flash("ok", f"Added the text {doc.name!r}; it is being indexed.")
    return ctx.back()


# --- one document ---------------------------------------------------------------------------------


@router.get("/documents/{document_id}", response_class=HTMLResponse)
def document_page(document_id: str, request: Request) -> Response:
    ctx = current(request)
    kb, workspace = ctx.kb, ctx.workspace
    doc = kb.documents.get(workspace, document_id)
    if doc.is_folder:
        return RedirectResponse("/dashboard?" + _query(folder=doc.id), status_code=303)
    detail = presenters.detail(kb, workspace, doc)
    text = kb.documents.text(workspace, doc.id)
    chunks, next_chunks, chunks_error = [], None, None
    try:
        chunks, next_chunks = kb.chunks.page(workspace, doc.id, None, page_size=PAGE_SIZE,
                                             cursor=_param(request, "chunks", 2_000))
    except KBError as exc:
        chunks_error = exc.message
    agents = kb.agents.dependents_page(workspace, [doc.id], page_size=100)
    return ctx.page(
        "document.html", nav="documents", doc=doc, detail=detail, text=text[:TEXT_SHOWN],
        text_cut=len(text) > TEXT_SHOWN, text_length=len(text), chunks=chunks, next_chunks=next_chunks,
        chunks_error=chunks_error, indexes=[_index_view(n.index) | {"name": n.name}
                                            for n in kb.rag_indexes.list_named(workspace, doc.id)],
        agents=agents.agents, breadcrumbs=kb.folders.path(workspace, doc.parent_folder_id),
        folders=_folder_choices(ctx),
    )


@router.post("/documents/{document_id}/retry")
def retry_index(document_id: str, request: Request, checked_: Checked) -> Response:
    ctx, form = checked_
    model = _form_str(form, "model", 200) or ctx.workspace.default_model
    with ctx.flashing():
        named = ctx.kb.rag_indexes.ensure(ctx.workspace, document_id, model)
        ctx.session.flash("ok", f"Index for {named.name} restarted: {named.index.status}.")
    return ctx.back(f"/dashboard/documents/{document_id}")


@router.post("/documents/{document_id}/rename")
def rename(document_id: str, request: Request, checked_: Checked) -> Response:
    ctx, form = checked_
    with ctx.flashing():
        doc = ctx.kb.documents.rename(ctx.workspace, document_id, _form_str(form, "name") or "")
        ctx.session.flash("ok", f"Renamed to {doc.name!r}.")
    return ctx.back(f"/dashboard/documents/{document_id}")


@router.post("/documents/{document_id}/sync")
def sync_settings(document_id: str, request: Request, checked_: Checked) -> Response:
    """A URL document's auto-sync settings, as `PATCH /v1/convai/knowledge-base/{id}` changes them."""
    ctx, form = checked_
    enabled = form.get("enable_auto_sync") == "on"
    body = UpdateDocumentRequest(
        enable_auto_sync=enabled, auto_remove=(form.get("auto_remove") == "on") if enabled else None,
        minimum_frequency_days=_number(_form_str(form, "minimum_frequency_days", 20), int) if enabled else None)
    with ctx.flashing():
        doc = ctx.kb.documents.get(ctx.workspace, document_id)
        ctx.kb.auto_sync.update(ctx.workspace, doc, SyncRequest(body.enable_auto_sync, body.auto_remove,
                                                                body.minimum_frequency_days))
        ctx.session.flash("ok", "Auto-sync is on." if enabled else "Auto-sync is off.")
    return ctx.back(f"/dashboard/documents/{document_id}")


@router.post("/documents/{document_id}/delete")
def delete_document(document_id: str, request: Request, checked_: Checked) -> Response:
    ctx, form = checked_
    doc = ctx.kb.documents.get(ctx.workspace, document_id)
    try:
        ctx.kb.documents.delete(ctx.workspace, doc.id, force=form.get("force") == "on")
    except KBError as exc:
        ctx.session.flash("error", exc.message)
        return ctx.back(f"/dashboard/documents/{doc.id}")
    ctx.session.flash("ok", f"Deleted {doc.name!r}.")
    return RedirectResponse("/dashboard?" + _query(folder=doc.parent_folder_id), status_code=303)


@router.get("/documents/{document_id}/source")
def source_file(document_id: str, request: Request) -> Response:
    """A redirect to the document's signed download link (the link works without a key, for a while)."""
    ctx = current(request)
    expires, signature = ctx.kb.source_files.link(ctx.workspace.id, document_id)
    url = request.url_for("download_source_file", workspace_id=ctx.workspace.id, documentation_id=document_id)
    return RedirectResponse(f"{url.path}?expires={expires}&signature={signature}", status_code=303)


# --- retrieval playground -------------------------------------------------------------------------


def _agents(ctx: Ctx) -> list:
    return ctx.kb.agents.list(ctx.workspace, page_size=100).agents


PLAYGROUND_FIELDS = ("query", "agent_id", "search_mode", "max_vector_distance", "max_retrieved_rag_chunks_count",
                     "max_documents_length", "num_candidates", "context_chunks", "embedding_model", "folder_id",
                     "filters", "budget_ms")


def _number(text: str | None, kind: type) -> Any:
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise InvalidRequest(f"{text!r} is not a number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(f"{text!r} is not a finite number")
    return value


def _run_query(ctx: Ctx, given: dict[str, str | None]) -> dict:
    """The playground's query, through the same request models and services as the API."""
    filters = None
    if given["filters"]:
        try:
            filters = json.loads(given["filters"])
        except ValueError as exc:
            raise InvalidRequest(f"filters must be a JSON filter object ({exc})") from None
    folder_ids = [given["folder_id"]] if given["folder_id"] else None
    started = time.perf_counter()
    if given["agent_id"]:
        body = AgentRetrieveRequest(
            query=given["query"] or "", filters=filters, folder_ids=folder_ids,
            max_documents_length=_number(given["max_documents_length"], int),
            max_retrieved_rag_chunks_count=_number(given["max_retrieved_rag_chunks_count"], int),
        )
        result = ctx.kb.agents.retrieve(ctx.workspace, given["agent_id"], body.query, RetrieveOverrides(
            max_documents_length=body.max_documents_length,
            max_retrieved_rag_chunks_count=body.max_retrieved_rag_chunks_count,
            filters=parse_filter(body.filters), folder_ids=body.folder_ids))
        timings = {}
        extra = {"rag_enabled": result.rag_enabled, "prompt_documents": result.prompt_documents}
    else:
        numbers = {name: _number(given[name], kind) for name, kind in (
            ("max_vector_distance", float), ("max_retrieved_rag_chunks_count", int), ("max_documents_length", int),
            ("num_candidates", int), ("context_chunks", int), ("budget_ms", float))}
        body = RetrieveRequest(query=given["query"] or "", filters=filters, folder_ids=folder_ids,
                               embedding_model=given["embedding_model"], search_mode=given["search_mode"] or "hybrid",
                               **{k: v for k, v in numbers.items() if v is not None})
        result = ctx.kb.retrieval.retrieve(
            ctx.workspace, body.query, filters=parse_filter(body.filters), folder_ids=body.folder_ids,
            embedding_model=body.embedding_model,
            limits=RetrievalLimits(body.max_vector_distance, body.max_documents_length,
                                   body.max_retrieved_rag_chunks_count),
            options=SearchOptions(body.search_mode, body.num_candidates, body.budget_ms, body.context_chunks),
        )
        timings = result.timings_ms
        extra = {"skipped": result.skipped, "rag_enabled": True, "prompt_documents": []}
    terms = query_terms(result.retrieval_query)
    return {
        "chunks": [{"chunk": c, "html": highlight(c.text, terms)} for c in result.chunks],
        "served_model": result.served_model, "embedding_model": result.embedding_model,
        "retrieval_query": result.retrieval_query, "max_vector_distance": result.max_vector_distance,
        "distance_cut": result.distance_cut if result.distance_cut and result.distance_cut.removed else None,
        "timings": timings, "latency_ms": round(result.rag_latency_secs * 1000, 2),
        "wall_ms": round((time.perf_counter() - started) * 1000, 2), "terms": terms, **extra,
    }


def _playground(ctx: Ctx, given: dict, result: dict | None = None, error: str | None = None,
                status_code: int = 200) -> HTMLResponse:
    return ctx.page("playground.html", status_code=status_code, nav="playground", given=given, result=result,
                    error=error, agents=_agents(ctx), folders=_folder_choices(ctx))


@router.get("/playground", response_class=HTMLResponse)
def playground_page(request: Request) -> Response:
    ctx = current(request)
    given = {name: _param(request, name, 4_000) for name in PLAYGROUND_FIELDS}
    return _playground(ctx, given)


@router.post("/playground", response_class=HTMLResponse)
def playground_query(request: Request, checked_: Checked) -> Response:
    ctx, form = checked_
    given = {name: _form_str(form, name, 8_000) for name in PLAYGROUND_FIELDS}
    try:
        result = _run_query(ctx, given)
    except ValidationError as exc:
        return _playground(ctx, given, error=_validation_message(exc), status_code=400)
    except KBError as exc:
        return _playground(ctx, given, error=exc.message, status_code=status_for(exc.code))
    return _playground(ctx, given, result)



# --- usage, gaps ----------------------------------------------------------------------------------


@router.get("/usage", response_class=HTMLResponse)
def usage_page(request: Request) -> Response:
    ctx = current(request)
    limits, usage = ctx.kb.quotas.limits_and_usage(ctx.workspace.id)
    return ctx.page("usage.html", nav="usage", limits=limits, usage=usage,
                    models=sorted(usage.rag_bytes_by_model.items()))


@router.get("/gaps", response_class=HTMLResponse)
def gaps_page(request: Request) -> Response:
    ctx = current(request)
    served = ctx.kb.models.resolve(ctx.workspace.default_model).served
    page = ctx.kb.gaps.page(ctx.workspace, served, page_size=PAGE_SIZE, cursor=_param(request, "cursor", 200))
    return ctx.page("gaps.html", nav="gaps", page=page, cursor=_param(request, "cursor", 200))


@router.post("/gaps/settings")
def gap_switch(request: Request, checked_: Checked) -> Response:
    """The gap log's on/off switch for the workspace (as `PATCH /v1/kb/gaps/settings`)."""
    ctx, form = checked_
    wanted = form.get("enabled") == "on"
    recording = ctx.kb.gaps.set_enabled(ctx.workspace, wanted)
    if wanted and not recording:
        ctx.session.flash("error", "The gap log is switched on for this workspace, but the server runs with "
                                   "KB_GAP_LOG=false: nothing is recorded.")
    else:
        ctx.session.flash("ok", "The gap log is on: questions that find nothing are recorded." if recording else
                                "The gap log is off: this workspace's questions are no longer recorded.")
    return ctx.back("/dashboard/gaps")


@router.post("/gaps/clear")
def clear_gaps(request: Request, checked_: Checked) -> Response:
    ctx, _ = checked_
    removed = ctx.kb.gaps.clear(ctx.workspace)
    ctx.session.flash("ok", f"Cleared the gap log ({removed} question{'s' if removed != 1 else ''}).")
    return ctx.back("/dashboard/gaps")


@router.post("/gaps/{gap_id}/delete")
def delete_gap(gap_id: str, request: Request, checked_: Checked) -> Response:
    ctx, _ = checked_
    with ctx.flashing():
        ctx.kb.gaps.forget(ctx.workspace, gap_id)
        ctx.session.flash("ok", "Removed that question from the gap log.")
    return ctx.back("/dashboard/gaps")


# --- web sources (crawls) ----------------------------------------------------------------------------


def _crawl_view(crawl) -> dict:
    return {"id": crawl.id, "seed_url": crawl.seed_url, "status": crawl.status, "reason": crawl.reason,
            "pages_identified": crawl.pages_identified, "pages_scraped": crawl.pages_scraped,
            "pages_skipped": crawl.pages_skipped, "pages_failed": crawl.pages_failed,
            "root_folder_id": crawl.root_folder_id, "created_at": crawl.created_at, "updated_at": crawl.updated_at,
            "max_pages": crawl.max_pages, "enable_auto_sync": crawl.enable_auto_sync,
            "running": crawl.status in ACTIVE_CRAWL}


@router.get("/crawls", response_class=HTMLResponse)
def crawls_page(request: Request) -> Response:
    ctx = current(request)
    page = ctx.kb.crawls.list(ctx.workspace, page_size=PAGE_SIZE, cursor=_param(request, "cursor", 200))
    crawls = [_crawl_view(c) for c in page.crawl_jobs]
    synced = ctx.kb.auto_sync.states(ctx.workspace, [c["root_folder_id"] for c in crawls if c["root_folder_id"]])
    refreshes = ctx.kb.auto_sync.crawl_refreshes(ctx.workspace, [c["id"] for c in crawls if c["enable_auto_sync"]])
    for crawl in crawls:
        state = synced.get(crawl["root_folder_id"])
        crawl["sync"] = presenters.auto_sync_info(state) if state is not None and state.enabled else None
        crawl["last_refresh"], crawl["next_refresh"] = refreshes.get(crawl["id"], (None, None))
    return ctx.page("crawls.html", nav="crawls", crawls=crawls, next_cursor=page.next_cursor,
                    folders=_folder_choices(ctx))


@router.get("/crawls/status")
def crawls_status(request: Request) -> JSONResponse:
    ctx = current(request)
    ids = [i for i in (request.query_params.get("ids") or "").split(",") if i][:50]
    found = {}
    for crawl_id in ids:
        try:
            found[crawl_id] = _crawl_view(ctx.kb.crawls.get(ctx.workspace, crawl_id)) | {"created_at": None}
        except NotFound:
            continue
    return JSONResponse(found)


@router.post("/crawls")
def start_crawl(request: Request, checked_: Checked) -> Response:
    ctx, form = checked_
    lines = lambda name: [l.strip() for l in (form.get(name) or "").splitlines() if l.strip()] or None  # noqa: E731
    body = CrawlJobRequest(
        url=_form_str(form, "url") or "", max_pages=_number(_form_str(form, "max_pages", 20), int),
        pattern=_form_str(form, "pattern", 2_000), exclude_patterns=lines("exclude_patterns"),
        sitemap_urls=lines("sitemap_urls"), parent_folder_id=_form_str(form, "parent_folder_id", 128),
        enable_auto_sync=True if form.get("enable_auto_sync") == "on" else None,
        auto_remove=True if form.get("auto_remove") == "on" else None,
        auto_discover=True if form.get("auto_discover") == "on" else None,
        minimum_frequency_days=_number(_form_str(form, "minimum_frequency_days", 20), int),
    )
    with ctx.flashing("Could not start the crawl: "):
        crawl = ctx.kb.crawls.create(ctx.workspace, body.to_request())
        ctx.session.flash("ok", f"Crawl of {crawl.seed_url} started.")
    return ctx.back("/dashboard/crawls")


@router.post("/crawls/{crawl_id}/cancel")
def cancel_crawl(crawl_id: str, request: Request, checked_: Checked) -> Response:
    ctx, _ = checked_
    with ctx.flashing():
        ctx.kb.crawls.cancel(ctx.workspace, crawl_id)
        ctx.session.flash("ok", "Crawl cancelled; its documents and folders are deleted.")
    return ctx.back("/dashboard/crawls")


@router.get("/{rest:path}", response_class=HTMLResponse)
def not_found(rest: str, request: Request) -> Response:
    current(request)
    raise NotFound(f"there is no dashboard page at /dashboard/{rest}")

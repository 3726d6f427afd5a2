"""Auto-sync: URL documents fetched again when due, folders whose settings their URL documents follow,
and crawls kept current (pages gone removed, new pages added).

A URL document with auto-sync is due `minimum_frequency_days` after its last sync (a "day" is
`KB_SYNC_DAY_SECS`). A periodic job (`auto_sync`, every `KB_SYNC_CHECK_SECS`) syncs what is due:
a conditional re-fetch (ETag / Last-Modified), and an unchanged text costs nothing; a changed one
is stored and re-indexed, where the indexer reuses the embeddings of every chunk whose text did
not change. A page that is gone (404/410, noindex) is removed with `auto_remove`; other failures
are counted (`consec_failures`) and retried sooner than the period, backing off: 1/24 of a day,
doubled with each failure, never longer than the period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ingest.crawl import Frontier, HostSchedule, Refetched, list_sitemap_urls, read_robots, refetch
from ingest.crawl.fetcher import guarded_fetch
from ingest.crawl.urls import host_of, origin_of

from ..errors import InvalidRequest, KBError, NotFound
from ..jobs import JobContext, JobKind
from ..records import CrawlJob, Document, Job, SyncState, Workspace
from ..settings import CrawlSettings, IngestSettings
from ..storage import Database, Tx, now
from ..storage.repositories import CrawlStore, SyncStore
from .crawl_config import config_of
from .documents import Documents, Within
from .folders import Folders
from .idempotency import IdempotencyKey
from .ingestion import Ingestion, Prepared
from .workspaces import Workspaces

log = logging.getLogger(__name__)

SYNC_JOB = "auto_sync"
DEFAULT_FREQUENCY_DAYS = 7
MAX_FREQUENCY_DAYS = 365
PASS_LIMIT = 10_000  # documents one pass looks at


@dataclass(frozen=True)
class SyncRequest:
    """Auto-sync fields of a request; None: not given (keep the current value on update)."""

    enable_auto_sync: bool | None = None
    auto_remove: bool | None = None
    minimum_frequency_days: int | None = None
    tighten_only: bool | None = None

    def given(self) -> bool:
        return any(v is not None for v in (self.enable_auto_sync, self.auto_remove, self.minimum_frequency_days,
                                          self.tighten_only))


@dataclass
class SyncReport:
    """What a sync pass did, page by page."""

    unchanged: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    discovered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    workspace_of: dict[str, str] = field(default_factory=dict)  # document id -> its workspace

    @property
    def synced(self) -> int:
        return len(self.unchanged) + len(self.changed) + len(self.removed) + len(self.failed)


def check_frequency(days: int | None) -> None:
    if days is not None and not 1 <= days <= MAX_FREQUENCY_DAYS:
        raise InvalidRequest(f"minimum_frequency_days must be between 1 and {MAX_FREQUENCY_DAYS}, not {days}")


def check_new(request: SyncRequest, *, discover: bool | None = None) -> None:
    """A new document, folder or crawl: the other fields need `enable_auto_sync`."""
    check_frequency(request.minimum_frequency_days)
    if request.enable_auto_sync:
        return
    for name, value in (("auto_remove", request.auto_remove), ("auto_discover", discover),
                        ("minimum_frequency_days", request.minimum_frequency_days)):
        if value not in (None, False):
            raise InvalidRequest(f"{name} applies only with enable_auto_sync=true; set enable_auto_sync or leave {name} out")


class AutoSync:
    def __init__(self, db: Database, sync: SyncStore, crawls: CrawlStore, workspaces: Workspaces, documents: Documents,
                 folders: Folders, ingestion: Ingestion, settings: CrawlSettings, ingest: IngestSettings,
                 sleep: Callable[[float], None] = time.sleep):
        self.db = db
        self.sync = sync
        self.crawls = crawls
        self.workspaces = workspaces
        self.documents = documents
        self.folders = folders
        self.ingestion = ingestion
        self.settings = settings
        self.ingest = ingest
        self.sleep = sleep

    # --- settings of documents and folders -----------------------------------------------------

    def period(self, days: int) -> float:
        return days * self.settings.sync_day_secs

    def new_state(self, tx: Tx, workspace_id: str, doc: Document, request: SyncRequest, *,
                  crawl_id: str | None = None, **known) -> SyncState | None:
        """The state of a new URL document or folder: its request, tightened to its parent folder's."""
        parent = self.sync.get_many(tx, workspace_id, [doc.parent_folder_id]).get(doc.parent_folder_id) \
            if doc.parent_folder_id else None
        inherited = parent is not None and parent.enabled
        enabled = request.enable_auto_sync if request.enable_auto_sync is not None else inherited
        if not enabled:
            return None
        days = request.minimum_frequency_days or DEFAULT_FREQUENCY_DAYS
        auto_remove = request.auto_remove if request.auto_remove is not None else False
        if inherited:
            days = min(days, parent.minimum_frequency_days)
            if request.auto_remove is None:
                auto_remove = parent.auto_remove
        t = now()
        next_by = None if doc.is_folder else t + self.period(days)
        return SyncState(doc.id, workspace_id, True, auto_remove, days, next_refresh_by=next_by, crawl_id=crawl_id,
                         refresh_status=None if doc.is_folder else "succeeded",
                         last_synced_at=None if doc.is_folder else t, **known)

    def within(self, workspace: Workspace, request: SyncRequest, *, crawl_id: str | None = None,
               **known) -> Within:
        """Store the new document's auto-sync state in the transaction that stores it."""

        def put(tx: Tx, doc: Document) -> None:
            state = self.new_state(tx, workspace.id, doc, request, crawl_id=crawl_id, **known)
            if state is not None:
                self.sync.put(tx, state)

        return put

    def add_url(self, workspace: Workspace, url: str, name: str | None, parent_folder_id: str | None,
                request: SyncRequest, attributes: Any = None, idempotency: IdempotencyKey | None = None) -> Document:
        check_new(request)
        return self.documents.add_url(workspace, url, name, parent_folder_id, attributes,
                                      within=self.within(workspace, request), idempotency=idempotency)

    def create_folder(self, workspace: Workspace, name: str, parent_folder_id: str | None,
                      request: SyncRequest) -> Document:
        check_new(request)
        return self.folders.create(workspace, name, parent_folder_id, within=self.within(workspace, request))

    def update(self, workspace: Workspace, doc: Document, request: SyncRequest) -> None:
        """Change the auto-sync settings of a URL document or a folder (and the URL documents below it)."""
        if not request.given():
            return
        check_frequency(request.minimum_frequency_days)
        if doc.type not in ("url", "folder"):
            raise InvalidRequest(f"document {doc.id!r} is a {doc.type} document; auto-sync applies to URL documents and folders")
        if request.tighten_only is not None and not doc.is_folder:
            raise InvalidRequest("tighten_only applies to folders only")
        with self.db.write() as tx:
            current = self.sync.get_many(tx, workspace.id, [doc.id]).get(doc.id)
            state = self._changed(doc, current, request)
            self.sync.put(tx, state)
            if doc.is_folder:
                self._apply_to_items(tx, workspace, doc, state, tighten_only=request.tighten_only is not False)

    def _changed(self, doc: Document, current: SyncState | None, request: SyncRequest) -> SyncState:
        base = current or SyncState(doc.id, doc.workspace_id, False, False, DEFAULT_FREQUENCY_DAYS)
        enabled = request.enable_auto_sync if request.enable_auto_sync is not None else base.enabled
        if not enabled and (request.auto_remove or request.minimum_frequency_days is not None) and not base.enabled:
            raise InvalidRequest("auto_remove and minimum_frequency_days apply only with auto-sync on; set enable_auto_sync=true")
        days = request.minimum_frequency_days or base.minimum_frequency_days
        auto_remove = request.auto_remove if request.auto_remove is not None else base.auto_remove
        return self._scheduled(base, enabled=enabled, days=days, auto_remove=auto_remove, folder=doc.is_folder)

    def _scheduled(self, base: SyncState, *, enabled: bool, days: int, auto_remove: bool, folder: bool) -> SyncState:
        t = now()
        next_by = None
        if enabled and not folder:
            due = (base.last_synced_at or t) + self.period(days)
            next_by = min(base.next_refresh_by, due) if base.enabled and base.next_refresh_by else due
        return replace(base, enabled=enabled, minimum_frequency_days=days, auto_remove=auto_remove,
                       next_refresh_by=next_by, consec_failures=base.consec_failures if enabled else 0)

    def _apply_to_items(self, tx: Tx, workspace: Workspace, folder: Document, state: SyncState, *,
                        tighten_only: bool) -> None:
        """URL documents and folders below: exactly the folder's settings, or (`tighten_only`) at least as strict."""
        below = self.folders.documents.descendant_ids(tx, workspace.id, folder.id)
        kinds = self.folders.documents.types_of(tx, workspace.id, below)
        items = [i for i in below if kinds.get(i) in ("url", "folder")]
        current = self.sync.get_many(tx, workspace.id, items)
        for item_id in items:
            base = current.get(item_id) or SyncState(item_id, workspace.id, False, False, state.minimum_frequency_days)
            is_folder = kinds[item_id] == "folder"
            if tighten_only and base.enabled:
                enabled = base.enabled or state.enabled
                days = min(base.minimum_frequency_days, state.minimum_frequency_days) if state.enabled else base.minimum_frequency_days
                auto_remove = base.auto_remove
            else:
                enabled, days, auto_remove = state.enabled, state.minimum_frequency_days, state.auto_remove
            self.sync.put(tx, self._scheduled(base, enabled=enabled, days=days, auto_remove=auto_remove, folder=is_folder))

    def states(self, workspace: Workspace, document_ids: list[str]) -> dict[str, SyncState]:
        with self.db.read() as tx:
            return self.sync.get_many(tx, workspace.id, document_ids)

    def crawl_refreshes(self, workspace: Workspace, crawl_ids: list[str]) -> dict[str, tuple[float | None, float | None]]:
        """(last refresh, next refresh) of each crawl's auto-synced pages: the latest sync of any of
        them and the soonest one due; None where there is none (auto-sync off, or no page yet)."""
        found: dict[str, tuple[float | None, float | None]] = {}
        with self.db.read() as tx:
            for crawl_id in dict.fromkeys(crawl_ids):
                pages = [m for m in self.sync.of_crawl(tx, workspace.id, crawl_id) if m.enabled]
                found[crawl_id] = (max((m.last_synced_at for m in pages if m.last_synced_at), default=None),
                                   min((m.next_refresh_by for m in pages if m.next_refresh_by), default=None))
        return found

    def check_content_update(self, workspace: Workspace, doc: Document, request: SyncRequest) -> None:
        """As the SDK says: new content only for URL documents with auto-sync off (or turned off now)."""
        if doc.type != "url" or request.enable_auto_sync is False:
            return
        state = self.states(workspace, [doc.id]).get(doc.id)
        if (state is not None and state.enabled) or request.enable_auto_sync:
            raise InvalidRequest(f"document {doc.id!r} is auto-synced from its URL; turn auto-sync off "
                                 "(enable_auto_sync=false) to replace its content")

    # --- the sync pass ------------------------------------------------------------------------

    def schedule(self, scheduler) -> None:
        """The periodic pass (once per process start; an unchanged schedule keeps its next run)."""
        every = self.settings.sync_check_secs
        existing = scheduler.get(SYNC_JOB)
        if existing is None or existing.interval_secs != every:
            scheduler.schedule(SYNC_JOB, SYNC_JOB, {}, every_secs=every)

    def job_kind(self) -> JobKind:
        return JobKind(SYNC_JOB, self.handle, retries=0)

    def handle(self, jobs: list[Job], context: JobContext) -> None:
        self.run_pass(context=context)

    def run_pass(self, at: float | None = None, *, force: bool = False, context: JobContext | None = None,
                 workspace_id: str | None = None) -> SyncReport:
        """Sync every URL document due by `at` (default now; `force`: every auto-synced one)."""
        with self.db.read() as tx:
            due = self.sync.due(tx, None if force else (at or now()), PASS_LIMIT)
        if workspace_id is not None:
            due = [s for s in due if s.workspace_id == workspace_id]
        report = SyncReport()
        pacer = _Pacer(self.settings.crawl_delay_secs, self.sleep, context)
        standalone = [s for s in due if s.crawl_id is None]
        by_crawl: dict[str, list[SyncState]] = {}
        for state in due:
            if state.crawl_id is not None:
                by_crawl.setdefault(state.crawl_id, []).append(state)
        self._mark_enqueued(due)
        for state in standalone:
            pacer.check()
            self._sync_page(state, None, pacer, report)
        with self.db.read() as tx:
            crawls = {c.id: c for c in self.crawls.with_auto_sync(tx, list(by_crawl))}
        for crawl_id, states in by_crawl.items():
            crawl = crawls.get(crawl_id)
            self._sync_crawl(crawl, states, pacer, report)
        return report

    def _mark_enqueued(self, states: list[SyncState]) -> None:
        t = now()
        with self.db.write() as tx:
            for state in states:
                self.sync.update(tx, state.document_id, {"refresh_status": "queued", "enqueued_at": t})

    def _sync_page(self, state: SyncState, crawl: CrawlJob | None, pacer: _Pacer, report: SyncReport,
                   robots=None, links: set[str] | None = None) -> None:
        try:
            workspace = self.workspaces.get(state.workspace_id)
            doc = self.documents.get(workspace, state.document_id)
        except NotFound:
            return  # deleted meanwhile
        if not doc.url:
            return
        report.workspace_of[doc.id] = workspace.id
        config = config_of(crawl, self.settings, self.ingest) if crawl is not None else self._page_config(doc.url)
        t = now()
        with self.db.write() as tx:
            self.sync.update(tx, doc.id, {"refresh_status": "processing", "started_at": t})
        pacer.wait(doc.url)
        got = refetch(doc.url, config, etag=state.etag, last_modified=state.last_modified,
                      previous_text_hash=state.text_hash, fetch=self._fetch(config),
                      parse=self.ingestion.crawl_parser(), robots=robots)
        pacer.done(doc.url)
        if links is not None:
            links.update(got.links)
        if got.status == "unchanged":
            self._succeeded(state, got)
            report.unchanged.append(doc.id)
        elif got.status == "changed":
            try:
                self.documents.replace_content(workspace, doc, self._prepared(got))
            except KBError as exc:
                self._failed(state, f"the new content could not be stored: {exc.message}")
                report.failed.append(doc.id)
                return
            self._succeeded(state, got)
            report.changed.append(doc.id)
        elif got.status == "gone" and state.auto_remove:
            self._remove(workspace, doc.id, report)
        else:
            self._failed(state, got.reason or got.status)
            report.failed.append(doc.id)

    def _remove(self, workspace: Workspace, document_id: str, report: SyncReport) -> None:
        try:
            self.documents.delete(workspace, document_id, force=True)
        except NotFound:
            return
        report.removed.append(document_id)

    def _succeeded(self, state: SyncState, got: Refetched) -> None:
        t = now()
        with self.db.write() as tx:
            self.sync.update(tx, state.document_id, {
                "refresh_status": "succeeded", "completed_at": t, "last_synced_at": t, "error_message": None,
                "consec_failures": 0, "next_refresh_by": t + self.period(state.minimum_frequency_days),
                "etag": got.etag, "last_modified": got.last_modified, "text_hash": got.text_hash or state.text_hash,
            })

    def _failed(self, state: SyncState, reason: str) -> None:
        t = now()
        failures = state.consec_failures + 1
        period = self.period(state.minimum_frequency_days)
        retry = min(period, self.settings.sync_day_secs / 24 * 2 ** (failures - 1))
        with self.db.write() as tx:
            self.sync.update(tx, state.document_id, {
                "refresh_status": "failed", "completed_at": t, "error_message": reason[:1000],
                "consec_failures": failures, "next_refresh_by": t + retry,
            })

    def _prepared(self, got: Refetched) -> Prepared:
        assert got.document is not None
        return Prepared(got.data, got.document, got.document.title or got.url, content_type=got.content_type, url=got.url)

    def _page_config(self, url: str):
        from .crawl_config import crawl_config

        return crawl_config(self.settings, self.ingest, url=url, max_pages=1)

    def _fetch(self, config):
        return guarded_fetch(config)

    # --- crawls -------------------------------------------------------------------------------

    def _sync_crawl(self, crawl: CrawlJob | None, states: list[SyncState], pacer: _Pacer, report: SyncReport) -> None:
        if crawl is None or crawl.status == "cancelled":
            for state in states:
                self._sync_page(state, None, pacer, report)
            return
        config = config_of(crawl, self.settings, self.ingest)
        fetch = self._fetch(config)
        origin = origin_of(config.url)
        pacer.wait(origin)
        robots = read_robots(origin, fetch)
        asked = robots.delay(config.agent_token)
        if asked is not None:
            pacer.delay = max(self.settings.crawl_delay_secs, min(asked, self.settings.crawl_max_delay_secs))
        pacer.done(origin)
        links: set[str] = set()
        for state in states:
            pacer.check()
            self._sync_page(state, crawl, pacer, report, robots, links)
        if not (crawl.auto_remove or crawl.auto_discover):
            return
        try:
            workspace = self.workspaces.get(crawl.workspace_id)
        except NotFound:
            return
        with self.db.read() as tx:
            members = self.sync.of_crawl(tx, crawl.workspace_id, crawl.id)
        docs = self.documents.get_many(workspace, [m.document_id for m in members])
        by_url = {d.url: d.id for d in docs.values() if d.url}
        candidates: list[str] = []
        if crawl.type == "sitemap":
            listing = list_sitemap_urls(config, fetch=fetch, should_stop=pacer.stopping, sleep=self.sleep)
            if crawl.auto_remove and listing.complete:
                for url, document_id in by_url.items():
                    if url not in listing.urls:
                        self._remove(workspace, document_id, report)
            candidates = list(listing.urls)
        else:
            candidates = sorted(links)
        if crawl.auto_discover:
            self._discover(crawl, workspace, config, robots, candidates, by_url, members, pacer, report)

    def _discover(self, crawl: CrawlJob, workspace: Workspace, config, robots, candidates: list[str],
                  by_url: dict[str, str], members: list[SyncState], pacer: _Pacer, report: SyncReport) -> None:
        """Add the pages the crawl has not seen yet (within its page limit)."""
        frontier = Frontier.from_json(crawl.frontier) if crawl.frontier else Frontier()
        known_hashes = {m.text_hash for m in members if m.text_hash}
        room = crawl.max_pages - len(by_url)
        fresh = [u for u in candidates if u not in by_url and u not in frontier.seen]
        for url in fresh:
            if room <= 0:
                break
            frontier.seen.add(url)
            pacer.check()
            pacer.wait(url)
            got = refetch(url, config, fetch=self._fetch(config), parse=self.ingestion.crawl_parser(), robots=robots)
            pacer.done(url)
            if got.status != "changed" or got.text_hash in known_hashes or got.url in by_url:
                continue
            known = {"etag": got.etag, "last_modified": got.last_modified, "text_hash": got.text_hash}
            request = SyncRequest(True, crawl.auto_remove, crawl.minimum_frequency_days)
            try:
                doc = self.documents.add_prepared(workspace, "url", self._prepared(got), None, crawl.root_folder_id,
                                                  within=self.within(workspace, request, crawl_id=crawl.id, **known))
            except KBError as exc:
                log.info("crawl %s: new page %s not added: %s", crawl.id, got.url, exc.message)
                continue
            by_url[got.url] = doc.id
            report.workspace_of[doc.id] = workspace.id
            known_hashes.add(got.text_hash)
            room -= 1
            report.discovered.append(doc.id)
        with self.db.write() as tx:
            self.crawls.update(tx, crawl.id, {"frontier": frontier.to_json(), "updated_at": now()})


class _Pacer:
    """One request at a time per host, `delay` apart; stops between pages when the job must stop."""

    def __init__(self, delay: float, sleep: Callable[[float], None], context: JobContext | None):
        self.schedule = HostSchedule()
        self.delay = delay
        self.sleep = sleep
        self.context = context

    def stopping(self) -> bool:
        return self.context is not None and self.context.stopping.is_set()

    def check(self) -> None:
        if self.context is not None:
            self.context.raise_if_stopping()

    def wait(self, url: str) -> None:
        host = host_of(url)
        while (wait := self.schedule.wait_seconds(host)) > 0:
            self.check()
            self.sleep(min(wait, 0.25))

    def done(self, url: str) -> None:
        self.schedule.record(host_of(url), self.delay)

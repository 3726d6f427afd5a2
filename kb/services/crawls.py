"""Crawl jobs: a website read page by page in the background, each page a URL document of the
crawl's root folder (a folder named after the site), indexed like any other.

A crawl is a job of the `crawl` kind. One run works for `KB_CRAWL_SLICE_SECS`, one crawler step at
a time, then queues the next part (delayed when every host is inside its politeness delay), so
workers stay shared with indexing and a cancel is seen within a step. The crawler's whole state
(`Frontier`) is saved after every step, in the transaction that stores the step's page, so a
crawl stopped or killed anywhere continues where it stopped without fetching a page twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ingest.crawl import Crawler, Finished, Frontier, PageFailed, PageScraped, Waiting
from ingest.crawl.fetcher import guarded_fetch

from ..errors import Conflict, KBError, NotFound
from ..jobs import Cancelled, JobContext, JobKind, JobQueue
from ..records import CrawlJob, CrawlJobPage, Document, Job, Workspace, new_id
from ..settings import CrawlSettings, IngestSettings
from ..storage import Database, Tx, now
from ..storage.repositories import CrawlStore
from .auto_sync import AutoSync, SyncRequest, check_new
from .crawl_config import config_of, crawl_config
from .cursors import decode_cursor, encode_cursor
from .documents import Documents
from .folders import Folders
from .ingestion import Ingestion, Prepared

log = logging.getLogger(__name__)

CRAWL_JOB = "crawl"
ACTIVE = ("queued", "processing")
NAP_SECS = 0.25  # longest sleep between two checks for cancellation
REQUEUE_WAIT_SECS = 2.0  # a politeness wait longer than this hands the worker back


def crawl_subject(crawl_id: str) -> str:
    return f"crawl:{crawl_id}"


@dataclass(frozen=True)
class CrawlRequest:
    url: str
    max_pages: int | None = None
    pattern: str | None = None
    exclude_patterns: tuple[str, ...] = ()
    sitemap_urls: tuple[str, ...] = ()
    parent_folder_id: str | None = None
    enable_auto_sync: bool | None = None
    auto_remove: bool | None = None
    auto_discover: bool | None = None
    minimum_frequency_days: int | None = None


class _Stopped(Exception):
    """The crawl was cancelled (or its folder deleted) while a page was being stored."""


class Crawls:
    def __init__(self, db: Database, crawls: CrawlStore, documents: Documents, folders: Folders, ingestion: Ingestion,
                 auto_sync: AutoSync, queue: JobQueue, settings: CrawlSettings, ingest: IngestSettings,
                 workspaces, sleep: Callable[[float], None] = time.sleep):
        self.db = db
        self.crawls = crawls
        self.documents = documents
        self.folders = folders
        self.ingestion = ingestion
        self.auto_sync = auto_sync
        self.queue = queue
        self.settings = settings
        self.ingest = ingest
        self.workspaces = workspaces
        self.sleep = sleep

    # --- the API's side -----------------------------------------------------------------------

    def create(self, workspace: Workspace, request: CrawlRequest) -> CrawlJob:
        """Check the request, make the root folder, store the crawl and queue its first part (one transaction)."""
        config = crawl_config(self.settings, self.ingest, url=request.url,
                              max_pages=1000 if request.max_pages is None else request.max_pages,
                              pattern=request.pattern or None, exclude_patterns=request.exclude_patterns,
                              sitemap_urls=request.sitemap_urls)
        sync = SyncRequest(request.enable_auto_sync, request.auto_remove, request.minimum_frequency_days)
        check_new(sync, discover=request.auto_discover)
        self.folders.check(workspace, request.parent_folder_id)
        crawl_id = new_id("cj_")
        t = now()
        holder: dict[str, CrawlJob] = {}

        def store(tx: Tx, folder: Document) -> None:
            enabled = bool(request.enable_auto_sync)
            crawl = CrawlJob(
                id=crawl_id, workspace_id=workspace.id, seed_url=config.url, max_pages=config.max_pages,
                root_folder_id=folder.id, status="queued", created_at=t, updated_at=t,
                type="sitemap" if config.sitemap_urls else None, pattern=config.pattern,
                exclude_patterns=config.exclude_patterns, sitemap_urls=config.sitemap_urls, enable_auto_sync=enabled,
                auto_remove=enabled and bool(request.auto_remove), auto_discover=enabled and bool(request.auto_discover),
                minimum_frequency_days=(request.minimum_frequency_days or None) if enabled else None,
            )
            self.crawls.insert(tx, crawl)
            self.auto_sync.within(workspace, sync)(tx, folder)
            self.queue.enqueue(tx, CRAWL_JOB, {"crawl_id": crawl_id}, subject=crawl_subject(crawl_id),
                               tenant=workspace.id)
            holder["crawl"] = crawl

        self.folders.create(workspace, urlsplit(config.url).netloc, request.parent_folder_id, within=store)
        self.queue.notify()
        return holder["crawl"]

    def get(self, workspace: Workspace, crawl_id: str) -> CrawlJob:
        with self.db.read() as tx:
            crawl = self.crawls.get(tx, workspace.id, crawl_id)
        if crawl is None:
            raise NotFound(f"crawl job {crawl_id!r} not found in this workspace")
        return crawl

    def list(self, workspace: Workspace, *, page_size: int = 30, cursor: str | None = None,
             include_job_ids: tuple[str, ...] = ()) -> CrawlJobPage:
        """Newest first; `include_job_ids` (of this workspace) are added in front of the first page."""
        offset = decode_cursor(cursor)
        with self.db.read() as tx:
            extra = self.crawls.page(tx, workspace.id, 0, 0, include_job_ids) if include_job_ids and not offset else []
            rows = self.crawls.page(tx, workspace.id, offset, page_size + 1)
        more = len(rows) > page_size
        rows = rows[:page_size]
        shown = {c.id for c in rows}
        return CrawlJobPage([c for c in extra if c.id not in shown] + rows,
                            encode_cursor(offset + page_size) if more else None)

    def cancel(self, workspace: Workspace, crawl_id: str) -> CrawlJob:
        """Stop the crawl and delete its documents and folders (as the SDK says)."""
        crawl = self.get(workspace, crawl_id)
        with self.db.write() as tx:
            stopped = self.crawls.update(tx, crawl.id, {"status": "cancelled", "reason": "cancelled by the client",
                                                        "updated_at": now()}, only_if_status=ACTIVE)
            if stopped:
                self.queue.cancel_subject(tx, [crawl_subject(crawl.id)])
        if not stopped:
            raise Conflict(f"crawl job {crawl_id!r} has ended ({crawl.status}); delete its folder "
                           f"{crawl.root_folder_id!r} to remove its documents")
        try:
            self.documents.delete(workspace, crawl.root_folder_id, force=True)
        except NotFound:
            pass  # the client deleted the folder already
        return self.get(workspace, crawl_id)

    # --- the job ------------------------------------------------------------------------------

    def job_kind(self) -> JobKind:
        return JobKind(CRAWL_JOB, self.handle, retries=2, retry_delay_secs=30, on_give_up=self._gave_up)

    def _gave_up(self, job: Job, error: str) -> None:
        with self.db.write() as tx:
            self.crawls.update(tx, job.payload["crawl_id"], {"status": "failed", "reason": error[:1000],
                                                             "updated_at": now()}, only_if_status=ACTIVE)

    def handle(self, jobs: list[Job], context: JobContext) -> None:
        for job in jobs:
            self.run_part(job.payload["crawl_id"], context)

    def run_part(self, crawl_id: str, context: JobContext | None = None) -> None:
        """Crawl for up to `crawl_slice_secs`, then queue the next part (or end the crawl)."""
        with self.db.write() as tx:
            crawl = self.crawls.load(tx, crawl_id)
            if crawl is None or not crawl.active:
                return
            if crawl.status == "queued":
                self.crawls.update(tx, crawl_id, {"status": "processing", "updated_at": now()})
        crawl = replace(crawl, status="processing")
        workspace = self.workspaces.get(crawl.workspace_id)
        config = config_of(crawl, self.settings, self.ingest)
        frontier = Frontier.from_json(crawl.frontier) if crawl.frontier else Frontier()
        crawler = Crawler(config, frontier, fetch=guarded_fetch(config), parse=self.ingestion.crawl_parser())
        deadline = time.monotonic() + self.settings.crawl_slice_secs
        while True:
            if context is not None:
                context.raise_if_stopping()
                if context.check():
                    raise Cancelled()
            outcome = crawler.next_step()
            if isinstance(outcome, Waiting):
                if outcome.seconds > REQUEUE_WAIT_SECS or time.monotonic() > deadline:
                    self._save(crawl, frontier, next_in=outcome.seconds)
                    return
                self.sleep(min(outcome.seconds, NAP_SECS))
                continue
            if isinstance(outcome, PageScraped):
                if not self._store_page(workspace, crawl, frontier, outcome):
                    return
            elif isinstance(outcome, Finished):
                self._finish(crawl, frontier, outcome.reason)
                return
            else:
                if isinstance(outcome, PageFailed):
                    log.info("crawl %s: %s failed: %s", crawl.id, outcome.url, outcome.reason)
                if not self._save(crawl, frontier):
                    return
            if time.monotonic() > deadline:
                self._save(crawl, frontier, next_in=0.0)
                return

    def _state(self, frontier: Frontier) -> dict:
        n = frontier.counters
        return {"frontier": frontier.to_json(), "type": frontier.crawl_type, "pages_identified": n.pages_identified,
                "pages_scraped": n.pages_scraped, "pages_skipped": n.pages_skipped, "pages_failed": n.pages_failed,
                "updated_at": now()}

    def _save(self, crawl: CrawlJob, frontier: Frontier, next_in: float | None = None, tx: Tx | None = None) -> bool:
        """Save the crawler's state (and queue the next part); False if the crawl is no longer running."""
        if tx is None:
            with self.db.write() as own:
                saved = self._save(crawl, frontier, next_in, own)
            if saved and next_in is not None:
                self.queue.notify()
            return saved
        if not self.crawls.update(tx, crawl.id, self._state(frontier), only_if_status=("processing",)):
            return False
        if next_in is not None:
            self.queue.enqueue(tx, CRAWL_JOB, {"crawl_id": crawl.id}, delay_secs=next_in or None,
                               subject=crawl_subject(crawl.id), tenant=crawl.workspace_id)
        return True

    def _store_page(self, workspace: Workspace, crawl: CrawlJob, frontier: Frontier, page: PageScraped) -> bool:
        """The page as a URL document of the root folder, with the frontier, in one transaction."""
        prepared = Prepared(page.data, page.document, page.title or page.url, content_type=page.content_type,
                            url=page.url)
        sync = SyncRequest(crawl.enable_auto_sync, crawl.auto_remove, crawl.minimum_frequency_days)
        put_sync = self.auto_sync.within(workspace, sync, crawl_id=crawl.id, etag=page.etag,
                                         last_modified=page.last_modified, text_hash=page.text_hash)

        def within(tx: Tx, doc: Document) -> None:
            if not self._save(crawl, frontier, tx=tx):
                raise _Stopped()
            put_sync(tx, doc)

        try:
            self.documents.add_prepared(workspace, "url", prepared, None, crawl.root_folder_id, within=within)
        except _Stopped:
            return False
        except NotFound as exc:  # the root folder was deleted: nowhere to put pages
            self._end(crawl, frontier, "failed", f"stopped: {exc.message}")
            return False
        except KBError as exc:  # over a storage limit, too large...: the page counts as failed
            frontier.counters.pages_scraped -= 1
            frontier.counters.pages_failed += 1
            log.info("crawl %s: %s not stored: %s", crawl.id, page.url, exc.message)
            return self._save(crawl, frontier)
        return True

    def _finish(self, crawl: CrawlJob, frontier: Frontier, reason: str) -> None:
        n = frontier.counters
        seed_rules = frontier.robots.get("{0.scheme}://{0.netloc}".format(urlsplit(crawl.seed_url)))
        if seed_rules is not None and seed_rules.mode == "disallow_all":
            status = "skipped"
        elif n.pages_scraped == 0:
            status = "failed"
        else:
            status = "succeeded"
        self._end(crawl, frontier, status, reason)

    def _end(self, crawl: CrawlJob, frontier: Frontier, status: str, reason: str) -> None:
        with self.db.write() as tx:
            self.crawls.update(tx, crawl.id, {**self._state(frontier), "status": status, "reason": reason[:1000]},
                               only_if_status=("processing",))

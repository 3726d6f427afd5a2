"""Crawl jobs and auto-sync states, scoped by workspace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields

from sqlalchemy import delete, select, update

from ...records import CrawlJob, SyncState
from ..interfaces import Tx
from ..schema import auto_sync, crawl_jobs

_CRAWL_FIELDS = [f.name for f in fields(CrawlJob)]
_SYNC_FIELDS = [f.name for f in fields(SyncState)]


def _crawl(row) -> CrawlJob:
    values = {name: getattr(row, name) for name in _CRAWL_FIELDS}
    values["exclude_patterns"] = tuple(values["exclude_patterns"] or ())
    values["sitemap_urls"] = tuple(values["sitemap_urls"] or ())
    return CrawlJob(**values)


def _sync(row) -> SyncState:
    return SyncState(**{name: getattr(row, name) for name in _SYNC_FIELDS})


class CrawlRepository:
    def insert(self, tx: Tx, crawl: CrawlJob) -> None:
        values = asdict(crawl)
        values["exclude_patterns"] = list(crawl.exclude_patterns)
        values["sitemap_urls"] = list(crawl.sitemap_urls)
        tx.execute(crawl_jobs.insert().values(**values))

    def get(self, tx: Tx, workspace_id: str, crawl_id: str) -> CrawlJob | None:
        row = tx.execute(
            select(crawl_jobs).where(crawl_jobs.c.id == crawl_id, crawl_jobs.c.workspace_id == workspace_id)
        ).first()
        return _crawl(row) if row else None

    def load(self, tx: Tx, crawl_id: str) -> CrawlJob | None:
        """A crawl by id alone, for its background job (the id comes from kb, not a client)."""
        row = tx.execute(select(crawl_jobs).where(crawl_jobs.c.id == crawl_id)).first()
        return _crawl(row) if row else None

    def page(self, tx: Tx, workspace_id: str, offset: int, limit: int, include_ids: Sequence[str] = ()) -> list[CrawlJob]:
        """Newest first; `include_ids` are put first (those of this workspace only)."""
        extra = []
        if include_ids:
            extra = [_crawl(r) for r in tx.execute(
                select(crawl_jobs).where(crawl_jobs.c.workspace_id == workspace_id, crawl_jobs.c.id.in_(list(include_ids)))
                .order_by(crawl_jobs.c.created_at.desc(), crawl_jobs.c.id)
            ).fetchall()]
        rows = tx.execute(
            select(crawl_jobs).where(crawl_jobs.c.workspace_id == workspace_id)
            .order_by(crawl_jobs.c.created_at.desc(), crawl_jobs.c.id).offset(offset).limit(limit)
        ).fetchall()
        return extra + [_crawl(r) for r in rows]

    def update(self, tx: Tx, crawl_id: str, values: dict, *, only_if_status: Sequence[str] = ()) -> bool:
        query = update(crawl_jobs).where(crawl_jobs.c.id == crawl_id)
        if only_if_status:
            query = query.where(crawl_jobs.c.status.in_(list(only_if_status)))
        return tx.execute(query.values(**values)).rowcount == 1

    def status(self, tx: Tx, crawl_id: str) -> str | None:
        return tx.execute(select(crawl_jobs.c.status).where(crawl_jobs.c.id == crawl_id)).scalar()

    def with_auto_sync(self, tx: Tx, crawl_ids: Sequence[str]) -> list[CrawlJob]:
        if not crawl_ids:
            return []
        rows = tx.execute(select(crawl_jobs).where(crawl_jobs.c.id.in_(list(crawl_ids)))).fetchall()
        return [_crawl(r) for r in rows]


class SyncRepository:
    def put(self, tx: Tx, state: SyncState) -> None:
        values = asdict(state)
        changed = tx.execute(
            update(auto_sync).where(auto_sync.c.document_id == state.document_id).values(**values)
        ).rowcount
        if not changed:
            tx.execute(auto_sync.insert().values(**values))

    def get_many(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> dict[str, SyncState]:
        if not document_ids:
            return {}
        rows = tx.execute(select(auto_sync).where(
            auto_sync.c.workspace_id == workspace_id, auto_sync.c.document_id.in_(list(document_ids))
        )).fetchall()
        return {r.document_id: _sync(r) for r in rows}

    def update(self, tx: Tx, document_id: str, values: dict) -> None:
        tx.execute(update(auto_sync).where(auto_sync.c.document_id == document_id).values(**values))

    def due(self, tx: Tx, at: float | None, limit: int) -> list[SyncState]:
        """Enabled URL documents due by `at` (None: every enabled one), soonest first."""
        query = select(auto_sync).where(auto_sync.c.enabled.is_(True), auto_sync.c.next_refresh_by.is_not(None))
        if at is not None:
            query = query.where(auto_sync.c.next_refresh_by <= at)
        rows = tx.execute(query.order_by(auto_sync.c.next_refresh_by).limit(limit)).fetchall()
        return [_sync(r) for r in rows]

    def of_crawl(self, tx: Tx, workspace_id: str, crawl_id: str) -> list[SyncState]:
        rows = tx.execute(select(auto_sync).where(
            auto_sync.c.workspace_id == workspace_id, auto_sync.c.crawl_id == crawl_id
        )).fetchall()
        return [_sync(r) for r in rows]

    def delete(self, tx: Tx, document_ids: Sequence[str]) -> None:
        tx.execute(delete(auto_sync).where(auto_sync.c.document_id.in_(list(document_ids))))

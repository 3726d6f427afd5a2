"""RAG indexes: one per document and embedding model, with status and progress."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Row

from .db import Database, now, rag_indexes
from .jobs import JobQueue
from .workspaces import new_id

STATUSES = ("created", "processing", "succeeded", "failed")
INDEX_JOB = "index_document"


@dataclass(frozen=True)
class RagIndex:
    id: str
    document_id: str
    model: str
    status: str
    progress_percentage: float
    used_bytes: int
    error: str | None

    @classmethod
    def from_row(cls, row: Row) -> "RagIndex":
        return cls(row.id, row.document_id, row.model, row.status, row.progress_percentage, row.used_bytes, row.error)


def create_index(
    conn: Connection,
    queue: JobQueue,
    workspace_id: str,
    document_id: str,
    model: str,
    size_bytes: int,
    *,
    failure: str | None = None,
) -> RagIndex:
    """Insert an index in `created` state and its job, in the caller's transaction.

    With `failure`, the index is recorded as `failed` with that message and no job is queued
    (for a document kept although it has nothing to index, such as a scanned PDF).
    """
    status = "failed" if failure else "created"
    index = RagIndex(new_id("ri_"), document_id, model, status, 0.0, size_bytes, failure)
    t = now()
    conn.execute(
        rag_indexes.insert().values(
            id=index.id,
            workspace_id=workspace_id,
            document_id=document_id,
            model=model,
            status=index.status,
            progress_percentage=0.0,
            used_bytes=size_bytes,
            error=failure,
            created_at=t,
            updated_at=t,
        )
    )
    if not failure:
        queue.enqueue(conn, INDEX_JOB, {"rag_index_id": index.id})
    return index


def find_index(conn: Connection, workspace_id: str, document_id: str, model: str) -> RagIndex | None:
    row = conn.execute(
        select(rag_indexes).where(
            rag_indexes.c.workspace_id == workspace_id,
            rag_indexes.c.document_id == document_id,
            rag_indexes.c.model == model,
        )
    ).first()
    return RagIndex.from_row(row) if row else None


def list_indexes(db: Database, workspace_id: str, document_id: str) -> list[RagIndex]:
    with db.read() as conn:
        rows = conn.execute(
            select(rag_indexes)
            .where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id == document_id)
            .order_by(rag_indexes.c.created_at)
        ).fetchall()
    return [RagIndex.from_row(r) for r in rows]


def load_index(db: Database, rag_index_id: str) -> tuple[RagIndex, str] | None:
    """The index and its workspace id, or None if it was deleted."""
    with db.read() as conn:
        row = conn.execute(select(rag_indexes).where(rag_indexes.c.id == rag_index_id)).first()
    return (RagIndex.from_row(row), row.workspace_id) if row else None


def set_state(
    db: Database, rag_index_id: str, *, status: str | None = None, progress: float | None = None, error: str | None = None
) -> None:
    values: dict = {"updated_at": now()}
    if status is not None:
        values["status"] = status
        values["error"] = error
    if progress is not None:
        values["progress_percentage"] = round(progress, 1)
    with db.write() as conn:
        conn.execute(update(rag_indexes).where(rag_indexes.c.id == rag_index_id).values(**values))


def retry_index(conn: Connection, queue: JobQueue, index: RagIndex) -> RagIndex:
    """Send a failed index back to the queue."""
    conn.execute(
        update(rag_indexes)
        .where(rag_indexes.c.id == index.id)
        .values(status="created", progress_percentage=0.0, error=None, updated_at=now())
    )
    queue.enqueue(conn, INDEX_JOB, {"rag_index_id": index.id})
    return RagIndex(index.id, index.document_id, index.model, "created", 0.0, index.used_bytes, None)


def indexes_of(conn: Connection, workspace_id: str, document_id: str) -> list[RagIndex]:
    rows = conn.execute(
        select(rag_indexes).where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id == document_id)
    ).fetchall()
    return [RagIndex.from_row(r) for r in rows]


def restart_index(conn: Connection, queue: JobQueue, index: RagIndex, size_bytes: int, failure: str | None = None) -> None:
    """The document's content changed: index it again (its current chunks serve until the new ones land)."""
    conn.execute(
        update(rag_indexes)
        .where(rag_indexes.c.id == index.id)
        .values(
            status="failed" if failure else "created",
            progress_percentage=0.0,
            used_bytes=size_bytes,
            error=failure,
            updated_at=now(),
        )
    )
    if not failure:
        queue.enqueue(conn, INDEX_JOB, {"rag_index_id": index.id})


# Indexes that hold (or are about to hold) a place in the workspace's RAG quota.
COUNTED_STATUSES = ("created", "processing", "succeeded")


def usage_by_model(db: Database, workspace_id: str) -> dict[str, int]:
    with db.read() as conn:
        rows = conn.execute(
            select(rag_indexes.c.model, func.sum(rag_indexes.c.used_bytes))
            .where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.status.in_(COUNTED_STATUSES))
            .group_by(rag_indexes.c.model)
        ).fetchall()
    return {model: int(total or 0) for model, total in rows}

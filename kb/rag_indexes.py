"""RAG indexes: one per document and embedding model, with status and progress."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Row

from .db import Database, now, rag_indexes
from .jobs import JobQueue
from .quotas import Admission
from .workspaces import new_id

STATUSES = ("created", "processing", "succeeded", "failed", "rag_limit_exceeded", "document_too_small")
TERMINAL_STATUSES = ("succeeded", "failed", "rag_limit_exceeded", "document_too_small")
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
    chunks_embedded: int = 0
    chunks_reused: int = 0

    @classmethod
    def from_row(cls, row: Row) -> "RagIndex":
        return cls(row.id, row.document_id, row.model, row.status, row.progress_percentage, row.used_bytes, row.error,
                   row.chunks_embedded, row.chunks_reused)


def create_index(
    conn: Connection,
    queue: JobQueue,
    workspace_id: str,
    document_id: str,
    model: str,
    size_bytes: int,
    admission: Admission = Admission("created"),
) -> RagIndex:
    """Insert an index in the caller's transaction, with its job when it was admitted.

    An index that was not admitted (over the RAG limit, too small, nothing to index) is recorded
    with that status and its message, and no job is queued: nothing is partially indexed.
    """
    index = RagIndex(new_id("ri_"), document_id, model, admission.status, 0.0, size_bytes, admission.message)
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
            error=admission.message,
            created_at=t,
            updated_at=t,
        )
    )
    if admission.admitted:
        queue.enqueue(conn, INDEX_JOB, {"rag_index_id": index.id})
    return index


def restart_index(conn: Connection, queue: JobQueue, index: RagIndex, size_bytes: int, admission: Admission) -> RagIndex:
    """Run an existing index again (its document changed, or it failed): its current chunks serve until then."""
    conn.execute(
        update(rag_indexes)
        .where(rag_indexes.c.id == index.id)
        .values(
            status=admission.status,
            progress_percentage=0.0,
            used_bytes=size_bytes,
            error=admission.message,
            updated_at=now(),
        )
    )
    if admission.admitted:
        queue.enqueue(conn, INDEX_JOB, {"rag_index_id": index.id})
    return RagIndex(index.id, index.document_id, index.model, admission.status, 0.0, size_bytes, admission.message)


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


def first_index_statuses(db: Database, workspace_id: str, document_ids: list[str]) -> dict[str, str]:
    """The status of each document's first index (the one its upload created), 500 documents a query."""
    statuses: dict[str, str] = {}
    with db.read() as conn:
        for start in range(0, len(document_ids), 500):
            rows = conn.execute(
                select(rag_indexes.c.document_id, rag_indexes.c.status)
                .where(rag_indexes.c.workspace_id == workspace_id,
                       rag_indexes.c.document_id.in_(document_ids[start : start + 500]))
                .order_by(rag_indexes.c.created_at.desc())  # the first one is written last
            )
            statuses.update((row.document_id, row.status) for row in rows)
    return statuses


def load_indexes(db: Database, rag_index_ids: list[str]) -> dict[str, tuple[RagIndex, str]]:
    """The indexes that still exist, with their workspace ids, by id (one query per 500)."""
    found: dict[str, tuple[RagIndex, str]] = {}
    with db.read() as conn:
        for start in range(0, len(rag_index_ids), 500):
            rows = conn.execute(select(rag_indexes).where(rag_indexes.c.id.in_(rag_index_ids[start : start + 500])))
            found.update((row.id, (RagIndex.from_row(row), row.workspace_id)) for row in rows)
    return found


def set_state(
    db: Database, rag_index_id: str | list[str], *, status: str | None = None, progress: float | None = None, error: str | None = None
) -> None:
    values: dict = {"updated_at": now()}
    if status is not None:
        values["status"] = status
        values["error"] = error
    if progress is not None:
        values["progress_percentage"] = round(progress, 1)
    ids = [rag_index_id] if isinstance(rag_index_id, str) else rag_index_id
    with db.write() as conn:
        conn.execute(update(rag_indexes).where(rag_indexes.c.id.in_(ids)).values(**values))


def indexes_of(conn: Connection, workspace_id: str, document_id: str) -> list[RagIndex]:
    rows = conn.execute(
        select(rag_indexes).where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id == document_id)
    ).fetchall()
    return [RagIndex.from_row(r) for r in rows]

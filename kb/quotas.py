"""Workspace limits and usage.

Every check runs inside the write transaction that inserts what it admits. Write transactions
take SQLite's write lock up front (BEGIN IMMEDIATE), so two uploads racing for the last byte
are serialised: the second sees the first's row and is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from .config import LIMIT_NAMES, Settings
from .db import documents, rag_indexes, workspaces
from .errors import KBError, NotFound

# Indexes that hold (or are about to hold) a place in the workspace's RAG quota.
COUNTED_STATUSES = ("created", "processing", "succeeded")


class QuotaExceeded(KBError):
    status = 413
    code = "quota_exceeded"


@dataclass(frozen=True)
class Limits:
    rag_max_bytes: int
    kb_max_bytes: int
    kb_max_chars: int
    min_rag_document_bytes: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Usage:
    kb_bytes: int
    kb_chars: int
    documents: int
    rag_bytes: int
    rag_bytes_by_model: dict[str, int]


@dataclass(frozen=True)
class Admission:
    """What becomes of a new or re-run RAG index: its starting status and why."""

    status: str  # "created" | "rag_limit_exceeded" | "document_too_small" | "failed"
    message: str | None = None

    @property
    def admitted(self) -> bool:
        return self.status == "created"


def limits(conn: Connection, settings: Settings, workspace_id: str) -> Limits:
    """The tier's limits with the workspace's own overrides applied."""
    row = conn.execute(select(workspaces).where(workspaces.c.id == workspace_id)).first()
    if row is None:
        raise NotFound(f"workspace {workspace_id!r} not found")
    tier = settings.tiers.get(row.tier)
    if tier is None:
        raise KBError(f"workspace tier {row.tier!r} is not defined in {settings.tiers_file}")
    return Limits(**{name: getattr(row, name) if getattr(row, name) is not None else tier[name] for name in LIMIT_NAMES})


def usage(conn: Connection, workspace_id: str) -> Usage:
    kb_bytes, kb_chars, count = conn.execute(
        select(func.coalesce(func.sum(documents.c.size_bytes), 0), func.coalesce(func.sum(documents.c.char_count), 0),
               func.count())
        .where(documents.c.workspace_id == workspace_id, documents.c.type != "folder")
    ).one()
    by_model = dict(
        conn.execute(
            select(rag_indexes.c.model, func.sum(rag_indexes.c.used_bytes))
            .where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.status.in_(COUNTED_STATUSES))
            .group_by(rag_indexes.c.model)
        ).fetchall()
    )
    by_model = {model: int(total or 0) for model, total in by_model.items()}
    return Usage(int(kb_bytes), int(kb_chars), int(count), sum(by_model.values()), by_model)


def check_storage(
    conn: Connection, settings: Settings, workspace_id: str, add_bytes: int, add_chars: int, *, freed_bytes: int = 0,
    freed_chars: int = 0,
) -> None:
    """Refuse content that would take the workspace past its storage limits (bytes or characters)."""
    lim = limits(conn, settings, workspace_id)
    use = usage(conn, workspace_id)
    new_bytes = use.kb_bytes - freed_bytes + add_bytes
    new_chars = use.kb_chars - freed_chars + add_chars
    if new_bytes > lim.kb_max_bytes:
        raise QuotaExceeded(
            f"knowledge-base storage limit reached: this document ({add_bytes:,} bytes) would bring the workspace to "
            f"{new_bytes:,} bytes, over its limit of {lim.kb_max_bytes:,} bytes (now using {use.kb_bytes:,}); "
            "delete documents or raise the limit (kb workspace set ID --kb-max-bytes N, or a higher --tier)"
        )
    if new_chars > lim.kb_max_chars:
        raise QuotaExceeded(
            f"knowledge-base character limit reached: this document ({add_chars:,} characters) would bring the "
            f"workspace to {new_chars:,} characters, over its limit of {lim.kb_max_chars:,} (now using "
            f"{use.kb_chars:,}); delete documents or raise the limit (kb workspace set ID --kb-max-chars N)"
        )


def admit_index(
    conn: Connection, settings: Settings, workspace_id: str, size_bytes: int, *, excluding_index: str | None = None
) -> Admission:
    """Whether an index of a document of `size_bytes` fits the workspace's RAG limit now."""
    lim = limits(conn, settings, workspace_id)
    if size_bytes < lim.min_rag_document_bytes:
        return Admission(
            "document_too_small",
            f"the document is {size_bytes} bytes, under this workspace's minimum of {lim.min_rag_document_bytes} "
            "bytes for RAG indexing; it is still available for prompt use",
        )
    query = select(func.coalesce(func.sum(rag_indexes.c.used_bytes), 0)).where(
        rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.status.in_(COUNTED_STATUSES)
    )
    if excluding_index:
        query = query.where(rag_indexes.c.id != excluding_index)
    used = int(conn.execute(query).scalar_one())
    if used + size_bytes > lim.rag_max_bytes:
        return Admission(
            "rag_limit_exceeded",
            f"indexing this document ({size_bytes:,} bytes) would bring RAG usage to {used + size_bytes:,} bytes, over "
            f"the workspace's limit of {lim.rag_max_bytes:,} (now using {used:,}); delete indexes or documents, or "
            "raise the limit, then request the index again",
        )
    return Admission("created")

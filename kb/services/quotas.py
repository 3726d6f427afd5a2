"""Workspace limits and usage.

Every check runs inside the write transaction that inserts what it admits, after the dialect's
`QuotaLock` for the workspace (on SQLite, write transactions are serialised from their start), so
two uploads racing for the last byte are serialised: the second sees the first's row and is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import KBError, NotFound, QuotaExceeded
from ..settings import LIMIT_NAMES, WorkspaceSettings
from ..storage import Database, Tx
from ..storage.interfaces import QuotaLock
from ..storage.repositories import AgentStore, DocumentStore, RagIndexStore, WorkspaceStore

# Indexes that hold (or are about to hold) a place in the workspace's RAG quota.
COUNTED_STATUSES = ("created", "processing", "succeeded")


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
    kb_bytes: int  # documents' and agents' stored bytes: what kb_max_bytes bounds
    kb_chars: int
    documents: int
    rag_bytes: int
    rag_bytes_by_model: dict[str, int]
    agent_bytes: int = 0  # the agents' share of kb_bytes


@dataclass(frozen=True)
class Admission:
    """What becomes of a new or re-run RAG index: its starting status and why."""

    status: str  # "created" | "rag_limit_exceeded" | "document_too_small" | "failed"
    message: str | None = None

    @property
    def admitted(self) -> bool:
        return self.status == "created"


class Quotas:
    def __init__(self, db: Database, workspaces: WorkspaceStore, documents: DocumentStore,
                 rag_indexes: RagIndexStore, lock: QuotaLock, settings: WorkspaceSettings, agents: AgentStore):
        self.db = db
        self.agents = agents
        self.workspaces = workspaces
        self.documents = documents
        self.rag_indexes = rag_indexes
        self.lock = lock
        self.settings = settings

    def limits(self, tx: Tx, workspace_id: str) -> Limits:
        """The tier's limits with the workspace's own overrides applied."""
        own = self.workspaces.limit_overrides(tx, workspace_id)
        if own is None:
            raise NotFound(f"workspace {workspace_id!r} not found")
        tier = self.settings.tiers.get(own.tier)
        if tier is None:
            raise KBError(f"workspace tier {own.tier!r} is not defined in {self.settings.tiers_file}")
        return Limits(**{name: getattr(own, name) if getattr(own, name) is not None else tier[name] for name in LIMIT_NAMES})

    def usage(self, tx: Tx, workspace_id: str) -> Usage:
        stored = self.documents.storage_usage(tx, workspace_id)
        agent_bytes = self.agents.storage_bytes(tx, workspace_id)
        by_model = self.rag_indexes.used_bytes_by_model(tx, workspace_id, COUNTED_STATUSES)
        return Usage(stored.kb_bytes + agent_bytes, stored.kb_chars, stored.documents, sum(by_model.values()), by_model,
                     agent_bytes)

    def limits_and_usage(self, workspace_id: str) -> tuple[Limits, Usage]:
        with self.db.read() as tx:
            return self.limits(tx, workspace_id), self.usage(tx, workspace_id)

    def rag_usage(self, workspace_id: str) -> tuple[int, int, dict[str, int]]:
        """(bytes used, bytes allowed, bytes used per model) of the workspace's RAG indexes."""
        lim, use = self.limits_and_usage(workspace_id)
        return use.rag_bytes, lim.rag_max_bytes, use.rag_bytes_by_model

    def check_storage(
        self, tx: Tx, workspace_id: str, add_bytes: int, add_chars: int, *, freed_bytes: int = 0, freed_chars: int = 0,
        replacing_agent: str | None = None, what: str = "document",
    ) -> None:
        """Refuse content that would take the workspace past its storage limits (bytes or characters).
        Agents' stored configs count in the bytes too; `replacing_agent`: the agent being rewritten (its
        old size not counted)."""
        self.lock.lock_workspace(tx, workspace_id)
        lim = self.limits(tx, workspace_id)
        stored = self.documents.storage_usage(tx, workspace_id)
        use = Usage(stored.kb_bytes + self.agents.storage_bytes(tx, workspace_id, excluding=replacing_agent),
                    stored.kb_chars, stored.documents, 0, {})
        new_bytes = use.kb_bytes - freed_bytes + add_bytes
        new_chars = use.kb_chars - freed_chars + add_chars
        if new_bytes > lim.kb_max_bytes:
            raise QuotaExceeded(
                f"knowledge-base storage limit reached: this {what} ({add_bytes:,} bytes) would bring the workspace to "
                f"{new_bytes:,} bytes, over its limit of {lim.kb_max_bytes:,} bytes (now using {use.kb_bytes:,}); "
                "delete documents or agents, or raise the limit (kb workspace set ID --kb-max-bytes N, or a higher --tier)"
            )
        if new_chars > lim.kb_max_chars:
            raise QuotaExceeded(
                f"knowledge-base character limit reached: this document ({add_chars:,} characters) would bring the "
                f"workspace to {new_chars:,} characters, over its limit of {lim.kb_max_chars:,} (now using "
                f"{use.kb_chars:,}); delete documents or raise the limit (kb workspace set ID --kb-max-chars N)"
            )

    def admit_index(self, tx: Tx, workspace_id: str, size_bytes: int, *, excluding_index: str | None = None) -> Admission:
        """Whether an index of a document of `size_bytes` fits the workspace's RAG limit now."""
        self.lock.lock_workspace(tx, workspace_id)
        lim = self.limits(tx, workspace_id)
        if size_bytes < lim.min_rag_document_bytes:
            return Admission(
                "document_too_small",
                f"the document is {size_bytes} bytes, under this workspace's minimum of {lim.min_rag_document_bytes} "
                "bytes for RAG indexing; it is still available for prompt use",
            )
        used = self.rag_indexes.used_bytes(tx, workspace_id, COUNTED_STATUSES, excluding=excluding_index)
        if used + size_bytes > lim.rag_max_bytes:
            return Admission(
                "rag_limit_exceeded",
                f"indexing this document ({size_bytes:,} bytes) would bring RAG usage to {used + size_bytes:,} bytes, "
                f"over the workspace's limit of {lim.rag_max_bytes:,} (now using {used:,}); delete indexes or "
                "documents, or raise the limit, then request the index again",
            )
        return Admission("created")

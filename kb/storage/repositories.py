"""The metadata repositories as interfaces: what services may ask of storage.

Services are typed against these Protocols; `kb/storage/sql/` implements them in portable
SQLAlchemy Core (a PostgreSQL database reuses them, with its own `Dialect`). Another kind of store
would implement these. Every method takes the open transaction `tx` first and returns records.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from ..records import (
    Agent,
    Chunk,
    ChunkHit,
    CrawlJob,
    DependentAgent,
    Document,
    DocumentScope,
    FolderCounts,
    GapGroup,
    Job,
    KnowledgeGap,
    ListQuery,
    Locator,
    NewChunk,
    RagIndex,
    RunningJob,
    Schedule,
    StorageUsage,
    StoredVectors,
    SyncState,
    Workspace,
    WorkspaceLimitOverrides,
)
from ..attributes import Value
from ..filters import Filter
from .interfaces import Tx

DOCUMENT_SORT_KEYS = ("name", "created_at", "updated_at", "size")  # ListQuery.sort_by
MAX_FOLDER_DEPTH = 100  # folders above or below one that any walk follows
ACTIVE_JOB_STATUSES = ("queued", "running")


class WorkspaceStore(Protocol):
    def insert(self, tx: Tx, workspace: Workspace, key_hash: str, now: float, limits: dict[str, int]) -> None:
        ...

    def by_key_hash(self, tx: Tx, key_hash: str) -> Workspace | None:
        ...

    def get(self, tx: Tx, workspace_id: str) -> Workspace | None:
        ...

    def find_by_name(self, tx: Tx, name: str) -> Workspace | None:
        ...

    def update(self, tx: Tx, workspace_id: str, values: dict) -> bool:
        ...

    def limit_overrides(self, tx: Tx, workspace_id: str) -> WorkspaceLimitOverrides | None:
        ...


class DocumentStore(Protocol):
    def insert(self, tx: Tx, doc: Document) -> None:
        ...

    def get(self, tx: Tx, workspace_id: str, document_id: str) -> Document | None:
        ...

    def get_many(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> list[Document]:
        ...

    def name_of(self, tx: Tx, document_id: str) -> str | None:
        ...

    def types_of(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> dict[str, str]:
        """id -> type of those of `document_ids` that exist in the workspace."""

    def any_in_scope(self, tx: Tx, workspace_id: str, scope: DocumentScope) -> bool:
        """Whether any document of the workspace is in `scope`."""

    def names_of(self, tx: Tx, workspace_id: str, document_ids: Sequence[str], *, folders: bool=True) -> dict[str, str]:
        ...

    def update_content(self, tx: Tx, workspace_id: str, document_id: str, values: dict) -> None:
        """New content fields (format, sizes, hash, metadata, source) of a document."""

    def rename(self, tx: Tx, workspace_id: str, document_id: str, name: str, now: float) -> bool:
        ...

    def move(self, tx: Tx, workspace_id: str, document_ids: Sequence[str], folder_id: str | None, now: float) -> None:
        ...

    def delete(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> None:
        ...

    def page(self, tx: Tx, workspace_id: str, q: ListQuery, offset: int, only_ids: Sequence[str] | None=None) -> list[Document]:
        """Up to `q.page_size + 1` documents from `offset`, filtered and sorted as asked."""

    def ids_of_types(self, tx: Tx, workspace_id: str, types: Sequence[str]) -> list[str]:
        ...

    def descendant_ids(self, tx: Tx, workspace_id: str, folder_id: str) -> list[str]:
        """Every document and folder below `folder_id` (not itself), breadth first."""

    def ancestors(self, tx: Tx, workspace_id: str, folder_ids: Sequence[str]) -> dict[str, tuple[str, str, str | None]]:
        """id -> (id, name, parent id) of the given folders and every folder above them: one query."""

    def folder_counts(self, tx: Tx, workspace_id: str, folder_ids: Sequence[str]) -> dict[str, FolderCounts]:
        """Direct children and documents anywhere below, of each folder: two queries for all of them."""

    def storage_usage(self, tx: Tx, workspace_id: str) -> StorageUsage:
        ...

    def char_count_sum(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> int:
        ...


class AttributeStore(Protocol):
    def replace(self, tx: Tx, workspace_id: str, document_id: str, values: Mapping[str, Value], *,
                automatic: bool) -> None:
        """The document's client attributes (or, `automatic`, kb's stored ones) become `values`."""

    def add(self, tx: Tx, workspace_id: str, document_id: str, key: str, value: Value) -> None:
        """Set one automatic attribute."""

    def of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> dict[str, dict[str, Value]]:
        """document id -> its stored attributes (client and automatic), by key."""

    def matching(self, tx: Tx, workspace_id: str, f: Filter | None, within: Sequence[str] | None = None) -> list[str]:
        """Ids of the workspace's documents (not folders) that pass `f`, among `within` when given."""

    def count_documents(self, tx: Tx, workspace_id: str) -> int:
        ...

    def lacking(self, tx: Tx, key: str, formats: Sequence[str]) -> list[tuple[str, str]]:
        """(workspace id, document id) of documents of these formats without the attribute `key`."""


class RagIndexStore(Protocol):
    def insert(self, tx: Tx, workspace_id: str, index: RagIndex, now: float) -> None:
        ...

    def set_requested_names(self, tx: Tx, index_id: str, names: Sequence[str]) -> None:
        ...

    def restart(self, tx: Tx, index_id: str, status: str, used_bytes: int, error: str | None, now: float) -> None:
        ...

    def find(self, tx: Tx, workspace_id: str, document_id: str, model: str) -> RagIndex | None:
        ...

    def of_document(self, tx: Tx, workspace_id: str, document_id: str) -> list[RagIndex]:
        ...

    def of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> dict[str, list[RagIndex]]:
        """Each document's indexes, oldest first, 500 documents a query."""

    def first_statuses(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> dict[str, str]:
        """The status of each document's first index (the one its upload created), 500 documents a query."""

    def load(self, tx: Tx, index_ids: Sequence[str]) -> dict[str, RagIndex]:
        """The indexes that still exist, by id (one query per 500)."""

    def set_state(self, tx: Tx, index_ids: Sequence[str], values: dict) -> None:
        ...

    def mark_succeeded(self, tx: Tx, counts: dict[str, tuple[int, int]], now: float) -> None:
        """index id -> (chunks embedded, chunks reused) of indexes just published."""

    def alive(self, tx: Tx, index_ids: Sequence[str]) -> set[str]:
        """Those of the indexes whose index and document both still exist."""

    def models_of(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> list[str]:
        ...

    def ids_of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> list[str]:
        """Ids of the documents' indexes (every model)."""

    def models_in_use(self, tx: Tx, workspace_id: str) -> list[str]:
        ...

    def ids_for(self, tx: Tx, workspace_id: str, model: str, document_ids: Sequence[str] | None) -> list[str]:
        ...

    def delete(self, tx: Tx, workspace_id: str, index_id: str) -> None:
        ...

    def delete_of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> None:
        ...

    def used_bytes(self, tx: Tx, workspace_id: str, statuses: Sequence[str], excluding: str | None=None) -> int:
        ...

    def used_bytes_by_model(self, tx: Tx, workspace_id: str, statuses: Sequence[str]) -> dict[str, int]:
        ...


class ChunkStore(Protocol):
    def page(self, tx: Tx, workspace_id: str, document_id: str, model: str, offset: int, limit: int) -> list[Chunk]:
        ...

    def get(self, tx: Tx, workspace_id: str, document_id: str, chunk_id: str, model: str | None=None) -> Chunk | None:
        ...

    def embeddings_for(self, tx: Tx, workspace_id: str, model: str, hashes: Sequence[str]) -> dict[str, bytes]:
        """Embeddings already stored in this workspace for these text hashes (never across workspaces)."""

    def keys_of_indexes(self, tx: Tx, index_ids: Sequence[str]) -> list[int]:
        ...

    def delete_of_indexes(self, tx: Tx, index_ids: Sequence[str]) -> None:
        ...

    def insert(self, tx: Tx, new: Sequence[NewChunk]) -> list[int]:
        """Store chunks; returns their keys, in order."""

    def keys_by_model_of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> dict[str, list[int]]:
        ...

    def delete_of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> None:
        ...

    def keys_of_documents(self, tx: Tx, document_ids: Sequence[str], model: str) -> Iterator[int]:
        """Keys of the documents' chunks for `model` (check first that the documents are the caller's)."""

    def keys_in_scope(self, tx: Tx, workspace_id: str, model: str, scope: DocumentScope) -> list[int]:
        """Keys of the `model` chunks of the workspace's documents in `scope`, in one statement."""

    def hits(self, tx: Tx, workspace_id: str, keys: Sequence[int]) -> dict[int, ChunkHit]:
        """The chunks of these keys that belong to the workspace, with their documents' names."""

    def neighbours(self, tx: Tx, workspace_id: str, chunk_ids: Sequence[str], distance: int) -> dict[str, list[Chunk]]:
        """For each chunk, the chunks of its index up to `distance` positions away, nearest first"""

    def stored_vectors(self, tx: Tx, workspace_id: str, model: str, batch: int=4096) -> Iterator[StoredVectors]:
        """Every stored chunk of the workspace for `model`, in key order, `batch` at a time."""

    def count(self, tx: Tx, workspace_id: str, model: str) -> int:
        ...

    def stored_dimension(self, tx: Tx, workspace_id: str, model: str) -> int | None:
        ...


class GenerationStore(Protocol):
    def bump(self, tx: Tx, workspace_id: str, model: str) -> int:
        """Call in the transaction that changes the vectors; returns the new generation."""

    def current(self, tx: Tx, workspace_id: str, model: str) -> int:
        ...


class AgentStore(Protocol):
    def insert(self, tx: Tx, agent: Agent) -> None:
        ...

    def get(self, tx: Tx, workspace_id: str, agent_id: str) -> Agent | None:
        ...

    def get_many(self, tx: Tx, workspace_id: str, agent_ids: Sequence[str]) -> list[Agent]:
        ...

    def update(self, tx: Tx, agent: Agent) -> None:
        ...

    def storage_bytes(self, tx: Tx, workspace_id: str, excluding: str | None=None) -> int:
        ...

    def delete(self, tx: Tx, workspace_id: str, agent_id: str) -> None:
        ...

    def page(self, tx: Tx, workspace_id: str, *, limit: int, sort_by: str, ascending: bool, search: str | None=None, after: tuple[Any, str] | None=None, tags: Sequence[str]=()) -> list[Agent]:
        """Up to `limit` agents sorted by `sort_by` (then id), after the (value, id) of a previous page;
        with `tags`, only agents that have any of them."""

    def replace_locators(self, tx: Tx, workspace_id: str, agent_id: str, locators: Sequence[Locator]) -> None:
        ...

    def agents_naming(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> list[str]:
        """Ids of the agents whose knowledge base names any of the documents, sorted."""

    def remove_locators_of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> None:
        ...

    def dependents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> list[DependentAgent]:
        """Agents naming any of the documents directly, newest first, each with the ids it names among them."""


class JobStore(Protocol):
    def enqueue(self, tx: Tx, kind: str, payload: dict, now: float, *, run_at: float | None=None, subject: str | None=None, tenant: str | None=None) -> int:
        """A queued job; `tenant`'s jobs are interleaved with other tenants' in the claim order."""

    def claim(self, tx: Tx, owner: str, now: float, *, limit: int=1, job_id: int | None=None, kind: str | None=None, kinds: Sequence[str] | None=None, tenant_of: Job | None=None) -> list[Job]:
        """Queued jobs that are due, first in the fair order (or the given one), marked running for
        `owner`; only jobs of `tenant_of`'s tenant when given."""

    def heartbeat(self, tx: Tx, job_ids: Sequence[int], owner: str, now: float) -> dict[int, bool]:
        """Refresh the jobs `owner` still runs: {job id: whether its cancellation was asked}."""

    def cancel_requested(self, tx: Tx, job_ids: Sequence[int]) -> set[int]:
        ...

    def running_for(self, tx: Tx, job_ids: Sequence[int], owner: str) -> set[int]:
        """Those of the jobs `owner` still runs (not taken over, not ended)."""

    def finish(self, tx: Tx, job_ids: Sequence[int], owner: str, now: float, error: str | None=None) -> set[int]:
        """End jobs `owner` runs: done (or failed with `error`), or cancelled when that was asked meanwhile."""

    def mark_cancelled(self, tx: Tx, job_ids: Sequence[int], owner: str, now: float) -> set[int]:
        ...

    def release(self, tx: Tx, job_ids: Sequence[int], owner: str, now: float) -> int:
        """Queued again without counting the attempt (the owner is stopping politely)."""

    def retry_later(self, tx: Tx, job_ids: Sequence[int], owner: str, now: float, run_at: float, error: str) -> set[int]:
        """Queued again, not before `run_at`, with the error of the failed attempt (the attempt counts)."""

    def status(self, tx: Tx, job_id: int) -> str | None:
        ...

    def statuses(self, tx: Tx, job_ids: Sequence[int]) -> dict[int, str]:
        ...

    def running(self, tx: Tx) -> list[RunningJob]:
        ...

    def requeue_abandoned(self, tx: Tx, job_id: int, now: float) -> bool:
        ...

    def fail_abandoned(self, tx: Tx, job_id: int, error: str, now: float) -> bool:
        ...

    def cancel(self, tx: Tx, job_ids: Sequence[int], now: float) -> dict[int, str]:
        """Queued jobs end `cancelled` at once; running ones are asked to stop. {job id: status now}."""

    def active_of_subject(self, tx: Tx, subjects: Sequence[str]) -> list[int]:
        ...


class ScheduleStore(Protocol):
    def put(self, tx: Tx, schedule: Schedule, now: float) -> None:
        """Create the schedule, or change its kind, payload, interval and next run."""

    def get(self, tx: Tx, schedule_id: str) -> Schedule | None:
        ...

    def remove(self, tx: Tx, schedule_ids: list[str]) -> None:
        ...

    def due(self, tx: Tx, now: float, limit: int=100) -> list[Schedule]:
        ...

    def advance(self, tx: Tx, schedule: Schedule, next_run_at: float, last_job_id: int | None, now: float) -> bool:
        """Move a due schedule on, only if no other process did since it was read (compare and set)."""

    def set_last_job(self, tx: Tx, schedule_id: str, job_id: int) -> None:
        ...


class CrawlStore(Protocol):
    def insert(self, tx: Tx, crawl: CrawlJob) -> None:
        ...

    def get(self, tx: Tx, workspace_id: str, crawl_id: str) -> CrawlJob | None:
        ...

    def load(self, tx: Tx, crawl_id: str) -> CrawlJob | None:
        """A crawl by id alone, for its background job."""

    def page(self, tx: Tx, workspace_id: str, offset: int, limit: int, include_ids: Sequence[str] = ()) -> list[CrawlJob]:
        """Newest first; `include_ids` (of this workspace) first."""

    def update(self, tx: Tx, crawl_id: str, values: dict, *, only_if_status: Sequence[str] = ()) -> bool:
        """Change columns; with `only_if_status`, only while the crawl has one of those statuses."""

    def status(self, tx: Tx, crawl_id: str) -> str | None:
        ...

    def with_auto_sync(self, tx: Tx, crawl_ids: Sequence[str]) -> list[CrawlJob]:
        ...


class SyncStore(Protocol):
    def put(self, tx: Tx, state: SyncState) -> None:
        """Create or replace a document's (or folder's) auto-sync state."""

    def get_many(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> dict[str, SyncState]:
        ...

    def update(self, tx: Tx, document_id: str, values: dict) -> None:
        ...

    def due(self, tx: Tx, at: float | None, limit: int) -> list[SyncState]:
        """Enabled URL documents due by `at` (None: all of them), soonest first."""

    def of_crawl(self, tx: Tx, workspace_id: str, crawl_id: str) -> list[SyncState]:
        ...

    def delete(self, tx: Tx, document_ids: Sequence[str]) -> None:
        ...


class GapStore(Protocol):
    def find_group(self, tx: Tx, workspace_id: str, normalized: str) -> str | None:
        ...

    def groups_since(self, tx: Tx, workspace_id: str, model: str, since: float) -> list[GapGroup]:
        """Groups of the workspace and model created at or after `since`, with their vectors."""

    def insert_group(self, tx: Tx, workspace_id: str, group: GapGroup, model: str, query: str) -> None:
        ...

    def insert_events(self, tx: Tx, rows: Sequence[dict]) -> None:
        ...

    def page(self, tx: Tx, workspace_id: str, *, limit: int, offset: int, agent_id: str | None=None, since: float | None=None) -> list[KnowledgeGap]:
        """Up to `limit` groups from `offset`, the most frequent first (then the most recent)."""

    def event_count(self, tx: Tx, workspace_id: str) -> int:
        ...

    def delete_group(self, tx: Tx, workspace_id: str, gap_id: str) -> bool:
        ...

    def clear(self, tx: Tx, workspace_id: str) -> int:
        ...

    def delete_older(self, tx: Tx, cutoff: float) -> int:
        ...

    def trim(self, tx: Tx, max_rows: int) -> int:
        """Keep the newest `max_rows` events of each workspace; returns how many went."""

    def delete_empty_groups(self, tx: Tx) -> int:
        ...

    def switches(self, tx: Tx, workspace_ids: Sequence[str]) -> dict[str, bool]:
        ...

    def set_switch(self, tx: Tx, workspace_id: str, enabled: bool, now: float) -> None:
        ...


class IdempotencyStore(Protocol):
    def find(self, tx: Tx, workspace_id: str, key: str, since: float) -> tuple[str, str] | None:
        ...

    def insert(self, tx: Tx, workspace_id: str, key: str, fingerprint: str, document_id: str, now: float,
               expired_before: float) -> bool:
        """False if a concurrent transaction took the key first (its row is visible to `find` then)."""

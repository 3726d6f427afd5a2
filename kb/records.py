"""The records kb stores and hands out: plain dataclasses, shared by storage, services and the API.

Repositories in `kb/storage` return these, never database rows.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .filters import Filter


def new_id(prefix: str = "") -> str:
    """An opaque, unguessable id (ids never reveal counts or order across tenants)."""
    return prefix + secrets.token_urlsafe(15).replace("-", "x").replace("_", "y")


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    tier: str
    default_model: str


@dataclass(frozen=True)
class WorkspaceLimitOverrides:
    """A workspace's tier and its own limits (None: the tier's value)."""

    tier: str
    rag_max_bytes: int | None = None
    kb_max_bytes: int | None = None
    kb_max_chars: int | None = None
    min_rag_document_bytes: int | None = None


@dataclass(frozen=True)
class Document:
    id: str
    workspace_id: str
    name: str
    type: str  # "file" | "url" | "text" | "folder"
    format: str
    size_bytes: int
    char_count: int
    content_hash: str
    created_at: float
    updated_at: float
    filename: str | None = None
    url: str | None = None
    content_type: str | None = None
    parent_folder_id: str | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def is_folder(self) -> bool:
        return self.type == "folder"


@dataclass(frozen=True)
class DocumentPage:
    documents: list[Document]
    next_cursor: str | None
    has_more: bool


@dataclass(frozen=True)
class ListQuery:
    page_size: int = 30
    cursor: str | None = None
    search: str | None = None  # name prefix, case-insensitive
    types: tuple[str, ...] = ()
    parent_folder_id: str | None = None  # direct children only
    ancestor_folder_id: str | None = None  # anywhere below
    sort_by: str = "created_at"
    sort_direction: str = "desc"
    folders_first: bool = False
    top_level_only: bool = False  # without parent_folder_id: only the items in no folder (the dashboard's root)
    formats: tuple[str, ...] = ()  # only documents of these formats (pdf, docx, ...; "folder" for folders)


@dataclass(frozen=True)
class FolderCounts:
    children: int  # direct children
    documents: int  # documents (not folders) anywhere below


@dataclass(frozen=True)
class StorageUsage:
    kb_bytes: int
    kb_chars: int
    documents: int


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
    workspace_id: str = ""
    # Other names clients asked for this index by, that `model` served (ElevenLabs' model names).
    requested_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A stored chunk of a document's text, as the API shows it."""

    id: str
    document_id: str
    model: str
    ordinal: int
    text: str
    start: int
    end: int
    heading_path: list[str]
    page_start: int | None
    page_end: int | None


@dataclass(frozen=True)
class ChunkHit:
    """A chunk found by a search, with its document's name (keys never leave kb)."""

    key: int
    chunk: Chunk
    document_name: str


@dataclass(frozen=True)
class NewChunk:
    """A chunk to store, with everything indexing derived from it."""

    id: str
    workspace_id: str
    document_id: str
    rag_index_id: str
    model: str
    ordinal: int
    text: str
    start: int
    end: int
    heading_path: list[str]
    page_start: int | None
    page_end: int | None
    token_count: int
    text_hash: str
    language: str
    lexical_terms: str
    embedding: bytes


@dataclass(frozen=True)
class StoredVectors:
    """A batch of stored chunks as the search indexes need them."""

    keys: list[int]
    embeddings: list[bytes]
    lexical_terms: list[str]
    languages: list[str]
    document_names: list[str]  # with the heading paths: each chunk's title field (kb.indexes.lexical)
    heading_paths: list[list[str]]


@dataclass(frozen=True)
class Agent:
    id: str
    workspace_id: str
    name: str
    tags: list[str]
    body: dict  # everything stored but name and tags: conversation_config, platform_settings, ...
    created_at: float
    updated_at: float

    @property
    def conversation_config(self) -> dict:
        value = self.body.get("conversation_config")
        return value if isinstance(value, dict) else {}

    @property
    def voice_id(self) -> str:
        tts = self.conversation_config.get("tts")
        return (tts.get("voice_id") if isinstance(tts, dict) else None) or ""


@dataclass(frozen=True)
class AgentPage:
    agents: list[Agent]
    next_cursor: str | None
    has_more: bool


@dataclass(frozen=True)
class Locator:
    id: str
    name: str
    type: str
    usage_mode: str  # "auto" | "prompt"


@dataclass(frozen=True)
class DependentAgent:
    """An agent whose knowledge_base names some of the asked documents (`referenced_resource_ids`),
    or, when `transitive`, only folders above them (those folders' ids)."""

    id: str
    name: str
    created_at: float
    referenced_resource_ids: list[str]
    transitive: bool = False


@dataclass(frozen=True)
class DependentAgentPage:
    agents: list[DependentAgent]
    next_cursor: str | None
    has_more: bool


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: dict
    attempts: int = 0  # claims so far, this one included
    tenant: str | None = None  # the workspace it works for (None: the service's own work)


@dataclass(frozen=True)
class RunningJob:
    """A running job as the reaper sees it."""

    id: int
    kind: str
    payload: dict
    attempts: int
    owner: str | None
    heartbeat_at: float | None


@dataclass(frozen=True)
class Schedule:
    """A job enqueued every `interval_secs` (the scheduler's unit of periodic work)."""

    id: str
    kind: str
    payload: dict
    interval_secs: float
    next_run_at: float
    last_job_id: int | None = None


@dataclass(frozen=True)
class SearchHit:
    document_id: str
    score: float
    snippet: list[tuple[str, bool]]  # (text, is_hit) parts


@dataclass(frozen=True)
class CrawlJob:
    """A website crawl: what was asked, where it stands, and the crawler's saved state (`frontier`)."""

    id: str
    workspace_id: str
    seed_url: str
    max_pages: int
    root_folder_id: str
    status: str  # queued | processing | succeeded | failed | skipped | cancelled
    created_at: float
    updated_at: float
    type: str | None = None  # "discovery" | "sitemap" once decided
    pattern: str | None = None
    exclude_patterns: tuple[str, ...] = ()
    sitemap_urls: tuple[str, ...] = ()
    enable_auto_sync: bool = False
    auto_remove: bool = False
    auto_discover: bool = False
    minimum_frequency_days: int | None = None
    reason: str | None = None
    pages_identified: int = 0
    pages_scraped: int = 0
    pages_skipped: int = 0
    pages_failed: int = 0
    frontier: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ("queued", "processing")


@dataclass(frozen=True)
class CrawlJobPage:
    crawl_jobs: list[CrawlJob]
    next_cursor: str | None


@dataclass(frozen=True)
class SyncState:
    """Auto-sync of a URL document (re-fetched by `next_refresh_by`) or of a folder (its settings only)."""

    document_id: str
    workspace_id: str
    enabled: bool
    auto_remove: bool
    minimum_frequency_days: int
    consec_failures: int = 0
    next_refresh_by: float | None = None
    crawl_id: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    text_hash: str | None = None
    refresh_status: str | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    last_synced_at: float | None = None
    error_message: str | None = None


# --- the knowledge-gap log (kb/services/gaps.py) ---------------------------------------------


@dataclass(frozen=True)
class GapObservation:
    """One retrieval that returned nothing or only weak matches, waiting to be written."""

    workspace_id: str
    query: str
    model: str  # the served model
    mode: str
    best_distance: float | None  # the nearest candidate's, before the cut (None: no candidate)
    returned: int  # chunks in the response
    agent_id: str | None
    at: float
    vector: bytes | None = None  # the query's float32 embedding by `model`


@dataclass(frozen=True)
class GapGroup:
    """A group's identity for clustering: its normalised text and its first query's vector."""

    id: str
    normalized: str
    embedding: bytes | None
    created_at: float


@dataclass(frozen=True)
class KnowledgeGap:
    """Similar queries that retrieval could not answer, aggregated over the events kept."""

    id: str
    query: str  # the first query of the group
    count: int  # retrievals
    empty_count: int  # of them, those that returned no chunk
    first_seen: float
    last_seen: float
    best_distance: float | None  # the nearest any of them came
    examples: list[str]  # distinct queries, most recent first (up to 5)
    agent_ids: list[str]
    modes: list[str]


@dataclass(frozen=True)
class GapPrune:
    """What one pruning removed."""

    expired: int  # events older than the retention
    trimmed: int  # events beyond a workspace's row limit
    groups: int  # groups left without events


@dataclass(frozen=True)
class Selection:
    """Documents named in `document_ids`, and every document anywhere below the folders `folder_ids`
    (ids that name nothing of the workspace, or a folder where a document is meant, select nothing)."""

    document_ids: tuple[str, ...] = ()
    folder_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class DocumentScope:
    """The documents (never folders) of a workspace that are in every one of `selections`, not in
    `excluded`, and pass `filter` (None: no filter). Storage turns it into chunk keys in one statement."""

    selections: tuple[Selection, ...] = ()
    excluded: tuple[str, ...] = ()
    filter: Filter | None = None

"""Every table of the metadata database, in one place (SQLAlchemy Core).

Everything that is not derived lives here: workspaces, hashed API keys, documents and folders,
chunks with their embeddings, RAG indexes, agents, background jobs and their schedules. FAISS and
BM25 files are rebuilt from it. The migrations in `kb/storage/migrations` produce exactly this
schema (a test compares them); change both together. Dialect-specific tables (SQLite's FTS5
table of each workspace, `workspace_text_<digest>`) are created by the dialect when needed.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("tier", String, nullable=False, default="free"),
    Column("default_model", String, nullable=False),
    Column("created_at", Float, nullable=False),
    # Per-workspace overrides of the tier's limits (NULL: the tier's value).
    Column("rag_max_bytes", Integer),
    Column("kb_max_bytes", Integer),
    Column("kb_max_chars", Integer),
    Column("min_rag_document_bytes", Integer),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_hash", String, primary_key=True),
    Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
)

documents = Table(
    "documents",
    metadata,
    Column("id", String, primary_key=True),
    Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("name", String, nullable=False),
    Column("type", String, nullable=False),  # "file" | "url" | "text" | "folder"
    Column("format", String, nullable=False),  # ingest.SUPPORTED_FORMATS, or "folder"
    Column("parent_folder_id", String),  # a folder is a row of this table with type "folder"
    Column("filename", String),
    Column("url", String),
    Column("content_type", String),
    Column("size_bytes", Integer, nullable=False),
    Column("char_count", Integer, nullable=False),
    Column("content_hash", String, nullable=False),
    Column("metadata_json", Text, nullable=False, default="{}"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_documents_workspace_created", "workspace_id", "created_at"),
    Index("ix_documents_workspace_name", "workspace_id", "name"),
    Index("ix_documents_workspace_parent", "workspace_id", "parent_folder_id"),
    # covers the storage-quota sums of every upload (no table rows read)
    Index("ix_documents_workspace_usage", "workspace_id", "type", "size_bytes", "char_count"),
)

document_attributes = Table(
    "document_attributes",
    metadata,
    # A document's typed attributes (kb.attributes): those a client set, and the automatic ones kb
    # stores (site, page_count, language; the others are columns of `documents`). Filters compile to
    # lookups of these (kb/storage/sql/attributes.py).
    Column("document_id", String, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String, primary_key=True),
    Column("workspace_id", String, nullable=False),
    Column("kind", String, nullable=False),  # string | number | boolean | date
    Column("value_text", String),  # strings, and dates as given
    Column("value_number", Float),  # numbers, booleans (0/1), dates (unix seconds)
    Column("automatic", Boolean, nullable=False, default=False),  # set by kb, not by the client
    Index("ix_document_attributes_text", "workspace_id", "key", "value_text"),
    Index("ix_document_attributes_number", "workspace_id", "key", "value_number"),
)

rag_indexes = Table(
    "rag_indexes",
    metadata,
    Column("id", String, primary_key=True),
    Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("document_id", String, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("model", String, nullable=False),
    Column("status", String, nullable=False),  # created | processing | succeeded | failed | ...
    Column("progress_percentage", Float, nullable=False, default=0.0),
    Column("used_bytes", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("chunks_embedded", Integer, nullable=False, default=0),  # by the model in the last run
    Column("chunks_reused", Integer, nullable=False, default=0),  # embeddings reused from identical text
    # other model names clients asked for this index by, that `model` served (a JSON list of names)
    Column("requested_names", JSON, nullable=False, default=list),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("document_id", "model", name="uq_rag_index_document_model"),
    # status and used_bytes cover the storage-quota sums of every upload (no table rows read)
    Index("ix_rag_indexes_workspace_model", "workspace_id", "model", "status", "used_bytes"),
)

chunks = Table(
    "chunks",
    metadata,
    # The integer key is the FAISS id; it never leaves the service (the public id is `id`).
    Column("key", Integer, primary_key=True, autoincrement=True),
    Column("id", String, nullable=False, unique=True),
    Column("workspace_id", String, nullable=False),
    Column("document_id", String, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
    Column("rag_index_id", String, ForeignKey("rag_indexes.id", ondelete="CASCADE"), nullable=False),
    Column("model", String, nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("start", Integer, nullable=False),
    Column("end", Integer, nullable=False),
    Column("heading_path", Text, nullable=False, default="[]"),
    Column("page_start", Integer),
    Column("page_end", Integer),
    Column("token_count", Integer, nullable=False),
    Column("text_hash", String, nullable=False),  # sha256 of the exact text embedded (prefix included)
    Column("language", String, nullable=False, default="english"),  # of its document (lexical analysis)
    Column("lexical_terms", Text, nullable=False, default=""),  # analysed BM25 terms, space-separated
    Column("embedding", LargeBinary, nullable=False),  # float32, L2-normalised
    Index("ix_chunks_rag_index", "rag_index_id", "ordinal"),
    Index("ix_chunks_workspace_model", "workspace_id", "model"),
    # (document, model): the chunk keys of a scope are read from this index alone (the key is the rowid)
    Index("ix_chunks_document_model", "document_id", "model"),
    Index("ix_chunks_text_hash", "workspace_id", "model", "text_hash"),
)

vector_generations = Table(
    "vector_generations",
    metadata,
    # Bumped in the same transaction as every change to a workspace+model's set of vectors, so any
    # process can tell whether the FAISS index it holds (or finds on disk) is current.
    Column("workspace_id", String, primary_key=True),
    Column("model", String, primary_key=True),
    Column("generation", Integer, nullable=False, default=0),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String, primary_key=True),
    Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("name", String, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("body", JSON, nullable=False),  # conversation_config, platform_settings, workflow, other fields
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("size_bytes", Integer, nullable=False, server_default="0"),  # stored JSON; counts against kb_max_bytes
    Index("ix_agents_workspace_created", "workspace_id", "created_at"),
    Index("ix_agents_workspace_updated", "workspace_id", "updated_at"),
    Index("ix_agents_workspace_name", "workspace_id", "name"),
    Index("ix_agents_workspace_usage", "workspace_id", "size_bytes"),
)

agent_documents = Table(
    "agent_documents",
    metadata,
    # One row per locator of the agent's knowledge_base, rewritten with every change of the agent.
    # No foreign key to documents: detaching works before or after the document rows go.
    Column("agent_id", String, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("document_id", String, primary_key=True),
    Column("workspace_id", String, nullable=False),
    Column("usage_mode", String, nullable=False),  # "auto" | "prompt"
    Column("name", String, nullable=False),
    Column("type", String, nullable=False),  # "file" | "url" | "text" | "folder"
    Index("ix_agent_documents_workspace_document", "workspace_id", "document_id"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String, nullable=False, default="queued"),  # queued | running | done | failed | cancelled
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("owner", String),  # "<host>:<pid>" of the process running it
    Column("heartbeat_at", Float),  # refreshed by the owner while it runs
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("run_at", Float),  # not claimed before this time (NULL: at once)
    Column("cancel_requested_at", Float),  # set by cancel(); a running handler stops at its next check
    Column("subject", String),  # what the job works on ("rag_index:<id>"), to cancel a subject's jobs
    Column("tenant", String),  # the workspace it works for (NULL: the service's own work)
    Column("fair_at", Float),  # its place in the claim order (see JobRepository.enqueue)
    Index("ix_jobs_status", "status", "id"),
    Index("ix_jobs_claim_order", "status", "fair_at", "id"),
    Index("ix_jobs_tenant", "tenant", "status", "fair_at"),
    Index("ix_jobs_subject", "subject"),
)

schedules = Table(
    "schedules",
    metadata,
    # Periodic work: the scheduler enqueues a job of `kind` with `payload` when `next_run_at` is due.
    Column("id", String, primary_key=True),  # chosen by the owner, e.g. "refresh:<document id>"
    Column("kind", String, nullable=False),
    Column("payload", Text, nullable=False),
    Column("interval_secs", Float, nullable=False),
    Column("next_run_at", Float, nullable=False),
    Column("last_job_id", Integer),  # not enqueued again while this one is queued or running
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_schedules_next_run", "next_run_at"),
)

crawl_jobs = Table(
    "crawl_jobs",
    metadata,
    # A website crawl (the SDK's crawl job): its request, status, counters and the crawler's state.
    Column("id", String, primary_key=True),
    Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("seed_url", String, nullable=False),
    Column("type", String),  # "discovery" | "sitemap" once decided (None: not yet)
    Column("pattern", String),
    Column("exclude_patterns", JSON, nullable=False, default=list),
    Column("sitemap_urls", JSON, nullable=False, default=list),
    Column("max_pages", Integer, nullable=False),
    Column("root_folder_id", String, nullable=False),  # the folder its pages go in (named after the site)
    Column("enable_auto_sync", Boolean, nullable=False, default=False),
    Column("auto_remove", Boolean, nullable=False, default=False),
    Column("auto_discover", Boolean, nullable=False, default=False),
    Column("minimum_frequency_days", Integer),
    Column("status", String, nullable=False),  # queued | processing | succeeded | failed | skipped | cancelled
    Column("reason", Text),  # why it ended as it did
    Column("pages_identified", Integer, nullable=False, default=0),
    Column("pages_scraped", Integer, nullable=False, default=0),
    Column("pages_skipped", Integer, nullable=False, default=0),
    Column("pages_failed", Integer, nullable=False, default=0),
    Column("frontier", Text),  # ingest.crawl.Frontier.to_json(), saved after every step
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_crawl_jobs_workspace_created", "workspace_id", "created_at"),
)

auto_sync = Table(
    "auto_sync",
    metadata,
    # Auto-sync of a URL document (re-fetched when due) or a folder (settings its URL documents follow).
    Column("document_id", String, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
    Column("workspace_id", String, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("auto_remove", Boolean, nullable=False, default=False),
    Column("minimum_frequency_days", Integer, nullable=False),
    Column("consec_failures", Integer, nullable=False, default=0),
    Column("next_refresh_by", Float),  # URL documents: when it is due (None for folders)
    Column("crawl_id", String),  # the crawl that added it (its pages are synced together)
    Column("etag", String),
    Column("last_modified", String),
    Column("text_hash", String),  # of the extracted text, to tell an unchanged page
    Column("refresh_status", String),  # the SDK's CrawlStatus of the last or current refresh
    Column("enqueued_at", Float),
    Column("started_at", Float),
    Column("completed_at", Float),
    Column("last_synced_at", Float),
    Column("error_message", Text),
    Index("ix_auto_sync_due", "enabled", "next_refresh_by"),
    Index("ix_auto_sync_workspace_crawl", "workspace_id", "crawl_id"),
)

knowledge_gaps = Table(
    "knowledge_gaps",
    metadata,
    # A group of similar queries that retrieval could not answer well (see kb/services/gaps.py).
    # Its counts and times come from its events; a group without events is removed by the pruning.
    Column("id", String, primary_key=True),
    Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("model", String, nullable=False),  # the served model of the query embedding
    Column("normalized", String, nullable=False),  # the first query, normalised (kb.services.gaps.normalize)
    Column("query", Text, nullable=False),  # the first query as asked
    Column("embedding", LargeBinary),  # float32, L2-normalised: the first query's vector
    Column("created_at", Float, nullable=False),
    Index("ix_knowledge_gaps_workspace_normalized", "workspace_id", "normalized"),
    Index("ix_knowledge_gaps_workspace_created", "workspace_id", "created_at"),
)

gap_events = Table(
    "gap_events",
    metadata,
    # One retrieval that returned nothing or only weak matches.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gap_id", String, ForeignKey("knowledge_gaps.id", ondelete="CASCADE"), nullable=False),
    Column("workspace_id", String, nullable=False),
    Column("query", Text, nullable=False),
    Column("agent_id", String),
    Column("mode", String, nullable=False),  # hybrid | dense | lexical
    Column("best_distance", Float),  # of the nearest candidate, before the cut (NULL: no candidate at all)
    Column("returned", Integer, nullable=False),  # chunks the response held (0: empty)
    Column("created_at", Float, nullable=False),
    Index("ix_gap_events_workspace_created", "workspace_id", "created_at"),
    Index("ix_gap_events_gap", "gap_id", "created_at"),
)

gap_settings = Table(
    "gap_settings",
    metadata,
    # A workspace's own switch of the gap log (no row: the KB_GAP_LOG setting decides).
    Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", Float, nullable=False),
)


# `Idempotency-Key`s of uploads: a retried upload with the same key (and the same request) answers
# with the document the first one created. Rows older than KB_IDEMPOTENCY_TTL_SECS are ignored and
# removed as new keys come in.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String, primary_key=True),
    Column("fingerprint", String, nullable=False),  # sha256 of the endpoint and the request's content
    Column("document_id", String, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_idempotency_keys_created", "created_at"),
)

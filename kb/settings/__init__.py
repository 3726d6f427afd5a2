"""All settings, in sections: defaults, overridden by `KB_*` environment variables, then explicit values.

`Settings` holds one frozen dataclass per section (`kb.settings.sections`); each field is read from
`KB_<FIELD NAME>`. Components are given only the sections they use.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .environment import env_name, field_owners, from_environment
from .sections import (
    DEFAULT_MODEL,
    ELEVENLABS_MODELS,
    SECTIONS,
    CrawlSettings,
    EmbeddingSettings,
    GapSettings,
    IndexSettings,
    IngestSettings,
    JobsSettings,
    RequestSettings,
    RuntimeSettings,
    ServerSettings,
    StorageSettings,
    WorkspaceSettings,
    bundled_model_path,
)
from .tiers import DEFAULT_TIERS_FILE, LIMIT_NAMES, load_tiers


PATH_FIELDS = ("data_dir", "model_cache_dir", "tiers_file")


@dataclass(frozen=True)
class Settings:
    """Every knob of the service, by section. See the README's "Configuration" table."""

    server: ServerSettings = field(default_factory=ServerSettings)
    requests: RequestSettings = field(default_factory=RequestSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    index: IndexSettings = field(default_factory=IndexSettings)
    jobs: JobsSettings = field(default_factory=JobsSettings)
    crawl: CrawlSettings = field(default_factory=CrawlSettings)
    workspaces: WorkspaceSettings = field(default_factory=WorkspaceSettings)
    gaps: GapSettings = field(default_factory=GapSettings)
    runtimes: RuntimeSettings = field(default_factory=RuntimeSettings)

    @classmethod
    def build(cls, **values: Any) -> "Settings":
        """Settings from flat field values (`data_dir=..., workers=0`), the rest defaults."""
        return cls().with_overrides(**values)

    def with_overrides(self, **overrides: Any) -> "Settings":
        """A copy with the given non-None field values replaced (flat names, e.g. CLI flags)."""
        owners = field_owners()
        by_section: dict[str, dict[str, Any]] = {}
        for name, value in overrides.items():
            if name not in owners:
                raise TypeError(f"unknown setting {name!r}")
            if value is not None:
                if name in PATH_FIELDS and isinstance(value, str):
                    value = Path(value)
                by_section.setdefault(owners[name], {})[name] = value
        changed = {s: dataclasses.replace(getattr(self, s), **v) for s, v in by_section.items()}
        return dataclasses.replace(self, **changed)

    def items(self) -> Iterator[tuple[str, Any]]:
        """(environment variable, value) of every setting, section by section."""
        for section in SECTIONS:
            values = getattr(self, section)
            for f in dataclasses.fields(values):
                yield env_name(f.name), getattr(values, f.name)


def env_names() -> list[str]:
    """Every environment variable kb reads for its settings."""
    return [env_name(name) for name in field_owners()]


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment (`KB_*`), then explicit overrides (flat field names, e.g. CLI flags)."""
    env = os.environ if environ is None else environ
    from_env = from_environment(env)
    settings = Settings(**{s: cls(**from_env[s]) for s, cls in SECTIONS.items()}).with_overrides(**overrides)
    check(settings)
    return settings


def check(settings: Settings) -> None:
    """Refuse settings that cannot work, naming the variable."""
    from index.embedders import BACKENDS
    from index.stores import STORE_KINDS

    if settings.workspaces.default_tier not in settings.workspaces.tiers:
        raise ValueError(f"default tier {settings.workspaces.default_tier!r} is not in {settings.workspaces.tiers_file}")
    gaps = settings.gaps
    if gaps.gap_max_rows < 1 or gaps.gap_retention_days <= 0 or gaps.gap_prune_secs <= 0 or gaps.gap_queue_size < 1:
        raise ValueError("KB_GAP_MAX_ROWS, KB_GAP_RETENTION_DAYS, KB_GAP_PRUNE_SECS and KB_GAP_QUEUE_SIZE must be positive "
                         "(turn the gap log off with KB_GAP_LOG=false)")
    if not 0 <= gaps.gap_max_distance <= 2 or not 0 <= gaps.gap_cluster_distance <= 2 or gaps.gap_margin < 0:
        raise ValueError("KB_GAP_MAX_DISTANCE and KB_GAP_CLUSTER_DISTANCE must be between 0 and 2, KB_GAP_MARGIN at least 0")
    if settings.jobs.workers < 0:
        raise ValueError(f"KB_WORKERS must be 0 (no background indexing) or more, not {settings.jobs.workers}")
    jobs = settings.jobs
    if not 0 < jobs.job_heartbeat_secs < jobs.job_lease_secs or jobs.job_reap_secs <= 0:
        raise ValueError("KB_JOB_HEARTBEAT_SECS must be positive and below KB_JOB_LEASE_SECS, KB_JOB_REAP_SECS positive")
    if settings.embedding.embed_backend not in BACKENDS:
        raise ValueError(f"KB_EMBED_BACKEND must be one of {', '.join(BACKENDS)}, not {settings.embedding.embed_backend!r}")
    if settings.index.vector_store not in STORE_KINDS:
        raise ValueError(f"KB_VECTOR_STORE must be one of {', '.join(STORE_KINDS)}, not {settings.index.vector_store!r}")
    if settings.embedding.default_model not in settings.embedding.models:
        raise ValueError(
            f"default model {settings.embedding.default_model!r} is not configured; known models: "
            f"{', '.join(settings.embedding.models)}"
        )
    for name, target in settings.embedding.model_aliases.items():
        if target == name:
            raise ValueError(f"KB_MODEL_ALIASES: {name!r} cannot fall back to itself")
        if target not in settings.embedding.models:
            raise ValueError(
                f"KB_MODEL_ALIASES: {name!r} falls back to {target!r}, which is not a configured model; known models: "
                f"{', '.join(settings.embedding.models)} (add it with KB_MODELS=name=path_or_hf_id)"
            )


__all__ = [
    "DEFAULT_MODEL", "DEFAULT_TIERS_FILE", "ELEVENLABS_MODELS", "LIMIT_NAMES", "SECTIONS", "Settings", "EmbeddingSettings",
    "GapSettings", "IndexSettings", "IngestSettings", "JobsSettings", "RequestSettings", "RuntimeSettings", "ServerSettings",
    "StorageSettings", "WorkspaceSettings", "bundled_model_path",
    "env_name", "env_names", "load_settings", "load_tiers",
]

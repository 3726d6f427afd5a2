"""Plan tiers: each tier's workspace limits, from a TOML file (`kb/tiers.toml` by default)."""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

DEFAULT_TIERS_FILE = Path(__file__).resolve().parents[1] / "tiers.toml"
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

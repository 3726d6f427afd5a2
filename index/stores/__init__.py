"""Vector stores, one backend per file behind `VectorStore`, created by kind."""

from pathlib import Path

from .base import VectorStore, write_atomically
from .faiss_flat import FlatStore

STORE_KINDS: dict[str, type[VectorStore]] = {"flat": FlatStore}


def create_store(dimension: int, kind: str = "flat") -> VectorStore:
    return STORE_KINDS[kind](dimension)


def load_store(path: Path, kind: str = "flat") -> VectorStore:
    """Load a saved store; raises on a missing or corrupt file (callers rebuild then)."""
    return STORE_KINDS[kind].from_bytes(Path(path).read_bytes())


__all__ = ["VectorStore", "FlatStore", "create_store", "load_store", "write_atomically", "STORE_KINDS"]

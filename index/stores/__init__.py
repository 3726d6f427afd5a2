"""Vector stores, one backend per file behind `VectorStore`, created by kind."""

from pathlib import Path

from .base import VectorStore, envelope_kind, write_atomically
from .faiss_flat import FlatStore
from .faiss_hnsw import HNSWStore
from .tiered import TieredStore

# "auto": exact while small, HNSW from TieredStore's threshold on (see tiered.py).
STORE_KINDS: dict[str, type[VectorStore]] = {"flat": FlatStore, "hnsw": HNSWStore, "auto": TieredStore}


def set_search_threads(threads: int) -> None:
    """OpenMP threads FAISS uses. One suits a server answering single queries on few cores: a
    flat search of one query with two threads waits for the second one whenever the machine is
    busy (8–66 ms against 0.1–12 ms at 5,000–100,000 vectors, BENCHMARKS.md "Vector stores")."""
    import faiss

    faiss.omp_set_num_threads(max(1, threads))


def create_store(dimension: int, kind: str = "flat", **options: object) -> VectorStore:
    """A new empty store; `options` go to its constructor (for "auto": `hnsw_threshold`)."""
    if kind not in STORE_KINDS:
        raise ValueError(f"unknown vector store kind {kind!r}; known: {', '.join(STORE_KINDS)}")
    return STORE_KINDS[kind](dimension, **options)


def load_store(path: Path, kind: str = "flat", **options: object) -> VectorStore:
    """Load a saved store; raises on a missing or corrupt file (callers rebuild then).

    A file says which kind it holds, and is read as that kind; `kind` decides only how a bare
    FAISS index (a FlatStore's file) is read. With kind "auto" every file is read into a
    TieredStore, so files written by "flat" or "hnsw" carry on under "auto", and `options`
    (`hnsw_threshold`) replace the saved ones.
    """
    return store_from_bytes(Path(path).read_bytes(), kind, **options)


def store_from_bytes(data: bytes, kind: str = "flat", **options: object) -> VectorStore:
    """`load_store` of a file's bytes (for callers that keep index files elsewhere than a path)."""
    if kind == TieredStore.kind:
        return TieredStore.from_bytes(data, **options)
    return STORE_KINDS[envelope_kind(data) or kind].from_bytes(data)


__all__ = [
    "VectorStore",
    "FlatStore",
    "HNSWStore",
    "TieredStore",
    "create_store",
    "set_search_threads",
    "load_store",
    "store_from_bytes",
    "write_atomically",
    "STORE_KINDS",
]

"""Vector stores, one kind per file behind `VectorStore`, registered by kind and created by name.

A kind subclasses `VectorStore` (base.py), sets `kind`, and is registered with `@register_store`;
the built-in kinds are the modules imported below ("flat", "hnsw", "auto"). Adding a kind: a new
module here with its `VectorStore` subclass, and its import below.
"""

from .base import VectorStore, envelope_kind, write_atomically
from .registry import STORE_KINDS, create_store, load_store, register_store, store_from_bytes, unregister_store

from .faiss_flat import FlatStore  # noqa: E402,I001  (each module registers its kind)
from .faiss_hnsw import HNSWStore  # noqa: E402
from .tiered import TieredStore  # noqa: E402  ("auto": exact while small, HNSW from its threshold on)


def set_search_threads(threads: int) -> None:
    """OpenMP threads FAISS uses. One suits a server answering single queries on few cores: a
    flat search of one query with two threads waits for the second one whenever the machine is
    busy (8–66 ms against 0.1–12 ms at 5,000–100,000 vectors, BENCHMARKS.md "Vector stores")."""
    import faiss

    faiss.omp_set_num_threads(max(1, threads))


__all__ = [
    "VectorStore",
    "FlatStore",
    "HNSWStore",
    "TieredStore",
    "create_store",
    "envelope_kind",
    "set_search_threads",
    "load_store",
    "register_store",
    "unregister_store",
    "store_from_bytes",
    "write_atomically",
    "STORE_KINDS",
]

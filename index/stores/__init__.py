"""Vector stores, one kind per file behind `VectorStore`, registered by kind and created by name.

A kind subclasses `VectorStore` (base.py), sets `kind`, and is registered with `@register_store`;
the built-in kinds are the modules imported below ("flat", "hnsw", "auto", "hnsw-sq8"). Adding a kind: a new
module here with its `VectorStore` subclass, and its import below.
"""

from .base import VectorStore, envelope_kind, write_atomically
from .threads import set_search_threads, use_search_threads
from .registry import STORE_KINDS, create_store, load_store, register_store, store_from_bytes, unregister_store

from .faiss_flat import FlatStore  # noqa: E402,I001  (each module registers its kind)
from .faiss_hnsw import HNSWStore  # noqa: E402
from .tiered import TieredStore  # noqa: E402  ("auto": exact while small, HNSW from its threshold on)
from .faiss_hnsw_sq8 import HNSWSQ8Store  # noqa: E402  (HNSW over 8-bit quantised vectors)


__all__ = [
    "VectorStore",
    "FlatStore",
    "HNSWStore",
    "HNSWSQ8Store",
    "TieredStore",
    "create_store",
    "envelope_kind",
    "set_search_threads",
    "use_search_threads",
    "load_store",
    "register_store",
    "unregister_store",
    "store_from_bytes",
    "write_atomically",
    "STORE_KINDS",
]

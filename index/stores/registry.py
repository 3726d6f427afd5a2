"""Vector store kinds by name: the registry, and the factories kb creates and loads stores with."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from .base import VectorStore, envelope_kind

# kind -> store class, in registration order (KB_VECTOR_STORE's accepted values)
STORE_KINDS: dict[str, type[VectorStore]] = {}

S = TypeVar("S", bound=type[VectorStore])


def register_store(cls: S) -> S:
    """Register a store class under its `kind` (usable as a class decorator); a kind registered again is replaced."""
    STORE_KINDS[cls.kind] = cls
    return cls


def unregister_store(kind: str) -> None:
    STORE_KINDS.pop(kind, None)


def _store_class(kind: str) -> type[VectorStore]:
    if kind not in STORE_KINDS:
        raise ValueError(f"unknown vector store kind {kind!r}; known: {', '.join(STORE_KINDS)}")
    return STORE_KINDS[kind]


def create_store(dimension: int, kind: str = "flat", **options: object) -> VectorStore:
    """A new empty store; `options` go to its constructor (for "auto": `hnsw_threshold`)."""
    return _store_class(kind)(dimension, **options)


def load_store(path: Path, kind: str = "flat", **options: object) -> VectorStore:
    """Load a saved store; raises on a missing or corrupt file (callers rebuild then).

    A file says which kind it holds, and is read as that kind; `kind` decides only how a bare
    FAISS index (a FlatStore's file) is read. A kind that `reads_any_kind` ("auto") reads every
    file itself: files written by "flat" or "hnsw" carry on under "auto", and `options`
    (`hnsw_threshold`) replace the saved ones.
    """
    return store_from_bytes(Path(path).read_bytes(), kind, **options)


def store_from_bytes(data: bytes, kind: str = "flat", **options: object) -> VectorStore:
    """`load_store` of a file's bytes (for callers that keep index files elsewhere than a path)."""
    reader = _store_class(kind)
    if reader.reads_any_kind:
        return reader.from_bytes(data, **options)
    return _store_class(envelope_kind(data) or kind).from_bytes(data)

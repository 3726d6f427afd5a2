"""The interface every vector store implements: ids in, nearest ids out."""

from __future__ import annotations

import json
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..files import write_atomically


class VectorStore(ABC):
    """Vectors keyed by int64 ids; similarity is inner product on normalised vectors.

    A kind of store is one subclass, registered under its `kind` (`index.stores.register_store`).
    Its constructor takes the dimension first, then keyword options (`create_store` passes them);
    `from_bytes` reads what `to_bytes` wrote. Unless a subclass says otherwise, it is used from one
    thread at a time for changes, and searches may run while no change does (kb holds a lock).
    """

    kind: ClassVar[str]  # the name KB_VECTOR_STORE and `create_store` know it by
    # Whether `load_store` with this kind reads every saved file itself (with the load options), as
    # "auto" wraps the files of "flat" and "hnsw"; otherwise a file is read as the kind it holds.
    reads_any_kind: ClassVar[bool] = False

    def __init__(self, dimension: int):
        self.dimension = dimension

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (float32, one row per id); an id already stored is replaced."""

    @abstractmethod
    def remove(self, ids: Iterable[int]) -> int:
        """Remove the ids present; return how many were removed."""

    @abstractmethod
    def search(
        self,
        query: np.ndarray,
        k: int,
        allowed_ids: np.ndarray | None = None,
        num_candidates: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids, cosine distances) of the `k` nearest vectors, nearest first.

        With `allowed_ids`, only those ids are considered (filtered inside the search).
        `num_candidates` is an approximate store's candidate pool; exact stores ignore it.
        """

    @abstractmethod
    def vectors_for(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of `ids`, in their order (exact distances of hits found another way);
        raises KeyError if one is not stored."""

    @abstractmethod
    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every stored vector, in the order they were added (copies)."""

    def memory_bytes(self) -> int:
        """Approximate memory held: the vectors themselves."""
        return len(self) * self.dimension * 4

    def pending_switch(self) -> VectorStore | None:
        """The store to move to now, built from the current vectors but not installed, or None.

        A store that changes its own kind as it grows (TieredStore) builds the other one here, so
        its owner can build outside a lock that searches wait on, then call `swap`. The default:
        this kind never switches.
        """
        return None

    def swap(self, store: VectorStore) -> None:
        """Install the store `pending_switch()` returned (no change may happen in between)."""
        raise NotImplementedError(f"{type(self).__name__} never switches; pending_switch() returns None")

    @abstractmethod
    def to_bytes(self) -> bytes: ...

    @classmethod
    @abstractmethod
    def from_bytes(cls, data: bytes, **options) -> VectorStore:
        """Read what `to_bytes` wrote; `options` only for a kind that `reads_any_kind`."""

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file in the same folder, fsync, then rename over `path`."""
        write_atomically(path, self.to_bytes())


# --- serialised form of the stores that are more than one FAISS index -------------------------

ENVELOPE_MAGIC = b"KBVS"  # a bare FAISS index (FlatStore's form) never starts with these bytes


def pack_envelope(kind: str, meta: dict, *blobs: bytes | memoryview) -> bytes:
    """`kind` and `meta` in a JSON header, then the blobs: the form that says which kind it holds."""
    header = json.dumps({"kind": kind, "meta": meta, "blobs": [memoryview(b).nbytes for b in blobs]}).encode()
    return b"".join([ENVELOPE_MAGIC, struct.pack("<I", len(header)), header, *blobs])


def envelope_kind(data: bytes) -> str | None:
    """The kind a serialised store holds, or None for a bare FAISS index (a FlatStore)."""
    return unpack_envelope(data)[0] if data[:4] == ENVELOPE_MAGIC else None


def unpack_envelope(data: bytes) -> tuple[str, dict, list[memoryview]]:
    if data[:4] != ENVELOPE_MAGIC:
        raise ValueError("not a kb vector store envelope")
    (size,) = struct.unpack_from("<I", data, 4)
    header = json.loads(bytes(data[8 : 8 + size]))
    view, offset, blobs = memoryview(data), 8 + size, []
    for length in header["blobs"]:
        blobs.append(view[offset : offset + length])
        offset += length
    if offset != len(data):
        raise ValueError(f"vector store envelope is {len(data)} bytes, its header describes {offset}")
    return header["kind"], header["meta"], blobs

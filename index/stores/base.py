"""The interface every vector store implements: ids in, nearest ids out."""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path

import numpy as np


class VectorStore(ABC):
    """Vectors keyed by int64 ids; similarity is inner product on normalised vectors."""

    def __init__(self, dimension: int):
        self.dimension = dimension

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    @abstractmethod
    def remove(self, ids: Iterable[int]) -> int:
        """Remove the ids present; return how many were removed."""

    @abstractmethod
    def search(
        self, query: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (ids, cosine distances) of the `k` nearest vectors, nearest first.

        With `allowed_ids`, only those ids are considered (filtered inside the search).
        """

    def memory_bytes(self) -> int:
        """Approximate memory held: the vectors themselves."""
        return len(self) * self.dimension * 4

    @abstractmethod
    def to_bytes(self) -> bytes: ...

    @classmethod
    @abstractmethod
    def from_bytes(cls, data: bytes) -> "VectorStore": ...

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file in the same folder, fsync, then rename over `path`."""
        write_atomically(path, self.to_bytes())


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

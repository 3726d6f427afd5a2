"""Exact search with FAISS: an inner-product flat index behind an id map."""

from __future__ import annotations

from collections.abc import Iterable

import faiss
import numpy as np

from .base import VectorStore


class FlatStore(VectorStore):
    """Brute-force exact search. Fast enough for tens of thousands of vectors on a CPU."""

    def __init__(self, dimension: int, index: faiss.Index | None = None):
        super().__init__(dimension)
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dimension)
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: Iterable[int]) -> int:
        id_array = np.fromiter(ids, dtype=np.int64)
        if id_array.size == 0:
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorBatch(id_array)))

    def search(
        self,
        query: np.ndarray,
        k: int,
        allowed_ids: np.ndarray | None = None,
        num_candidates: int | None = None,  # exact search: no candidate pool
    ) -> tuple[np.ndarray, np.ndarray]:
        if k <= 0 or len(self) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dimension)
        params = None
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64)))
        k = min(k, len(self))
        scores, ids = self._index.search(query, k, params=params)
        keep = ids[0] >= 0
        return ids[0][keep], (1.0 - scores[0][keep]).astype(np.float32)

    def vectors_for(self, ids: np.ndarray) -> np.ndarray:
        """Stored vectors of `ids` (for exact distances of hits found another way)."""
        if not len(ids):
            return np.zeros((0, self.dimension), np.float32)
        # One call per id: reconstruct_batch opens an OpenMP region, slower for a few hundred ids.
        return np.vstack([self._index.reconstruct(int(i)) for i in ids])

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self._index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "FlatStore":
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls(index.d, index)

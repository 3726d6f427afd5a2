"""Exact search with FAISS: an inner-product flat index behind an id map."""

from __future__ import annotations

from collections.abc import Iterable

import faiss
import numpy as np

from .base import VectorStore
from .registry import register_store
from .threads import use_search_threads


@register_store
class FlatStore(VectorStore):
    """Brute-force exact search. Fast enough for tens of thousands of vectors on a CPU."""

    kind = "flat"

    def __init__(self, dimension: int, index: faiss.Index | None = None):
        super().__init__(dimension)
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._positions: tuple[np.ndarray, np.ndarray] | None = None  # sorted ids, their rows; lazily

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dimension)
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        self._positions = None

    def remove(self, ids: Iterable[int]) -> int:
        id_array = np.fromiter(ids, dtype=np.int64)
        if id_array.size == 0:
            return 0
        self._positions = None
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
        use_search_threads()
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
        if not len(ids):
            return np.zeros((0, self.dimension), np.float32)
        # Read the flat storage directly (reconstruct_batch opens an OpenMP region, and one
        # reconstruct call per id costs microseconds each).
        if self._positions is None:
            stored = faiss.vector_to_array(self._index.id_map)
            order = np.argsort(stored, kind="stable")
            self._positions = (stored[order], order)
        sorted_ids, rows = self._positions
        ids = np.asarray(ids, dtype=np.int64)
        at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        if len(sorted_ids) == 0 or not np.array_equal(sorted_ids[at], ids):
            raise KeyError(f"ids not in the store: {sorted(set(ids.tolist()) - set(sorted_ids.tolist()))[:5]}")
        flat = faiss.downcast_index(self._index.index)
        stored_vectors = faiss.rev_swig_ptr(flat.get_xb(), len(self) * self.dimension).reshape(len(self), self.dimension)
        return stored_vectors[rows[at]].copy()

    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) in the order they were added: the id map and the flat vectors."""
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        flat = faiss.downcast_index(self._index.index)
        return ids, flat.reconstruct_n(0, flat.ntotal) if len(ids) else np.zeros((0, self.dimension), np.float32)

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self._index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, **options) -> "FlatStore":
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls(index.d, index)

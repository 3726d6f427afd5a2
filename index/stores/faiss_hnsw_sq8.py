"""HNSW over 8-bit scalar-quantised vectors: the HNSW store in a quarter of the memory, for large workspaces."""

from __future__ import annotations

from .faiss_hnsw import HNSWStore
from .registry import register_store


@register_store
class HNSWSQ8Store(HNSWStore):
    """An HNSWStore whose graph keeps vectors as one byte per dimension (faiss IndexHNSWSQ, QT_8bit).

    The quantiser is trained on the first vectors added, so add a representative first batch
    (the "auto" store, given `hnsw_options={"storage": "sq8"}`, moves every vector it holds at its
    threshold in one batch); each compaction retrains it on the live vectors. Distances, and the
    vectors `vectors_for` and `contents` return, are decoded from the codes: approximate.
    """

    kind = "hnsw-sq8"

    def __init__(self, dimension: int, *, storage: str = "sq8", **options):
        super().__init__(dimension, storage=storage, **options)

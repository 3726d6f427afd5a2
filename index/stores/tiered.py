"""Exact search while a workspace is small, HNSW once it is large: the switch callers never see."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from ..locks import ReadWriteLock
from .base import VectorStore, envelope_kind, pack_envelope, unpack_envelope
from .faiss_flat import FlatStore
from .faiss_hnsw import SEARCH_SETTINGS, HNSWStore
from .registry import register_store

# Chosen from bench/hnsw_recall.py (see BENCHMARKS.md, "Vector stores").
DEFAULT_HNSW_THRESHOLD = 20_000


@register_store
class TieredStore(VectorStore):
    """A FlatStore below `hnsw_threshold` vectors, an HNSWStore from there on.

    It moves to HNSW when an `add` brings it to `hnsw_threshold` vectors, and back to flat when
    a `remove` brings it below `flat_below` (half the threshold unless given), so a workspace
    near the threshold does not flip at every change. Ids and vectors move across unchanged.
    The new store is built beside the current one, which keeps answering searches meanwhile.
    `hnsw_options` go to the HNSWStore (m, ef_construction, ef_search, ...).

    With `auto_switch=False`, `add` and `remove` never switch; the owner calls `pending_switch()`
    (which builds the other store, if one is due, without installing it) and then `swap()`, so
    it can build outside a lock of its own that searches wait on. No change may happen between.
    """

    kind = "auto"
    reads_any_kind = True  # "auto" carries on with files saved by "flat" or "hnsw"

    def __init__(
        self,
        dimension: int,
        *,
        hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD,
        flat_below: int | None = None,
        hnsw_options: dict | None = None,
        inner: VectorStore | None = None,
        auto_switch: bool = True,
    ):
        super().__init__(dimension)
        self.auto_switch = auto_switch
        self.hnsw_threshold = hnsw_threshold
        self.flat_below = hnsw_threshold // 2 if flat_below is None else flat_below
        if self.flat_below > self.hnsw_threshold:
            raise ValueError("flat_below must not exceed hnsw_threshold")
        self.hnsw_options = dict(hnsw_options or {})
        self._inner: VectorStore = inner if inner is not None else FlatStore(dimension)
        self._rw = ReadWriteLock()  # searches read; changes to a FlatStore and swaps write
        self._mutex = threading.Lock()  # one change at a time

    @property
    def holds(self) -> str:
        """Which store answers now: "flat" or "hnsw"."""
        return "hnsw" if isinstance(self._inner, HNSWStore) else "flat"

    @property
    def inner(self) -> VectorStore:
        return self._inner

    def __len__(self) -> int:
        return len(self._inner)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self._mutex:
            self._change(lambda store: store.add(ids, vectors))
            if self.auto_switch and (store := self._build_switch()) is not None:
                self._swap(store)

    def remove(self, ids: Iterable[int]) -> int:
        with self._mutex:
            removed = self._change(lambda store: store.remove(ids))
            if self.auto_switch and (store := self._build_switch()) is not None:
                self._swap(store)
            return removed

    def pending_switch(self) -> VectorStore | None:
        """The store to move to now (built from the current vectors), or None if none is due."""
        with self._mutex:
            return self._build_switch()

    def swap(self, store: VectorStore) -> None:
        """Install a store from `pending_switch()`; searches wait only for the swap itself."""
        with self._mutex:
            self._swap(store)

    def _build_switch(self) -> VectorStore | None:
        if self.holds == "flat" and len(self._inner) >= self.hnsw_threshold:
            with self._rw.reading():
                contents = self._inner.contents()
            hnsw = HNSWStore(self.dimension, **self.hnsw_options)
            hnsw.add(*contents)
            return hnsw
        if self.holds == "hnsw" and len(self._inner) < self.flat_below:
            flat = FlatStore(self.dimension)
            flat.add(*self._inner.contents())
            return flat
        return None

    def _change(self, change):
        if self.holds == "hnsw":
            return change(self._inner)  # HNSWStore excludes its searches itself, only while needed
        with self._rw.writing():
            return change(self._inner)

    def _swap(self, store: VectorStore) -> None:
        with self._rw.writing():
            self._inner = store

    def search(
        self,
        query: np.ndarray,
        k: int,
        allowed_ids: np.ndarray | None = None,
        num_candidates: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """As `VectorStore.search`; `num_candidates` is the HNSW candidate pool (unused while flat)."""
        with self._rw.reading():
            return self._inner.search(query, k, allowed_ids, num_candidates)

    def vectors_for(self, ids: np.ndarray) -> np.ndarray:
        with self._rw.reading():
            return self._inner.vectors_for(ids)

    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        with self._rw.reading():
            return self._inner.contents()

    def memory_bytes(self) -> int:
        return self._inner.memory_bytes()

    def to_bytes(self) -> bytes:
        with self._rw.reading():
            meta = {
                "dimension": self.dimension,
                "hnsw_threshold": self.hnsw_threshold,
                "flat_below": self.flat_below,
                "hnsw_options": self.hnsw_options,
                "holds": self.holds,
            }
            return pack_envelope(self.kind, meta, self._inner.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, hnsw_threshold: int | None = None, auto_switch: bool = True) -> "TieredStore":
        """Read a TieredStore, or wrap a bare FlatStore or HNSWStore (files written before "auto").

        `hnsw_threshold`, when given, replaces the saved one (a changed setting applies to
        stores saved before), and `flat_below` becomes half of it.
        """
        kind = envelope_kind(data)
        if kind is None or kind == HNSWStore.kind:
            inner = FlatStore.from_bytes(data) if kind is None else HNSWStore.from_bytes(data)
            threshold = {"hnsw_threshold": hnsw_threshold} if hnsw_threshold else {}
            return cls(inner.dimension, inner=inner, auto_switch=auto_switch, **threshold)
        if kind != cls.kind:
            raise ValueError(f"serialised store holds {kind!r}, not {cls.kind!r}")
        _, meta, (inner_bytes,) = unpack_envelope(data)
        options = meta["hnsw_options"]
        if meta["holds"] == "hnsw":
            search_settings = {k: options[k] for k in SEARCH_SETTINGS if k in options}
            inner = HNSWStore.from_bytes(inner_bytes, **search_settings)
        else:
            inner = FlatStore.from_bytes(inner_bytes)
        return cls(
            meta["dimension"],
            hnsw_threshold=hnsw_threshold or meta["hnsw_threshold"],
            flat_below=None if hnsw_threshold else meta["flat_below"],
            hnsw_options=options,
            inner=inner,
            auto_switch=auto_switch,
        )

"""Approximate search with FAISS HNSW, with deletes (tombstones, then compaction) and filters.

HNSW cannot remove a vector from its graph, so a removed vector stays in the graph as a
tombstone: it still routes searches but is never returned. Tombstones address a stored copy
(a position), not an id, so an id removed and added again has a dead copy and a live one, and
only the live one is returned. That is why this store keeps its own position → id table
instead of wrapping the graph in `IndexIDMap2`: an `IndexIDMap2` hands every selector the
external id of a candidate (it wraps it in `IDSelectorTranslated`), which cannot tell the two
copies apart. Once tombstones pass `compact_fraction` of the stored vectors, a new graph is
built from the live vectors (read back from the graph's own flat storage) in the background,
the changes made meanwhile are replayed onto it, and it replaces the old one.

Filters (`allowed_ids`) are applied inside the search with an `IDSelectorBitmap` over positions
(FAISS HNSW still walks through unselected nodes; it only keeps selected ones as results). As
fewer vectors are selected, fewer of the `efSearch` nodes the walk visits can be results, so
`efSearch` is scaled by (stored / selected). That grows without bound for a small selection
(one document's chunks), which is searched exactly instead: its vectors are read back from
the graph's storage and compared with the query directly (`exact_limit`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable

import faiss
import numpy as np

from ..locks import ReadWriteLock
from .base import VectorStore, pack_envelope, unpack_envelope
from .registry import register_store
from .threads import use_search_threads

log = logging.getLogger(__name__)

# Chosen from bench/hnsw_recall.py (see BENCHMARKS.md, "Vector stores").
DEFAULT_M = 32
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_EF_SEARCH = 96
DEFAULT_EXACT_BELOW = 1024
DEFAULT_EXACT_SCALE = 2.0
DEFAULT_COMPACT_FRACTION = 0.2
SEARCH_SETTINGS = ("ef_search", "exact_below", "exact_scale")
STORAGES = ("flat", "sq8")  # how the graph keeps its vectors: float32, or 8-bit scalar quantised
EXACT_BLOCK = 1024  # vectors scored per step of an exact search: 1.5 MB at 384 dimensions

_EMPTY = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cosine distances) of the `k` highest inner products in `scores`, nearest first."""
    k = min(k, len(scores))
    rows = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    rows = rows[np.argsort(-scores[rows], kind="stable")]
    return rows, (1.0 - scores[rows]).astype(np.float32)


def _grown(buffer: np.ndarray, size: int) -> np.ndarray:
    """`buffer` with room for at least `size` entries (doubling), its first entries kept."""
    if size <= len(buffer):
        return buffer
    bigger = np.empty(max(size, 2 * len(buffer), 1024), dtype=buffer.dtype)
    bigger[: len(buffer)] = buffer
    return bigger


class _Graph:
    """An HNSW graph, the id at each position, and which positions are live. Not thread-safe.

    Kb adds vectors a slice at a time (`kb.indexes.loaded.LoadedIndex.change`), so an add must cost
    what it adds, not what is stored: the id tables grow in place (doubling buffers), and the sorted
    id → position table is extended instead of rebuilt when the new ids all sort after the stored
    ones (kb's chunk keys only grow). Re-sorting every id or copying the tables at each slice of 16
    made building a large workspace quadratic (BENCHMARKS.md, "A million chunks").
    """

    def __init__(self, index: faiss.IndexHNSWFlat, labels: np.ndarray, live: np.ndarray):
        self.index = index
        self._labels, self._live, self._stored = np.array(labels, dtype=np.int64), np.array(live, dtype=bool), len(labels)
        self._sorted_ids = np.zeros(0, dtype=np.int64)
        self._sorted_positions = np.zeros(0, dtype=np.int64)
        self._n_sorted: int | None = None  # None: the sorted table must be rebuilt before use
        self._live_bitmap: np.ndarray | None = None
        self.n_live = int(np.count_nonzero(self.live))

    @classmethod
    def empty(cls, dimension: int, m: int, ef_construction: int, storage: str = "flat") -> "_Graph":
        """`storage` "flat" keeps float32 vectors; "sq8" one byte per dimension (a scalar quantiser
        trained on the first vectors added: a compaction retrains it on every live vector)."""
        if storage == "flat":
            index = faiss.IndexHNSWFlat(dimension, m, faiss.METRIC_INNER_PRODUCT)
        elif storage == "sq8":
            index = faiss.IndexHNSWSQ(dimension, faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT)
        else:
            raise ValueError(f"unknown HNSW storage {storage!r}; known: {', '.join(STORAGES)}")
        index.hnsw.efConstruction = ef_construction
        return cls(index, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))

    @property
    def labels(self) -> np.ndarray:
        """The id at each position (a view)."""
        return self._labels[: self._stored]

    @property
    def live(self) -> np.ndarray:
        """Whether each position is live (a view; change it only through add and remove)."""
        return self._live[: self._stored]

    @property
    def stored(self) -> int:
        return self._stored

    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """Live ids sorted, with their positions; rebuilt only when an add could not extend it."""
        if self._n_sorted is None:
            positions = np.flatnonzero(self.live)
            order = np.argsort(self.labels[positions], kind="stable")
            self._sorted_ids, self._sorted_positions = self.labels[positions][order], positions[order]
            self._n_sorted = len(positions)
        return self._sorted_ids[: self._n_sorted], self._sorted_positions[: self._n_sorted]

    def positions_of(self, ids: np.ndarray) -> np.ndarray:
        """Position of each id's live copy, -1 for an id not stored (or removed)."""
        sorted_ids, positions = self._sorted()
        if len(sorted_ids) == 0 or len(ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        found = positions[at]
        # a removed id stays in the sorted table (removes do not rebuild it) but is not live
        return np.where((sorted_ids[at] == ids) & self.live[found], found, -1)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (ids unique); an id already live is replaced: its old copy becomes a tombstone."""
        replaced = self.positions_of(ids)
        replaced = replaced[replaced >= 0]
        self.live[replaced] = False
        if not self.index.is_trained:
            self.index.train(vectors)
        self.index.add(vectors)
        start, end = self._stored, self._stored + len(ids)
        self._labels, self._live = _grown(self._labels, end), _grown(self._live, end)
        self._labels[start:end], self._live[start:end] = ids, True
        self._stored = end
        self.n_live += len(ids) - len(replaced)
        self._live_bitmap = None
        order = np.argsort(ids, kind="stable")
        n = self._n_sorted
        if n is not None and len(replaced) == 0 and (n == 0 or ids[order[0]] > self._sorted_ids[n - 1]):
            self._sorted_ids, self._sorted_positions = _grown(self._sorted_ids, n + len(ids)), _grown(self._sorted_positions, n + len(ids))
            self._sorted_ids[n : n + len(ids)] = ids[order]
            self._sorted_positions[n : n + len(ids)] = start + order
            self._n_sorted = n + len(ids)
        else:
            self._n_sorted = None

    def remove(self, ids: np.ndarray) -> int:
        positions = self.positions_of(ids)
        positions = positions[positions >= 0]
        if len(positions):
            self.live[positions] = False
            self.n_live -= len(positions)
            self._live_bitmap = None
        return len(positions)

    def vectors_at(self, positions: np.ndarray) -> np.ndarray:
        """The stored vectors at `positions` (decoded from SQ8 storage: approximate), as float32 rows.

        Read from the storage's own buffer: that beats `reconstruct_batch`, which opens an OpenMP
        parallel region: ~10 ms on a busy machine, even for a few vectors."""
        d = self.index.d
        if self.stored == 0 or len(positions) == 0:
            return np.zeros((0, d), dtype=np.float32)
        storage = faiss.downcast_index(self.index.storage)
        if isinstance(storage, faiss.IndexScalarQuantizer):
            codes = faiss.rev_swig_ptr(storage.codes.data(), self.stored * storage.code_size)
            return storage.sa_decode(codes.reshape(self.stored, storage.code_size)[positions])
        return faiss.rev_swig_ptr(storage.get_xb(), self.stored * d).reshape(self.stored, d)[positions]

    @property
    def bytes_per_vector(self) -> int:
        return faiss.downcast_index(self.index.storage).code_size if self.storage == "sq8" else self.index.d * 4

    @property
    def storage(self) -> str:
        return "sq8" if isinstance(self.index, faiss.IndexHNSWSQ) else "flat"

    def live_contents(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the live copies, in the order they were added; copies."""
        positions = np.flatnonzero(self.live)
        return self.labels[positions], self.vectors_at(positions)

    def live_bitmap(self) -> np.ndarray:
        if self._live_bitmap is None:
            self._live_bitmap = np.packbits(self.live, bitorder="little")
        return self._live_bitmap


@register_store
class HNSWStore(VectorStore):
    """Approximate nearest neighbours on normalised vectors (inner product), with deletes.

    Thread safety: searches run concurrently; `add` and `remove` are serialised and exclude
    searches only while the graph changes in place. A compaction is built beside the current
    graph, which keeps answering, by a background thread (`background_compaction=False`: by
    the `add` or `remove` that calls for it).

    `SEARCH_SETTINGS` (ef_search, exact_below, exact_scale) are not saved with the store, so a
    loaded store searches with the current defaults; `m`, `ef_construction`, `compact_fraction`
    and `storage` describe the graph and are saved. `storage="sq8"` keeps each vector in one byte
    per dimension instead of four (the graph's distances, `vectors_for` and `contents` are then
    approximate): for large workspaces (BENCHMARKS.md, "A million chunks").
    """

    kind = "hnsw"

    def __init__(
        self,
        dimension: int,
        *,
        m: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef_search: int = DEFAULT_EF_SEARCH,
        exact_below: int = DEFAULT_EXACT_BELOW,
        exact_scale: float = DEFAULT_EXACT_SCALE,
        compact_fraction: float = DEFAULT_COMPACT_FRACTION,
        background_compaction: bool = True,
        storage: str = "flat",
    ):
        super().__init__(dimension)
        if storage not in STORAGES:
            raise ValueError(f"unknown HNSW storage {storage!r}; known: {', '.join(STORAGES)}")
        self.storage = storage
        self.m = m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.exact_below = exact_below
        self.exact_scale = exact_scale
        self.compact_fraction = compact_fraction
        self.background_compaction = background_compaction
        self.compactions = 0
        self._graph = _Graph.empty(dimension, m, ef_construction, storage)
        self._rw = ReadWriteLock()  # searches read; in-place changes and swaps write
        self._mutex = threading.Lock()  # one change at a time
        self._replay: list[tuple[np.ndarray, np.ndarray | None]] | None = None  # changes since a compaction began
        self._compaction: threading.Thread | None = None

    def __len__(self) -> int:
        return self._graph.n_live

    @property
    def tombstones(self) -> int:
        return self._graph.stored - self._graph.n_live

    # --- changes ---------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors; an id already stored is replaced (its old vector becomes a tombstone)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dimension)
        _, last = np.unique(ids[::-1], return_index=True)
        if len(last) < len(ids):  # within the batch, the last vector of an id wins
            keep = np.sort(len(ids) - 1 - last)
            ids, vectors = ids[keep], np.ascontiguousarray(vectors[keep])
        self._change(ids, vectors)

    def remove(self, ids: Iterable[int]) -> int:
        return self._change(np.unique(np.fromiter(ids, dtype=np.int64)), None)

    def _change(self, ids: np.ndarray, vectors: np.ndarray | None) -> int:
        """Add (with `vectors`) or remove `ids`; compact when tombstones pass the fraction."""
        with self._mutex:
            with self._rw.writing():
                changed = self._graph.add(ids, vectors) if vectors is not None else self._graph.remove(ids)
            if self._replay is not None:
                self._replay.append((ids, vectors))
            elif self.tombstones > self.compact_fraction * self._graph.stored:
                self._start_compaction()
            return len(ids) if vectors is not None else changed

    def _start_compaction(self) -> None:
        # Mutex held. The live vectors are copied now; changes from now on are kept for replay.
        ids, vectors = self._graph.live_contents()
        if not self.background_compaction:
            self._finish_compaction(ids, vectors, replay=False)
            return
        self._replay = []
        # Not a daemon: at exit Python waits for it. A daemon thread still inside FAISS when the
        # interpreter finalises is unwound through C++ frames, and the process aborts.
        self._compaction = threading.Thread(target=self._finish_compaction, args=(ids, vectors), name="hnsw-compaction")
        self._compaction.start()

    def _finish_compaction(self, ids: np.ndarray, vectors: np.ndarray, replay: bool = True) -> None:
        try:
            fresh = _Graph.empty(self.dimension, self.m, self.ef_construction, self.storage)
            if len(ids):
                fresh.add(ids, vectors)
        except Exception:  # out of memory, say: keep the tombstones, try at a later change
            log.exception("HNSW compaction failed; the store keeps its tombstones")
            fresh = None
        if not replay:
            self._install(fresh)
            return
        with self._mutex:
            for change_ids, change_vectors in self._replay if fresh is not None else ():
                fresh.add(change_ids, change_vectors) if change_vectors is not None else fresh.remove(change_ids)
            self._replay = None
            self._install(fresh)

    def _install(self, fresh: _Graph | None) -> None:
        if fresh is not None:
            with self._rw.writing():
                self._graph = fresh
            self.compactions += 1

    def wait_for_compaction(self, timeout: float | None = None) -> None:
        """Return once no compaction is running (tests, and callers that must measure after one)."""
        thread = self._compaction
        if thread is not None:
            thread.join(timeout)

    def compact(self) -> None:
        """Rebuild the graph from the live vectors now, dropping every tombstone."""
        self.wait_for_compaction()
        with self._mutex:
            if self.tombstones:
                self._finish_compaction(*self._graph.live_contents(), replay=False)

    # --- reading ---------------------------------------------------------------------------------

    def with_search_settings(self, **search_settings) -> "HNSWStore":
        """A read-only view that searches this store's graph (shared, not copied) with other
        `SEARCH_SETTINGS`: for comparing search paths on one graph. Do not change either store after."""
        unknown = set(search_settings) - set(SEARCH_SETTINGS)
        if unknown:
            raise ValueError(f"not search settings: {sorted(unknown)}; search settings are {', '.join(SEARCH_SETTINGS)}")
        current = {name: getattr(self, name) for name in SEARCH_SETTINGS}
        view = type(self)(self.dimension, m=self.m, ef_construction=self.ef_construction,
                          compact_fraction=self.compact_fraction, storage=self.storage, **{**current, **search_settings})
        view._graph = self._graph
        return view


    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every live vector, in the order they were added."""
        with self._rw.reading():
            return self._graph.live_contents()

    def vectors_for(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        with self._rw.reading():
            positions = self._graph.positions_of(ids)
            if (positions < 0).any():
                raise KeyError(f"ids not in the store: {ids[positions < 0][:10].tolist()}")
            return self._graph.vectors_at(positions)

    def search(
        self,
        query: np.ndarray,
        k: int,
        allowed_ids: np.ndarray | None = None,
        num_candidates: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest live vectors (among `allowed_ids`, if given), nearest first.

        `num_candidates` is the HNSW candidate pool: efSearch = max(k, num_candidates), by
        default `ef_search`. It is scaled by stored / selected when tombstones or a filter
        exclude part of the graph; a filter small enough (`exact_limit`) is searched exactly.
        """
        if k <= 0:
            return _EMPTY
        use_search_threads()
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dimension)
        ef = max(k, num_candidates or self.ef_search)
        with self._rw.reading():
            graph = self._graph
            stored = graph.stored
            if allowed_ids is None:
                selected = graph.n_live
                bitmap = None if selected == stored else graph.live_bitmap()
            else:
                positions = graph.positions_of(np.asarray(allowed_ids, dtype=np.int64).reshape(-1))
                mask = np.zeros(stored, dtype=bool)
                mask[positions[positions >= 0]] = True
                positions = np.flatnonzero(mask)  # each once, in storage order
                selected = len(positions)
                if 0 < selected <= self.exact_limit(ef, stored):
                    return self._exact_search(graph, positions, query[0], k)
                bitmap = np.packbits(mask, bitorder="little")
            if selected == 0:
                return _EMPTY
            k = min(k, selected)
            params = faiss.SearchParametersHNSW(efSearch=min(stored, math.ceil(ef * stored / selected)))
            if bitmap is not None:
                selector = faiss.IDSelectorBitmap(stored, faiss.swig_ptr(bitmap))
                params.sel = selector  # `selector` and `bitmap` stay referenced until the search returns
            scores, found = graph.index.search(query, k, params=params)
            keep = found[0] >= 0
            return graph.labels[found[0][keep]], (1.0 - scores[0][keep]).astype(np.float32)

    def exact_limit(self, ef: int, stored: int) -> int:
        """Most allowed ids searched exactly rather than inside the graph.

        Exact search costs ~ selected; a filtered graph search ~ ef * stored / selected. They
        cost the same at selected = c * sqrt(ef * stored); `exact_scale` is that c, measured
        (2: 4,000 to 8,000 of 100,000 at efSearch 64), and `exact_below` a floor.
        """
        return max(self.exact_below, int(self.exact_scale * math.sqrt(ef * stored)))

    @staticmethod
    def _exact_search(graph: _Graph, positions: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over the vectors at `positions`, a block at a time (stays in cache).

        `einsum`, not `@`: a matrix-vector product goes to multi-threaded BLAS, whose threads
        wait for each other (many milliseconds on a busy machine) for ~1 ms of work."""
        scores = np.empty(len(positions), dtype=np.float32)
        for start in range(0, len(positions), EXACT_BLOCK):
            block = positions[start : start + EXACT_BLOCK]
            scores[start : start + len(block)] = np.einsum("ij,j->i", graph.vectors_at(block), query)
        rows, distances = top_k(scores, k)
        return graph.labels[positions[rows]], distances

    def memory_bytes(self) -> int:
        """Vectors (tombstones included), graph links, and the id tables."""
        graph = self._graph
        hnsw = graph.index.hnsw
        links = hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
        return graph.stored * (graph.bytes_per_vector + 8 + 1) + graph.n_live * 16 + links

    # --- serialisation ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        with self._rw.reading():
            graph = self._graph
            meta = {
                "dimension": self.dimension,
                "m": self.m,
                "ef_construction": self.ef_construction,
                "compact_fraction": self.compact_fraction,
                "stored": graph.stored,
                "storage": self.storage,
            }
            return pack_envelope(
                self.kind,
                meta,
                memoryview(faiss.serialize_index(graph.index)),  # joined once, not copied first
                graph.labels.astype("<i8").tobytes(),
                np.packbits(graph.live, bitorder="little").tobytes(),
            )

    @classmethod
    def from_bytes(cls, data: bytes, **search_settings) -> "HNSWStore":
        kind, meta, (index_bytes, label_bytes, live_bytes) = unpack_envelope(data)
        if kind != cls.kind:
            raise ValueError(f"serialised store holds {kind!r}, not {cls.kind!r}")
        store = cls(
            meta["dimension"],
            m=meta["m"],
            ef_construction=meta["ef_construction"],
            compact_fraction=meta["compact_fraction"],
            storage=meta.get("storage", "flat"),  # files written before SQ8 storage hold float vectors
            **search_settings,
        )
        stored = meta["stored"]
        index = faiss.deserialize_index(np.frombuffer(index_bytes, dtype=np.uint8))
        labels = np.frombuffer(label_bytes, dtype="<i8").astype(np.int64)
        live = np.unpackbits(np.frombuffer(live_bytes, dtype=np.uint8), count=stored, bitorder="little").astype(bool)
        if index.ntotal != stored or len(labels) != stored or index.d != store.dimension:
            raise ValueError("serialised HNSW store is inconsistent")
        store._graph = _Graph(index, labels, live)
        return store

"""The search indexes of each workspace and model: derived from stored embeddings, kept current.

The database is the truth. `vector_generations` counts changes to a workspace+model's vectors,
bumped in the same transaction as the chunk rows. Each process holds indexes in memory tagged
with the generation they reflect; the files (`IndexFileStore`) carry their generation too.

Hand-over between processes: the process that commits a change applies it to its copy and writes
the new generation's files soon after (`HandOver.save_delay_secs`). Another process (an API
replica) compares its copy's generation with the database's at each retrieval; when behind, it
goes on answering from its copy while a background thread loads the newest generation's files
beside it and swaps the loaded result in (or, when no newer files come within
`file_wait_secs`, or they are unreadable, rebuilds from the stored embeddings). Only a process
with no copy at all makes the request wait for one. Files of a generation stay
`file_grace_secs` after a newer generation's files are all written, so a reader that chose the
newest files (it reads each file into memory in one go) never loses them mid-read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from index.stores import create_store, store_from_bytes

from ..storage import Database, Tx
from ..storage.interfaces import IndexFileStore
from ..storage.repositories import ChunkStore, GenerationStore
from .cache import LoadedCache
from .lexical import LexicalIndex, title_text
from .loaded import ChunkVectors, LoadedIndex, switch_store_if_due
from .saver import BackgroundSaver

log = logging.getLogger(__name__)

FILE_POLL_SECS = 0.1  # how often a process behind looks for a newer generation's files
CONCURRENT_LOADS = 2  # background loads and rebuilds running at once in one process


@dataclass(frozen=True)
class HandOver:
    """How generations pass between processes (the `index_*_secs` settings)."""

    save_delay_secs: float = 0.1  # a change is written this long after it comes in (a burst coalesces)
    swap_wait_secs: float = 0.5  # the retrieval that starts a background load waits this long for it
    file_wait_secs: float = 3.0  # no newer files by then: rebuild from the stored embeddings
    file_grace_secs: float = 60.0  # files of a generation stay this long after a newer one's are written


class VectorIndexes:
    def __init__(
        self,
        db: Database,
        generations: GenerationStore,
        chunks: ChunkStore,
        files: IndexFileStore,
        budget_bytes: int = 1 << 30,
        store_kind: str = "auto",
        store_options: dict | None = None,
        handover: HandOver | None = None,
    ):
        """`store_kind` and `store_options` say how vectors are searched (`index.stores.create_store`)."""
        self.db = db
        self.generations = generations
        self.chunks = chunks
        self.files = files
        self.store_kind = store_kind
        self.store_options = dict(store_options or {})
        self.handover = handover or HandOver()
        self._loaded = LoadedCache(budget_bytes)
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._refreshing: set[tuple[str, str]] = set()  # keys with a background load running
        self._swapped = threading.Condition()  # guards _refreshing; notified at each swap and when a load ends
        self._loads = threading.BoundedSemaphore(CONCURRENT_LOADS)
        self._file_keys: set[tuple[str, str]] = set()  # keys whose files this process wrote: swept
        self._closed = False
        grace = self.handover.file_grace_secs
        self._saver = BackgroundSaver(self._save, self.handover.save_delay_secs, self._sweep,
                                      sweep_secs=max(0.05, min(grace / 2, 30.0)))

    def lock(self, workspace_id: str, model: str) -> threading.Lock:
        """Held while changing a workspace+model's vectors, so this process applies changes in order."""
        with self._locks_guard:
            return self._locks.setdefault((workspace_id, model), threading.Lock())

    # --- generations -------------------------------------------------------------------------

    def bump_generation(self, tx: Tx, workspace_id: str, model: str) -> int:
        """Call in the transaction that changes the vectors; returns the new generation."""
        return self.generations.bump(tx, workspace_id, model)

    def current_generation(self, workspace_id: str, model: str) -> int:
        with self.db.read() as tx:
            return self.generations.current(tx, workspace_id, model)

    # --- reading -----------------------------------------------------------------------------

    def get(self, workspace_id: str, model: str, dimension: int):
        """The vector store to search (see `get_loaded`)."""
        return self.get_loaded(workspace_id, model, dimension).store

    def get_loaded(self, workspace_id: str, model: str, dimension: int) -> LoadedIndex:
        """The indexes (vector store and lexical index) of a workspace and model to search.

        With no copy loaded, this loads one and waits for it: the newest generation's files, or a
        build from the stored embeddings. A copy behind the database's generation goes on serving
        while a background load of the newest generation runs (one per workspace and model); the
        retrieval that starts the load waits for it up to `swap_wait_secs` (a small index is
        current at once), those that come while it runs do not wait.
        """
        key = (workspace_id, model)
        loaded = self._loaded.get(key)
        have = loaded.generation if loaded is not None else 0  # read before the database's: never ahead of it
        generation = self.current_generation(workspace_id, model)
        if loaded is None:
            with self.lock(workspace_id, model):
                loaded = self._loaded.get(key)
                if loaded is None:
                    loaded = self._first_load(workspace_id, model, dimension, generation)
                    self._loaded.put(key, loaded)
            have = loaded.generation
        if have < generation and self._start_refresh(key, dimension):
            loaded = self._wait_for(key, generation, self.handover.swap_wait_secs) or loaded
        return loaded

    def _first_load(self, workspace_id: str, model: str, dimension: int, generation: int) -> LoadedIndex:
        """The files of the newest generation up to `generation` (the database's; files of later
        ones are not trusted), else a build from the stored embeddings (called with the key's lock
        held, so no change of this process comes in meanwhile)."""
        newest = _newest(self.files.generations(workspace_id, model), generation)
        if newest is not None:
            loaded = self._read_files(workspace_id, model, newest, dimension)
            if loaded is not None:
                return loaded
        loaded, exact = self._build_current(workspace_id, model, dimension)
        if loaded.generation > 0:
            log.info("built the index of %s/%s generation %s from stored chunks (%d vectors)",
                     workspace_id, model, loaded.generation, len(loaded.store))
        if exact:
            self._saver.schedule((workspace_id, model), loaded)
        return loaded

    def _read_files(self, workspace_id: str, model: str, generation: int, dimension: int | None) -> LoadedIndex | None:
        """The generation's indexes from its files; None when a file is missing, unreadable or
        does not match (logged: the caller rebuilds from stored embeddings)."""
        vectors = self.files.read(workspace_id, model, generation, "faiss")
        lexical_bytes = self.files.read(workspace_id, model, generation, "bm25") if vectors is not None else None
        if vectors is None or lexical_bytes is None:
            return None
        try:
            store = store_from_bytes(vectors, self.store_kind, **self.store_options)
            lexical = LexicalIndex.from_bytes(lexical_bytes)
        except Exception as exc:
            log.warning("index files of %s/%s generation %s are unreadable (%s); rebuilding from stored embeddings",
                        workspace_id, model, generation, exc)
            return None
        if (dimension is not None and store.dimension != dimension) or len(store) != len(lexical.index):
            log.warning("index files of %s/%s generation %s do not match (dimension or size); rebuilding",
                        workspace_id, model, generation)
            return None
        return LoadedIndex(store, generation, lexical)

    def _build_current(self, workspace_id: str, model: str, dimension: int) -> tuple[LoadedIndex, bool]:
        """A build from the stored embeddings tagged with the generation read before it, and
        whether it is exact: no change was committed while it ran (the generation read after it is
        the same; every change bumps it in its own transaction). Only an exact build may be saved
        or changed by `apply`: an inexact one may hold changes of later generations."""
        with self.db.read() as tx:
            before = self.generations.current(tx, workspace_id, model)
            loaded = self.build_from_db(workspace_id, model, dimension, tx=tx, generation=before)
            after = self.generations.current(tx, workspace_id, model)
        return loaded, before == after

    # --- handing over to a newer generation, in the background -----------------------------

    def _start_refresh(self, key: tuple[str, str], dimension: int) -> bool:
        """Start the background load of `key`'s newest generation unless one runs; whether this started it."""
        with self._swapped:
            if key in self._refreshing or self._closed:
                return False
            self._refreshing.add(key)
        threading.Thread(target=self._refresh, args=(key, dimension), name="kb-index-load", daemon=True).start()
        return True

    def _wait_for(self, key: tuple[str, str], generation: int, timeout: float) -> LoadedIndex | None:
        """The loaded copy once at `generation` or later, or when the load ends or `timeout` passes."""
        deadline = time.monotonic() + timeout
        with self._swapped:
            while True:
                loaded = self._loaded.peek(key)
                left = deadline - time.monotonic()
                if loaded is None or loaded.generation >= generation or key not in self._refreshing or left <= 0:
                    return loaded
                self._swapped.wait(left)

    def _refresh(self, key: tuple[str, str], dimension: int) -> None:
        """Until the loaded copy is current: load the newest files when newer than the copy, else
        look again every FILE_POLL_SECS; rebuild from the stored embeddings when the newest files
        are unreadable, or none newer came for `file_wait_secs`. Each result replaces the copy."""
        workspace_id, model = key
        waiting_since = time.monotonic()
        unreadable: set[int | None] = set()
        rebuilt: set[int | None] = set()
        try:
            while not self._closed:
                cached = self._loaded.peek(key)
                generation = self.current_generation(workspace_id, model)
                if cached is None or cached.generation >= generation:
                    return  # current, or evicted (the next retrieval loads it)
                if self.lock(workspace_id, model).locked():  # this process changes it: the change brings it current
                    waiting_since = time.monotonic()
                started = time.perf_counter()
                loaded, source = None, "files"
                newest = _newest(self.files.generations(workspace_id, model), generation)
                newer = newest is not None and newest > cached.generation
                if newer and newest not in unreadable:
                    with self._loads:
                        loaded = self._read_files(workspace_id, model, newest, dimension)
                    if loaded is None:
                        unreadable.add(newest)
                if loaded is None and ((newer and newest in unreadable and newest not in rebuilt)
                                       or time.monotonic() - waiting_since >= self.handover.file_wait_secs):
                    rebuilt.add(newest)  # at once once per unreadable generation, else every file_wait_secs
                    waiting_since = time.monotonic()
                    with self._loads:
                        built, exact = self._build_current(workspace_id, model, dimension)
                    if exact:
                        loaded, source = built, "stored embeddings"
                if loaded is not None and self._swap(key, loaded, source, started):
                    waiting_since = time.monotonic()
                    if source != "files":
                        self._saver.schedule(key, loaded)  # the files other processes wait for
                    continue
                time.sleep(FILE_POLL_SECS)
        except Exception:
            log.exception("could not load a newer generation of the index of %s/%s", *key)
        finally:
            with self._swapped:
                self._refreshing.discard(key)
                self._swapped.notify_all()

    def _swap(self, key: tuple[str, str], loaded: LoadedIndex, source: str, started: float) -> bool:
        """Replace the loaded copy by a newer one (under the key's lock, so never between a change
        this process commits and applies); False when the copy is gone or as new."""
        with self.lock(*key):
            cached = self._loaded.peek(key)
            if cached is None or cached.generation >= loaded.generation:
                return False
            self._loaded.put(key, loaded)
        log.info("index of %s/%s: serving generation %d (was %d), loaded from %s in %.0f ms (%d vectors)",
                 key[0], key[1], loaded.generation, cached.generation, source,
                 (time.perf_counter() - started) * 1000, len(loaded.store))
        with self._swapped:
            self._swapped.notify_all()
        return True

    def build_from_db(
        self,
        workspace_id: str,
        model: str,
        dimension: int,
        on_progress: Callable[[int], None] | None = None,
        tx: Tx | None = None,
        generation: int = 0,
    ) -> LoadedIndex:
        """Fresh vector and lexical indexes from every stored chunk of the workspace for `model`."""
        if tx is None:
            with self.db.read() as read_tx:
                return self.build_from_db(workspace_id, model, dimension, on_progress, read_tx, generation)
        store, lexical = create_store(dimension, self.store_kind, **self.store_options), LexicalIndex()
        # Chunks are written only when an index is published, so every stored chunk is searchable
        # (a document being re-indexed keeps serving its current chunks until the new ones land).
        for batch in self.chunks.stored_vectors(tx, workspace_id, model):
            ids = np.asarray(batch.keys, dtype=np.int64)
            vectors = np.frombuffer(b"".join(batch.embeddings), dtype=np.float32)
            store.add(ids, vectors.reshape(len(ids), dimension))
            lexical.add(ids, batch.lexical_terms, batch.languages,
                        [title_text(name, path) for name, path in zip(batch.document_names, batch.heading_paths)])
            if on_progress:
                on_progress(len(ids))
        loaded = LoadedIndex(store, generation, lexical)
        switch_store_if_due(loaded.store, loaded.lock)
        return loaded

    def rebuild(self, workspace_id: str, model: str, dimension: int, on_progress=None) -> int:
        """Rebuild from stored chunks, publish as a new generation; returns the vector count.

        The build runs inside a write transaction that bumps the generation first: SQLite's writer
        lock, or on PostgreSQL the generation row's lock, keeps every other change of these vectors
        (each bumps the generation in its own transaction) out of the build, or after it under the
        next generation, so the new generation reflects exactly the chunks read.
        """
        with self.lock(workspace_id, model):
            with self.db.write() as tx:
                generation = self.bump_generation(tx, workspace_id, model)
                loaded = self.build_from_db(workspace_id, model, dimension, on_progress, tx)
                loaded.generation = generation
            self._save(workspace_id, model, loaded)
            self._loaded.put((workspace_id, model), loaded)
        return len(loaded.store)

    # --- writing -----------------------------------------------------------------------------

    def apply(
        self,
        workspace_id: str,
        model: str,
        generation: int,
        *,
        add: ChunkVectors | None = None,
        remove: list[int] | None = None,
    ) -> None:
        """Apply a change already committed as `generation` to this process's copy and save it.

        Call with `lock(workspace_id, model)` held. A process that has no copy at `generation - 1`
        (none loaded, or another process changed the index meanwhile) takes that generation's
        files, or builds the index from the stored embeddings (then holding the change already),
        so that the files of the generation it committed are written promptly for the others. When
        neither can be had (yet more changes came in since), its copy is dropped; the process that
        committed the latest change writes its files.
        """
        key = (workspace_id, model)
        loaded = self._loaded.get(key)
        if loaded is None or loaded.generation != generation - 1:
            loaded = self._base_for_change(workspace_id, model, generation, add)
            if loaded is None:
                self._loaded.pop(key)
                return
            self._loaded.put(key, loaded)
        if loaded.generation == generation - 1:
            loaded.change(generation, add, remove)
            switch_store_if_due(loaded.store, loaded.lock)
        self._saver.schedule(key, loaded)
        self._loaded.shrink()
        with self._swapped:  # a retrieval waiting for this generation has it
            self._swapped.notify_all()

    def _base_for_change(self, workspace_id: str, model: str, generation: int,
                         add: ChunkVectors | None) -> LoadedIndex | None:
        """A copy at `generation - 1` (its files) or at `generation` (an exact build), or None."""
        dimension = int(add.vectors.shape[1]) if add is not None and add.vectors.ndim == 2 else None
        if generation - 1 in self.files.generations(workspace_id, model):
            loaded = self._read_files(workspace_id, model, generation - 1, dimension)
            if loaded is not None:
                return loaded
        if dimension is None:
            with self.db.read() as tx:
                dimension = self.chunks.stored_dimension(tx, workspace_id, model)
            if dimension is None:
                return None  # nothing stored to build from: the next retrieval builds the (empty) index
        loaded, exact = self._build_current(workspace_id, model, dimension)
        return loaded if exact and loaded.generation == generation else None

    def _save(self, workspace_id: str, model: str, loaded: LoadedIndex) -> None:
        """Write both files of the generation atomically, then drop older generations' files that
        have been superseded for the grace period (the saver's sweep drops the others later)."""
        generation, vectors, lexical = loaded.snapshot()
        self.files.write(workspace_id, model, generation, "faiss", vectors)
        self.files.write(workspace_id, model, generation, "bm25", lexical)
        self.files.remove_superseded(workspace_id, model, self.handover.file_grace_secs)
        self._file_keys.add((workspace_id, model))

    def _sweep(self) -> None:
        """Drop superseded files of the indexes this process wrote or holds, once their grace is over."""
        for key in set(self._file_keys) | set(self._loaded.keys()):
            self.files.remove_superseded(*key, self.handover.file_grace_secs)
            if len(self.files.generations(*key)) <= 1:
                self._file_keys.discard(key)

    def flush(self) -> None:
        """Write every index changed since its last save (at shutdown; the saver does it meanwhile)."""
        self._saver.flush()

    def close(self) -> None:
        self._closed = True
        self._saver.stop()

    def forget_workspace(self, workspace_id: str) -> None:
        for key in [k for k in self._loaded.keys() if k[0] == workspace_id]:
            self._loaded.pop(key)

    def memory_bytes(self) -> int:
        """Memory held by the loaded indexes (what the budget bounds)."""
        return self._loaded.memory_bytes()

    def loaded_keys(self) -> list[tuple[str, str]]:
        return self._loaded.keys()


def _newest(available: dict[int, float], limit: int) -> int | None:
    """The newest generation with files, up to the database's generation `limit`."""
    return max((g for g in available if g <= limit), default=None)

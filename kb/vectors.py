"""The FAISS index of each workspace and model: derived from stored embeddings, kept current.

The database is the truth. `vector_generations` counts changes to a workspace+model's vectors,
bumped in the same transaction as the chunk rows. Each process holds indexes in memory tagged
with the generation they reflect; the file on disk carries its generation in its name. So a
process (a server, `kb reindex`, `kb ingest`) that finds its copy behind loads the current file,
or rebuilds from the stored embeddings when no current file exists or the file is corrupt.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from index.locks import ReadWriteLock
from index.files import write_atomically
from index.stores import FlatStore, VectorStore, create_store, load_store

from .db import Database, chunks, vector_generations
from .lexical import LexicalIndex

log = logging.getLogger(__name__)


@dataclass
class LoadedIndex:
    """A workspace+model's vector store and BM25 index, over the same chunk keys, at one generation.

    FAISS and the BM25 arrays are not safe to search while they change: searches hold
    `lock.reading()`, changes `lock.writing()` (in slices, see `change`). Between slices a search
    may see part of a change (new vectors without their lexical entries yet); `generation`
    moves on when the whole change is in.
    """

    store: VectorStore
    generation: int
    lexical: LexicalIndex
    lock: ReadWriteLock = field(default_factory=ReadWriteLock)

    def memory_bytes(self) -> int:
        return self.store.memory_bytes() + self.lexical.memory_bytes()

    def change(
        self, generation: int, add: "ChunkVectors | None" = None, remove: list[int] | None = None, slice_size: int = 16
    ) -> None:
        """Apply a committed change, letting searches in between slices of it.

        An HNSW graph takes about a millisecond per vector inserted, and searches must not run
        while it changes: one batch of thousands of chunks at once would hold every search of
        the workspace for seconds. Vectors go in `slice_size` at a time instead, each slice
        under the write lock on its own. The lexical side is changed so that every key it holds
        is in the vector store at all times (removed from it first, added to it last), since
        searches read the vectors of lexical hits.
        """
        if remove:
            with self.lock.writing():
                self.lexical.remove(remove)
                self.store.remove(remove)
        if add is not None:
            for start in range(0, len(add.keys), slice_size):
                with self.lock.writing():
                    self.store.add(add.keys[start : start + slice_size], add.vectors[start : start + slice_size])
        with self.lock.writing():
            if add is not None:
                self.lexical.add(add.keys, add.terms, add.languages)
            self.generation = generation

    def snapshot(self) -> tuple[int, bytes, bytes]:
        """(generation, vector file bytes, lexical file bytes), consistent with each other."""
        with self.lock.reading():
            return self.generation, self.store.to_bytes(), self.lexical.to_bytes()


@dataclass(frozen=True)
class ChunkVectors:
    """New chunks to add: keys, embeddings, and stored lexical terms and languages."""

    keys: np.ndarray
    vectors: np.ndarray
    terms: list[str]
    languages: list[str]


def switch_store_if_due(store: VectorStore, lock: ReadWriteLock) -> None:
    """Move an "auto" store to exact or HNSW search when its size calls for it.

    The new store is built while searches go on against the current one (no change can come in
    between: callers hold the index's change lock, or no one else has the index yet); only the
    swap excludes searches.
    """
    if (target := store.pending_switch()) is not None:  # None unless the kind switches ("auto")
        log.info("vector store moves to %s search at %d vectors", type(target).__name__, len(target))
        with lock.writing():
            store.swap(target)


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model)


class LoadedCache:
    """Loaded indexes, least recently used first out once their memory passes the budget."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[tuple[str, str], LoadedIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> LoadedIndex | None:
        with self._lock:
            loaded = self._items.get(key)
            if loaded is not None:
                self._items.move_to_end(key)
            return loaded

    def put(self, key: tuple[str, str], loaded: LoadedIndex) -> None:
        with self._lock:
            self._items[key] = loaded
            self._items.move_to_end(key)
            self._evict(keep=key)

    def pop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._items.pop(key, None)

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._items)

    def memory_bytes(self) -> int:
        with self._lock:
            return sum(item.memory_bytes() for item in self._items.values())

    def shrink(self) -> None:
        """Evict after an index grew in place."""
        with self._lock:
            self._evict(keep=None)

    def _evict(self, keep: tuple[str, str] | None) -> None:
        total = sum(item.memory_bytes() for item in self._items.values())
        for key in list(self._items):
            if total <= self.budget_bytes:
                break
            if key == keep:
                continue  # the index in use stays, even alone over budget
            total -= self._items.pop(key).memory_bytes()
            log.info("evicted the index of %s/%s from memory (budget %d bytes)", key[0], key[1], self.budget_bytes)


class BackgroundSaver:
    """Writes changed indexes to disk off the request path, coalescing quick successive changes.

    The files are derived data: a crash before a save only means the next process finds no file
    for the current generation and rebuilds it from the stored chunks.
    """

    def __init__(self, save, delay_secs: float = 1.0):
        self._save = save
        self._delay = delay_secs
        self._dirty: dict[tuple[str, str], LoadedIndex] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="kb-index-saver", daemon=True)
        self._thread.start()

    def schedule(self, key: tuple[str, str], loaded: LoadedIndex) -> None:
        with self._cond:
            self._dirty[key] = loaded
            self._cond.notify()

    def flush(self) -> None:
        with self._cond:
            pending, self._dirty = self._dirty, {}
        for key, loaded in pending.items():
            self._write(key, loaded)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(30)
        self.flush()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
            time.sleep(self._delay)  # let a burst of changes land, then write once
            self.flush()

    def _write(self, key: tuple[str, str], loaded: LoadedIndex) -> None:
        try:
            self._save(key[0], key[1], loaded)
        except Exception:
            log.exception("could not save the index of %s/%s; it will be rebuilt when next loaded", *key)


class VectorIndexes:
    def __init__(
        self,
        db: Database,
        root: Path,
        budget_bytes: int = 1 << 30,
        store_kind: str = "auto",
        store_options: dict | None = None,
    ):
        """`store_kind` and `store_options` say how vectors are searched (`index.stores.create_store`)."""
        self.db = db
        self.root = Path(root)
        self.store_kind = store_kind
        self.store_options = dict(store_options or {})
        self._loaded = LoadedCache(budget_bytes)
        self._saver = BackgroundSaver(self._save)
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def lock(self, workspace_id: str, model: str) -> threading.Lock:
        """Held while changing a workspace+model's vectors, so this process applies changes in order."""
        with self._locks_guard:
            return self._locks.setdefault((workspace_id, model), threading.Lock())

    def _path(self, workspace_id: str, model: str, generation: int, kind: str = "faiss") -> Path:
        """`kind` "faiss" (the vectors) or "bm25" (the lexical index) of one generation."""
        return self.root / workspace_id / f"{_slug(model)}.g{generation}.{kind}"

    # --- generations -------------------------------------------------------------------------

    @staticmethod
    def bump_generation(conn: Connection, workspace_id: str, model: str) -> int:
        """Call in the transaction that changes the vectors; returns the new generation."""
        where = (vector_generations.c.workspace_id == workspace_id, vector_generations.c.model == model)
        bumped = conn.execute(
            update(vector_generations).where(*where).values(generation=vector_generations.c.generation + 1)
        )
        if bumped.rowcount == 0:
            conn.execute(vector_generations.insert().values(workspace_id=workspace_id, model=model, generation=1))
        return int(conn.execute(select(vector_generations.c.generation).where(*where)).scalar_one())

    def current_generation(self, workspace_id: str, model: str) -> int:
        with self.db.read() as conn:
            value = conn.execute(
                select(vector_generations.c.generation).where(
                    vector_generations.c.workspace_id == workspace_id, vector_generations.c.model == model
                )
            ).scalar()
        return int(value or 0)

    # --- reading -----------------------------------------------------------------------------

    def get(self, workspace_id: str, model: str, dimension: int) -> VectorStore:
        """The current vector store, loading or rebuilding it if this process's copy is behind."""
        return self.get_loaded(workspace_id, model, dimension).store

    def get_loaded(self, workspace_id: str, model: str, dimension: int) -> LoadedIndex:
        """The current indexes (vector store, and lexical index when present) of a workspace and model."""
        generation = self.current_generation(workspace_id, model)
        loaded = self._loaded.get((workspace_id, model))
        if loaded is not None and loaded.generation == generation:
            return loaded
        with self.lock(workspace_id, model):
            loaded = self._loaded.get((workspace_id, model))
            generation = self.current_generation(workspace_id, model)
            if loaded is None or loaded.generation != generation:
                loaded = self._load_or_rebuild(workspace_id, model, dimension, generation)
                self._loaded.put((workspace_id, model), loaded)
            return loaded

    def _load_or_rebuild(self, workspace_id: str, model: str, dimension: int, generation: int) -> LoadedIndex:
        path, lexical_path = self._path(workspace_id, model, generation), self._path(workspace_id, model, generation, "bm25")
        if path.exists() and lexical_path.exists():
            try:
                store = load_store(path, self.store_kind, **self.store_options)
                lexical = LexicalIndex.from_bytes(lexical_path.read_bytes())
                if store.dimension == dimension and len(store) == len(lexical.index):
                    return LoadedIndex(store, generation, lexical)
                log.warning("index files %s do not match (dimension or size); rebuilding", path)
            except Exception as exc:
                log.warning("index file %s is unreadable (%s); rebuilding from stored embeddings", path, exc)
        elif generation > 0:
            log.info("no index files for %s/%s generation %s; building from stored chunks", workspace_id, model, generation)
        loaded = self.build_from_db(workspace_id, model, dimension, generation=generation)
        self._save(workspace_id, model, loaded)
        return loaded

    def build_from_db(
        self,
        workspace_id: str,
        model: str,
        dimension: int,
        on_progress=None,
        conn: Connection | None = None,
        generation: int = 0,
    ) -> LoadedIndex:
        """Fresh vector and lexical indexes from every stored chunk of the workspace for `model`."""
        if conn is None:
            with self.db.read() as read_conn:
                return self.build_from_db(workspace_id, model, dimension, on_progress, read_conn, generation)
        store, lexical = create_store(dimension, self.store_kind, **self.store_options), LexicalIndex()
        # Chunks are written only when an index is published, so every stored chunk is searchable
        # (a document being re-indexed keeps serving its current chunks until the new ones land).
        query = (
            select(chunks.c.key, chunks.c.embedding, chunks.c.lexical_terms, chunks.c.language)
            .where(chunks.c.workspace_id == workspace_id, chunks.c.model == model)
            .order_by(chunks.c.key)
        )
        result = conn.execute(query)
        while batch := result.fetchmany(4096):
            ids = np.fromiter((row.key for row in batch), dtype=np.int64, count=len(batch))
            vectors = np.frombuffer(b"".join(row.embedding for row in batch), dtype=np.float32)
            store.add(ids, vectors.reshape(len(batch), dimension))
            lexical.add(ids, [row.lexical_terms for row in batch], [row.language for row in batch])
            if on_progress:
                on_progress(len(batch))
        loaded = LoadedIndex(store, generation, lexical)
        switch_store_if_due(loaded.store, loaded.lock)
        return loaded

    def rebuild(self, workspace_id: str, model: str, dimension: int, on_progress=None) -> int:
        """Rebuild from stored chunks, publish as a new generation; returns the vector count.

        The build runs inside a write transaction, so no other writer can change the chunks between
        reading them and publishing the generation that says the index reflects them.
        """
        with self.lock(workspace_id, model):
            with self.db.write() as conn:
                loaded = self.build_from_db(workspace_id, model, dimension, on_progress, conn)
                loaded.generation = self.bump_generation(conn, workspace_id, model)
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

        Call with `lock(workspace_id, model)` held. If this copy missed an earlier generation
        (another process changed the index), it is dropped and reloaded on next use instead.
        """
        key = (workspace_id, model)
        loaded = self._loaded.get(key)
        if loaded is None or loaded.generation != generation - 1:
            self._loaded.pop(key)
            return
        loaded.change(generation, add, remove)
        switch_store_if_due(loaded.store, loaded.lock)
        self._saver.schedule(key, loaded)
        self._loaded.shrink()

    def _save(self, workspace_id: str, model: str, loaded: LoadedIndex) -> None:
        """Write both files of the generation atomically, then drop older generations' files."""
        generation, vectors, lexical = loaded.snapshot()
        path = self._path(workspace_id, model, generation)
        write_atomically(path, vectors)
        write_atomically(self._path(workspace_id, model, generation, "bm25"), lexical)
        for old in path.parent.glob(f"{_slug(model)}.g*.*"):
            stem, _, kind = old.name.rpartition(".")
            old_generation = stem.rsplit(".g", 1)[-1]
            if kind in ("faiss", "bm25") and old_generation.isdigit() and int(old_generation) < generation:
                old.unlink(missing_ok=True)

    def flush(self) -> None:
        """Write every index changed since its last save (at shutdown; the saver does it meanwhile)."""
        self._saver.flush()

    def close(self) -> None:
        self._saver.stop()

    def forget_workspace(self, workspace_id: str) -> None:
        for key in [k for k in self._loaded.keys() if k[0] == workspace_id]:
            self._loaded.pop(key)

    def memory_bytes(self) -> int:
        """Memory held by the loaded indexes (what the budget bounds)."""
        return self._loaded.memory_bytes()

    def loaded_keys(self) -> list[tuple[str, str]]:
        return self._loaded.keys()


__all__ = ["VectorIndexes", "FlatStore"]

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
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from index.stores import FlatStore, VectorStore, create_store, load_store

from .db import Database, chunks, vector_generations

log = logging.getLogger(__name__)


@dataclass
class LoadedIndex:
    store: VectorStore
    generation: int


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
            return sum(item.store.memory_bytes() for item in self._items.values())

    def shrink(self) -> None:
        """Evict after an index grew in place."""
        with self._lock:
            self._evict(keep=None)

    def _evict(self, keep: tuple[str, str] | None) -> None:
        total = sum(item.store.memory_bytes() for item in self._items.values())
        for key in list(self._items):
            if total <= self.budget_bytes:
                break
            if key == keep:
                continue  # the index in use stays, even alone over budget
            total -= self._items.pop(key).store.memory_bytes()
            log.info("evicted the index of %s/%s from memory (budget %d bytes)", key[0], key[1], self.budget_bytes)


class VectorIndexes:
    def __init__(self, db: Database, root: Path, budget_bytes: int = 1 << 30):
        self.db = db
        self.root = Path(root)
        self._loaded = LoadedCache(budget_bytes)
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def lock(self, workspace_id: str, model: str) -> threading.Lock:
        """Held while changing a workspace+model's vectors, so this process applies changes in order."""
        with self._locks_guard:
            return self._locks.setdefault((workspace_id, model), threading.Lock())

    def _path(self, workspace_id: str, model: str, generation: int) -> Path:
        return self.root / workspace_id / f"{_slug(model)}.g{generation}.faiss"

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
        """The current index, loading or rebuilding it if this process's copy is behind."""
        generation = self.current_generation(workspace_id, model)
        loaded = self._loaded.get((workspace_id, model))
        if loaded is not None and loaded.generation == generation:
            return loaded.store
        with self.lock(workspace_id, model):
            loaded = self._loaded.get((workspace_id, model))
            generation = self.current_generation(workspace_id, model)
            if loaded is None or loaded.generation != generation:
                loaded = self._load_or_rebuild(workspace_id, model, dimension, generation)
                self._loaded.put((workspace_id, model), loaded)
            return loaded.store

    def _load_or_rebuild(self, workspace_id: str, model: str, dimension: int, generation: int) -> LoadedIndex:
        path = self._path(workspace_id, model, generation)
        if path.exists():
            try:
                store = load_store(path)
                if store.dimension == dimension:
                    return LoadedIndex(store, generation)
                log.warning("index file %s has dimension %s, expected %s; rebuilding", path, store.dimension, dimension)
            except Exception as exc:
                log.warning("index file %s is unreadable (%s); rebuilding from stored embeddings", path, exc)
        elif generation > 0:
            log.info("no index file for %s/%s generation %s; building from stored embeddings", workspace_id, model, generation)
        store = self.build_from_db(workspace_id, model, dimension)
        self._save(workspace_id, model, store, generation)
        return LoadedIndex(store, generation)

    def build_from_db(
        self, workspace_id: str, model: str, dimension: int, on_progress=None, conn: Connection | None = None
    ) -> VectorStore:
        """A fresh index from every stored embedding of the workspace's succeeded indexes for `model`."""
        if conn is None:
            with self.db.read() as read_conn:
                return self.build_from_db(workspace_id, model, dimension, on_progress, read_conn)
        store = create_store(dimension)
        # Chunks are written only when an index is published, so every stored chunk is searchable
        # (a document being re-indexed keeps serving its current chunks until the new ones land).
        query = (
            select(chunks.c.key, chunks.c.embedding)
            .where(chunks.c.workspace_id == workspace_id, chunks.c.model == model)
            .order_by(chunks.c.key)
        )
        result = conn.execute(query)
        while batch := result.fetchmany(4096):
            ids = np.fromiter((row.key for row in batch), dtype=np.int64, count=len(batch))
            vectors = np.frombuffer(b"".join(row.embedding for row in batch), dtype=np.float32)
            store.add(ids, vectors.reshape(len(batch), dimension))
            if on_progress:
                on_progress(len(batch))
        return store

    def rebuild(self, workspace_id: str, model: str, dimension: int, on_progress=None) -> int:
        """Rebuild from stored embeddings, publish as a new generation; returns the vector count.

        The build runs inside a write transaction, so no other writer can change the chunks between
        reading them and publishing the generation that says the index reflects them.
        """
        with self.lock(workspace_id, model):
            with self.db.write() as conn:
                store = self.build_from_db(workspace_id, model, dimension, on_progress, conn)
                generation = self.bump_generation(conn, workspace_id, model)
            self.replace(workspace_id, model, store, generation)
        return len(store)

    # --- writing -----------------------------------------------------------------------------

    def apply(
        self,
        workspace_id: str,
        model: str,
        generation: int,
        *,
        add: tuple[np.ndarray, np.ndarray] | None = None,
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
        if remove:
            loaded.store.remove(remove)
        if add is not None:
            loaded.store.add(*add)
        loaded.generation = generation
        self._save(workspace_id, model, loaded.store, generation)
        self._loaded.shrink()

    def replace(self, workspace_id: str, model: str, store: VectorStore, generation: int) -> None:
        """Install a rebuilt index as `generation` (used by `kb reindex`)."""
        self._save(workspace_id, model, store, generation)
        self._loaded.put((workspace_id, model), LoadedIndex(store, generation))

    def _save(self, workspace_id: str, model: str, store: VectorStore, generation: int) -> None:
        path = self._path(workspace_id, model, generation)
        store.save(path)
        for old in path.parent.glob(f"{_slug(model)}.g*.faiss"):
            if old != path:
                old_generation = old.name.rsplit(".g", 1)[-1].removesuffix(".faiss")
                if old_generation.isdigit() and int(old_generation) < generation:
                    old.unlink(missing_ok=True)

    def forget_workspace(self, workspace_id: str) -> None:
        for key in [k for k in self._loaded.keys() if k[0] == workspace_id]:
            self._loaded.pop(key)

    def memory_bytes(self) -> int:
        """Memory held by the loaded indexes (what the budget bounds)."""
        return self._loaded.memory_bytes()

    def loaded_keys(self) -> list[tuple[str, str]]:
        return self._loaded.keys()


__all__ = ["VectorIndexes", "FlatStore"]

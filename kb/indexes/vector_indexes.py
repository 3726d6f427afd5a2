"""The search indexes of each workspace and model: derived from stored embeddings, kept current.

The database is the truth. `vector_generations` counts changes to a workspace+model's vectors,
bumped in the same transaction as the chunk rows. Each process holds indexes in memory tagged
with the generation they reflect; the files (`IndexFileStore`) carry their generation too. So a
process (a server, `kb reindex`, `kb ingest`) that finds its copy behind loads the current files,
or rebuilds from the stored embeddings when no current file exists or a file is corrupt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

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
    ):
        """`store_kind` and `store_options` say how vectors are searched (`index.stores.create_store`)."""
        self.db = db
        self.generations = generations
        self.chunks = chunks
        self.files = files
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

    # --- generations -------------------------------------------------------------------------

    def bump_generation(self, tx: Tx, workspace_id: str, model: str) -> int:
        """Call in the transaction that changes the vectors; returns the new generation."""
        return self.generations.bump(tx, workspace_id, model)

    def current_generation(self, workspace_id: str, model: str) -> int:
        with self.db.read() as tx:
            return self.generations.current(tx, workspace_id, model)

    # --- reading -----------------------------------------------------------------------------

    def get(self, workspace_id: str, model: str, dimension: int):
        """The current vector store, loading or rebuilding it if this process's copy is behind."""
        return self.get_loaded(workspace_id, model, dimension).store

    def get_loaded(self, workspace_id: str, model: str, dimension: int) -> LoadedIndex:
        """The current indexes (vector store and lexical index) of a workspace and model."""
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
        vectors = self.files.read(workspace_id, model, generation, "faiss")
        lexical_bytes = self.files.read(workspace_id, model, generation, "bm25") if vectors is not None else None
        if vectors is not None and lexical_bytes is not None:
            try:
                store = store_from_bytes(vectors, self.store_kind, **self.store_options)
                lexical = LexicalIndex.from_bytes(lexical_bytes)
                if store.dimension == dimension and len(store) == len(lexical.index):
                    return LoadedIndex(store, generation, lexical)
                log.warning("index files of %s/%s generation %s do not match (dimension or size); rebuilding",
                            workspace_id, model, generation)
            except Exception as exc:
                log.warning("index files of %s/%s generation %s are unreadable (%s); rebuilding from stored embeddings",
                            workspace_id, model, generation, exc)
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
        self.files.write(workspace_id, model, generation, "faiss", vectors)
        self.files.write(workspace_id, model, generation, "bm25", lexical)
        self.files.remove_older(workspace_id, model, generation)

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

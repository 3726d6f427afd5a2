"""`kb reindex`: rebuild search indexes from stored embeddings, or re-chunk and re-embed documents."""

from __future__ import annotations

from collections.abc import Callable

from ..indexes import VectorIndexes
from ..storage import Database
from ..storage.repositories import ChunkStore, RagIndexStore
from .indexing import Indexer
from .models import ModelRegistry

Progress = Callable[[int], None]


class Reindex:
    def __init__(self, db: Database, rag_indexes: RagIndexStore, chunks: ChunkStore, vectors: VectorIndexes,
                 indexer: Indexer, models: ModelRegistry):
        self.db = db
        self.rag_indexes = rag_indexes
        self.chunks = chunks
        self.vectors = vectors
        self.indexer = indexer
        self.models = models

    def models_in_use(self, workspace_id: str) -> list[str]:
        with self.db.read() as tx:
            return self.rag_indexes.models_in_use(tx, workspace_id)

    def stored_vector_count(self, workspace_id: str, model: str) -> int:
        with self.db.read() as tx:
            return self.chunks.count(tx, workspace_id, model)

    def rebuild_index(self, workspace_id: str, model: str, on_progress: Progress | None = None) -> int:
        """Rebuild the workspace's search index for `model` from stored embeddings (the model is
        loaded only when nothing is stored, for its dimension)."""
        with self.db.read() as tx:
            dimension = self.chunks.stored_dimension(tx, workspace_id, model)
        if dimension is None:
            dimension = self.models.get(model).dimension
        return self.vectors.rebuild(workspace_id, model, dimension, on_progress)

    def indexes_to_re_embed(self, workspace_id: str, model: str, document_ids: list[str] | None) -> list[str]:
        with self.db.read() as tx:
            return self.rag_indexes.ids_for(tx, workspace_id, model, document_ids)

    def re_embed(self, rag_index_id: str) -> None:
        """Re-chunk and re-embed one document's index in this process (replacing its chunks)."""
        self.indexer.run(rag_index_id, reuse_embeddings=False)

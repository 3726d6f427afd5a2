"""Removing documents and RAG indexes: rows, full-text entries, vectors, files and their indexing
jobs (cancelled in the same transaction), in step."""

from __future__ import annotations

from contextlib import ExitStack

from ..indexes import VectorIndexes
from ..jobs import JobQueue
from ..storage import Database
from ..storage.interfaces import BlobStore, FullTextIndex
from ..storage.repositories import ChunkStore, DocumentStore, RagIndexStore
from .index_jobs import index_subject


class Removal:
    def __init__(self, db: Database, documents: DocumentStore, rag_indexes: RagIndexStore,
                 chunks: ChunkStore, fulltext: FullTextIndex, vectors: VectorIndexes, blobs: BlobStore,
                 queue: JobQueue):
        self.db = db
        self.documents = documents
        self.rag_indexes = rag_indexes
        self.chunks = chunks
        self.fulltext = fulltext
        self.vectors = vectors
        self.blobs = blobs
        self.queue = queue  # the jobs of removed indexes are cancelled with them

    def remove_documents(self, workspace_id: str, document_ids: list[str]) -> None:
        """Delete documents (and folders) with everything derived from them; retrieval stops finding them at once."""
        if not document_ids:
            return
        with self.db.read() as tx:
            models = self.rag_indexes.models_of(tx, workspace_id, document_ids)
        with ExitStack() as stack:
            for model in models:  # sorted: one lock order for every writer
                stack.enter_context(self.vectors.lock(workspace_id, model))
            with self.db.write() as tx:
                keys = self.chunks.keys_by_model_of_documents(tx, workspace_id, document_ids)
                indexes = self.rag_indexes.ids_of_documents(tx, workspace_id, document_ids)
                if indexes:  # queued ones end at once, running ones stop at their next check
                    self.queue.cancel_subject(tx, [index_subject(i) for i in indexes])
                self.chunks.delete_of_documents(tx, workspace_id, document_ids)
                self.rag_indexes.delete_of_documents(tx, workspace_id, document_ids)
                self.documents.delete(tx, workspace_id, document_ids)
                self.fulltext.remove(tx, workspace_id, document_ids)
                generations = {model: self.vectors.bump_generation(tx, workspace_id, model) for model in keys}
            for model, generation in generations.items():
                self.vectors.apply(workspace_id, model, generation, remove=keys[model])
        for document_id in document_ids:
            self.blobs.delete_document(workspace_id, document_id)

    def remove_rag_index(self, workspace_id: str, rag_index_id: str, model: str) -> None:
        """Delete one document's index for one model, with its chunks and vectors."""
        with self.vectors.lock(workspace_id, model):
            with self.db.write() as tx:
                keys = self.chunks.keys_of_indexes(tx, [rag_index_id])
                self.queue.cancel_subject(tx, [index_subject(rag_index_id)])
                self.chunks.delete_of_indexes(tx, [rag_index_id])
                self.rag_indexes.delete(tx, workspace_id, rag_index_id)
                generation = self.vectors.bump_generation(tx, workspace_id, model) if keys else None
            if generation is not None:
                self.vectors.apply(workspace_id, model, generation, remove=keys)

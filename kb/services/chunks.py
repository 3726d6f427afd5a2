"""A document's chunks as stored for a model (the chunk endpoints)."""

from __future__ import annotations

from ..errors import InvalidRequest, NotFound
from ..records import Chunk, Workspace
from ..storage import Database
from ..storage.repositories import ChunkStore, DocumentStore
from .cursors import decode_cursor, encode_cursor
from .models import ModelRegistry


class Chunks:
    def __init__(self, db: Database, repo: ChunkStore, documents: DocumentStore, models: ModelRegistry):
        self.db = db
        self.repo = repo
        self.documents = documents
        self.models = models

    def page(self, workspace: Workspace, document_id: str, model: str | None, *, page_size: int = 30,
             cursor: str | None = None) -> tuple[list[Chunk], str | None]:
        """The document's chunks for the model serving `model` (default: the workspace's default
        model), in document order, and the next cursor."""
        self._document(workspace, document_id)
        model = self.models.resolve(model or workspace.default_model).served
        if not 1 <= page_size <= 1000:
            raise InvalidRequest("page_size must be between 1 and 1000")
        offset = decode_cursor(cursor)
        with self.db.read() as tx:
            found = self.repo.page(tx, workspace.id, document_id, model, offset, page_size + 1)
        return found[:page_size], encode_cursor(offset + page_size) if len(found) > page_size else None

    def get(self, workspace: Workspace, document_id: str, chunk_id: str, model: str | None = None) -> Chunk:
        self._document(workspace, document_id)
        if model is not None:
            model = self.models.resolve(model).served
        with self.db.read() as tx:
            chunk = self.repo.get(tx, workspace.id, document_id, chunk_id, model)
        if chunk is None:
            raise NotFound(f"chunk {chunk_id!r} not found in document {document_id!r}")
        return chunk

    def _document(self, workspace: Workspace, document_id: str) -> None:
        with self.db.read() as tx:
            if self.documents.get(tx, workspace.id, document_id) is None:
                raise NotFound(f"document {document_id!r} not found in this workspace")

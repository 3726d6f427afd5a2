"""Removing documents and RAG indexes: rows, full-text entries, vectors and files, in step."""

from __future__ import annotations

from contextlib import ExitStack

from sqlalchemy import delete, select

from .blobs import BlobStore
from .db import Database, chunks, documents, rag_indexes
from .fulltext import FullTextIndex
from .vectors import VectorIndexes


def _models_of(db: Database, workspace_id: str, document_ids: list[str]) -> list[str]:
    with db.read() as conn:
        return sorted(
            set(
                conn.execute(
                    select(rag_indexes.c.model).where(
                        rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id.in_(document_ids)
                    )
                ).scalars()
            )
        )


def remove_documents(
    db: Database, vectors: VectorIndexes, blobs: BlobStore, workspace_id: str, document_ids: list[str]
) -> None:
    """Delete documents (and folders) with everything derived from them; retrieval stops finding them at once."""
    if not document_ids:
        return
    with ExitStack() as stack:
        for model in _models_of(db, workspace_id, document_ids):  # sorted: one lock order for every writer
            stack.enter_context(vectors.lock(workspace_id, model))
        with db.write() as conn:
            keys: dict[str, list[int]] = {}
            for row in conn.execute(
                select(chunks.c.model, chunks.c.key).where(
                    chunks.c.workspace_id == workspace_id, chunks.c.document_id.in_(document_ids)
                )
            ):
                keys.setdefault(row.model, []).append(row.key)
            conn.execute(delete(chunks).where(chunks.c.workspace_id == workspace_id, chunks.c.document_id.in_(document_ids)))
            conn.execute(
                delete(rag_indexes).where(
                    rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id.in_(document_ids)
                )
            )
            conn.execute(delete(documents).where(documents.c.workspace_id == workspace_id, documents.c.id.in_(document_ids)))
            for document_id in document_ids:
                FullTextIndex.remove(conn, workspace_id, document_id)
            generations = {model: vectors.bump_generation(conn, workspace_id, model) for model in keys}
        for model, generation in generations.items():
            vectors.apply(workspace_id, model, generation, remove=keys[model])
    for document_id in document_ids:
        blobs.delete_document(workspace_id, document_id)


def remove_rag_index(db: Database, vectors: VectorIndexes, workspace_id: str, rag_index_id: str, model: str) -> None:
    """Delete one document's index for one model, with its chunks and vectors."""
    with vectors.lock(workspace_id, model):
        with db.write() as conn:
            keys = list(conn.execute(select(chunks.c.key).where(chunks.c.rag_index_id == rag_index_id)).scalars())
            conn.execute(delete(chunks).where(chunks.c.rag_index_id == rag_index_id))
            conn.execute(
                delete(rag_indexes).where(rag_indexes.c.id == rag_index_id, rag_indexes.c.workspace_id == workspace_id)
            )
            generation = vectors.bump_generation(conn, workspace_id, model) if keys else None
        if generation is not None:
            vectors.apply(workspace_id, model, generation, remove=keys)

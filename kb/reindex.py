"""`kb reindex`: rebuild FAISS indexes from stored embeddings, or re-chunk and re-embed documents."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from .db import chunks, rag_indexes
from .service import KnowledgeBase

Progress = Callable[[int], None]


def models_in_use(kb: KnowledgeBase, workspace_id: str) -> list[str]:
    with kb.db.read() as conn:
        return sorted(
            conn.execute(
                select(rag_indexes.c.model).where(rag_indexes.c.workspace_id == workspace_id).distinct()
            ).scalars()
        )


def stored_vector_count(kb: KnowledgeBase, workspace_id: str, model: str) -> int:
    with kb.db.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(chunks)
                .where(chunks.c.workspace_id == workspace_id, chunks.c.model == model)
            ).scalar_one()
        )


def rebuild_index(kb: KnowledgeBase, workspace_id: str, model: str, on_progress: Progress | None = None) -> int:
    """Rebuild the workspace's FAISS index for `model` from stored embeddings (no model needed... but its dimension)."""
    dimension = _stored_dimension(kb, workspace_id, model)
    return kb.vectors.rebuild(workspace_id, model, dimension, on_progress)


def _stored_dimension(kb: KnowledgeBase, workspace_id: str, model: str) -> int:
    with kb.db.read() as conn:
        length = conn.execute(
            select(func.length(chunks.c.embedding))
            .where(chunks.c.workspace_id == workspace_id, chunks.c.model == model)
            .limit(1)
        ).scalar()
    if length:
        return int(length) // 4
    return kb.models.get(model).dimension


def indexes_to_re_embed(kb: KnowledgeBase, workspace_id: str, model: str, document_ids: list[str] | None) -> list[str]:
    query = select(rag_indexes.c.id).where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.model == model)
    if document_ids:
        query = query.where(rag_indexes.c.document_id.in_(document_ids))
    with kb.db.read() as conn:
        return list(conn.execute(query.order_by(rag_indexes.c.created_at)).scalars())


def re_embed(kb: KnowledgeBase, rag_index_id: str) -> None:
    """Re-chunk and re-embed one document's index in this process (replacing its chunks)."""
    kb.indexer.run(rag_index_id, reuse_embeddings=False)

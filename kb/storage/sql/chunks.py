"""Chunks: the text pieces of each RAG index with their embeddings and lexical terms.

Hot-path lookups go by their selective key (chunk key, chunk id, document id) with the workspace
checked after: SQLite would otherwise scan the workspace's index entries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict

from sqlalchemy import bindparam, func, select

from ...records import Chunk, ChunkHit, DocumentScope, NewChunk, StoredVectors
from ..interfaces import Tx
from ..schema import chunks, documents
from .scopes import in_scope

BATCH = 500

_PUBLIC = (chunks.c.id, chunks.c.document_id, chunks.c.model, chunks.c.ordinal, chunks.c.text, chunks.c.start,
           chunks.c.end, chunks.c.heading_path, chunks.c.page_start, chunks.c.page_end)


# Built once (retrieval runs it on every query). By key alone, so SQLite looks the keys up (rowid)
# instead of scanning the workspace's index entries (13 ms at 100,000 chunks); the workspace is
# checked on the rows.
_HITS = (select(chunks.c.key, chunks.c.workspace_id, documents.c.name.label("document_name"), *_PUBLIC)
         .join(documents, documents.c.id == chunks.c.document_id)
         .where(chunks.c.key.in_(bindparam("keys", expanding=True))))


def _chunk(row) -> Chunk:
    return Chunk(row.id, row.document_id, row.model, row.ordinal, row.text, row.start, row.end,
                 json.loads(row.heading_path), row.page_start, row.page_end)


class ChunkRepository:
    def page(self, tx: Tx, workspace_id: str, document_id: str, model: str, offset: int, limit: int) -> list[Chunk]:
        rows = tx.execute(
            select(*_PUBLIC)
            .where(chunks.c.workspace_id == workspace_id, chunks.c.document_id == document_id, chunks.c.model == model)
            .order_by(chunks.c.ordinal).offset(offset).limit(limit)
        ).fetchall()
        return [_chunk(r) for r in rows]

    def get(self, tx: Tx, workspace_id: str, document_id: str, chunk_id: str, model: str | None = None) -> Chunk | None:
        query = select(*_PUBLIC).where(
            chunks.c.id == chunk_id, chunks.c.document_id == document_id, chunks.c.workspace_id == workspace_id
        )
        if model is not None:
            query = query.where(chunks.c.model == model)
        row = tx.execute(query).first()
        return _chunk(row) if row else None

    def embeddings_for(self, tx: Tx, workspace_id: str, model: str, hashes: Sequence[str]) -> dict[str, bytes]:
        """Embeddings already stored in this workspace for these text hashes (never across workspaces)."""
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), BATCH):
            rows = tx.execute(
                select(chunks.c.text_hash, chunks.c.embedding).where(
                    chunks.c.workspace_id == workspace_id, chunks.c.model == model,
                    chunks.c.text_hash.in_(unique[start : start + BATCH]),
                )
            )
            found.update((row.text_hash, row.embedding) for row in rows)
        return found

    def keys_of_indexes(self, tx: Tx, index_ids: Sequence[str]) -> list[int]:
        return list(tx.execute(select(chunks.c.key).where(chunks.c.rag_index_id.in_(list(index_ids)))).scalars())

    def delete_of_indexes(self, tx: Tx, index_ids: Sequence[str]) -> None:
        tx.execute(chunks.delete().where(chunks.c.rag_index_id.in_(list(index_ids))))

    def insert(self, tx: Tx, new: Sequence[NewChunk]) -> list[int]:
        """Store chunks; returns their keys, in order."""
        if not new:
            return []
        rows = []
        for c in new:
            row = asdict(c)
            row["heading_path"] = json.dumps(list(c.heading_path), ensure_ascii=False)
            rows.append(row)
        return list(tx.execute(chunks.insert().returning(chunks.c.key, sort_by_parameter_order=True), rows).scalars())

    def keys_by_model_of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> dict[str, list[int]]:
        keys: dict[str, list[int]] = {}
        for row in tx.execute(
            select(chunks.c.model, chunks.c.key)
            .where(chunks.c.workspace_id == workspace_id, chunks.c.document_id.in_(list(document_ids)))
        ):
            keys.setdefault(row.model, []).append(row.key)
        return keys

    def delete_of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> None:
        tx.execute(chunks.delete().where(chunks.c.workspace_id == workspace_id, chunks.c.document_id.in_(list(document_ids))))

    def keys_of_documents(self, tx: Tx, document_ids: Sequence[str], model: str) -> Iterator[int]:
        """Keys of the documents' chunks for `model` (check first that the documents are the caller's)."""
        return tx.execute(
            select(chunks.c.key).where(chunks.c.document_id.in_(list(document_ids)), chunks.c.model == model)
        ).scalars()

    def keys_in_scope(self, tx: Tx, workspace_id: str, model: str, scope: DocumentScope) -> list[int]:
        """Keys of the `model` chunks of the workspace's documents in `scope`: one statement, the
        documents found by their indexes and joined to their chunks by document."""
        # By document (the documents are the workspace's): SQLite then reads the (document, model)
        # index instead of every chunk of the workspace.
        query = select(chunks.c.key).where(chunks.c.document_id.in_(in_scope(workspace_id, scope)), chunks.c.model == model)
        return list(tx.execute(query).scalars())

    def hits(self, tx: Tx, workspace_id: str, keys: Sequence[int]) -> dict[int, ChunkHit]:
        """The chunks of these keys that belong to the workspace, with their documents' names."""
        if not keys:
            return {}
        rows = tx.execute(_HITS, {"keys": [int(k) for k in keys]}).fetchall()
        return {row.key: ChunkHit(row.key, _chunk(row), row.document_name) for row in rows if row.workspace_id == workspace_id}

    def neighbours(self, tx: Tx, workspace_id: str, chunk_ids: Sequence[str], distance: int) -> dict[str, list[Chunk]]:
        """For each chunk, the chunks of its index up to `distance` positions away, nearest first
        (previous before next at equal distance)."""
        own = {
            row.id: row
            for row in tx.execute(
                select(chunks.c.id, chunks.c.rag_index_id, chunks.c.ordinal, chunks.c.workspace_id)
                .where(chunks.c.id.in_(list(chunk_ids)))  # unique index; workspace checked below
            )
            if row.workspace_id == workspace_id
        }
        result: dict[str, list[Chunk]] = {}
        for chunk_id in chunk_ids:
            row = own[chunk_id]
            around = tx.execute(
                select(*_PUBLIC).where(
                    chunks.c.rag_index_id == row.rag_index_id,
                    chunks.c.ordinal.between(row.ordinal - distance, row.ordinal + distance),
                    chunks.c.ordinal != row.ordinal,
                )
            ).fetchall()
            result[chunk_id] = sorted((_chunk(r) for r in around), key=lambda c: (abs(c.ordinal - row.ordinal), c.ordinal))
        return result

    def stored_vectors(self, tx: Tx, workspace_id: str, model: str, batch: int = 4096) -> Iterator[StoredVectors]:
        """Every stored chunk of the workspace for `model`, in key order, `batch` at a time."""
        result = tx.execute(
            select(chunks.c.key, chunks.c.embedding, chunks.c.lexical_terms, chunks.c.language, chunks.c.heading_path,
                   documents.c.name.label("document_name"))
            .join(documents, documents.c.id == chunks.c.document_id)
            .where(chunks.c.workspace_id == workspace_id, chunks.c.model == model)
            .order_by(chunks.c.key)
        )
        while rows := result.fetchmany(batch):
            yield StoredVectors([r.key for r in rows], [r.embedding for r in rows], [r.lexical_terms for r in rows],
                                [r.language for r in rows],
                                [r.document_name for r in rows], [json.loads(r.heading_path) for r in rows])

    def count(self, tx: Tx, workspace_id: str, model: str) -> int:
        return int(tx.execute(
            select(func.count()).select_from(chunks).where(chunks.c.workspace_id == workspace_id, chunks.c.model == model)
        ).scalar_one())

    def stored_dimension(self, tx: Tx, workspace_id: str, model: str) -> int | None:
        length = tx.execute(
            select(func.length(chunks.c.embedding))
            .where(chunks.c.workspace_id == workspace_id, chunks.c.model == model).limit(1)
        ).scalar()
        return int(length) // 4 if length else None

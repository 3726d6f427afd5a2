"""RAG indexes: one per document and embedding model, with status, progress and quota usage."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, select, update

from ...records import RagIndex
from ..interfaces import Tx
from ..schema import documents, rag_indexes

BATCH = 500  # ids per IN (...) list


def _index(row) -> RagIndex:
    return RagIndex(row.id, row.document_id, row.model, row.status, row.progress_percentage, row.used_bytes, row.error,
                    row.chunks_embedded, row.chunks_reused, row.workspace_id, tuple(row.requested_names or ()))


def _batches(ids: Sequence[str]):
    for start in range(0, len(ids), BATCH):
        yield list(ids[start : start + BATCH])


class RagIndexRepository:
    def insert(self, tx: Tx, workspace_id: str, index: RagIndex, now: float) -> None:
        tx.execute(
            rag_indexes.insert().values(
                id=index.id, workspace_id=workspace_id, document_id=index.document_id, model=index.model,
                status=index.status, progress_percentage=0.0, used_bytes=index.used_bytes, error=index.error,
                chunks_embedded=0, chunks_reused=0, requested_names=list(index.requested_names), created_at=now,
                updated_at=now,
            )
        )

    def set_requested_names(self, tx: Tx, index_id: str, names: Sequence[str]) -> None:
        tx.execute(update(rag_indexes).where(rag_indexes.c.id == index_id).values(requested_names=list(names)))

    def restart(self, tx: Tx, index_id: str, status: str, used_bytes: int, error: str | None, now: float) -> None:
        tx.execute(
            update(rag_indexes).where(rag_indexes.c.id == index_id)
            .values(status=status, progress_percentage=0.0, used_bytes=used_bytes, error=error, updated_at=now)
        )

    def find(self, tx: Tx, workspace_id: str, document_id: str, model: str) -> RagIndex | None:
        row = tx.execute(
            select(rag_indexes).where(
                rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id == document_id,
                rag_indexes.c.model == model,
            )
        ).first()
        return _index(row) if row else None

    def of_document(self, tx: Tx, workspace_id: str, document_id: str) -> list[RagIndex]:
        rows = tx.execute(
            select(rag_indexes)
            .where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id == document_id)
            .order_by(rag_indexes.c.created_at)
        ).fetchall()
        return [_index(r) for r in rows]

    def of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> dict[str, list[RagIndex]]:
        """Each document's indexes, oldest first (the dashboard's page of documents), 500 documents a query."""
        found: dict[str, list[RagIndex]] = {d: [] for d in document_ids}
        for ids in _batches(list(dict.fromkeys(document_ids))):
            rows = tx.execute(
                select(rag_indexes)
                .where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id.in_(ids))
                .order_by(rag_indexes.c.created_at)
            )
            for row in rows:
                found[row.document_id].append(_index(row))
        return found

    def first_statuses(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> dict[str, str]:
        """The status of each document's first index (the one its upload created), 500 documents a query."""
        statuses: dict[str, str] = {}
        for ids in _batches(document_ids):
            rows = tx.execute(
                select(rag_indexes.c.document_id, rag_indexes.c.status)
                .where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id.in_(ids))
                .order_by(rag_indexes.c.created_at.desc())  # the first one is written last
            )
            statuses.update((row.document_id, row.status) for row in rows)
        return statuses

    def load(self, tx: Tx, index_ids: Sequence[str]) -> dict[str, RagIndex]:
        """The indexes that still exist, by id (one query per 500)."""
        found: dict[str, RagIndex] = {}
        for ids in _batches(index_ids):
            found.update((row.id, _index(row)) for row in tx.execute(select(rag_indexes).where(rag_indexes.c.id.in_(ids))))
        return found

    def set_state(self, tx: Tx, index_ids: Sequence[str], values: dict) -> None:
        tx.execute(update(rag_indexes).where(rag_indexes.c.id.in_(list(index_ids))).values(**values))

    def mark_succeeded(self, tx: Tx, counts: dict[str, tuple[int, int]], now: float) -> None:
        """index id -> (chunks embedded, chunks reused) of indexes just published."""
        tx.execute(
            rag_indexes.update()
            .where(rag_indexes.c.id == bindparam("index_id"))
            .values(status="succeeded", progress_percentage=100.0, error=None, updated_at=now,
                    chunks_embedded=bindparam("embedded"), chunks_reused=bindparam("reused")),
            [{"index_id": i, "embedded": e, "reused": r} for i, (e, r) in counts.items()],
        )

    def alive(self, tx: Tx, index_ids: Sequence[str]) -> set[str]:
        """Those of the indexes whose index and document both still exist, their rows locked for the
        rest of `tx` (PostgreSQL; SQLite's writer lock already excludes others): two processes
        publishing one index (one of them wrongly thought dead) take turns, and the second replaces
        the first's chunks instead of adding beside them."""
        return set(tx.execute(
            select(rag_indexes.c.id).join(documents, documents.c.id == rag_indexes.c.document_id)
            .where(rag_indexes.c.id.in_(list(index_ids))).order_by(rag_indexes.c.id)
            .with_for_update(of=rag_indexes)
        ).scalars())

    def models_of(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> list[str]:
        return sorted(set(tx.execute(
            select(rag_indexes.c.model)
            .where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id.in_(list(document_ids)))
        ).scalars()))

    def ids_of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> list[str]:
        return list(tx.execute(
            select(rag_indexes.c.id)
            .where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id.in_(list(document_ids)))
        ).scalars())

    def models_in_use(self, tx: Tx, workspace_id: str) -> list[str]:
        return sorted(tx.execute(
            select(rag_indexes.c.model).where(rag_indexes.c.workspace_id == workspace_id).distinct()
        ).scalars())

    def ids_for(self, tx: Tx, workspace_id: str, model: str, document_ids: Sequence[str] | None) -> list[str]:
        query = select(rag_indexes.c.id).where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.model == model)
        if document_ids:
            query = query.where(rag_indexes.c.document_id.in_(list(document_ids)))
        return list(tx.execute(query.order_by(rag_indexes.c.created_at)).scalars())

    def delete(self, tx: Tx, workspace_id: str, index_id: str) -> None:
        tx.execute(rag_indexes.delete().where(rag_indexes.c.id == index_id, rag_indexes.c.workspace_id == workspace_id))

    def delete_of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> None:
        tx.execute(rag_indexes.delete().where(
            rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id.in_(list(document_ids))
        ))

    def used_bytes(self, tx: Tx, workspace_id: str, statuses: Sequence[str], excluding: str | None = None) -> int:
        query = select(func.coalesce(func.sum(rag_indexes.c.used_bytes), 0)).where(
            rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.status.in_(list(statuses))
        )
        if excluding:
            query = query.where(rag_indexes.c.id != excluding)
        return int(tx.execute(query).scalar_one())

    def used_bytes_by_model(self, tx: Tx, workspace_id: str, statuses: Sequence[str]) -> dict[str, int]:
        rows = tx.execute(
            select(rag_indexes.c.model, func.sum(rag_indexes.c.used_bytes))
            .where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.status.in_(list(statuses)))
            .group_by(rag_indexes.c.model)
        ).fetchall()
        return {model: int(total or 0) for model, total in rows}

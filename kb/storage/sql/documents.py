"""Documents and folders (a folder is a document row of type "folder"), scoped by workspace."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import func, literal, select, update

from ...records import Document, DocumentScope, FolderCounts, ListQuery, StorageUsage
from ..interfaces import Tx
from ..repositories import MAX_FOLDER_DEPTH
from ..schema import documents
from .scopes import in_scope, in_workspace

SORT_COLUMNS = {
    "name": documents.c.name,
    "created_at": documents.c.created_at,
    "updated_at": documents.c.updated_at,
    "size": documents.c.size_bytes,
}


def _document(row) -> Document:
    return Document(
        id=row.id, workspace_id=row.workspace_id, name=row.name, type=row.type, format=row.format,
        size_bytes=row.size_bytes, char_count=row.char_count, content_hash=row.content_hash,
        created_at=row.created_at, updated_at=row.updated_at, filename=row.filename, url=row.url,
        content_type=row.content_type, parent_folder_id=row.parent_folder_id,
        metadata=json.loads(row.metadata_json or "{}"),
    )


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class DocumentRepository:
    def insert(self, tx: Tx, doc: Document) -> None:
        tx.execute(
            documents.insert().values(
                id=doc.id, workspace_id=doc.workspace_id, name=doc.name, type=doc.type, format=doc.format,
                filename=doc.filename, url=doc.url, content_type=doc.content_type, parent_folder_id=doc.parent_folder_id,
                size_bytes=doc.size_bytes, char_count=doc.char_count, content_hash=doc.content_hash,
                metadata_json=json.dumps(doc.metadata, ensure_ascii=False), created_at=doc.created_at,
                updated_at=doc.updated_at,
            )
        )

    def get(self, tx: Tx, workspace_id: str, document_id: str) -> Document | None:
        row = tx.execute(
            select(documents).where(documents.c.id == document_id, documents.c.workspace_id == workspace_id)
        ).first()
        return _document(row) if row else None

    def get_many(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> list[Document]:
        if not document_ids:
            return []
        rows = tx.execute(
            select(documents).where(documents.c.workspace_id == workspace_id, documents.c.id.in_(list(document_ids)))
        ).fetchall()
        return [_document(r) for r in rows]

    def name_of(self, tx: Tx, document_id: str) -> str | None:
        return tx.execute(select(documents.c.name).where(documents.c.id == document_id)).scalar()

    def types_of(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> dict[str, str]:
        """id -> type of those of `document_ids` that exist in the workspace."""
        if not document_ids:
            return {}
        return dict(tx.execute(
            select(documents.c.id, documents.c.type)
            .where(documents.c.id.in_(list(document_ids)), in_workspace(workspace_id))
        ).fetchall())

    def any_in_scope(self, tx: Tx, workspace_id: str, scope: DocumentScope) -> bool:
        """Whether any document of the workspace is in `scope`."""
        return tx.execute(in_scope(workspace_id, scope).limit(1)).first() is not None

    def names_of(self, tx: Tx, workspace_id: str, document_ids: Sequence[str], *, folders: bool = True) -> dict[str, str]:
        if not document_ids:
            return {}
        query = select(documents.c.id, documents.c.name).where(
            documents.c.workspace_id == workspace_id, documents.c.id.in_(list(document_ids))
        )
        if not folders:
            query = query.where(documents.c.type != "folder")
        return dict(tx.execute(query).fetchall())

    def update_content(self, tx: Tx, workspace_id: str, document_id: str, values: dict) -> None:
        """New content fields (format, sizes, hash, metadata, source) of a document."""
        values = dict(values)
        if "metadata" in values:
            values["metadata_json"] = json.dumps(values.pop("metadata"), ensure_ascii=False)
        tx.execute(
            update(documents).where(documents.c.id == document_id, documents.c.workspace_id == workspace_id)
            .values(**values)
        )

    def rename(self, tx: Tx, workspace_id: str, document_id: str, name: str, now: float) -> bool:
        return tx.execute(
            update(documents).where(documents.c.id == document_id, documents.c.workspace_id == workspace_id)
            .values(name=name, updated_at=now)
        ).rowcount > 0

    def move(self, tx: Tx, workspace_id: str, document_ids: Sequence[str], folder_id: str | None, now: float) -> None:
        tx.execute(
            update(documents).where(documents.c.workspace_id == workspace_id, documents.c.id.in_(list(document_ids)))
            .values(parent_folder_id=folder_id, updated_at=now)
        )

    def delete(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> None:
        tx.execute(documents.delete().where(documents.c.workspace_id == workspace_id, documents.c.id.in_(list(document_ids))))

    def page(self, tx: Tx, workspace_id: str, q: ListQuery, offset: int, only_ids: Sequence[str] | None = None) -> list[Document]:
        """Up to `q.page_size + 1` documents from `offset`, filtered and sorted as asked."""
        query = select(documents).where(documents.c.workspace_id == workspace_id)
        if q.search:
            query = query.where(documents.c.name.ilike(escape_like(q.search) + "%", escape="\\"))
        if q.types:
            query = query.where(documents.c.type.in_(q.types))
        if q.formats:
            query = query.where(documents.c.format.in_(q.formats))
        if q.parent_folder_id:
            query = query.where(documents.c.parent_folder_id == q.parent_folder_id)
        elif q.top_level_only:
            query = query.where(documents.c.parent_folder_id.is_(None))
        if only_ids is not None:
            query = query.where(documents.c.id.in_(list(only_ids)))
        column = SORT_COLUMNS[q.sort_by]
        order = [column.asc() if q.sort_direction == "asc" else column.desc()]
        order.append(documents.c.id.asc() if q.sort_direction == "asc" else documents.c.id.desc())
        if q.folders_first:
            order.insert(0, (documents.c.type != "folder").asc())
        rows = tx.execute(query.order_by(*order).offset(offset).limit(q.page_size + 1)).fetchall()
        return [_document(r) for r in rows]

    def ids_of_types(self, tx: Tx, workspace_id: str, types: Sequence[str]) -> list[str]:
        return list(tx.execute(
            select(documents.c.id).where(documents.c.workspace_id == workspace_id, documents.c.type.in_(list(types)))
        ).scalars())

    def descendant_ids(self, tx: Tx, workspace_id: str, folder_id: str) -> list[str]:
        """Every document and folder below `folder_id` (not itself), breadth first."""
        found: list[str] = []
        frontier = [folder_id]
        while frontier:
            children = tx.execute(
                select(documents.c.id, documents.c.type).where(
                    documents.c.workspace_id == workspace_id, documents.c.parent_folder_id.in_(frontier)
                )
            ).fetchall()
            found += [c.id for c in children]
            frontier = [c.id for c in children if c.type == "folder"]
        return found

    def ancestors(self, tx: Tx, workspace_id: str, folder_ids: Sequence[str]) -> dict[str, tuple[str, str, str | None]]:
        """id -> (id, name, parent id) of the given folders and every folder above them: one query."""
        wanted = [f for f in dict.fromkeys(folder_ids) if f]
        if not wanted:
            return {}
        base = select(documents.c.id, documents.c.name, documents.c.parent_folder_id, literal(1).label("depth")).where(
            documents.c.workspace_id == workspace_id, documents.c.id.in_(wanted)
        )
        up = base.cte("up", recursive=True)
        step = select(documents.c.id, documents.c.name, documents.c.parent_folder_id, (up.c.depth + 1).label("depth")).where(
            documents.c.workspace_id == workspace_id, documents.c.id == up.c.parent_folder_id,
            up.c.depth < MAX_FOLDER_DEPTH,
        )
        up = up.union(step)
        rows = tx.execute(select(up.c.id, up.c.name, up.c.parent_folder_id).distinct()).fetchall()
        return {row.id: (row.id, row.name, row.parent_folder_id) for row in rows}

    def folder_counts(self, tx: Tx, workspace_id: str, folder_ids: Sequence[str]) -> dict[str, FolderCounts]:
        """Direct children and documents anywhere below, of each folder: two queries for all of them."""
        wanted = list(dict.fromkeys(folder_ids))
        if not wanted:
            return {}
        children = dict(tx.execute(
            select(documents.c.parent_folder_id, func.count())
            .where(documents.c.workspace_id == workspace_id, documents.c.parent_folder_id.in_(wanted))
            .group_by(documents.c.parent_folder_id)
        ).fetchall())
        top = select(documents.c.parent_folder_id.label("root"), documents.c.id, documents.c.type, literal(1).label("depth")).where(
            documents.c.workspace_id == workspace_id, documents.c.parent_folder_id.in_(wanted)
        )
        below = top.cte("below", recursive=True)
        step = select(below.c.root, documents.c.id, documents.c.type, (below.c.depth + 1).label("depth")).where(
            documents.c.workspace_id == workspace_id, documents.c.parent_folder_id == below.c.id,
            below.c.type == "folder", below.c.depth < MAX_FOLDER_DEPTH,
        )
        below = below.union_all(step)
        docs = dict(tx.execute(
            select(below.c.root, func.count()).where(below.c.type != "folder").group_by(below.c.root)
        ).fetchall())
        return {f: FolderCounts(int(children.get(f, 0)), int(docs.get(f, 0))) for f in wanted}

    def storage_usage(self, tx: Tx, workspace_id: str) -> StorageUsage:
        kb_bytes, kb_chars, count = tx.execute(
            select(func.coalesce(func.sum(documents.c.size_bytes), 0), func.coalesce(func.sum(documents.c.char_count), 0),
                   func.count())
            .where(documents.c.workspace_id == workspace_id, documents.c.type != "folder")
        ).one()
        return StorageUsage(int(kb_bytes), int(kb_chars), int(count))

    def char_count_sum(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> int:
        if not document_ids:
            return 0
        return int(tx.execute(
            select(func.coalesce(func.sum(documents.c.char_count), 0))
            .where(documents.c.workspace_id == workspace_id, documents.c.id.in_(list(document_ids)))
        ).scalar_one())


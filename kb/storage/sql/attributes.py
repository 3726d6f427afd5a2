"""Document attributes, and metadata filters compiled to SQL over `documents` and `document_attributes`.

The automatic attributes that are fields of a document (`source_type`, `format`, `file_name`,
`url`, `created_at`, `updated_at`) compile to its columns; every other key to a lookup of
`document_attributes` by (workspace, key, value), which its two indexes cover. Every statement is
scoped by workspace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from ...attributes import Value
from ...filters import Comparison, Filter
from ..interfaces import Tx
from ..schema import document_attributes as attributes
from ..schema import documents

# Automatic attributes that are columns of `documents` (NULL where the document has none).
COLUMNS: dict[str, ColumnElement] = {
    "source_type": documents.c.type,
    "format": documents.c.format,
    "file_name": case((documents.c.type == "file", documents.c.filename)),
    "url": case((documents.c.type == "url", documents.c.url)),
    "created_at": documents.c.created_at,
    "updated_at": documents.c.updated_at,
}
BATCH = 500


def _scalar(value: Value) -> str | float | None:
    return value.text if value.kind == "string" else value.number


def _stored_column(kind: str) -> ColumnElement:
    return attributes.c.value_text if kind == "string" else attributes.c.value_number


def _ordered(column: ColumnElement, op: str, value: float) -> ColumnElement:
    return {"gt": column > value, "gte": column >= value, "lt": column < value, "lte": column <= value}[op]


def _column_condition(column: ColumnElement, f: Comparison) -> ColumnElement:
    scalars = [_scalar(v) for v in f.values]
    if f.op in ("eq", "in"):
        return column.in_(scalars)
    if f.op in ("ne", "nin"):
        return or_(column.is_(None), column.not_in(scalars))
    return _ordered(column, f.op, scalars[0])


def _stored_condition(workspace_id: str, f: Comparison) -> ColumnElement:
    """Documents whose stored attribute `f.key` passes (the negations: documents that do not pass
    the positive comparison, with or without the attribute)."""
    if f.op in ("eq", "ne", "in", "nin"):
        by_kind: dict[str, list] = {}
        for value in f.values:
            by_kind.setdefault(value.kind, []).append(_scalar(value))
        test = or_(*(and_(attributes.c.kind == kind, _stored_column(kind).in_(items)) for kind, items in by_kind.items()))
    else:
        value = f.values[0]
        test = and_(attributes.c.kind == value.kind, _ordered(attributes.c.value_number, f.op, value.number))
    having = select(attributes.c.document_id).where(
        attributes.c.workspace_id == workspace_id, attributes.c.key == f.key, test
    )
    return documents.c.id.not_in(having) if f.op in ("ne", "nin") else documents.c.id.in_(having)


def compile_filter(workspace_id: str, f: Filter) -> ColumnElement:
    """A condition on `documents` rows: the documents that pass `f`."""
    if isinstance(f, Comparison):
        column = COLUMNS.get(f.key)
        return _column_condition(column, f) if column is not None else _stored_condition(workspace_id, f)
    parts = [compile_filter(workspace_id, part) for part in f.filters]
    return and_(*parts) if f.op == "and" else or_(*parts)


class AttributeRepository:
    def replace(self, tx: Tx, workspace_id: str, document_id: str, values: Mapping[str, Value], *,
                automatic: bool) -> None:
        """The document's client attributes (or, `automatic`, kb's stored ones) become `values`."""
        tx.execute(attributes.delete().where(
            attributes.c.document_id == document_id, attributes.c.workspace_id == workspace_id,
            attributes.c.automatic == automatic,
        ))
        if values:
            tx.execute(attributes.insert(), [
                dict(document_id=document_id, key=key, workspace_id=workspace_id, kind=v.kind, value_text=v.text,
                     value_number=v.number, automatic=automatic)
                for key, v in values.items()
            ])

    def add(self, tx: Tx, workspace_id: str, document_id: str, key: str, value: Value) -> None:
        """Set one automatic attribute (replacing the document's value of `key`)."""
        tx.execute(attributes.delete().where(attributes.c.document_id == document_id, attributes.c.key == key,
                                             attributes.c.workspace_id == workspace_id))
        tx.execute(attributes.insert().values(document_id=document_id, key=key, workspace_id=workspace_id,
                                              kind=value.kind, value_text=value.text, value_number=value.number,
                                              automatic=True))

    def of_documents(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> dict[str, dict[str, Value]]:
        """document id -> its stored attributes (client and automatic), by key."""
        found: dict[str, dict[str, Value]] = {d: {} for d in document_ids}
        ids = list(dict.fromkeys(document_ids))
        for start in range(0, len(ids), BATCH):
            for row in tx.execute(
                select(attributes.c.document_id, attributes.c.key, attributes.c.kind, attributes.c.value_text,
                       attributes.c.value_number)
                .where(attributes.c.workspace_id == workspace_id, attributes.c.document_id.in_(ids[start:start + BATCH]))
                .order_by(attributes.c.document_id, attributes.c.key)
            ):
                found[row.document_id][row.key] = Value(row.kind, row.value_text, row.value_number)
        return found

    def matching(self, tx: Tx, workspace_id: str, f: Filter | None, within: Sequence[str] | None = None) -> list[str]:
        """Ids of the workspace's documents (not folders) that pass `f` (all, when None), among
        `within` when given."""
        query = select(documents.c.id).where(documents.c.workspace_id == workspace_id, documents.c.type != "folder")
        if f is not None:
            query = query.where(compile_filter(workspace_id, f))
        if within is not None:
            ids = list(dict.fromkeys(within))
            if not ids:
                return []
            found: list[str] = []
            for start in range(0, len(ids), BATCH):
                found += tx.execute(query.where(documents.c.id.in_(ids[start:start + BATCH]))).scalars()
            return found
        return list(tx.execute(query).scalars())

    def count_documents(self, tx: Tx, workspace_id: str) -> int:
        """Documents (not folders) of the workspace."""
        return int(tx.execute(
            select(func.count()).select_from(documents)
            .where(documents.c.workspace_id == workspace_id, documents.c.type != "folder")
        ).scalar_one())

    def lacking(self, tx: Tx, key: str, formats: Sequence[str]) -> list[tuple[str, str]]:
        """(workspace id, document id) of documents of these formats without the attribute `key`."""
        has = select(attributes.c.document_id).where(attributes.c.key == key)
        return [(r.workspace_id, r.id) for r in tx.execute(
            select(documents.c.workspace_id, documents.c.id)
            .where(documents.c.format.in_(list(formats)), documents.c.type != "folder", documents.c.id.not_in(has))
        )]


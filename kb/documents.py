"""Documents of a workspace: records, stored bytes and parsed structure. Every query is scoped by workspace."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection, Row

from ingest import ParsedDocument
from ingest.types import Block

from .blobs import BlobStore
from .db import Database, chunks, documents, now, rag_indexes
from .errors import InvalidRequest, NotFound

ORIGINAL = "original"
TEXT = "text.txt"
STRUCTURE = "structure.json"


@dataclass(frozen=True)
class Document:
    id: str
    workspace_id: str
    name: str
    type: str  # "file" | "url" | "text"
    format: str
    size_bytes: int
    char_count: int
    content_hash: str
    created_at: float
    updated_at: float
    filename: str | None = None
    url: str | None = None
    content_type: str | None = None
    parent_folder_id: str | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def is_folder(self) -> bool:
        return self.type == "folder"

    @classmethod
    def from_row(cls, row: Row) -> "Document":
        return cls(
            id=row.id,
            workspace_id=row.workspace_id,
            name=row.name,
            type=row.type,
            format=row.format,
            size_bytes=row.size_bytes,
            char_count=row.char_count,
            content_hash=row.content_hash,
            created_at=row.created_at,
            updated_at=row.updated_at,
            filename=row.filename,
            url=row.url,
            content_type=row.content_type,
            parent_folder_id=row.parent_folder_id,
            metadata=json.loads(row.metadata_json or "{}"),
        )


@dataclass(frozen=True)
class DocumentPage:
    documents: list[Document]
    next_cursor: str | None
    has_more: bool


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- stored structure ----------------------------------------------------------------------------


def store_parsed(blobs: BlobStore, workspace_id: str, document_id: str, original: bytes, parsed: ParsedDocument) -> None:
    """Keep the original bytes, the extracted text and its structure: indexing re-reads them later."""
    structure = {
        "format": parsed.format,
        "metadata": parsed.metadata,
        "pages": parsed.pages,
        "blocks": [[b.start, b.end, b.kind, list(b.heading_path), b.page] for b in parsed.blocks],
    }
    blobs.put_many(workspace_id, document_id, {
        ORIGINAL: original,
        TEXT: parsed.text.encode("utf-8"),
        STRUCTURE: json.dumps(structure, ensure_ascii=False).encode("utf-8"),
    })


def load_parsed(blobs: BlobStore, workspace_id: str, document_id: str) -> ParsedDocument:
    text = blobs.get(workspace_id, document_id, TEXT).decode("utf-8")
    structure = json.loads(blobs.get(workspace_id, document_id, STRUCTURE))
    blocks = [Block(start, end, kind, tuple(path), page) for start, end, kind, path, page in structure["blocks"]]
    return ParsedDocument(text, blocks, structure["format"], structure["metadata"], structure["pages"])


def load_text(blobs: BlobStore, workspace_id: str, document_id: str) -> str:
    return blobs.get(workspace_id, document_id, TEXT).decode("utf-8")


# --- records -------------------------------------------------------------------------------------


def insert_document(conn: Connection, doc: Document) -> None:
    conn.execute(
        documents.insert().values(
            id=doc.id,
            workspace_id=doc.workspace_id,
            name=doc.name,
            type=doc.type,
            format=doc.format,
            filename=doc.filename,
            url=doc.url,
            content_type=doc.content_type,
            parent_folder_id=doc.parent_folder_id,
            size_bytes=doc.size_bytes,
            char_count=doc.char_count,
            content_hash=doc.content_hash,
            metadata_json=json.dumps(doc.metadata, ensure_ascii=False),
            created_at=doc.created_at,
            updated_at=doc.updated_at,
        )
    )


def get_document(db: Database, workspace_id: str, document_id: str) -> Document:
    with db.read() as conn:
        row = conn.execute(
            select(documents).where(documents.c.id == document_id, documents.c.workspace_id == workspace_id)
        ).first()
    if row is None:
        raise NotFound(f"document {document_id!r} not found in this workspace")
    return Document.from_row(row)


def rename_document(db: Database, workspace_id: str, document_id: str, name: str) -> Document:
    name = name.strip()
    if not name:
        raise InvalidRequest("name must not be empty")
    with db.write() as conn:
        result = conn.execute(
            update(documents)
            .where(documents.c.id == document_id, documents.c.workspace_id == workspace_id)
            .values(name=name, updated_at=now())
        )
    if result.rowcount == 0:
        raise NotFound(f"document {document_id!r} not found in this workspace")
    return get_document(db, workspace_id, document_id)


SORT_COLUMNS = {
    "name": documents.c.name,
    "created_at": documents.c.created_at,
    "updated_at": documents.c.updated_at,
    "size": documents.c.size_bytes,
}
DOCUMENT_TYPES = ("file", "url", "text", "folder")


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["offset"])
    except Exception as exc:
        raise InvalidRequest("invalid cursor: pass the next_cursor of the previous page unchanged") from exc
    if offset < 0:
        raise InvalidRequest("invalid cursor: pass the next_cursor of the previous page unchanged")
    return offset


@dataclass(frozen=True)
class ListQuery:
    page_size: int = 30
    cursor: str | None = None
    search: str | None = None  # name prefix, case-insensitive
    types: tuple[str, ...] = ()
    parent_folder_id: str | None = None  # direct children only
    ancestor_folder_id: str | None = None  # anywhere below
    sort_by: str = "created_at"
    sort_direction: str = "desc"
    folders_first: bool = False


def list_documents(db: Database, workspace_id: str, q: ListQuery = ListQuery()) -> DocumentPage:
    """A page of the workspace's documents and folders, filtered and sorted as asked."""
    if not 1 <= q.page_size <= 100:
        raise InvalidRequest("page_size must be between 1 and 100")
    if q.sort_by not in SORT_COLUMNS:
        raise InvalidRequest(f"sort_by must be one of {', '.join(SORT_COLUMNS)}")
    if q.sort_direction not in ("asc", "desc"):
        raise InvalidRequest("sort_direction must be asc or desc")
    unknown = [t for t in q.types if t not in DOCUMENT_TYPES]
    if unknown:
        raise InvalidRequest(f"unknown document type {unknown[0]!r}; types are {', '.join(DOCUMENT_TYPES)}")
    offset = decode_cursor(q.cursor)
    query = select(documents).where(documents.c.workspace_id == workspace_id)
    if q.search:
        escaped = q.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(documents.c.name.ilike(escaped + "%", escape="\\"))
    if q.types:
        query = query.where(documents.c.type.in_(q.types))
    if q.parent_folder_id:
        query = query.where(documents.c.parent_folder_id == q.parent_folder_id)
    if q.ancestor_folder_id:
        with db.read() as conn:
            below = descendant_ids(conn, workspace_id, q.ancestor_folder_id)
        query = query.where(documents.c.id.in_(below))
    column = SORT_COLUMNS[q.sort_by]
    order = [column.asc() if q.sort_direction == "asc" else column.desc()]
    order.append(documents.c.id.asc() if q.sort_direction == "asc" else documents.c.id.desc())
    if q.folders_first:
        order.insert(0, (documents.c.type != "folder").asc())
    query = query.order_by(*order).offset(offset).limit(q.page_size + 1)
    with db.read() as conn:
        rows = conn.execute(query).fetchall()
    has_more = len(rows) > q.page_size
    page = [Document.from_row(r) for r in rows[: q.page_size]]
    return DocumentPage(page, encode_cursor(offset + q.page_size) if has_more else None, has_more)


def descendant_ids(conn: Connection, workspace_id: str, folder_id: str) -> list[str]:
    """Every document and folder below `folder_id` (not itself), breadth first."""
    found: list[str] = []
    frontier = [folder_id]
    while frontier:
        children = conn.execute(
            select(documents.c.id, documents.c.type).where(
                documents.c.workspace_id == workspace_id, documents.c.parent_folder_id.in_(frontier)
            )
        ).fetchall()
        found += [c.id for c in children]
        frontier = [c.id for c in children if c.type == "folder"]
    return found


def folder_path(conn: Connection, workspace_id: str, parent_folder_id: str | None) -> list[tuple[str, str]]:
    """(id, name) of the folders from the root down to `parent_folder_id`."""
    path: list[tuple[str, str]] = []
    current = parent_folder_id
    while current and len(path) < 100:
        row = conn.execute(
            select(documents.c.id, documents.c.name, documents.c.parent_folder_id).where(
                documents.c.workspace_id == workspace_id, documents.c.id == current
            )
        ).first()
        if row is None:
            break
        path.append((row.id, row.name))
        current = row.parent_folder_id
    return list(reversed(path))


def folder_counts(conn: Connection, workspace_id: str, folder_id: str) -> tuple[int, int]:
    """(direct children, documents anywhere below) of a folder."""
    children = conn.execute(
        select(func.count()).where(documents.c.workspace_id == workspace_id, documents.c.parent_folder_id == folder_id)
    ).scalar_one()
    below = descendant_ids(conn, workspace_id, folder_id)
    docs = 0
    if below:
        docs = conn.execute(
            select(func.count()).where(documents.c.id.in_(below), documents.c.type != "folder")
        ).scalar_one()
    return int(children), int(docs)

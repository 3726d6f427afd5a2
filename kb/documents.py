"""Documents of a workspace: records, stored bytes and parsed structure. Every query is scoped by workspace."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, or_, select, update
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
    metadata: dict = field(default_factory=dict)

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
    blobs.put(workspace_id, document_id, ORIGINAL, original)
    blobs.put(workspace_id, document_id, TEXT, parsed.text.encode("utf-8"))
    structure = {
        "format": parsed.format,
        "metadata": parsed.metadata,
        "pages": parsed.pages,
        "blocks": [[b.start, b.end, b.kind, list(b.heading_path), b.page] for b in parsed.blocks],
    }
    blobs.put(workspace_id, document_id, STRUCTURE, json.dumps(structure, ensure_ascii=False).encode("utf-8"))


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


def _encode_cursor(created_at: float, document_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, document_id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, document_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created_at), str(document_id)
    except Exception as exc:
        raise InvalidRequest("invalid cursor: pass the next_cursor of the previous page unchanged") from exc


def list_documents(
    db: Database, workspace_id: str, *, page_size: int = 30, cursor: str | None = None, search: str | None = None
) -> DocumentPage:
    """Newest first, keyset-paginated; `search` matches names that start with it (case-insensitive)."""
    if not 1 <= page_size <= 100:
        raise InvalidRequest("page_size must be between 1 and 100")
    query = select(documents).where(documents.c.workspace_id == workspace_id)
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(documents.c.name.ilike(escaped + "%", escape="\\"))
    if cursor:
        created_at, document_id = _decode_cursor(cursor)
        query = query.where(
            or_(
                documents.c.created_at < created_at,
                and_(documents.c.created_at == created_at, documents.c.id < document_id),
            )
        )
    query = query.order_by(documents.c.created_at.desc(), documents.c.id.desc()).limit(page_size + 1)
    with db.read() as conn:
        rows = conn.execute(query).fetchall()
    has_more = len(rows) > page_size
    page = [Document.from_row(r) for r in rows[:page_size]]
    next_cursor = _encode_cursor(page[-1].created_at, page[-1].id) if has_more else None
    return DocumentPage(page, next_cursor, has_more)


def chunk_keys_by_model(conn: Connection, workspace_id: str, document_id: str) -> dict[str, list[int]]:
    rows = conn.execute(
        select(chunks.c.model, chunks.c.key).where(
            chunks.c.workspace_id == workspace_id, chunks.c.document_id == document_id
        )
    )
    keys: dict[str, list[int]] = {}
    for row in rows:
        keys.setdefault(row.model, []).append(row.key)
    return keys


def delete_document_rows(conn: Connection, workspace_id: str, document_id: str) -> bool:
    conn.execute(delete(chunks).where(chunks.c.workspace_id == workspace_id, chunks.c.document_id == document_id))
    conn.execute(
        delete(rag_indexes).where(rag_indexes.c.workspace_id == workspace_id, rag_indexes.c.document_id == document_id)
    )
    result = conn.execute(
        delete(documents).where(documents.c.workspace_id == workspace_id, documents.c.id == document_id)
    )
    return result.rowcount == 1

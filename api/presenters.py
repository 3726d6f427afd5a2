"""Turn service objects into response bodies (presentation only)."""

from __future__ import annotations

import html
import json

from kb.documents import Document
from kb.rag_indexes import RagIndex

from .schemas import (
    ChunkResponse,
    DocumentMetadata,
    DocumentResponse,
    DocumentSummary,
    IndexUsage,
    RagIndexResponse,
)


def _metadata(doc: Document) -> DocumentMetadata:
    return DocumentMetadata(
        created_at_unix_secs=int(doc.created_at),
        last_updated_at_unix_secs=int(doc.updated_at),
        size_bytes=doc.size_bytes,
    )


def summary(doc: Document) -> DocumentSummary:
    return DocumentSummary(
        id=doc.id, name=doc.name, type=doc.type, metadata=_metadata(doc), url=doc.url, filename=doc.filename, format=doc.format
    )


def text_as_html(text: str) -> str:
    """The extracted text as simple HTML paragraphs (the `extracted_inner_html` field)."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def detail(doc: Document, text: str) -> DocumentResponse:
    return DocumentResponse(
        **summary(doc).model_dump(),
        extracted_inner_html=text_as_html(text),
        source_metadata={k: str(v) for k, v in doc.metadata.items()},
        char_count=doc.char_count,
    )


def rag_index(index: RagIndex) -> RagIndexResponse:
    return RagIndexResponse(
        id=index.id,
        model=index.model,
        status=index.status,
        progress_percentage=index.progress_percentage,
        document_model_index_usage=IndexUsage(used_bytes=index.used_bytes),
        error=index.error,
    )


def chunk(row, document_name: str) -> ChunkResponse:
    return ChunkResponse(
        id=row.id,
        name=document_name,
        content=row.text,
        heading_path=json.loads(row.heading_path),
        page_start=row.page_start,
        page_end=row.page_end,
        start=row.start,
        end=row.end,
    )

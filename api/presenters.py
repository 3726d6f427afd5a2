"""Turn service objects into response bodies (presentation only: the data comes from `kb`)."""

from __future__ import annotations

import html
import json

from kb.documents import Document
from kb.rag_indexes import RagIndex
from kb.service import KnowledgeBase
from kb.workspaces import Workspace

from .schemas import (
    ChunkResponse,
    DependentAgent,
    DocumentMetadata,
    DocumentResponse,
    DocumentSummary,
    FolderSegment,
    IndexUsage,
    RagIndexResponse,
)


def _metadata(doc: Document) -> DocumentMetadata:
    return DocumentMetadata(
        created_at_unix_secs=int(doc.created_at),
        last_updated_at_unix_secs=int(doc.updated_at),
        size_bytes=doc.size_bytes,
    )


def _base(kb: KnowledgeBase, workspace: Workspace, doc: Document) -> dict:
    fields = {
        "type": doc.type,
        "id": doc.id,
        "name": doc.name,
        "metadata": _metadata(doc),
        "supported_usages": [] if doc.is_folder else ["prompt", "auto"],
        "folder_parent_id": doc.parent_folder_id,
        "folder_path": [FolderSegment(id=i, name=n) for i, n in kb.folder_path(workspace, doc.parent_folder_id)],
        "url": doc.url if doc.type == "url" else None,
    }
    if doc.is_folder:
        fields["children_count"], fields["document_count"] = kb.folder_counts(workspace, doc.id)
    return fields


def dependent_agents(kb: KnowledgeBase, workspace: Workspace, document_ids: list[str]) -> list[DependentAgent]:
    return [
        DependentAgent(id=a.id, name=a.name, created_at_unix_secs=int(a.created_at))
        for a in kb.agents.dependent_agents(workspace, document_ids)
    ]


def summary(kb: KnowledgeBase, workspace: Workspace, doc: Document) -> DocumentSummary:
    return DocumentSummary(**_base(kb, workspace, doc), dependent_agents=dependent_agents(kb, workspace, [doc.id]))


def detail(kb: KnowledgeBase, workspace: Workspace, doc: Document) -> DocumentResponse:
    if doc.is_folder:
        return DocumentResponse(**_base(kb, workspace, doc))
    return DocumentResponse(
        **_base(kb, workspace, doc),
        extracted_inner_html=text_as_html(kb.document_text(workspace, doc.id)),
        filename=doc.filename or doc.name if doc.type == "file" else None,
        format=doc.format,
        source_metadata={k: str(v) for k, v in doc.metadata.items()},
        char_count=doc.char_count,
    )


def text_as_html(text: str) -> str:
    """The extracted text as simple HTML paragraphs (the `extracted_inner_html` field)."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def rag_index(index: RagIndex) -> RagIndexResponse:
    return RagIndexResponse(
        id=index.id,
        model=index.model,
        status=index.status,
        progress_percentage=index.progress_percentage,
        document_model_index_usage=IndexUsage(used_bytes=index.used_bytes),
        error=index.error,
        chunks_embedded=index.chunks_embedded,
        chunks_reused=index.chunks_reused,
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

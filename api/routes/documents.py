"""Knowledge-base documents: create from text, file or URL; list, get, rename, delete, content, chunks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import PlainTextResponse

from ingest.errors import DocumentTooLarge

from .. import presenters
from ..deps import KB, CurrentWorkspace
from ..schemas import (
    AddDocumentResponse,
    ChunkResponse,
    DocumentListResponse,
    DocumentResponse,
    RenameRequest,
    TextDocumentRequest,
    UrlDocumentRequest,
)

router = APIRouter(prefix="/v1/convai/knowledge-base", tags=["knowledge base"])


@router.post("/text", response_model=AddDocumentResponse, summary="Add a document from text")
def create_from_text(body: TextDocumentRequest, kb: KB, workspace: CurrentWorkspace) -> AddDocumentResponse:
    doc = kb.add_text(workspace, body.text, body.name)
    return AddDocumentResponse(id=doc.id, name=doc.name)


@router.post("/file", response_model=AddDocumentResponse, summary="Add a document from a file")
def create_from_file(
    kb: KB,
    workspace: CurrentWorkspace,
    file: Annotated[UploadFile, File(description="PDF, DOCX, EPUB, HTML, TXT or Markdown")],
    name: Annotated[str | None, Form()] = None,
) -> AddDocumentResponse:
    limit = kb.settings.max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise DocumentTooLarge(f"the file is over the upload limit of {limit} bytes (KB_MAX_UPLOAD_BYTES)")
    doc = kb.add_file(workspace, data, file.filename, file.content_type, name)
    return AddDocumentResponse(id=doc.id, name=doc.name)


@router.post("/url", response_model=AddDocumentResponse, summary="Add a document from a URL")
def create_from_url(body: UrlDocumentRequest, kb: KB, workspace: CurrentWorkspace) -> AddDocumentResponse:
    doc = kb.add_url(workspace, body.url, body.name)
    return AddDocumentResponse(id=doc.id, name=doc.name)


@router.get("", response_model=DocumentListResponse, summary="List documents, newest first")
def list_documents(
    kb: KB,
    workspace: CurrentWorkspace,
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
    search: Annotated[str | None, Query(description="Only documents whose name starts with this")] = None,
) -> DocumentListResponse:
    page = kb.list_documents(workspace, page_size=page_size, cursor=cursor, search=search)
    return DocumentListResponse(
        documents=[presenters.summary(d) for d in page.documents], next_cursor=page.next_cursor, has_more=page.has_more
    )


@router.get("/{documentation_id}", response_model=DocumentResponse, summary="Get a document")
def get_document(documentation_id: str, kb: KB, workspace: CurrentWorkspace) -> DocumentResponse:
    doc = kb.get_document(workspace, documentation_id)
    return presenters.detail(doc, kb.document_text(workspace, doc.id))


@router.patch("/{documentation_id}", response_model=DocumentResponse, summary="Rename a document")
def rename_document(documentation_id: str, body: RenameRequest, kb: KB, workspace: CurrentWorkspace) -> DocumentResponse:
    doc = kb.rename_document(workspace, documentation_id, body.name)
    return presenters.detail(doc, kb.document_text(workspace, doc.id))


@router.delete("/{documentation_id}", summary="Delete a document, its chunks and vectors")
def delete_document(documentation_id: str, kb: KB, workspace: CurrentWorkspace) -> dict:
    kb.delete_document(workspace, documentation_id)
    return {}


@router.get(
    "/{documentation_id}/content",
    response_class=PlainTextResponse,
    summary="The document's extracted text, as indexed",
)
def get_content(documentation_id: str, kb: KB, workspace: CurrentWorkspace) -> PlainTextResponse:
    return PlainTextResponse(kb.document_text(workspace, documentation_id))


@router.get("/{documentation_id}/chunk/{chunk_id}", response_model=ChunkResponse, summary="Get one chunk")
def get_chunk(documentation_id: str, chunk_id: str, kb: KB, workspace: CurrentWorkspace) -> ChunkResponse:
    doc = kb.get_document(workspace, documentation_id)
    return presenters.chunk(kb.get_chunk(workspace, doc.id, chunk_id), doc.name)

"""Knowledge-base documents: create from text, file or URL; list, get, update, delete; content and chunks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response

from kb.errors import DocumentTooLarge, InvalidRequest
from kb.records import ListQuery
from kb.services.idempotency import idempotency_key

from .. import presenters
from ..content_disposition import attachment
from ..deps import KB, CurrentWorkspace
from ..schemas import (
    DEPENDENT_TYPE_HELP,
    AddDocumentResponse,
    ChunkResponse,
    ChunksResponse,
    DependentAgentsResponse,
    DependentType,
    DocumentListResponse,
    DocumentResponse,
    MoveRequest,
    SourceFileUrlResponse,
    TextDocumentRequest,
    UpdateDocumentRequest,
    UrlDocumentRequest,
)

router = APIRouter(prefix="/v1/convai/knowledge-base", tags=["knowledge base"])
DocType = Annotated[list[str] | None, Query(description="Only these types: file, url, text, folder.")]
IdempotencyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key",
    description="kb: a retried upload with the same key (same request, same workspace, within "
    "KB_IDEMPOTENCY_TTL_SECS) answers with the document the first one created; another request with it is a 422.",
)]


def _added(kb, workspace, doc) -> AddDocumentResponse:
    return AddDocumentResponse(id=doc.id, name=doc.name, folder_path=presenters.folder_path(kb, workspace, doc.parent_folder_id))


def _read_upload(kb, file: UploadFile) -> bytes:
    limit = kb.settings.ingest.max_upload_bytes
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise DocumentTooLarge(f"the file is over the upload limit of {limit} bytes (KB_MAX_UPLOAD_BYTES)")
    return data


@router.post("/text", response_model=AddDocumentResponse, summary="Add a document from text")
def create_from_text(body: TextDocumentRequest, kb: KB, workspace: CurrentWorkspace,
                     key: IdempotencyHeader = None) -> AddDocumentResponse:
    idempotency = idempotency_key(key, "text", body.text, body.name, body.parent_folder_id)
    return _added(kb, workspace, kb.documents.add_text(workspace, body.text, body.name, body.parent_folder_id, idempotency))


@router.post("/file", response_model=AddDocumentResponse, summary="Add a document from a file")
def create_from_file(
    kb: KB,
    workspace: CurrentWorkspace,
    file: Annotated[UploadFile, File(description="PDF, DOCX, EPUB, HTML, TXT or Markdown")],
    name: Annotated[str | None, Form(max_length=1_000)] = None,
    parent_folder_id: Annotated[str | None, Form(max_length=128)] = None,
    key: IdempotencyHeader = None,
) -> AddDocumentResponse:
    data = _read_upload(kb, file)
    idempotency = idempotency_key(key, "file", data, file.filename, file.content_type, name, parent_folder_id)
    doc = kb.documents.add_file(workspace, data, file.filename, file.content_type, name, parent_folder_id, idempotency)
    return _added(kb, workspace, doc)


@router.post("/url", response_model=AddDocumentResponse, summary="Add a document from a URL")
def create_from_url(body: UrlDocumentRequest, kb: KB, workspace: CurrentWorkspace,
                    key: IdempotencyHeader = None) -> AddDocumentResponse:
    if body.enable_auto_sync:
        raise InvalidRequest("URL auto-sync is not supported yet; add the URL without enable_auto_sync and use /refresh")
    idempotency = idempotency_key(key, "url", body.url, body.name, body.parent_folder_id)
    return _added(kb, workspace, kb.documents.add_url(workspace, body.url, body.name, body.parent_folder_id, idempotency))


@router.get("", response_model=DocumentListResponse, summary="List documents and folders")
def list_documents(
    kb: KB,
    workspace: CurrentWorkspace,
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
    search: Annotated[str | None, Query(max_length=1_000, description="Only names that start with this (case-insensitive)")] = None,
    types: DocType = None,
    parent_folder_id: Annotated[str | None, Query(description="Only direct children of this folder")] = None,
    ancestor_folder_id: Annotated[str | None, Query(description="Only items anywhere below this folder")] = None,
    folders_first: bool = False,
    sort_by: Annotated[str, Query(pattern="^(name|created_at|updated_at|size)$")] = "created_at",
    sort_direction: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    show_only_owned_documents: bool = False,  # every document of a workspace is its own
    created_by_user_id: str | None = None,  # accepted for compatibility; kb has no users within a workspace
) -> DocumentListResponse:
    page = kb.documents.list(
        workspace,
        ListQuery(page_size, cursor, search, tuple(types or ()), parent_folder_id, ancestor_folder_id, sort_by,
                  sort_direction, folders_first),
    )
    return DocumentListResponse(
        documents=presenters.summaries(kb, workspace, page.documents),
        next_cursor=page.next_cursor,
        has_more=page.has_more,
    )


@router.get("/{documentation_id}", response_model=DocumentResponse,
            summary="Get a document or folder")
def get_document(documentation_id: str, kb: KB, workspace: CurrentWorkspace) -> DocumentResponse:
    return presenters.detail(kb, workspace, kb.documents.get(workspace, documentation_id))


@router.patch("/{documentation_id}", response_model=DocumentResponse,
              summary="Rename a document, or replace its content")
def update_document(documentation_id: str, body: UpdateDocumentRequest, kb: KB, workspace: CurrentWorkspace) -> DocumentResponse:
    """`content` becomes the document's text and is indexed again: all of a text document; for a
    file or URL document its text, while the uploaded file (or fetched page) stays its source file."""
    if body.enable_auto_sync:
        raise InvalidRequest("URL auto-sync is not supported yet")
    doc = kb.documents.update(workspace, documentation_id, name=body.name, content=body.content)
    return presenters.detail(kb, workspace, doc)


@router.delete("/{documentation_id}", summary="Delete a document (or folder), its chunks and vectors")
def delete_document(
    documentation_id: str,
    kb: KB,
    workspace: CurrentWorkspace,
    force: Annotated[bool, Query(description="Delete even if agents use it (detaching it) or the folder is not empty")] = False,
) -> dict:
    kb.documents.delete(workspace, documentation_id, force=force)
    return {}


@router.get("/{documentation_id}/content", response_class=PlainTextResponse, summary="The extracted text, as indexed")
def get_content(documentation_id: str, kb: KB, workspace: CurrentWorkspace) -> PlainTextResponse:
    return PlainTextResponse(kb.documents.text(workspace, documentation_id))


@router.get("/{documentation_id}/chunk/{chunk_id}", response_model=ChunkResponse, summary="Get one chunk")
def get_chunk(
    documentation_id: str, chunk_id: str, kb: KB, workspace: CurrentWorkspace, embedding_model: str | None = None
) -> ChunkResponse:
    doc = kb.documents.get(workspace, documentation_id)
    return presenters.chunk(kb.chunks.get(workspace, doc.id, chunk_id, embedding_model), doc.name)


@router.get("/{documentation_id}/chunks", response_model=ChunksResponse, summary="The document's chunks, in order")
def list_chunks(
    documentation_id: str,
    kb: KB,
    workspace: CurrentWorkspace,
    embedding_model: Annotated[str | None, Query(description="Defaults to the workspace's default model")] = None,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 30,
    cursor: str | None = None,
) -> ChunksResponse:
    doc = kb.documents.get(workspace, documentation_id)
    found, next_cursor = kb.chunks.page(workspace, doc.id, embedding_model, page_size=page_size, cursor=cursor)
    return ChunksResponse(chunks=[presenters.chunk(c, doc.name) for c in found], next_cursor=next_cursor)


@router.get("/{documentation_id}/source-file-url", response_model=SourceFileUrlResponse,
            summary="A signed link to download the original upload")
def source_file_url(documentation_id: str, request: Request, kb: KB, workspace: CurrentWorkspace) -> SourceFileUrlResponse:
    expires, signature = kb.source_files.link(workspace.id, documentation_id)
    url = request.url_for("download_source_file", workspace_id=workspace.id, documentation_id=documentation_id)
    return SourceFileUrlResponse(signed_url=f"{url}?expires={expires}&signature={signature}")


@router.get("/source-file/{workspace_id}/{documentation_id}", name="download_source_file",
            summary="Download an original upload (with a signed link, no API key)")
def download_source_file(workspace_id: str, documentation_id: str, expires: int, signature: str, kb: KB) -> Response:
    data, doc = kb.source_files.open(workspace_id, documentation_id, expires, signature)
    return Response(
        data,
        media_type=_media_type(doc.content_type),
        headers={"Content-Disposition": attachment(doc.filename or doc.name), "X-Content-Type-Options": "nosniff"},
    )


def _media_type(content_type: str | None) -> str:
    """The uploaded content type when it is a plain `type/subtype[; params]` (it reaches a header)."""
    if content_type and content_type.isascii() and content_type.isprintable() and len(content_type) <= 200 \
            and "/" in content_type:
        return content_type
    return "application/octet-stream"


@router.post("/{documentation_id}/refresh", response_model=DocumentResponse,
             summary="Fetch a URL document again (re-indexed only if it changed)")
def refresh(documentation_id: str, kb: KB, workspace: CurrentWorkspace) -> DocumentResponse:
    return presenters.detail(kb, workspace, kb.documents.refresh(workspace, documentation_id))


@router.patch("/{documentation_id}/update-file", response_model=DocumentResponse,
              summary="Replace a file document's content, keeping its id")
def update_file(
    documentation_id: str, kb: KB, workspace: CurrentWorkspace, file: Annotated[UploadFile, File()]
) -> DocumentResponse:
    doc = kb.documents.update_file(workspace, documentation_id, _read_upload(kb, file), file.filename, file.content_type)
    return presenters.detail(kb, workspace, doc)


@router.post("/{document_id}/move", summary="Move a document or folder into a folder (null: the root)")
def move(document_id: str, body: MoveRequest, kb: KB, workspace: CurrentWorkspace) -> dict:
    kb.folders.move(workspace, [document_id], body.move_to)
    return {}


@router.get("/{documentation_id}/dependent-agents", response_model=DependentAgentsResponse,
            summary="Agents that use this document")
def dependent_agents(
    documentation_id: str,
    kb: KB,
    workspace: CurrentWorkspace,
    dependent_type: Annotated[DependentType, Query(description=DEPENDENT_TYPE_HELP)] = "all",
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
) -> DependentAgentsResponse:
    """Newest first; follow `next_cursor` while `has_more`."""
    kb.documents.get(workspace, documentation_id)
    page = kb.agents.dependents_page(workspace, [documentation_id], dependent_type=dependent_type,
                                     page_size=page_size, cursor=cursor)
    return DependentAgentsResponse(agents=presenters.dependent_agents(page), next_cursor=page.next_cursor,
                                   has_more=page.has_more)

"""Knowledge-base documents: create from text, file or URL; list, get, update, delete; content and chunks."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response

from kb.errors import DocumentTooLarge, InvalidAttributes
from kb.records import ListQuery
from kb.services.auto_sync import SyncRequest
from kb.services.idempotency import idempotency_key

from .. import presenters
from ..content_disposition import attachment
from ..deps import KB, CurrentWorkspace
from ..offload import on_ingest_pool
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


def _canonical(value: Any) -> str | None:
    """A request value for the Idempotency-Key fingerprint (None when not given)."""
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def _form_attributes(text: str | None) -> Any:
    """The `attributes` form field of a file upload: a JSON object in a string."""
    if text is None or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidAttributes(f"attributes must be a JSON object ({exc})", details={"field": "attributes"}) from None


@router.post("/text", response_model=AddDocumentResponse, summary="Add a document from text")
async def create_from_text(body: TextDocumentRequest, request: Request, kb: KB, workspace: CurrentWorkspace,
                           key: IdempotencyHeader = None) -> AddDocumentResponse:
    idempotency = idempotency_key(key, "text", body.text, body.name, body.parent_folder_id, _canonical(body.attributes))

    def add() -> AddDocumentResponse:
        doc = kb.documents.add_text(workspace, body.text, body.name, body.parent_folder_id, body.attributes,
                                    idempotency=idempotency)
        return _added(kb, workspace, doc)

    return await on_ingest_pool(request, add)


@router.post("/file", response_model=AddDocumentResponse, summary="Add a document from a file")
async def create_from_file(
    request: Request,
    kb: KB,
    workspace: CurrentWorkspace,
    file: Annotated[UploadFile, File(description="PDF, DOCX, EPUB, HTML, TXT or Markdown")],
    name: Annotated[str | None, Form(max_length=1_000)] = None,
    parent_folder_id: Annotated[str | None, Form(max_length=128)] = None,
    attributes: Annotated[str | None, Form(description="kb: the document's attributes, a JSON object")] = None,
    key: IdempotencyHeader = None,
) -> AddDocumentResponse:
    values = _form_attributes(attributes)

    def add() -> AddDocumentResponse:
        data = _read_upload(kb, file)
        idempotency = idempotency_key(key, "file", data, file.filename, file.content_type, name, parent_folder_id,
                                      _canonical(values))
        doc = kb.documents.add_file(workspace, data, file.filename, file.content_type, name, parent_folder_id, values,
                                    idempotency=idempotency)
        return _added(kb, workspace, doc)

    return await on_ingest_pool(request, add)


@router.post("/url", response_model=AddDocumentResponse, summary="Add a document from a URL")
async def create_from_url(body: UrlDocumentRequest, request: Request, kb: KB, workspace: CurrentWorkspace,
                          key: IdempotencyHeader = None) -> AddDocumentResponse:
    """With `enable_auto_sync`, the page is fetched again when due (`auto_sync_info.next_refresh_by`). A workspace
    fetches at most `KB_URL_FETCHES_PER_WORKSPACE` URLs at once: one more is `429 too_many_requests`."""
    sync = SyncRequest(body.enable_auto_sync, body.auto_remove, body.minimum_frequency_days)
    idempotency = idempotency_key(key, "url", body.url, body.name, body.parent_folder_id, _canonical(body.attributes),
                                  _canonical([body.enable_auto_sync, body.auto_remove, body.minimum_frequency_days]))

    def add() -> AddDocumentResponse:
        doc = kb.auto_sync.add_url(workspace, body.url, body.name, body.parent_folder_id, sync, body.attributes,
                                   idempotency=idempotency)
        return _added(kb, workspace, doc)

    return await on_ingest_pool(request, add)


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
async def update_document(documentation_id: str, body: UpdateDocumentRequest, request: Request, kb: KB,
                          workspace: CurrentWorkspace) -> DocumentResponse:
    """`content` becomes the document's text and is indexed again: all of a text document; for a
    file or URL document its text, while the uploaded file (or fetched page) stays its source file.
    `attributes` (kb) replaces the document's attributes whole."""
    sync = SyncRequest(body.enable_auto_sync, body.auto_remove, body.minimum_frequency_days, body.tighten_only)

    def update() -> DocumentResponse:
        doc = kb.documents.get(workspace, documentation_id)
        if body.content is not None:
            kb.auto_sync.check_content_update(workspace, doc, sync)
        kb.auto_sync.update(workspace, doc, sync)  # checked before anything changes
        doc = kb.documents.update(workspace, documentation_id, name=body.name, content=body.content,
                                  attributes=body.attributes)
        return presenters.detail(kb, workspace, doc)

    return await on_ingest_pool(request, update)


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
async def refresh(documentation_id: str, request: Request, kb: KB, workspace: CurrentWorkspace) -> DocumentResponse:
    """Counts as one of the workspace's URL fetches (`KB_URL_FETCHES_PER_WORKSPACE`)."""

    def fetch_again() -> DocumentResponse:
        return presenters.detail(kb, workspace, kb.documents.refresh(workspace, documentation_id))

    return await on_ingest_pool(request, fetch_again)


@router.patch("/{documentation_id}/update-file", response_model=DocumentResponse,
              summary="Replace a file document's content, keeping its id")
async def update_file(
    documentation_id: str, request: Request, kb: KB, workspace: CurrentWorkspace, file: Annotated[UploadFile, File()]
) -> DocumentResponse:
    def replace() -> DocumentResponse:
        doc = kb.documents.update_file(workspace, documentation_id, _read_upload(kb, file), file.filename,
                                       file.content_type)
        return presenters.detail(kb, workspace, doc)

    return await on_ingest_pool(request, replace)


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

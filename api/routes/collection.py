"""Operations on many documents at once: folders, moves, search, summaries, bulk delete, dependents.

Registered before the per-document routes: these fixed paths must win over `/{documentation_id}`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kb.errors import InvalidRequest, KBError

from .. import presenters
from ..deps import KB, CurrentWorkspace
from ..schemas import (
    AddDocumentResponse,
    BatchFailure,
    BulkDeleteRequest,
    BulkDeleteSuccess,
    BulkMoveRequest,
    DeletedId,
    DependentAgentsResponse,
    DocumentIdsRequest,
    FolderRequest,
    FolderSegment,
    SearchResponse,
    SearchResult,
    SnippetPart,
    SummarySuccess,
)

router = APIRouter(prefix="/v1/convai/knowledge-base", tags=["knowledge base"])


def failure(exc: KBError) -> BatchFailure:
    return BatchFailure(error_code=exc.status, error_status=exc.code, error_message=exc.message)


@router.post("/folder", response_model=AddDocumentResponse, summary="Create a folder")
def create_folder(body: FolderRequest, kb: KB, workspace: CurrentWorkspace) -> AddDocumentResponse:
    if body.enable_auto_sync:
        raise InvalidRequest("folder auto-sync is not supported yet")
    folder = kb.create_folder(workspace, body.name, body.parent_folder_id)
    path = kb.folder_path(workspace, folder.id)
    return AddDocumentResponse(id=folder.id, name=folder.name, folder_path=[FolderSegment(id=i, name=n) for i, n in path])


@router.post("/bulk-move", summary="Move documents and folders into a folder (null: the root)")
def bulk_move(body: BulkMoveRequest, kb: KB, workspace: CurrentWorkspace) -> dict:
    kb.move(workspace, body.document_ids, body.move_to)
    return {}


@router.post("/bulk-delete", response_model=dict[str, BulkDeleteSuccess | BatchFailure],
             summary="Delete many documents; a result per document")
def bulk_delete(body: BulkDeleteRequest, kb: KB, workspace: CurrentWorkspace) -> dict:
    results: dict[str, BulkDeleteSuccess | BatchFailure] = {}
    for document_id in dict.fromkeys(body.document_ids):
        try:
            kb.delete_document(workspace, document_id, force=body.force)
            results[document_id] = BulkDeleteSuccess(data=DeletedId(id=document_id))
        except KBError as exc:
            results[document_id] = failure(exc)
    return results


@router.get("/summaries", response_model=dict[str, SummarySuccess | BatchFailure],
            summary="Summaries of many documents; a result per id")
def summaries(kb: KB, workspace: CurrentWorkspace, document_ids: Annotated[list[str], Query()]) -> dict:
    results: dict[str, SummarySuccess | BatchFailure] = {}
    for document_id in dict.fromkeys(document_ids):
        try:
            results[document_id] = SummarySuccess(
                data=presenters.summary(kb, workspace, kb.get_document(workspace, document_id))
            )
        except KBError as exc:
            results[document_id] = failure(exc)
    return results


@router.post("/dependent-agents", response_model=DependentAgentsResponse, summary="Agents that use any of these documents")
def bulk_dependent_agents(
    body: DocumentIdsRequest,
    kb: KB,
    workspace: CurrentWorkspace,
    dependent_type: str | None = None,
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
) -> DependentAgentsResponse:
    for document_id in body.document_ids:
        kb.get_document(workspace, document_id)
    return DependentAgentsResponse(agents=presenters.dependent_agents(kb, workspace, body.document_ids))


@router.get("/search", response_model=SearchResponse,
            summary="Full-text search over the content of the workspace's documents")
def search(
    kb: KB,
    workspace: CurrentWorkspace,
    query: Annotated[str, Query(min_length=1)],
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    types: Annotated[list[str] | None, Query()] = None,
    cursor: str | None = None,
) -> SearchResponse:
    hits, next_cursor = kb.search(workspace, query, page_size=page_size, types=tuple(types or ()), cursor=cursor)
    return SearchResponse(
        results=[
            SearchResult(
                document=presenters.summary(kb, workspace, doc),
                score=hit.score,
                search_snippet=[SnippetPart(value=v, is_hit=h) for v, h in hit.snippet],
            )
            for doc, hit in hits
        ],
        next_cursor=next_cursor,
    )

"""Operations on many documents at once: folders, moves, search, summaries, bulk delete, dependents.

Registered before the per-document routes: these fixed paths must win over `/{documentation_id}`.
Batch endpoints answer for each item: one item's error is reported with it, the others carry on.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query

from kb.errors import InvalidFilter, KBError, NotFound
from kb.filters import parse_filter
from kb.services.auto_sync import SyncRequest
from kb.services.queries import MAX_QUERY_CHARS

from .. import presenters
from ..deps import KB, CurrentWorkspace
from ..errors import status_for
from ..schemas import (
    DEPENDENT_TYPE_HELP,
    FOLDER_IDS_HELP,
    AddDocumentResponse,
    BatchFailure,
    BulkDeleteRequest,
    BulkDeleteSuccess,
    BulkMoveRequest,
    BulkMoveSuccess,
    DeletedId,
    DependentAgentsResponse,
    DependentType,
    DocumentIdsRequest,
    FolderRequest,
    MovedId,
    SearchResponse,
    SearchResult,
    SnippetPart,
    SummarySuccess,
)

router = APIRouter(prefix="/v1/convai/knowledge-base", tags=["knowledge base"])


def failure(exc: KBError) -> BatchFailure:
    return BatchFailure(error_code=status_for(exc.code), error_status=exc.code, error_message=exc.message)


def _not_found(document_id: str) -> NotFound:
    return NotFound(f"document {document_id!r} not found in this workspace")


@router.post("/folder", response_model=AddDocumentResponse, summary="Create a folder")
def create_folder(body: FolderRequest, kb: KB, workspace: CurrentWorkspace) -> AddDocumentResponse:
    sync = SyncRequest(body.enable_auto_sync, body.auto_remove, body.minimum_frequency_days)
    folder = kb.auto_sync.create_folder(workspace, body.name, body.parent_folder_id, sync)
    # folder_path: from the root to the new folder's parent (the folder itself not included)
    return AddDocumentResponse(id=folder.id, name=folder.name,
                               folder_path=presenters.folder_path(kb, workspace, folder.parent_folder_id))


@router.post("/bulk-move", response_model=dict[str, BulkMoveSuccess | BatchFailure],
             summary="Move documents and folders into a folder (null: the root); a result per document")
def bulk_move(body: BulkMoveRequest, kb: KB, workspace: CurrentWorkspace) -> dict:
    failures = kb.folders.move_each(workspace, body.document_ids, body.move_to)
    return {
        document_id: failure(failures[document_id]) if document_id in failures else BulkMoveSuccess(data=MovedId(id=document_id))
        for document_id in dict.fromkeys(body.document_ids)
    }


@router.post("/bulk-delete", response_model=dict[str, BulkDeleteSuccess | BatchFailure],
             summary="Delete many documents; a result per document")
def bulk_delete(body: BulkDeleteRequest, kb: KB, workspace: CurrentWorkspace) -> dict:
    results: dict[str, BulkDeleteSuccess | BatchFailure] = {}
    for document_id in dict.fromkeys(body.document_ids):
        try:
            kb.documents.delete(workspace, document_id, force=body.force)
            results[document_id] = BulkDeleteSuccess(data=DeletedId(id=document_id))
        except KBError as exc:
            results[document_id] = failure(exc)
    return results


@router.get("/summaries", response_model=dict[str, SummarySuccess | BatchFailure],
            summary="Summaries of many documents; a result per id")
def summaries(kb: KB, workspace: CurrentWorkspace, document_ids: Annotated[list[str], Query(max_length=100)]) -> dict:
    ids = list(dict.fromkeys(document_ids))
    found = kb.documents.get_many(workspace, ids)
    present = [found[i] for i in ids if i in found]
    made = dict(zip([d.id for d in present], presenters.summaries(kb, workspace, present)))
    return {i: SummarySuccess(data=made[i]) if i in made else failure(_not_found(i)) for i in ids}


@router.post("/dependent-agents", response_model=DependentAgentsResponse, summary="Agents that use any of these documents")
def bulk_dependent_agents(
    body: DocumentIdsRequest,
    kb: KB,
    workspace: CurrentWorkspace,
    dependent_type: Annotated[DependentType, Query(description=DEPENDENT_TYPE_HELP)] = "all",
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
) -> DependentAgentsResponse:
    """Agents of the documents found, newest first, each once; each id not found is reported in
    `errors` (the others carry on). Follow `next_cursor` while `has_more`."""
    ids = list(dict.fromkeys(body.document_ids))
    found = kb.documents.get_many(workspace, ids)
    errors = {i: failure(_not_found(i)) for i in ids if i not in found}
    page = kb.agents.dependents_page(workspace, [i for i in ids if i in found], dependent_type=dependent_type,
                                     page_size=page_size, cursor=cursor)
    return DependentAgentsResponse(agents=presenters.dependent_agents(page), next_cursor=page.next_cursor,
                                   has_more=page.has_more, errors=errors)


def _query_filter(text: str | None):
    """A filter given as a JSON query parameter."""
    if text is None:
        return None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidFilter(f"filters must be a JSON filter object ({exc})", details={"field": "filters"}) from None
    return parse_filter(raw)


@router.get("/search", response_model=SearchResponse,
            summary="Full-text search over the content of the workspace's documents")
def search(
    kb: KB,
    workspace: CurrentWorkspace,
    query: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    types: Annotated[list[str] | None, Query()] = None,
    cursor: str | None = None,
    filters: Annotated[str | None, Query(description="kb: a metadata filter as JSON (see the retrieve endpoint)")] = None,
    folder_ids: Annotated[list[str] | None, Query(description=FOLDER_IDS_HELP)] = None,
) -> SearchResponse:
    hits, next_cursor = kb.search.search(workspace, query, page_size=page_size, types=tuple(types or ()), cursor=cursor,
                                         filters=_query_filter(filters), folder_ids=folder_ids)
    documents = presenters.summaries(kb, workspace, [doc for doc, _ in hits])
    return SearchResponse(
        results=[
            SearchResult(
                document=document,
                score=hit.score,
                search_snippet=[SnippetPart(value=v, is_hit=h) for v, h in hit.snippet],
            )
            for document, (_, hit) in zip(documents, hits)
        ],
        next_cursor=next_cursor,
    )

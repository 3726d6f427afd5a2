"""RAG indexes of a document, and retrieval for agent runtimes."""

from __future__ import annotations

from fastapi import APIRouter, Response

from kb.errors import KBError
from kb.filters import parse_filter
from kb.services.retrieval import RetrievalLimits, SearchOptions

from .. import presenters
from ..deps import KB, CurrentWorkspace
from ..schemas import (
    BatchFailure,
    ModelUsage,
    RagIndexBatchRequest,
    RagIndexBatchSuccess,
    RagIndexesResponse,
    RagIndexRequest,
    RagIndexResponse,
    RagOverviewResponse,
    RetrieveRequest,
    RetrieveResponse,
)
from .collection import failure

router = APIRouter(prefix="/v1/convai/knowledge-base", tags=["RAG"])


@router.post("/rag/retrieve", response_model=RetrieveResponse, summary="Retrieve the passages that answer a query")
def retrieve(body: RetrieveRequest, kb: KB, workspace: CurrentWorkspace, response: Response) -> RetrieveResponse:
    """Nearest chunks among the workspace's indexed documents (or `document_ids`), cut by the limits:
    first the `max_retrieved_rag_chunks_count` nearest, then those within `max_vector_distance`
    (by default the model's calibrated default), then in rank order while the total text stays within
    `max_documents_length` characters. `filters` and `folder_ids` restrict the search to the documents
    that pass (inside the search). `distance_cut` says what the distance cut removed. The
    `X-KB-Index-Generation` header names the generation of the workspace's search index that answered."""
    result = kb.retrieval.retrieve(
        workspace,
        body.query,
        document_ids=body.document_ids,
        filters=parse_filter(body.filters),
        folder_ids=body.folder_ids,
        embedding_model=body.embedding_model,
        limits=RetrievalLimits(
            max_vector_distance=body.max_vector_distance,
            max_documents_length=body.max_documents_length,
            max_retrieved_rag_chunks_count=body.max_retrieved_rag_chunks_count,
        ),
        options=SearchOptions(body.search_mode, body.num_candidates, body.budget_ms, body.context_chunks),
    )
    chunks = kb.citations.attach(workspace.id, result.chunks) if body.citations else result.chunks
    if result.index_generation is not None:
        response.headers["X-KB-Index-Generation"] = str(result.index_generation)
    return RetrieveResponse(
        chunks=[c.__dict__ for c in chunks],
        embedding_model=result.embedding_model,
        served_model=result.served_model,
        retrieval_query=result.retrieval_query,
        rag_latency_secs=round(result.rag_latency_secs, 6),
        search_mode=body.search_mode,
        timings_ms=result.timings_ms,
        skipped=result.skipped,
        max_vector_distance=result.max_vector_distance,
        distance_cut=presenters.distance_cut(result.distance_cut),
    )


@router.post(
    "/{documentation_id}/rag-index",
    response_model=RagIndexResponse,
    summary="Start (or report) the document's index for a model",
)
def compute_rag_index(documentation_id: str, body: RagIndexRequest, kb: KB, workspace: CurrentWorkspace) -> RagIndexResponse:
    """`model` in the answer is the name asked for; `served_model` the model that builds the index.
    Names served by one model share its index: asking again by another name reports the same one."""
    named = kb.rag_indexes.ensure(workspace, documentation_id, body.model)
    return presenters.rag_index(named.index, named.name)


@router.get("/{documentation_id}/rag-index", response_model=RagIndexesResponse, summary="List the document's indexes")
def list_rag_indexes(documentation_id: str, kb: KB, workspace: CurrentWorkspace) -> RagIndexesResponse:
    """Each index under its served model's name and under every other name it was asked for by."""
    return RagIndexesResponse(
        indexes=[presenters.rag_index(n.index, n.name) for n in kb.rag_indexes.list_named(workspace, documentation_id)]
    )


@router.get("/rag-index", response_model=RagOverviewResponse, summary="RAG index usage of the workspace")
def rag_overview(kb: KB, workspace: CurrentWorkspace) -> RagOverviewResponse:
    used, limit, per_model = kb.quotas.rag_usage(workspace.id)
    return RagOverviewResponse(
        total_used_bytes=used,
        total_max_bytes=limit,
        models=[ModelUsage(model=m, used_bytes=b) for m, b in sorted(per_model.items())],
    )


@router.post("/rag-index", response_model=dict[str, RagIndexBatchSuccess | BatchFailure],
             summary="Get, or create, the indexes of many documents; a result per document")
def rag_index_batch(body: RagIndexBatchRequest, kb: KB, workspace: CurrentWorkspace) -> dict:
    results: dict[str, RagIndexBatchSuccess | BatchFailure] = {}
    for item in body.items:
        try:
            named = kb.rag_indexes.ensure(workspace, item.document_id, item.model, create=item.create_if_missing)
            results[item.document_id] = RagIndexBatchSuccess(data=presenters.rag_index(named.index, named.name))
        except KBError as exc:
            results[item.document_id] = failure(exc)
    return results


@router.delete("/{documentation_id}/rag-index/{rag_index_id}", response_model=RagIndexResponse,
               summary="Delete a document's index for one model (frees its usage at once)")
def delete_rag_index(documentation_id: str, rag_index_id: str, kb: KB, workspace: CurrentWorkspace) -> RagIndexResponse:
    return presenters.rag_index(kb.rag_indexes.delete(workspace, documentation_id, rag_index_id))

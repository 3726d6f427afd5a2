"""Turn service records into response bodies (presentation only: the data comes from `kb`).

Lists are presented in a constant number of queries: folder paths, folder counts and dependent
agents are looked up for the whole page at once.
"""

from __future__ import annotations

import html

from kb.knowledge_base import KnowledgeBase
from kb.records import Chunk, DependentAgentPage, Document, RagIndex, SyncState, Workspace
from kb.services.retrieval import DistanceCut

from .schemas import (
    AutoSyncInfo,
    ChunkResponse,
    DependentAgent,
    DocumentMetadata,
    DocumentResponse,
    DistanceCutResponse,
    DocumentSummary,
    FolderSegment,
    IndexUsage,
    RagIndexResponse,
    RefreshStatus,
)


def _metadata(doc: Document) -> DocumentMetadata:
    return DocumentMetadata(
        created_at_unix_secs=int(doc.created_at),
        last_updated_at_unix_secs=int(doc.updated_at),
        size_bytes=doc.size_bytes,
    )


def _bases(kb: KnowledgeBase, workspace: Workspace, docs: list[Document]) -> list[dict]:
    paths = kb.folders.paths(workspace, [d.parent_folder_id for d in docs])
    counts = kb.folders.counts(workspace, [d.id for d in docs if d.is_folder])
    attributes = kb.attributes.of_documents(workspace.id, docs)
    synced = kb.auto_sync.states(workspace, [d.id for d in docs if d.type in ("url", "folder")])
    bases = []
    for doc in docs:
        fields = {
            "type": doc.type,
            "id": doc.id,
            "name": doc.name,
            "metadata": _metadata(doc),
            "supported_usages": [] if doc.is_folder else ["prompt", "auto"],
            "folder_parent_id": doc.parent_folder_id,
            "folder_path": [FolderSegment(id=i, name=n) for i, n in paths[doc.parent_folder_id]],
            "url": doc.url if doc.type == "url" else None,
            "attributes": attributes[doc.id],
        }
        if doc.is_folder:
            fields["children_count"], fields["document_count"] = counts[doc.id].children, counts[doc.id].documents
        state = synced.get(doc.id)
        if state is not None and state.enabled:
            fields["auto_sync_info"] = auto_sync_info(state)
            if not doc.is_folder:
                fields["refresh_status"] = refresh_status(state)
        bases.append(fields)
    return bases


def _secs(value: float | None) -> int | None:
    return None if value is None else int(value)


def auto_sync_info(state: SyncState) -> AutoSyncInfo:
    return AutoSyncInfo(minimum_frequency_days=state.minimum_frequency_days, auto_remove=state.auto_remove,
                        consec_failures=state.consec_failures, next_refresh_by=_secs(state.next_refresh_by))


def refresh_status(state: SyncState) -> RefreshStatus:
    return RefreshStatus(status=state.refresh_status, enqueued_at=_secs(state.enqueued_at),
                         started_at=_secs(state.started_at), completed_at=_secs(state.completed_at),
                         last_synced_at=_secs(state.last_synced_at), error_message=state.error_message)


def folder_path(kb: KnowledgeBase, workspace: Workspace, folder_id: str | None) -> list[FolderSegment]:
    return [FolderSegment(id=i, name=n) for i, n in kb.folders.path(workspace, folder_id)]


def dependent_agents(page: DependentAgentPage) -> list[DependentAgent]:
    return [
        DependentAgent(id=a.id, name=a.name, created_at_unix_secs=int(a.created_at),
                       referenced_resource_ids=a.referenced_resource_ids if a.transitive else None)
        for a in page.agents
    ]


def summaries(kb: KnowledgeBase, workspace: Workspace, docs: list[Document]) -> list[DocumentSummary]:
    """Summaries of a page of documents: a handful of queries, whatever the page's size."""
    dependents = kb.agents.dependent_agents(workspace, [d.id for d in docs])
    by_document: dict[str, list[DependentAgent]] = {d.id: [] for d in docs}
    for agent in dependents:  # newest first, as for one document
        for document_id in agent.referenced_resource_ids:
            by_document[document_id].append(
                DependentAgent(id=agent.id, name=agent.name, created_at_unix_secs=int(agent.created_at))
            )
    return [
        DocumentSummary(**base, dependent_agents=by_document[doc.id])
        for doc, base in zip(docs, _bases(kb, workspace, docs))
    ]


def summary(kb: KnowledgeBase, workspace: Workspace, doc: Document) -> DocumentSummary:
    return summaries(kb, workspace, [doc])[0]


def detail(kb: KnowledgeBase, workspace: Workspace, doc: Document) -> DocumentResponse:
    [base] = _bases(kb, workspace, [doc])
    if doc.is_folder:
        return DocumentResponse(**base)
    return DocumentResponse(
        **base,
        extracted_inner_html=text_as_html(kb.documents.text(workspace, doc.id)),
        filename=doc.filename or doc.name if doc.type == "file" else None,
        format=doc.format,
        source_metadata={k: str(v) for k, v in doc.metadata.items()},
        char_count=doc.char_count,
    )


def text_as_html(text: str) -> str:
    """The extracted text as simple HTML paragraphs (the `extracted_inner_html` field)."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def rag_index(index: RagIndex, name: str | None = None) -> RagIndexResponse:
    """The index under the model name a client asked for (`name`), or its served model's."""
    return RagIndexResponse(
        id=index.id,
        model=name or index.model,
        served_model=index.model,
        status=index.status,
        progress_percentage=index.progress_percentage,
        document_model_index_usage=IndexUsage(used_bytes=index.used_bytes),
        error=index.error,
        chunks_embedded=index.chunks_embedded,
        chunks_reused=index.chunks_reused,
    )


def chunk(item: Chunk, document_name: str) -> ChunkResponse:
    return ChunkResponse(
        id=item.id,
        name=document_name,
        content=item.text,
        heading_path=list(item.heading_path),
        page_start=item.page_start,
        page_end=item.page_end,
        start=item.start,
        end=item.end,
    )


def distance_cut(cut: DistanceCut | None) -> DistanceCutResponse | None:
    """What the distance cut removed (None when it removed nothing)."""
    if cut is None or not cut.removed:
        return None
    return DistanceCutResponse(max_vector_distance=cut.max_vector_distance, removed=cut.removed,
                               nearest_removed_distance=cut.nearest_removed_distance)


def rag_retrieval_info(result) -> dict:
    """ElevenLabs' `RagRetrievalInfo` of an agent retrieval (`kb.services.agents.AgentRetrieval`)."""
    return {
        "chunks": [
            {"document_id": c.document_id, "chunk_id": c.chunk_id, "vector_distance": c.vector_distance}
            for c in result.chunks
        ],
        "embedding_model": result.embedding_model,
        "retrieval_query": result.retrieval_query,
        "rag_latency_secs": round(result.rag_latency_secs, 6),
        "used_chunk_ids": [c.chunk_id for c in result.chunks],
    }

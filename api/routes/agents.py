"""Agents: create, get, update, delete, list; the size of an agent's knowledge base; retrieval for an agent."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from kb.filters import parse_filter
from kb.knowledge_base import KnowledgeBase
from kb.records import Agent, Workspace
from kb.services.agents import RetrieveOverrides
from kb.services.conversation import Message

from ..agent_schemas import (
    AgentDeletedResponse,
    AgentResponse,
    AgentRetrieveRequest,
    AgentRetrieveResponse,
    AgentsPageResponse,
    AgentSummary,
    CreateAgentRequest,
    CreateAgentResponse,
    DuplicateAgentRequest,
    KnowledgeBaseSizeResponse,
    UpdateAgentRequest,
)
from .. import presenters
from ..deps import KB, CurrentWorkspace
from ..schemas import AccessInfo

router = APIRouter(prefix="/v1/convai", tags=["agents"])


def _agent(kb: KnowledgeBase, workspace: Workspace, agent: Agent) -> dict:
    """The stored agent as given, with ElevenLabs' knowledge-base defaults filled in and kb's fields on
    top (returned without the other fields never set)."""
    return {
        **kb.agents.read_back(workspace, agent),
        "agent_id": agent.id,
        "name": agent.name,
        "tags": agent.tags,
        "metadata": {
            "created_at_unix_secs": int(agent.created_at),
            "updated_at_unix_secs": int(agent.updated_at),
        },
        "access_info": AccessInfo().model_dump(),
    }


@router.post("/agents/create", response_model=CreateAgentResponse, summary="Create an agent")
def create_agent(
    body: CreateAgentRequest,
    kb: KB,
    workspace: CurrentWorkspace,
    enable_versioning: Annotated[bool | None, Query(description="Accepted and ignored.")] = None,
) -> CreateAgentResponse:
    """Store the agent's config. Every `knowledge_base` locator must name a document of this workspace
    (otherwise 400 naming the ids)."""
    agent = kb.agents.create(workspace, body.model_dump(exclude_unset=True))
    return CreateAgentResponse(agent_id=agent.id)


@router.get("/agents", response_model=AgentsPageResponse, summary="List agents")
def list_agents(
    kb: KB,
    workspace: CurrentWorkspace,
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
    search: Annotated[str | None, Query(max_length=1_000, description="Only agents whose name contains this (any case)")] = None,
    sort_by: Annotated[
        Literal["name", "created_at", "updated_at", "call_count_7d"],
        Query(description="call_count_7d sorts by created_at: kb counts no calls"),
    ] = "created_at",
    sort_direction: Literal["asc", "desc"] = "desc",
    tags: Annotated[list[str] | None, Query(max_length=100, description="Only agents with any of these tags (repeat the parameter)")] = None,
) -> AgentsPageResponse:
    page = kb.agents.list(
        workspace, page_size=page_size, cursor=cursor, search=search, sort_by=sort_by, sort_direction=sort_direction,
        tags=tags or (),
    )
    return AgentsPageResponse(
        agents=[
            AgentSummary(
                agent_id=a.id,
                name=a.name,
                voice_id=a.voice_id,
                tags=a.tags,
                created_at_unix_secs=int(a.created_at),
                updated_at_unix_secs=int(a.updated_at),
                access_info=AccessInfo(),
            )
            for a in page.agents
        ],
        next_cursor=page.next_cursor,
        has_more=page.has_more,
    )


@router.get(
    "/agents/{agent_id}", response_model=AgentResponse, response_model_exclude_unset=True, summary="Get an agent"
)
def get_agent(agent_id: str, kb: KB, workspace: CurrentWorkspace) -> dict:
    return _agent(kb, workspace, kb.agents.get(workspace, agent_id))


@router.patch(
    "/agents/{agent_id}", response_model=AgentResponse, response_model_exclude_unset=True, summary="Update an agent"
)
def update_agent(agent_id: str, body: UpdateAgentRequest, kb: KB, workspace: CurrentWorkspace) -> dict:
    """Partial update: `name` and `tags` replace; `conversation_config`, `platform_settings`, `workflow`
    and other fields are deep-merged into the stored ones (lists, such as `knowledge_base`, replaced whole)."""
    return _agent(kb, workspace, kb.agents.update(workspace, agent_id, body.model_dump(exclude_unset=True)))


@router.post("/agents/{agent_id}/duplicate", response_model=CreateAgentResponse, summary="Duplicate an agent")
def duplicate_agent(
    agent_id: str, kb: KB, workspace: CurrentWorkspace, body: DuplicateAgentRequest | None = None
) -> CreateAgentResponse:
    """A new agent with a copy of the agent's config and tags (kb keeps no versions or branches to copy)."""
    agent = kb.agents.duplicate(workspace, agent_id, body.name if body else None)
    return CreateAgentResponse(agent_id=agent.id)


@router.delete("/agents/{agent_id}", response_model=AgentDeletedResponse, summary="Delete an agent")
def delete_agent(
    agent_id: str,
    kb: KB,
    workspace: CurrentWorkspace,
    force: Annotated[bool | None, Query(description="Accepted and ignored.")] = None,
) -> AgentDeletedResponse:
    kb.agents.delete(workspace, agent_id)
    return AgentDeletedResponse()


@router.get(
    "/agent/{agent_id}/knowledge-base/size",
    response_model=KnowledgeBaseSizeResponse,
    summary="Size of the agent's knowledge base in pages",
)
def knowledge_base_size(agent_id: str, kb: KB, workspace: CurrentWorkspace) -> KnowledgeBaseSizeResponse:
    """`number_of_pages`: characters of extracted text of all the agent's documents / 2,000."""
    return KnowledgeBaseSizeResponse(number_of_pages=kb.agents.knowledge_base_size(workspace, agent_id))


@router.post(
    "/agents/{agent_id}/rag/retrieve",
    response_model=AgentRetrieveResponse,
    summary="Retrieve for an agent: chunks of its auto documents, text of its prompt documents",
)
def retrieve_for_agent(
    agent_id: str, body: AgentRetrieveRequest, kb: KB, workspace: CurrentWorkspace
) -> AgentRetrieveResponse:
    """One call a turn. `chunks`: the nearest chunks of the agent's `auto` documents only, cut by its
    `rag` settings (`max_vector_distance`, `max_retrieved_rag_chunks_count`, `max_documents_length`,
    `embedding_model`; defaults: the model's calibrated distance (0.6 for all-MiniLM-L6-v2), 20, 50,000
    and the workspace's model) and this request's overrides; `filters` (with the agent's `rag.filters`)
    and `folder_ids` narrow the auto documents searched; `distance_cut` says what the distance cut
    removed. `prompt_documents`: the whole text of its `prompt` documents. With `rag.enabled`
    false (the default), no search is made and `chunks` is empty. `messages` (the recent turns) put a
    short follow-up in the context of the previous user turn; `rag_retrieval_info` is ElevenLabs'
    record of the retrieval."""
    result = kb.agents.retrieve(
        workspace,
        agent_id,
        body.query,
        RetrieveOverrides(
            max_documents_length=body.max_documents_length,
            max_retrieved_rag_chunks_count=body.max_retrieved_rag_chunks_count,
            use_agent_defaults=body.use_agent_defaults,
            filters=parse_filter(body.filters),
            folder_ids=body.folder_ids,
        ),
        messages=[Message(m.role, m.content) for m in body.messages],
        query_strategy=body.query_strategy,
    )
    chunks = kb.citations.attach(workspace.id, result.chunks) if body.citations else result.chunks
    return AgentRetrieveResponse(
        chunks=[c.__dict__ for c in chunks],
        prompt_documents=[d.__dict__ for d in result.prompt_documents],
        embedding_model=result.embedding_model,
        served_model=result.served_model,
        retrieval_query=result.retrieval_query,
        rag_latency_secs=round(result.rag_latency_secs, 6),
        rag_enabled=result.rag_enabled,
        max_vector_distance=result.max_vector_distance,
        distance_cut=presenters.distance_cut(result.distance_cut),
        rag_retrieval_info=presenters.rag_retrieval_info(result) if result.rag_enabled else None,
    )

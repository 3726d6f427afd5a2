"""Agent request and response bodies, shaped like the ElevenLabs agents API.

Only the parts of `conversation_config` kb reads are spelled out (the knowledge-base locators and the
RAG settings, plus `tts.voice_id` for listings); every object also takes any other field of the
ElevenLabs config, stored and returned as given.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

from kb.services.agent_config import LOCATOR_TYPES, MAX_KNOWLEDGE_BASE_ITEMS, RAG_RANGES, USAGE_MODES
from kb.services.conversation import MAX_MESSAGE_CHARS, MAX_MESSAGES
from kb.services.queries import MAX_QUERY_CHARS

from .schemas import (
    FILTER_EXAMPLE, FILTERS_HELP, FOLDER_IDS_HELP, MAX_GIVEN_NAME_CHARS, MAX_ID_CHARS, MAX_VECTOR_DISTANCE, NAME_CHARS,
    AccessInfo, Flag, RetrieveResponse,
)

OPEN = ConfigDict(extra="allow")
LocatorType = Literal[LOCATOR_TYPES]  # type: ignore[valid-type]
UsageMode = Literal[USAGE_MODES]  # type: ignore[valid-type]
MAX_TAGS = 100
Tag = Annotated[str, Field(min_length=1, max_length=NAME_CHARS)]
# JSON numbers only ("0.5" or true is a 422): the settings kb reads, checked as sent
StrictFloat = Annotated[float, Strict()]
StrictInt = Annotated[int, Strict()]


def _bounded(name: str, description: str) -> Any:
    kind, low, high = RAG_RANGES[name]
    return Field(default=None, ge=kind(low), le=kind(high), description=description)


class KnowledgeBaseLocator(BaseModel):
    model_config = OPEN
    type: LocatorType = Field(description="The document's type: file, url, text or folder.")
    name: str = Field(max_length=MAX_GIVEN_NAME_CHARS, description="Display name of the document in the agent.")
    id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="A document (or folder) id of the agent's workspace.")
    usage_mode: UsageMode | None = Field(
        default=None,
        description="auto (the default): searched by retrieval; prompt: its whole text is given on every turn.",
    )


class RagConfig(BaseModel):
    model_config = OPEN
    enabled: Flag | None = Field(default=None, description="Search the auto documents (default false).")
    embedding_model: str | None = Field(
        default=None, max_length=MAX_GIVEN_NAME_CHARS,
        description="Model whose index is searched: an ElevenLabs name (e5_mistral_7b_instruct, "
        "multilingual_e5_large_instruct) or a KB_MODELS name; by default the workspace's default model, read "
        "back as the ElevenLabs name it serves.",
    )
    max_vector_distance: StrictFloat | None = _bounded("max_vector_distance", MAX_VECTOR_DISTANCE)
    max_documents_length: StrictInt | None = _bounded("max_documents_length", "Characters of chunk text, default 50,000.")
    max_retrieved_rag_chunks_count: StrictInt | None = _bounded("max_retrieved_rag_chunks_count", "Default 20.")
    num_candidates: StrictInt | None = _bounded("num_candidates", "Candidates each search side contributes (default 100).")
    query_rewrite_prompt_override: str | None = Field(default=None, description="Stored; not used yet.")
    filters: Any = Field(default=None, description="kb: the agent's default metadata filter, applied with (AND) "
                         "each request's. " + FILTERS_HELP)


class PromptConfig(BaseModel):
    model_config = OPEN
    prompt: str | None = Field(default=None, description="The system prompt.")
    knowledge_base: list[KnowledgeBaseLocator] | None = Field(
        default=None, max_length=MAX_KNOWLEDGE_BASE_ITEMS,
        description=f"At most {MAX_KNOWLEDGE_BASE_ITEMS:,} locators (name folders to include more documents).",
    )
    rag: RagConfig | None = None


class AgentConfig(BaseModel):
    model_config = OPEN
    first_message: str | None = None
    language: str | None = None
    prompt: PromptConfig | None = None


class TtsConfig(BaseModel):
    model_config = OPEN
    voice_id: str | None = None


class ConversationConfig(BaseModel):
    model_config = OPEN
    agent: AgentConfig | None = None
    tts: TtsConfig | None = None


class AgentFields(BaseModel):
    model_config = OPEN
    platform_settings: dict[str, Any] | None = None
    workflow: dict[str, Any] | None = None
    name: str | None = Field(default=None, max_length=NAME_CHARS, description="Defaults to 'Untitled agent'.")
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)


class CreateAgentRequest(AgentFields):
    conversation_config: ConversationConfig


class UpdateAgentRequest(AgentFields):
    conversation_config: ConversationConfig | None = Field(
        default=None, description="Deep-merged into the stored one (lists such as knowledge_base are replaced whole)."
    )


class CreateAgentResponse(BaseModel):
    agent_id: str


class DuplicateAgentRequest(BaseModel):
    name: str | None = Field(default=None, max_length=NAME_CHARS, description="Defaults to the agent's name + ' (copy)'.")


class AgentMetadata(BaseModel):
    created_at_unix_secs: int
    updated_at_unix_secs: int


class AgentResponse(BaseModel):
    model_config = OPEN
    agent_id: str
    name: str
    conversation_config: ConversationConfig
    metadata: AgentMetadata
    platform_settings: dict[str, Any] | None = None
    workflow: dict[str, Any] | None = None
    access_info: AccessInfo
    tags: list[str]


class AgentSummary(BaseModel):
    agent_id: str
    name: str
    voice_id: str = Field(description="conversation_config.tts.voice_id, or empty.")
    tags: list[str]
    created_at_unix_secs: int
    updated_at_unix_secs: int
    access_info: AccessInfo


class AgentsPageResponse(BaseModel):
    agents: list[AgentSummary]
    next_cursor: str | None = None
    has_more: bool


class KnowledgeBaseSizeResponse(BaseModel):
    number_of_pages: float = Field(description="Characters of the agent's documents / 2,000.")


class ConversationMessage(BaseModel):
    role: Literal["user", "agent", "assistant"] = Field(description="Who said it.")
    content: str = Field(max_length=MAX_MESSAGE_CHARS, description="What was said.")


class RagChunkMetadataResponse(BaseModel):
    """ElevenLabs' `RagChunkMetadata`."""

    document_id: str
    chunk_id: str
    vector_distance: float


class RagRetrievalInfoResponse(BaseModel):
    """ElevenLabs' `RagRetrievalInfo`: the record of one turn's retrieval."""

    chunks: list[RagChunkMetadataResponse] = Field(description="The chunks used, best first.")
    embedding_model: str = Field(description="The model name the agent asks for (see `served_model`).")
    retrieval_query: str = Field(description="The text searched: the query, with the previous user turn for a short follow-up.")
    rag_latency_secs: float = Field(description="Seconds the retrieval took.")
    used_chunk_ids: list[str] = Field(default=[], description="The ids of the chunks handed to the agent.")


class AgentRetrieveRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The user's question or the agent's search text.")
    max_documents_length: int | None = _bounded(
        "max_documents_length", "Overrides the agent's rag.max_documents_length for this call."
    )
    max_retrieved_rag_chunks_count: int | None = _bounded(
        "max_retrieved_rag_chunks_count", "Overrides the agent's rag.max_retrieved_rag_chunks_count for this call."
    )
    use_agent_defaults: Flag = Field(
        default=True, description="False: limits not given here come from kb's defaults, not the agent's rag config."
    )
    filters: Any = Field(default=None, description="Applied with (AND) the agent's rag.filters. " + FILTERS_HELP,
                         examples=[FILTER_EXAMPLE])
    folder_ids: list[str] | None = Field(default=None, description="Only the agent's documents below these folders. "
                                         + FOLDER_IDS_HELP)
    messages: list[ConversationMessage] = Field(
        default=[], max_length=MAX_MESSAGES,
        description="The conversation's recent turns, oldest first (the current one may be last): a short "
        "follow-up is searched together with the previous user turn (see `rag_retrieval_info.retrieval_query`).",
    )
    query_strategy: Literal["short", "concat", "last"] = Field(
        default="short",
        description="How `messages` shape the retrieval query: short (default) puts the previous user turn before a "
        "query of at most 8 words; concat before any query; last ignores the messages.",
    )
    citations: Annotated[bool, Strict()] = Field(
        default=False, description="Give each chunk a speakable `citation` in its document's language."
    )


class PromptDocumentResponse(BaseModel):
    document_id: str
    document_name: str
    text: str = Field(description="The document's whole extracted text.")


class AgentRetrieveResponse(RetrieveResponse):
    """`served_model` is null when rag is disabled (no model ran)."""

    prompt_documents: list[PromptDocumentResponse] = Field(description="The agent's prompt-mode documents, whole.")
    rag_enabled: bool = Field(description="The agent's rag.enabled; when false, chunks is always empty.")
    rag_retrieval_info: RagRetrievalInfoResponse | None = Field(
        default=None, description="ElevenLabs' record of this retrieval (null when rag is disabled)."
    )


class AgentDeletedResponse(BaseModel):
    """Empty: the agent is gone."""

"""Request and response bodies, shaped like the ElevenLabs knowledge-base API (extra kb fields are additive)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from kb.services.retrieval import RetrievalLimits

DEFAULT_LIMITS = RetrievalLimits()


class TextDocumentRequest(BaseModel):
    text: str = Field(description="The text to add to the knowledge base.")
    name: str | None = Field(default=None, description="Display name; defaults to the text's first words.")
    parent_folder_id: str | None = Field(default=None, description="Folder to put the document in.")


class UrlDocumentRequest(BaseModel):
    url: str = Field(description="An http(s) URL whose page or file is fetched and indexed.")
    name: str | None = Field(default=None, description="Display name; defaults to the page title.")
    parent_folder_id: str | None = None
    enable_auto_sync: bool | None = Field(default=None, description="Not supported yet: must be false or absent.")
    auto_remove: bool | None = None
    minimum_frequency_days: int | None = None


class FolderRequest(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    parent_folder_id: str | None = None
    enable_auto_sync: bool | None = None
    auto_remove: bool | None = None
    minimum_frequency_days: int | None = None


class UpdateDocumentRequest(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    content: str | None = Field(
        default=None,
        description="New text of the document (re-indexed); for a file or URL document, its source file is kept.",
    )
    enable_auto_sync: bool | None = None
    auto_remove: bool | None = None
    minimum_frequency_days: int | None = None
    tighten_only: bool | None = None


class MoveRequest(BaseModel):
    move_to: str | None = Field(default=None, description="Destination folder id; null for the root.")


class BulkMoveRequest(MoveRequest):
    document_ids: list[str] = Field(min_length=1, max_length=100)


class BulkDeleteRequest(BaseModel):
    document_ids: list[str] = Field(min_length=1, max_length=100)
    force: bool = False


class DocumentIdsRequest(BaseModel):
    document_ids: list[str] = Field(min_length=1, max_length=100)


MODEL_NAME = (
    "Embedding model name: ElevenLabs' e5_mistral_7b_instruct or multilingual_e5_large_instruct (served by "
    "their fallback in KB_MODEL_ALIASES when not on this machine), or a model of KB_MODELS such as all-MiniLM-L6-v2."
)
SERVED_MODEL = "kb: the model that actually runs for the name asked for (its indexes are shared by every such name)."


class RagIndexRequest(BaseModel):
    model: str = Field(description=MODEL_NAME)


class RagIndexBatchItem(BaseModel):
    document_id: str
    create_if_missing: bool
    model: str = Field(description=MODEL_NAME)


class RagIndexBatchRequest(BaseModel):
    items: list[RagIndexBatchItem] = Field(min_length=1, max_length=100)


class FolderSegment(BaseModel):
    id: str
    name: str | None = None


class AddDocumentResponse(BaseModel):
    id: str
    name: str
    folder_path: list[FolderSegment] = []


class DocumentMetadata(BaseModel):
    created_at_unix_secs: int
    last_updated_at_unix_secs: int
    size_bytes: int


class AccessInfo(BaseModel):
    is_creator: bool = True
    creator_name: str = ""
    creator_email: str = ""
    role: Literal["admin", "editor", "commenter", "viewer"] = "admin"


class DependentAgent(BaseModel):
    type: Literal["available", "unknown"] = "available"
    id: str
    name: str | None = None
    created_at_unix_secs: int | None = None
    access_level: Literal["admin", "editor", "commenter", "viewer"] | None = "admin"
    referenced_resource_ids: list[str] | None = Field(
        default=None, description="Transitive dependents: the folders (above the documents) the agent names."
    )


DependentType = Literal["direct", "transitive", "all"]
DEPENDENT_TYPE_HELP = (
    "direct: agents naming the document; transitive: agents naming only a folder above it; all (the default): both."
)


class DocumentBase(BaseModel):
    type: Literal["file", "url", "text", "folder"]
    id: str
    name: str
    metadata: DocumentMetadata
    supported_usages: list[Literal["prompt", "auto"]] = ["prompt", "auto"]
    access_info: AccessInfo = AccessInfo()
    folder_parent_id: str | None = None
    folder_path: list[FolderSegment] = []
    url: str | None = Field(default=None, description="URL documents: the final URL fetched.")
    children_count: int | None = Field(default=None, description="Folders: direct children.")
    document_count: int | None = Field(default=None, description="Folders: documents anywhere below.")


class DocumentSummary(DocumentBase):
    dependent_agents: list[DependentAgent] = []


class DocumentResponse(DocumentBase):
    extracted_inner_html: str | None = Field(default=None, description="Documents: the extracted text as HTML.")
    filename: str | None = Field(default=None, description="File documents: the uploaded file's name.")
    format: str | None = Field(default=None, description="Detected format: pdf, docx, epub, html, txt or markdown.")
    source_metadata: dict[str, str] = Field(default_factory=dict, description="Title, author... found in the file.")
    char_count: int | None = None


class DocumentListResponse(BaseModel):
    documents: list[DocumentSummary]
    next_cursor: str | None = None
    has_more: bool


class SnippetPart(BaseModel):
    value: str
    is_hit: bool


class SearchResult(BaseModel):
    document: DocumentSummary
    score: float
    search_snippet: list[SnippetPart]


class SearchResponse(BaseModel):
    results: list[SearchResult]
    next_cursor: str | None = None


class DependentAgentsResponse(BaseModel):
    agents: list[DependentAgent]
    next_cursor: str | None = None
    has_more: bool = False
    errors: dict[str, "BatchFailure"] = Field(
        default_factory=dict, description="kb: documents of the request that were not found, each with its error."
    )


class SourceFileUrlResponse(BaseModel):
    signed_url: str


class IndexUsage(BaseModel):
    used_bytes: int


class RagIndexResponse(BaseModel):
    id: str
    model: str = Field(description="The model name asked for (listings: each name the index was asked for by).")
    served_model: str = Field(description=SERVED_MODEL)
    status: Literal["created", "processing", "succeeded", "failed", "rag_limit_exceeded", "document_too_small"]
    progress_percentage: float
    document_model_index_usage: IndexUsage
    error: str | None = Field(default=None, description="Why the index failed or was not built, when so.")
    chunks_embedded: int = Field(default=0, description="Chunks the model embedded in the last run.")
    chunks_reused: int = Field(default=0, description="Chunks whose identical text was embedded before (not re-embedded).")


class RagIndexesResponse(BaseModel):
    indexes: list[RagIndexResponse]


class ModelUsage(BaseModel):
    model: str = Field(description="The served model: names it serves share its indexes and are counted once.")
    used_bytes: int


class RagOverviewResponse(BaseModel):
    total_used_bytes: int
    total_max_bytes: int
    models: list[ModelUsage]


class BatchFailure(BaseModel):
    status: Literal["failure"] = "failure"
    error_code: int
    error_status: str
    error_message: str


class RagIndexBatchSuccess(BaseModel):
    status: Literal["success"] = "success"
    data: RagIndexResponse


class DeletedId(BaseModel):
    id: str


class BulkDeleteSuccess(BaseModel):
    status: Literal["success"] = "success"
    data: DeletedId


class MovedId(BaseModel):
    id: str


class BulkMoveSuccess(BaseModel):
    status: Literal["success"] = "success"
    data: MovedId


class SummarySuccess(BaseModel):
    status: Literal["success"] = "success"
    data: DocumentSummary


class ChunkResponse(BaseModel):
    id: str
    name: str
    content: str
    heading_path: list[str] = []
    page_start: int | None = None
    page_end: int | None = None
    start: int = Field(description="Offset of the chunk in the document's extracted text.")
    end: int


class ChunksResponse(BaseModel):
    chunks: list[ChunkResponse]
    next_cursor: str | None = None


class RetrieveRequest(BaseModel):
    query: str = Field(min_length=1, description="The user's question or the agent's search text.")
    document_ids: list[str] | None = Field(default=None, description="Search only these documents.")
    embedding_model: str | None = Field(
        default=None, description="Defaults to the workspace's default model. " + MODEL_NAME
    )
    max_vector_distance: float = Field(
        default=DEFAULT_LIMITS.max_vector_distance, ge=0.0, le=2.0,
        description="Drop chunks farther than this cosine distance (1 - cosine similarity).",
    )
    max_documents_length: int = Field(
        default=DEFAULT_LIMITS.max_documents_length, ge=1, le=10_000_000,
        description="Keep chunks in rank order while their total text length stays within this many characters.",
    )
    max_retrieved_rag_chunks_count: int = Field(
        default=DEFAULT_LIMITS.max_retrieved_rag_chunks_count, ge=1, le=1000,
        description="How many best-ranked chunks to take before the distance and length filters.",
    )
    search_mode: Literal["hybrid", "dense", "lexical"] = Field(
        default="hybrid", description="hybrid: dense and BM25 fused adaptively; dense: vectors only; lexical: BM25 only."
    )
    num_candidates: int = Field(default=100, ge=1, le=10_000, description="Candidates each search side contributes.")
    budget_ms: float | None = Field(
        default=None, gt=0, le=60_000,
        description="Latency budget: when tight, costly optional steps are skipped and listed in `skipped`.",
    )
    context_chunks: int = Field(
        default=0, ge=0, le=10, description="Merge up to this many adjacent chunks on each side into each hit."
    )
    citations: bool = Field(
        default=False, description="Give each hit a speakable `citation` in its document's language."
    )


class RetrievedChunkResponse(BaseModel):
    document_id: str
    document_name: str
    chunk_id: str
    vector_distance: float
    text: str
    heading_path: list[str] = Field(default=[], description="Headings the chunk sits under, outermost first.")
    page_start: int | None = Field(default=None, description="First page of the chunk (PDF).")
    page_end: int | None = None
    start: int = Field(description="Offset of the chunk in the document's extracted text (`content[start:end]`).")
    end: int
    citation: str | None = Field(
        default=None, description='Speakable source ("from the Returns policy, page 3, section Refunds"), when asked for.'
    )


class Timings(BaseModel):
    embed: float = Field(description="Query embedding (cached queries cost ~0).")
    dense: float
    lexical: float
    fuse: float = Field(description="Ranking, exact distances of every candidate, and the limits.")
    context: float = 0.0
    total: float


class RetrieveResponse(BaseModel):
    chunks: list[RetrievedChunkResponse]
    embedding_model: str = Field(description="The model name asked for (or the workspace's default).")
    served_model: str | None = Field(default=None, description=SERVED_MODEL)
    retrieval_query: str
    rag_latency_secs: float
    search_mode: str = "hybrid"
    timings_ms: Timings | None = Field(default=None, description="Milliseconds spent in each step.")
    skipped: list[str] = Field(default=[], description="Optional steps skipped to meet budget_ms.")




DependentAgentsResponse.model_rebuild()

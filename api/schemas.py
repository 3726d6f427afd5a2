"""Request and response bodies, shaped like the ElevenLabs knowledge-base API (extra kb fields are additive)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, Strict

from kb.services.queries import MAX_QUERY_CHARS
from kb.services.retrieval import RetrievalLimits

DEFAULT_LIMITS = RetrievalLimits()
# Field limits of request bodies (README "Limits"); names longer than NAME_CHARS are cut to it when stored.
NAME_CHARS = 255
MAX_GIVEN_NAME_CHARS = 1_000
MAX_ID_CHARS = 128
MAX_URL_CHARS = 8_192
MAX_FILTER_IDS = 1_000
Flag = Annotated[bool, Strict()]  # JSON true or false only: "yes" or 1 is a 422, not a guess
DocumentId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
FolderId = Annotated[str | None, Field(default=None, max_length=MAX_ID_CHARS)]

ATTRIBUTES_HELP = (
    "kb: the document's attributes, an object of up to 16 keys whose values are strings (up to 512 "
    "characters), numbers, booleans or ISO 8601 dates (strings such as 2024-05-01), used by `filters`. "
    "source_type, format, file_name, url, site, page_count, language, created_at and updated_at are set by kb."
)
FILTERS_HELP = (
    "kb: a metadata filter in OpenAI file_search's form: a comparison {\"type\": eq|ne|gt|gte|lt|lte|in|nin, "
    "\"key\", \"value\"} or a compound {\"type\": and|or, \"filters\": [...]}, nested up to 5 levels. "
    "Applied inside the search: the best chunks among the documents that pass."
)
FOLDER_IDS_HELP = "kb: only documents anywhere below these folders (sub-folders included), up to 100."
FILTER_EXAMPLE = {"type": "and", "filters": [{"type": "eq", "key": "product", "value": "kettle"},
                                             {"type": "gte", "key": "created_at", "value": "2024-01-01"}]}


class TextDocumentRequest(BaseModel):
    text: str = Field(description="The text to add to the knowledge base.")
    name: str | None = Field(default=None, max_length=MAX_GIVEN_NAME_CHARS,
                             description="Display name (cut to 255 characters); defaults to the text's first words.")
    parent_folder_id: FolderId = Field(default=None, description="Folder to put the document in.")
    attributes: Any = Field(default=None, description=ATTRIBUTES_HELP, examples=[{"product": "kettle", "year": 2024}])


class UrlDocumentRequest(BaseModel):
    url: str = Field(max_length=MAX_URL_CHARS, description="An http(s) URL whose page or file is fetched and indexed.")
    name: str | None = Field(default=None, max_length=MAX_GIVEN_NAME_CHARS,
                             description="Display name (cut to 255 characters); defaults to the page title.")
    parent_folder_id: FolderId = None
    enable_auto_sync: Flag | None = Field(default=None, description="Fetch the page again when due (see auto_sync_info).")
    auto_remove: Flag | None = None
    minimum_frequency_days: int | None = Field(default=None, ge=0, le=3650)
    attributes: Any = Field(default=None, description=ATTRIBUTES_HELP)


class FolderRequest(BaseModel):
    name: str = Field(min_length=1, max_length=NAME_CHARS)
    parent_folder_id: FolderId = None
    enable_auto_sync: Flag | None = None
    auto_remove: Flag | None = None
    minimum_frequency_days: int | None = Field(default=None, ge=0, le=3650)


class UpdateDocumentRequest(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=NAME_CHARS)
    content: str | None = Field(
        default=None,
        description="New text of the document (re-indexed); for a file or URL document, its source file is kept.",
    )
    attributes: Any = Field(default=None, description="kb: replaces the document's attributes whole ({} removes "
                            "them); the automatic ones stay. " + ATTRIBUTES_HELP)
    enable_auto_sync: Flag | None = None
    auto_remove: Flag | None = None
    minimum_frequency_days: int | None = Field(default=None, ge=0, le=3650)
    tighten_only: Flag | None = None


class MoveRequest(BaseModel):
    move_to: FolderId = Field(default=None, description="Destination folder id; null for the root.")


class BulkMoveRequest(MoveRequest):
    document_ids: list[DocumentId] = Field(min_length=1, max_length=100)


class BulkDeleteRequest(BaseModel):
    document_ids: list[DocumentId] = Field(min_length=1, max_length=100)
    force: Flag = False


class DocumentIdsRequest(BaseModel):
    document_ids: list[DocumentId] = Field(min_length=1, max_length=100)


MODEL_NAME = (
    "Embedding model name: ElevenLabs' e5_mistral_7b_instruct or multilingual_e5_large_instruct (served by "
    "their fallback in KB_MODEL_ALIASES when not on this machine), or a model of KB_MODELS such as all-MiniLM-L6-v2."
)
SERVED_MODEL = "kb: the model that actually runs for the name asked for (its indexes are shared by every such name)."
MAX_VECTOR_DISTANCE = (
    "Drop chunks farther than this cosine distance (1 - cosine similarity). Default (null or absent): the "
    "calibrated default of the model that serves the request (0.60 for all-MiniLM-L6-v2 on ONNX int8, 0.59 on "
    "torch). A value given with an ElevenLabs e5 model name that another model serves is on e5's scale and is "
    "mapped onto the served model's: linear from 0 -> 0 to 0.25 -> 0.70, and 0.25 or more (ElevenLabs' 0.6 "
    "included) -> the served model's default. Outside search_mode dense the cut spares complete lexical "
    "matches (every query term in the chunk's text) and does not apply in a language the model does not know."
)


class RagIndexRequest(BaseModel):
    model: str = Field(max_length=MAX_GIVEN_NAME_CHARS, description=MODEL_NAME)


class RagIndexBatchItem(BaseModel):
    document_id: DocumentId
    create_if_missing: Flag
    model: str = Field(max_length=MAX_GIVEN_NAME_CHARS, description=MODEL_NAME)


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


CrawlStatus = Literal["queued", "processing", "succeeded", "failed", "skipped", "cancelled"]


class AutoSyncInfo(BaseModel):
    minimum_frequency_days: int
    auto_remove: bool
    consec_failures: int
    next_refresh_by: int | None = Field(default=None, description="When the next sync is due (None for folders).")


class RefreshStatus(BaseModel):
    status: CrawlStatus | None = None
    enqueued_at: int | None = None
    started_at: int | None = None
    completed_at: int | None = None
    last_synced_at: int | None = None
    error_message: str | None = None


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
    attributes: dict[str, Any] = Field(default_factory=dict, description=ATTRIBUTES_HELP)
    auto_sync_info: AutoSyncInfo | None = Field(default=None, description="URL documents and folders with auto-sync on.")
    refresh_status: RefreshStatus | None = Field(default=None, description="kb: the last or current sync of an auto-synced URL document.")


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
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The user's question or the agent's search text.")
    document_ids: list[DocumentId] | None = Field(default=None, max_length=MAX_FILTER_IDS,
                                                  description="Search only these documents.")
    filters: Any = Field(default=None, description=FILTERS_HELP, examples=[FILTER_EXAMPLE])
    folder_ids: list[DocumentId] | None = Field(default=None, max_length=100, description=FOLDER_IDS_HELP)
    embedding_model: str | None = Field(
        default=None, max_length=MAX_GIVEN_NAME_CHARS, description="Defaults to the workspace's default model. " + MODEL_NAME
    )
    max_vector_distance: float | None = Field(
        default=None, ge=0.0, le=2.0, description=MAX_VECTOR_DISTANCE,
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
    filter: float = Field(default=0.0, description="The allowed chunks of document_ids, folder_ids and filters.")
    dense: float
    lexical: float
    fuse: float = Field(description="Ranking, exact distances of every candidate, and the limits.")
    context: float = 0.0
    total: float


class DistanceCutResponse(BaseModel):
    """What max_vector_distance removed from the ranked chunks; with no chunks left, why the answer is empty."""

    max_vector_distance: float = Field(description="The cut applied (given, mapped, or the model's default).")
    removed: int = Field(description="Ranked chunks dropped for being farther than max_vector_distance.")
    nearest_removed_distance: float = Field(
        description="The distance of the nearest chunk dropped: a max_vector_distance at or above it keeps it."
    )


class RetrieveResponse(BaseModel):
    chunks: list[RetrievedChunkResponse]
    embedding_model: str = Field(description="The model name asked for (or the workspace's default).")
    served_model: str | None = Field(default=None, description=SERVED_MODEL)
    retrieval_query: str
    rag_latency_secs: float
    search_mode: str = "hybrid"
    timings_ms: Timings | None = Field(default=None, description="Milliseconds spent in each step.")
    skipped: list[str] = Field(default=[], description="Optional steps skipped to meet budget_ms.")
    max_vector_distance: float | None = Field(
        default=None, description="kb: the distance cut applied (the request's, mapped, or the model's default)."
    )
    distance_cut: DistanceCutResponse | None = Field(
        default=None,
        description="kb: present when max_vector_distance removed ranked chunks: how many and the nearest one's "
        "distance; with `chunks` empty, that is why nothing came back.",
    )




DependentAgentsResponse.model_rebuild()

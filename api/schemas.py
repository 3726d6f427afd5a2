"""Request and response bodies, shaped like the ElevenLabs knowledge-base API (extra kb fields are additive)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from index.retrieval import RetrievalLimits

DEFAULT_LIMITS = RetrievalLimits()


class TextDocumentRequest(BaseModel):
    text: str = Field(description="The text to add to the knowledge base.")
    name: str | None = Field(default=None, description="Display name; defaults to the text's first words.")


class UrlDocumentRequest(BaseModel):
    url: str = Field(description="An http(s) URL whose page or file is fetched and indexed.")
    name: str | None = Field(default=None, description="Display name; defaults to the page title.")


class RenameRequest(BaseModel):
    name: str = Field(min_length=1, max_length=255)


class RagIndexRequest(BaseModel):
    model: str = Field(description="Embedding model name, e.g. all-MiniLM-L6-v2.")


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


class DocumentSummary(BaseModel):
    id: str
    name: str
    type: Literal["file", "url", "text"]
    metadata: DocumentMetadata
    supported_usages: list[Literal["prompt", "auto"]] = ["prompt", "auto"]
    access_info: AccessInfo = AccessInfo()
    folder_parent_id: str | None = None
    folder_path: list[FolderSegment] = []
    dependent_agents: list[dict] = []
    url: str | None = None
    filename: str | None = None
    format: str = Field(description="Detected format: pdf, docx, epub, html, txt or markdown.")


class DocumentResponse(DocumentSummary):
    extracted_inner_html: str
    source_metadata: dict[str, str] = Field(default_factory=dict, description="Title, author... found in the file.")
    char_count: int


class DocumentListResponse(BaseModel):
    documents: list[DocumentSummary]
    next_cursor: str | None = None
    has_more: bool


class IndexUsage(BaseModel):
    used_bytes: int


class RagIndexResponse(BaseModel):
    id: str
    model: str
    status: Literal["created", "processing", "succeeded", "failed"]
    progress_percentage: float
    document_model_index_usage: IndexUsage
    error: str | None = Field(default=None, description="Why indexing failed, when it did.")


class RagIndexesResponse(BaseModel):
    indexes: list[RagIndexResponse]


class ChunkResponse(BaseModel):
    id: str
    name: str
    content: str
    heading_path: list[str] = []
    page_start: int | None = None
    page_end: int | None = None
    start: int = Field(description="Offset of the chunk in the document's extracted text.")
    end: int


class RetrieveRequest(BaseModel):
    query: str = Field(min_length=1, description="The user's question or the agent's search text.")
    document_ids: list[str] | None = Field(default=None, description="Search only these documents.")
    embedding_model: str | None = Field(default=None, description="Defaults to the workspace's default model.")
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
        description="How many nearest chunks to take before the distance and length filters.",
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


class RetrieveResponse(BaseModel):
    chunks: list[RetrievedChunkResponse]
    embedding_model: str
    retrieval_query: str
    rag_latency_secs: float


class DeletedResponse(BaseModel):
    pass

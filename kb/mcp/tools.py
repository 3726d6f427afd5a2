"""What kb's MCP tools do, for one workspace: search, list and read documents, add text and URLs.

Plain functions over kb's services returning pydantic models (the tools' structured content); the
MCP server (`kb.mcp.server`) wraps them and renders the text an LLM reads and cites.
"""

from __future__ import annotations

from typing import Literal

from index.retrieval import RetrievalLimits
from pydantic import BaseModel, Field

from ..knowledge_base import KnowledgeBase
from ..records import Document, ListQuery, Workspace
from ..services.retrieval import SearchOptions

DOCUMENT_TYPES = ("file", "url", "text")
MAX_RESULTS = 50
MAX_READ_CHARS = 50_000
DEFAULT_READ_CHARS = 10_000


class SearchHit(BaseModel):
    rank: int
    text: str
    document_id: str
    document_name: str
    chunk_id: str
    url: str | None = Field(default=None, description="The page the text came from (URL documents).")
    page_start: int | None = None
    page_end: int | None = None
    heading_path: list[str] = []
    vector_distance: float = Field(description="Cosine distance to the query (0: same meaning; lower is closer).")
    citation: str = Field(description="A short spoken-style reference to the source.")


class SearchResults(BaseModel):
    query: str
    results: list[SearchHit]


class DocumentEntry(BaseModel):
    id: str
    name: str
    type: str
    url: str | None = None
    parent_folder_id: str | None = None
    characters: int


class DocumentList(BaseModel):
    documents: list[DocumentEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    has_more: bool


class DocumentText(BaseModel):
    document_id: str
    name: str
    url: str | None = None
    offset: int
    text: str
    total_characters: int
    next_offset: int | None = Field(description="Pass as `offset` to read on; null when the end is reached.")


def _entry(doc: Document) -> DocumentEntry:
    return DocumentEntry(id=doc.id, name=doc.name, type=doc.type, url=doc.url, parent_folder_id=doc.parent_folder_id,
                         characters=doc.char_count)


def _scope(kb: KnowledgeBase, workspace: Workspace, document_ids: list[str] | None,
           folder_ids: list[str] | None) -> list[str] | None:
    """The documents to search: those named and those below the folders named (None: all)."""
    if document_ids is None and folder_ids is None:
        return None
    ids = list(document_ids or [])
    for folder_id in folder_ids or []:
        folder = kb.documents.get(workspace, folder_id)
        if not folder.is_folder:
            from ..errors import InvalidRequest

            raise InvalidRequest(f"folder_ids: {folder_id!r} is a document, not a folder; pass it in document_ids")
        ids += kb.folders.descendant_ids(workspace, folder_id)
    return list(dict.fromkeys(ids))


def search(kb: KnowledgeBase, workspace: Workspace, query: str, *, document_ids: list[str] | None = None,
           folder_ids: list[str] | None = None, mode: Literal["hybrid", "dense", "lexical"] = "hybrid",
           max_results: int = 5, max_vector_distance: float = 0.6, max_characters: int = 20_000) -> SearchResults:
    scope = _scope(kb, workspace, document_ids, folder_ids)
    if scope == []:  # the folders named hold no document
        return SearchResults(query=query, results=[])
    result = kb.retrieval.retrieve(
        workspace, query, document_ids=scope,
        limits=RetrievalLimits(max_vector_distance=max_vector_distance, max_documents_length=max_characters,
                               max_retrieved_rag_chunks_count=max_results),
        options=SearchOptions(mode=mode),
    )
    hits = kb.citations.attach(workspace.id, result.chunks)
    urls = {d.id: d.url for d in kb.documents.get_many(workspace, list({h.document_id for h in hits})).values()}
    return SearchResults(query=result.retrieval_query, results=[
        SearchHit(rank=rank, text=h.text, document_id=h.document_id, document_name=h.document_name,
                  chunk_id=h.chunk_id, url=urls.get(h.document_id), page_start=h.page_start, page_end=h.page_end,
                  heading_path=h.heading_path, vector_distance=h.vector_distance, citation=h.citation or "")
        for rank, h in enumerate(hits, 1)
    ])


def list_documents(kb: KnowledgeBase, workspace: Workspace, *, search: str | None = None,
                   folder_id: str | None = None, page_size: int = 30, cursor: str | None = None) -> DocumentList:
    page = kb.documents.list(workspace, ListQuery(page_size=page_size, cursor=cursor, search=search,
                                                  types=DOCUMENT_TYPES, ancestor_folder_id=folder_id,
                                                  sort_by="name", sort_direction="asc"))
    return DocumentList(documents=[_entry(d) for d in page.documents], next_cursor=page.next_cursor,
                        has_more=page.has_more)


def get_document(kb: KnowledgeBase, workspace: Workspace, document_id: str, *, offset: int = 0,
                 max_characters: int = DEFAULT_READ_CHARS) -> DocumentText:
    doc = kb.documents.get(workspace, document_id)
    text = kb.documents.text(workspace, document_id)
    piece = text[offset: offset + max_characters]
    end = offset + len(piece)
    return DocumentText(document_id=doc.id, name=doc.name, url=doc.url, offset=offset, text=piece,
                        total_characters=len(text), next_offset=end if end < len(text) else None)


def add_text(kb: KnowledgeBase, workspace: Workspace, text: str, name: str | None = None,
             folder_id: str | None = None) -> DocumentEntry:
    return _entry(kb.documents.add_text(workspace, text, name, folder_id))


def add_url(kb: KnowledgeBase, workspace: Workspace, url: str, name: str | None = None,
            folder_id: str | None = None) -> DocumentEntry:
    return _entry(kb.documents.add_url(workspace, url, name, folder_id))


def document_overview(kb: KnowledgeBase, workspace: Workspace, most: int) -> list[DocumentEntry] | None:
    """The workspace's documents when there are at most `most` of them (else None)."""
    if most <= 0:
        return None
    page = kb.documents.list(workspace, ListQuery(page_size=min(most, 100), types=DOCUMENT_TYPES,
                                                  sort_by="name", sort_direction="asc"))
    return None if page.has_more else [_entry(d) for d in page.documents]

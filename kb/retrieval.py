"""Retrieval for agent runtimes: nearest chunks of a workspace, cut by the request's limits."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from index.embedders import ModelUnavailable
from index.retrieval import Candidate, RetrievalLimits, apply_limits

from .db import Database, chunks, documents
from .errors import InvalidRequest, NotFound
from .models import ModelRegistry
from .vectors import VectorIndexes
from .workspaces import Workspace

MAX_QUERY_CHARS = 10_000


@dataclass(frozen=True)
class RetrievedChunk:
    document_id: str
    document_name: str
    chunk_id: str
    vector_distance: float
    text: str
    heading_path: list[str]
    page_start: int | None
    page_end: int | None
    start: int
    end: int


@dataclass(frozen=True)
class RetrievalResult:
    chunks: list[RetrievedChunk]
    embedding_model: str
    retrieval_query: str
    rag_latency_secs: float


class QueryEmbeddingCache:
    """Bounded LRU of query vectors keyed by (model, text): agents repeat questions often."""

    def __init__(self, size: int = 1024):
        self.size = size
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: str, text: str) -> np.ndarray | None:
        with self._lock:
            vector = self._items.get((model, text))
            if vector is not None:
                self._items.move_to_end((model, text))
            return vector

    def put(self, model: str, text: str, vector: np.ndarray) -> None:
        with self._lock:
            self._items[(model, text)] = vector
            self._items.move_to_end((model, text))
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class Retriever:
    def __init__(self, db: Database, models: ModelRegistry, vectors: VectorIndexes):
        self.db = db
        self.models = models
        self.vectors = vectors
        self.cache = QueryEmbeddingCache()

    def embed_query(self, model: str, query: str) -> np.ndarray:
        vector = self.cache.get(model, query)
        if vector is None:
            try:
                vector = self.models.get(model).embed_query(query)
            except ModelUnavailable as exc:
                raise InvalidRequest(str(exc)) from exc
            self.cache.put(model, query, vector)
        return vector

    def retrieve(
        self,
        workspace: Workspace,
        query: str,
        *,
        document_ids: list[str] | None = None,
        embedding_model: str | None = None,
        limits: RetrievalLimits = RetrievalLimits(),
    ) -> RetrievalResult:
        started = time.perf_counter()
        query = query.strip()
        if not query:
            raise InvalidRequest("query must not be empty")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidRequest(f"query is longer than {MAX_QUERY_CHARS} characters")
        model = self.models.require_known(embedding_model or workspace.default_model)
        query_vector = self.embed_query(model, query)
        embedder = self.models.get(model)
        store = self.vectors.get(workspace.id, model, embedder.dimension)
        allowed = self._allowed_keys(workspace.id, model, document_ids) if document_ids is not None else None
        keys, distances = store.search(query_vector, limits.max_retrieved_rag_chunks_count, allowed)
        hits = self._load_chunks(workspace.id, [int(k) for k in keys])
        candidates = [
            Candidate(int(k), float(d), len(hits[int(k)].text)) for k, d in zip(keys, distances) if int(k) in hits
        ]
        kept = apply_limits(candidates, limits)
        result = [
            RetrievedChunk(
                document_id=hits[c.chunk_key].document_id,
                document_name=hits[c.chunk_key].name,
                chunk_id=hits[c.chunk_key].id,
                vector_distance=round(max(0.0, c.vector_distance), 6),
                text=hits[c.chunk_key].text,
                heading_path=json.loads(hits[c.chunk_key].heading_path),
                page_start=hits[c.chunk_key].page_start,
                page_end=hits[c.chunk_key].page_end,
                start=hits[c.chunk_key].start,
                end=hits[c.chunk_key].end,
            )
            for c in kept
        ]
        return RetrievalResult(result, model, query, time.perf_counter() - started)

    def _allowed_keys(self, workspace_id: str, model: str, document_ids: list[str]) -> np.ndarray:
        ids = list(dict.fromkeys(document_ids))
        with self.db.read() as conn:
            found = set(
                conn.execute(
                    select(documents.c.id).where(documents.c.workspace_id == workspace_id, documents.c.id.in_(ids))
                ).scalars()
            )
            missing = [i for i in ids if i not in found]
            if missing:
                raise NotFound(f"documents not found in this workspace: {', '.join(missing)}")
            keys = conn.execute(
                select(chunks.c.key).where(
                    chunks.c.workspace_id == workspace_id, chunks.c.model == model, chunks.c.document_id.in_(ids)
                )
            ).scalars()
            return np.fromiter(keys, dtype=np.int64)

    def _load_chunks(self, workspace_id: str, keys: list[int]) -> dict:
        if not keys:
            return {}
        with self.db.read() as conn:
            rows = conn.execute(
                select(
                    chunks.c.key,
                    chunks.c.id,
                    chunks.c.document_id,
                    chunks.c.text,
                    chunks.c.heading_path,
                    chunks.c.page_start,
                    chunks.c.page_end,
                    chunks.c.start,
                    chunks.c.end,
                    documents.c.name,
                )
                .join(documents, documents.c.id == chunks.c.document_id)
                .where(chunks.c.key.in_(keys), chunks.c.workspace_id == workspace_id)
            ).fetchall()
        return {row.key: row for row in rows}

"""Retrieval for agent runtimes: nearest chunks of a workspace, cut by the request's limits."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from index.fusion import is_short_query
from index.ranking import candidate_keys, needs_matched_terms, rank
from index.retrieval import Candidate, DistanceCut, RetrievalLimits, apply_limits

from ..errors import InvalidRequest, NotFound
from ..filters import Filter
from ..indexes import VectorIndexes
from ..records import Chunk, ChunkHit, DocumentScope, Selection, Workspace
from ..storage import Database
from ..storage.repositories import ChunkStore, DocumentStore
from .attributes import Attributes
from .gaps import GapLog
from .models import ModelRegistry
from .queries import MAX_QUERY_CHARS, checked_query  # noqa: F401  (MAX_QUERY_CHARS: re-exported)

KEY_BATCH = 5_000  # document ids a query of allowed chunk keys names


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
    citation: str | None = None  # speakable ("from the Returns policy, page 3"), when asked for


@dataclass(frozen=True)
class RetrievalResult:
    chunks: list[RetrievedChunk]
    embedding_model: str  # the name asked for (or the workspace's default)
    retrieval_query: str
    rag_latency_secs: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    served_model: str = ""  # the model that ran (see ModelRegistry.resolve)
    max_vector_distance: float | None = None  # the cut applied: given, mapped, or the model's default
    distance_cut: DistanceCut | None = None  # what that cut removed (None: nothing)
    index_generation: int | None = None  # the generation of the search indexes that answered


class Stopwatch:
    """Milliseconds spent in each named step, and in all."""

    def __init__(self) -> None:
        self._start = self._last = time.perf_counter()
        self._laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self._laps[name] = self._laps.get(name, 0.0) + (now - self._last) * 1000
        self._last = now

    def total_ms(self) -> float:
        return (time.perf_counter() - self._start) * 1000

    def timings(self) -> dict[str, float]:
        return {name: round(ms, 3) for name, ms in self._laps.items()} | {"total": round(self.total_ms(), 3)}


class QueryEmbeddingCache:
    """Bounded LRU of query vectors keyed by (scope, model, text): agents repeat questions often.
    The scope is the workspace, so that a cache hit (visible in `timings_ms.embed`) never tells one
    tenant what another asked."""

    def __init__(self, size: int = 1024):
        self.size = size
        self._items: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, scope: str, model: str, text: str) -> np.ndarray | None:
        with self._lock:
            vector = self._items.get((scope, model, text))
            if vector is not None:
                self._items.move_to_end((scope, model, text))
            return vector

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def put(self, scope: str, model: str, text: str, vector: np.ndarray) -> None:
        with self._lock:
            self._items[(scope, model, text)] = vector
            self._items.move_to_end((scope, model, text))
            while len(self._items) > self.size:
                self._items.popitem(last=False)


@dataclass(frozen=True)
class SearchOptions:
    """How to search, beyond the limits: the mode, the candidate pool, a latency budget, context."""

    mode: str = "hybrid"  # "hybrid" | "dense" | "lexical"
    num_candidates: int = 100  # candidates each side contributes before fusion and limits
    budget_ms: float | None = None  # when tight, costly optional steps are skipped (and reported)
    context_chunks: int = 0  # neighbours merged into each hit

    def __post_init__(self) -> None:
        if self.mode not in SEARCH_MODES:
            raise InvalidRequest(f"search_mode must be one of {', '.join(SEARCH_MODES)}")


SEARCH_MODES = ("hybrid", "dense", "lexical")
# Below this many milliseconds left, a budgeted request drops the optional steps.
EXPANSION_COST_MS = 2.0
LARGE_POOL_COST_MS = 3.0


class Retriever:
    def __init__(self, db: Database, chunks: ChunkStore, documents: DocumentStore, models: ModelRegistry,
                 vectors: VectorIndexes, attributes: Attributes, gaps: GapLog | None = None):
        self.db = db
        self.chunks = chunks
        self.documents = documents
        self.attributes = attributes
        self.models = models
        self.vectors = vectors
        self.gaps = gaps  # told of every result (it keeps those that found nothing good)
        self.cache = QueryEmbeddingCache()

    def embed_query(self, model: str, query: str, scope: str = "") -> np.ndarray:
        """The query's vector by the served model `model`, cached for `scope` (the workspace id)."""
        vector = self.cache.get(scope, model, query)
        if vector is None:
            vector = self.models.get_for_query(model).embed_query(query)
            self.cache.put(scope, model, query, vector)
        return vector

    def retrieve(
        self,
        workspace: Workspace,
        query: str,
        *,
        document_ids: list[str] | None = None,
        filters: Filter | None = None,
        folder_ids: list[str] | None = None,
        embedding_model: str | None = None,
        limits: RetrievalLimits = RetrievalLimits(),
        options: SearchOptions = SearchOptions(),
        agent_id: str | None = None,
        within: Selection | None = None,
        excluded: Sequence[str] = (),
    ) -> RetrievalResult:
        """The best chunks for `query`, among `document_ids`, the documents below `folder_ids` and
        those passing `filters` (all given restrictions at once). A restriction is applied inside
        both searches (the allowed chunk keys, from SQL), so it returns the best matches among the
        allowed documents, however few they are. `within`, less `excluded`: documents kb resolved
        itself (an agent's knowledge base), a further restriction whose ids are not checked."""
        clock = Stopwatch()
        if limits.max_retrieved_rag_chunks_count < 1:
            raise InvalidRequest("max_retrieved_rag_chunks_count must be at least 1")
        query = checked_query(query)
        choice = self.models.resolve(embedding_model or workspace.default_model)
        model = choice.served
        threshold = self.models.max_vector_distance(choice, limits.max_vector_distance, named=embedding_model is not None)
        limits = replace(limits, max_vector_distance=threshold)
        skipped: list[str] = []

        query_vector = self.embed_query(model, query, workspace.id)
        clock.lap("embed")
        allowed = self._allowed_keys(workspace.id, model, document_ids, filters, folder_ids, within, excluded)
        clock.lap("filter")
        embedder = self.models.get(model)
        loaded = self.vectors.get_loaded(workspace.id, model, embedder.dimension)

        pool = max(options.num_candidates, limits.max_retrieved_rag_chunks_count)
        ann_pool: int | None = pool  # an HNSW store's efSearch; None: the store's default
        if options.budget_ms is not None and options.budget_ms - clock.total_ms() < LARGE_POOL_COST_MS + EXPANSION_COST_MS:
            if pool > limits.max_retrieved_rag_chunks_count:
                pool, ann_pool = limits.max_retrieved_rag_chunks_count, None
                skipped.append("large_candidate_pool")

        with loaded.lock.reading():  # the indexes may be changing under a concurrent upload
            generation = loaded.generation
            dense_keys = np.zeros(0, dtype=np.int64)
            if options.mode in ("dense", "hybrid"):
                dense_keys, _ = loaded.store.search(query_vector, pool, allowed, num_candidates=ann_pool)
            clock.lap("dense")
            lexical_keys = np.zeros(0, dtype=np.int64)
            query_terms: list[str] = []
            if options.mode in ("lexical", "hybrid"):
                query_terms = loaded.lexical.query_terms(query)
                lexical_keys = loaded.lexical.search(query_terms, pool, allowed)
            clock.lap("lexical")
            ranked, spared = self._rank(options.mode, query, query_vector, query_terms, loaded, dense_keys, lexical_keys,
                                        model, limits.max_retrieved_rag_chunks_count)
        with self.db.read() as tx:
            hits = self.chunks.hits(tx, workspace.id, [key for key, _ in ranked])
        candidates = [Candidate(key, distance, len(hits[key].chunk.text), key in spared)
                      for key, distance in ranked if key in hits]
        limited = apply_limits(candidates, limits)
        kept = limited.kept
        clock.lap("fuse")

        result = [self._as_result(hits[c.chunk_key], c.vector_distance) for c in kept]
        if options.context_chunks > 0 and result:
            if options.budget_ms is not None and options.budget_ms - clock.total_ms() < EXPANSION_COST_MS:
                skipped.append("context_chunks")
            else:
                result = self._with_context(workspace.id, result, options.context_chunks, limits.max_documents_length)
        clock.lap("context")
        if self.gaps is not None:
            self.gaps.observe(workspace.id, query, model=model, mode=options.mode, returned=len(result), agent_id=agent_id,
                              best_distance=min((d for _, d in ranked), default=None), vector=query_vector)
        cut = limited.cut if limited.cut.removed else None
        return RetrievalResult(result, choice.requested, query, clock.total_ms() / 1000, clock.timings(), skipped, model,
                               limits.max_vector_distance, cut, generation)

    def _rank(self, mode, query, query_vector, query_terms, loaded, dense_keys, lexical_keys, model,
              count: int) -> tuple[list[tuple[int, float]], set[int]]:
        """The first `count` candidates, best first, each with its true cosine distance to the query (in
        every mode), and the keys among them the distance cut spares.

        Outside dense mode the cut spares complete lexical matches, and every candidate where the
        model does not know the language (its distances say nothing there)."""
        keys = candidate_keys(mode, dense_keys, lexical_keys)
        if keys.size == 0:
            return [], set()
        similarity = loaded.store.vectors_for(keys) @ query_vector
        lexical = loaded.lexical.scores(query_terms, keys) if mode != "dense" else None
        covers = loaded.lexical.model_covers(model, query) if mode != "dense" else True
        needed = needs_matched_terms(mode, lexical, covers)
        matched = loaded.lexical.matched_terms(query_terms, keys) if needed else None
        ranking = rank(mode, keys, similarity, lexical, matched, dense_knows_language=covers,
                       constants=self.models.calibration(model).fusion, short_query=is_short_query(query))
        top = ranking.keys[:count]
        if mode == "dense":
            spared: set[int] = set()
        elif not covers:
            spared = set(top.tolist())
        else:
            spared = set(top[loaded.lexical.complete_matches(query_terms, top)].tolist())
        return ranking.pairs()[:count], spared

    def _allowed_keys(self, workspace_id: str, model: str, document_ids: list[str] | None, filters: Filter | None,
                      folder_ids: list[str] | None, within: Selection | None = None,
                      excluded: Sequence[str] = ()) -> np.ndarray | None:
        """Chunk keys the searches may return; None: no restriction. `within` (and `excluded`) are
        documents kb resolved itself (an agent's knowledge base): not checked, those gone since select nothing."""
        if document_ids is None and filters is None and folder_ids is None and within is None:
            return None
        with self.db.read() as tx:
            selections: list[Selection] = [within] if within is not None else []
            if document_ids is not None:
                ids = list(dict.fromkeys(document_ids))
                found = self.documents.types_of(tx, workspace_id, ids)
                missing = [i for i in ids if i not in found]
                if missing:
                    raise NotFound(f"documents not found in this workspace: {', '.join(missing)}")
                selections.append(Selection(document_ids=tuple(ids)))
            if folder_ids is not None:
                selections.append(Selection(folder_ids=tuple(self.attributes.checked_folders(tx, workspace_id, folder_ids))))
            if not selections:  # a filter alone
                allowed = self.attributes.allowed_documents(tx, workspace_id, filters, None, None)
                if allowed is None:
                    return None
                # The documents are this workspace's (matched in it); by document alone, SQLite uses the
                # document index instead of scanning the workspace's entries.
                keys: list[int] = []
                for start in range(0, len(allowed), KEY_BATCH):
                    keys += self.chunks.keys_of_documents(tx, allowed[start:start + KEY_BATCH], model)
                return np.asarray(keys, dtype=np.int64)
            scope = DocumentScope(tuple(selections), tuple(excluded), filters)
            return np.sort(np.asarray(self.chunks.keys_in_scope(tx, workspace_id, model, scope), dtype=np.int64))

    @staticmethod
    def _as_result(hit: ChunkHit, distance: float) -> RetrievedChunk:
        chunk = hit.chunk
        return RetrievedChunk(
            document_id=chunk.document_id,
            document_name=hit.document_name,
            chunk_id=chunk.id,
            vector_distance=round(max(0.0, distance), 6),
            text=chunk.text,
            heading_path=list(chunk.heading_path),
            page_start=chunk.page_start,
            page_end=chunk.page_end,
            start=chunk.start,
            end=chunk.end,
        )

    def _with_context(
        self, workspace_id: str, hits: list[RetrievedChunk], neighbours: int, max_length: int
    ) -> list[RetrievedChunk]:
        """Each hit with up to `neighbours` chunks on each side merged in, nearest first, within `max_length`."""
        spans = self._neighbour_spans(workspace_id, hits, neighbours)
        used = sum(len(h.text) for h in hits)
        expanded: list[RetrievedChunk] = []
        for hit in hits:
            text, start, end = hit.text, hit.start, hit.end
            for piece in spans.get(hit.chunk_id, []):
                merged, new_start, new_end = merge_span(text, start, end, piece.text, piece.start, piece.end)
                if used - len(text) + len(merged) > max_length:
                    break
                used += len(merged) - len(text)
                text, start, end = merged, new_start, new_end
            expanded.append(replace(hit, text=text, start=start, end=end))
        return expanded

    def _neighbour_spans(self, workspace_id: str, hits: list[RetrievedChunk], neighbours: int) -> dict[str, list[Chunk]]:
        """For each hit, its neighbours ordered by closeness (previous before next at equal distance)."""
        with self.db.read() as tx:
            return self.chunks.neighbours(tx, workspace_id, [h.chunk_id for h in hits], neighbours)


def merge_span(text: str, start: int, end: int, other: str, other_start: int, other_end: int) -> tuple[str, int, int]:
    """Join two pieces of one document given their offsets, without repeating their overlap."""
    if other_start >= start:  # other comes after (or inside)
        if other_end <= end:
            return text, start, end
        if other_start <= end:
            return text + other[end - other_start :], start, other_end
        return text + "\n\n" + other, start, other_end
    if other_end >= start:  # other comes before, overlapping
        return other + text[other_end - start :] if other_end <= end else other, other_start, max(end, other_end)
    return other + "\n\n" + text, other_start, end

"""The background work of a RAG index: chunk with the model's tokenizer, embed, persist, publish.

Chunks and embeddings are committed in one transaction with the index's `succeeded` status and a
bump of the workspace+model vector generation; only then is the in-memory search index updated
and its files rewritten. A crash at any point leaves either the old state or the new one. The
work runs as jobs of the `index_document` kind (`index_job_kind`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from index.embedders import Embedder, ModelUnavailable
from ingest import Chunk, chunk_document
from ingest.errors import IngestError

from ..indexes import ChunkVectors, VectorIndexes, chunk_terms, document_language, title_text
from ..jobs import Cancelled, Interrupted, JobContext, JobKind
from ..records import Job, NewChunk, RagIndex, new_id
from ..settings import EmbeddingSettings, IndexSettings
from ..storage import Database
from ..storage.interfaces import BlobStore
from ..storage.repositories import ChunkStore, DocumentStore, RagIndexStore
from .document_files import load_parsed
from .models import ModelRegistry
from .rag_indexes import INDEX_JOB, RagIndexes

log = logging.getLogger(__name__)

INDEX_BATCH_JOBS = 64  # queued indexing jobs one worker takes at once (embedded together)
EMBED_SLICE = 256  # texts tokenised and embedded at a time: memory stays bounded whatever the document's size
CHECK_EVERY = 2_000  # token counts between two looks at whether the job was cancelled while chunking


def chunk_budget(settings: IndexSettings, embedder: Embedder) -> int:
    """Tokens a chunk may use: what is left of the model's input after the context prefix."""
    budget = min(settings.chunk_tokens, embedder.max_tokens)
    return budget - settings.context_tokens if settings.embed_context else budget


class Stopping(Exception):
    """The service is stopping: the jobs are handed back and run again at the next start."""


class Dropped(Exception):
    """The index's job was cancelled (its document deleted) while it was being chunked."""


class Indexer:
    def __init__(self, settings: IndexSettings, embedding: EmbeddingSettings, db: Database, rag_indexes: RagIndexes,
                 repo: RagIndexStore, chunks: ChunkStore, documents: DocumentStore, blobs: BlobStore,
                 models: ModelRegistry, vectors: VectorIndexes):
        self.settings = settings
        self.embed_batch_size = embedding.embed_batch_size
        self.db = db
        self.rag_indexes = rag_indexes
        self.repo = repo
        self.chunks = chunks
        self.documents = documents
        self.blobs = blobs
        self.models = models
        self.vectors = vectors
        self.stopping: threading.Event | None = None  # set: stop embedding, the jobs run again later

    def chunk_budget(self, embedder: Embedder) -> int:
        return chunk_budget(self.settings, embedder)

    def handle(self, batch: list[Job], context: JobContext) -> None:
        """The `index_document` job handler: the batch's indexes, built together."""
        jobs = {job.payload["rag_index_id"]: job.id for job in batch}
        self.run_many(list(jobs), context=context, job_ids=jobs)

    def run(self, rag_index_id: str, *, reuse_embeddings: bool = True) -> None:
        """Build one document's index for one model (see `run_many`)."""
        self.run_many([rag_index_id], reuse_embeddings=reuse_embeddings)

    def run_many(self, rag_index_ids: list[str], *, reuse_embeddings: bool = True, context: JobContext | None = None,
                 job_ids: dict[str, int] | None = None) -> None:
        """Build several indexes together; each that fails ends `failed` with a message.

        The texts of all of them that need embedding go through the model in one call (sorted by
        length, so many small documents fill whole batches), and the indexes of one workspace and
        model are published in one transaction. Chunks whose exact embedded text was embedded
        before in the same workspace (an identical re-upload, an unchanged part of an edited
        document) reuse that embedding; `reuse_embeddings=False` embeds everything again. Indexes
        whose jobs were cancelled meanwhile are not published.
        """
        self.rag_indexes.set_state(rag_index_ids, status="processing", progress=0.0)  # one transaction for all
        found = self.rag_indexes.load(rag_index_ids)  # those deleted while queued are gone
        jobs = job_ids or {}
        pending = [
            p for p in (self._prepare(found[i], context, jobs.get(i)) for i in rag_index_ids if i in found) if p is not None
        ]
        by_model: dict[str, list[PendingIndex]] = {}
        for item in pending:
            by_model.setdefault(item.index.model, []).append(item)
        for model, group in by_model.items():
            try:
                if reuse_embeddings:
                    self._reuse_stored_embeddings(group)
                group = self._embed_missing(group, self.models.get(model), context, jobs)
            except Stopping:
                log.info("stopping: %d document(s) left to index at the next start", len(group))
                raise Interrupted() from None
            except Cancelled:
                raise
            except Exception as exc:
                log.exception("embedding with %s failed", model)
                self._fail(group, f"internal error while embedding: {exc}")
                continue
            if context is not None and job_ids:
                cancelled = context.check()
                group = [p for p in group if job_ids.get(p.index.id) not in cancelled]
            by_workspace: dict[str, list[PendingIndex]] = {}
            for item in group:
                by_workspace.setdefault(item.index.workspace_id, []).append(item)
            for workspace_id, items in by_workspace.items():
                try:
                    self._publish(workspace_id, model, items, context, jobs)
                except Exception as exc:
                    log.exception("publishing indexes of %s with %s failed", workspace_id, model)
                    self._fail(items, f"internal error while saving the index: {exc}")

    def _prepare(self, index: RagIndex, context: JobContext | None = None,
                 job_id: int | None = None) -> "PendingIndex | None":
        """Chunk one document (every chunk still to embed); None if that failed or its job was cancelled."""
        try:
            embedder = self.models.get(index.model)
            parsed = load_parsed(self.blobs, index.workspace_id, index.document_id)
            budget = self.chunk_budget(embedder)
            pieces = chunk_document(
                parsed, count_tokens=_watched(embedder.count_tokens, context, job_id), max_tokens=budget,
                overlap_tokens=min(self.settings.chunk_overlap_tokens, budget // 2),
            )
            if not pieces:
                raise IngestError("no text could be extracted from this document, so there is nothing to index (a scanned PDF needs OCR first)")
            texts = [c.text for c in pieces]
            if self.settings.embed_context:
                title = parsed.title or self._document_name(index.document_id)
                texts = [with_context(title, c, embedder.count_tokens, embedder.max_tokens) for c in pieces]
            hashes = [text_hash(index.model, t) for t in texts]
            vectors = np.empty((len(texts), embedder.dimension), dtype=np.float32)
            language = document_language(parsed.text)
            terms = chunk_terms([c.text for c in pieces], language)
            name = self._document_name(index.document_id)
            titles = [title_text(name, c.heading_path) for c in pieces]
            return PendingIndex(index, pieces, texts, hashes, vectors, list(range(len(texts))), terms, language, titles)
        except Interrupted:
            raise
        except Dropped:
            log.info("indexing %s stopped: its job was cancelled", index.document_id)
        except (ModelUnavailable, IngestError, FileNotFoundError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            log.warning("indexing %s with %s failed: %s", index.document_id, index.model, message)
            self.rag_indexes.set_state(index.id, status="failed", error=message)
        except Exception as exc:
            log.exception("indexing %s with %s failed", index.document_id, index.model)
            self.rag_indexes.set_state(index.id, status="failed", error=f"internal error while indexing: {exc}")
        return None

    def _fail(self, pending: list["PendingIndex"], message: str) -> None:
        self.rag_indexes.set_state([p.index.id for p in pending], status="failed", error=message)

    def _document_name(self, document_id: str) -> str:
        with self.db.read() as tx:
            return self.documents.name_of(tx, document_id) or ""

    def _reuse_stored_embeddings(self, group: list["PendingIndex"]) -> None:
        """Take the embeddings already stored for their texts, each workspace's from its own chunks."""
        by_workspace: dict[str, list[PendingIndex]] = {}
        for item in group:
            by_workspace.setdefault(item.index.workspace_id, []).append(item)
        for workspace_id, pending in by_workspace.items():
            with self.db.read() as tx:
                known = self.chunks.embeddings_for(tx, workspace_id, pending[0].index.model,
                                                   [h for p in pending for h in p.hashes])
            for item in pending:
                item.missing = [i for i in item.missing if item.hashes[i] not in known]
                for i, h in enumerate(item.hashes):
                    if h in known:
                        item.vectors[i] = np.frombuffer(known[h], dtype=np.float32)

    def _embed_missing(self, group: list["PendingIndex"], embedder: Embedder, context: JobContext | None,
                       job_ids: dict[str, int]) -> list["PendingIndex"]:
        """Embed every text of the group not embedded before, each distinct text once, `EMBED_SLICE`
        texts at a time (tokens and activations of one slice only are in memory). Between slices,
        indexes whose jobs were cancelled (their documents deleted) are dropped; returns those left."""
        unique: dict[str, str] = {}  # hash -> text (the same hash is the same text within a model)
        for item in group:
            for i in item.missing:
                unique.setdefault(item.hashes[i], item.texts[i])
        if not unique:
            return group
        last_update = 0.0
        done = 0

        def progress(in_slice: int) -> None:
            nonlocal last_update
            if (self.stopping is not None and self.stopping.is_set()) or (context is not None and context.stopping.is_set()):
                raise Stopping()
            if context is not None:
                context.raise_if_stopping()
            if time.monotonic() - last_update > 0.5 or done + in_slice == len(unique):
                last_update = time.monotonic()
                # 99 at most: 100 means committed, which happens in _publish.
                self.rag_indexes.set_state([p.index.id for p in group],
                                           progress=min(99.0, 100.0 * (done + in_slice) / len(unique)))

        by_hash: dict[str, np.ndarray] = {}
        todo = list(unique)
        while todo:
            if context is not None and done:
                cancelled = context.check()
                live = [p for p in group if job_ids.get(p.index.id) not in cancelled]
                if len(live) < len(group):
                    group = live
                    wanted = {p.hashes[i] for p in group for i in p.missing}
                    todo = [h for h in todo if h in wanted]
                    if not todo:
                        break
            part, todo = todo[:EMBED_SLICE], todo[EMBED_SLICE:]
            vectors = embedder.embed_documents([unique[h] for h in part], batch_size=self.embed_batch_size,
                                               on_progress=progress)
            by_hash.update(zip(part, vectors))
            done += len(part)
        for item in group:
            for i in item.missing:
                item.vectors[i] = by_hash[item.hashes[i]]
        return group

    def _publish(self, workspace_id: str, model: str, pending: list["PendingIndex"], context: JobContext | None = None,
                 job_ids: dict[str, int] | None = None) -> None:
        """Commit the chunks of every pending index of one workspace and model, then update the
        loaded search indexes once: one transaction and one generation for the whole batch."""
        with self.vectors.lock(workspace_id, model):
            with self.db.write() as tx:
                # documents or indexes deleted while embedding are skipped
                alive = self.repo.alive(tx, [p.index.id for p in pending])
                if context is not None and job_ids:
                    # Read with the index rows locked: a job taken over from this process (it looked dead)
                    # is another's to publish; publishing it here too would replace that one's chunks.
                    jobs = [job_ids[i] for i in alive if i in job_ids]
                    kept = context.still_running(tx, jobs)
                    if len(kept) < len(jobs):
                        log.warning("not publishing %d index(es) of %s: their jobs were taken over by another "
                                    "process", len(jobs) - len(kept), workspace_id)
                    alive = {i for i in alive if i not in job_ids or job_ids[i] in kept}
                published = [p for p in pending if p.index.id in alive]
                if not published:
                    return
                ids = [p.index.id for p in published]
                old_keys = self.chunks.keys_of_indexes(tx, ids)
                self.chunks.delete_of_indexes(tx, ids)
                new_keys = self.chunks.insert(tx, [c for p in published for c in p.new_chunks()])
                self.repo.mark_succeeded(
                    tx, {p.index.id: (len(p.missing), len(p.pieces) - len(p.missing)) for p in published}, time.time()
                )
                generation = self.vectors.bump_generation(tx, workspace_id, model)
            self.vectors.apply(
                workspace_id,
                model,
                generation,
                add=ChunkVectors(
                    np.asarray(new_keys, dtype=np.int64),
                    np.vstack([p.vectors for p in published]),
                    [t for p in published for t in p.terms],
                    [p.language for p in published for _ in p.terms],
                    [t for p in published for t in p.titles],
                ),
                remove=old_keys,
            )


@dataclass
class PendingIndex:
    """One document's index between chunking and publishing."""

    index: RagIndex
    pieces: list[Chunk]
    texts: list[str]  # what is embedded (the chunk text, with the context prefix if enabled)
    hashes: list[str]
    vectors: np.ndarray  # filled for reused embeddings first, for the rest after embedding
    missing: list[int]  # positions still to embed
    terms: list[str]
    language: str
    titles: list[str]  # each chunk's title field (kb.indexes.title_text)

    def new_chunks(self) -> list[NewChunk]:
        index = self.index
        return [
            NewChunk(
                id=new_id("ch_"), workspace_id=index.workspace_id, document_id=index.document_id, rag_index_id=index.id,
                model=index.model, ordinal=i, text=piece.text, start=piece.start, end=piece.end,
                heading_path=list(piece.heading_path), page_start=piece.page_start, page_end=piece.page_end,
                token_count=piece.token_count, text_hash=self.hashes[i], language=self.language,
                lexical_terms=self.terms[i], embedding=self.vectors[i].astype(np.float32).tobytes(),
            )
            for i, piece in enumerate(self.pieces)
        ]


def _watched(count_tokens, context: JobContext | None, job_id: int | None):
    """`count_tokens` that, every `CHECK_EVERY` calls, stops chunking when the pool stops
    (`Interrupted`) or the job was cancelled (`Dropped`; learned at the job's heartbeat)."""
    if context is None:
        return count_tokens
    calls = 0

    def count(text: str) -> int:
        nonlocal calls
        calls += 1
        if calls % CHECK_EVERY == 0:
            if context.stopping.is_set():
                raise Interrupted()
            if job_id is not None and job_id in context.cancelled:
                raise Dropped()
        return count_tokens(text)

    return count


def with_context(title: str, chunk: Chunk, count_tokens, max_tokens: int) -> str:
    """The text embedded for a chunk: its document title and heading path, then its text.

    Only the embedding sees the prefix; the stored chunk text stays an exact slice of the
    document. The prefix loses words from its start until the whole fits the model's input.
    """
    parts = [title.strip()] if title and title.strip() not in chunk.heading_path else []
    prefix = " > ".join(parts + [h for h in chunk.heading_path if h])
    words = prefix.split()
    while words:
        text = " ".join(words) + "\n\n" + chunk.text
        if count_tokens(text) <= max_tokens:
            return text
        words = words[1:]
    return chunk.text


def text_hash(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\0{text}".encode()).hexdigest()


def index_job_kind(indexer: Indexer, rag_indexes: RagIndexes) -> JobKind:
    """The `index_document` kind: up to 64 queued indexes embedded together; an index whose job
    is given up on (it kept killing its process) ends `failed` with the reason."""

    def give_up(job: Job, error: str) -> None:
        rag_indexes.set_state(job.payload["rag_index_id"], status="failed", error=error)

    return JobKind(INDEX_JOB, indexer.handle, batch_size=INDEX_BATCH_JOBS, on_give_up=give_up)

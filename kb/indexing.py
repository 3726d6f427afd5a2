"""The background work of a RAG index: chunk with the model's tokenizer, embed, persist, publish.

Chunks and embeddings are committed in one transaction with the index's `succeeded` status and a
bump of the workspace+model vector generation; only then is the in-memory FAISS index updated
and its file rewritten. A crash at any point leaves either the old state or the new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy import bindparam, select

from index.embedders import Embedder, ModelUnavailable
from ingest import Chunk, chunk_document
from ingest.errors import IngestError

from .blobs import BlobStore
from .config import Settings
from .db import Database, chunks, documents, rag_indexes
from .documents import load_parsed
from .models import ModelRegistry
from .rag_indexes import RagIndex, load_indexes, set_state
from .jobs import Interrupted
from .lexical import chunk_terms, document_language
from .vectors import ChunkVectors, VectorIndexes
from .workspaces import new_id

log = logging.getLogger(__name__)


class Indexer:
    def __init__(self, settings: Settings, db: Database, blobs: BlobStore, models: ModelRegistry, vectors: VectorIndexes):
        self.settings = settings
        self.db = db
        self.blobs = blobs
        self.models = models
        self.vectors = vectors
        self.stopping: threading.Event | None = None  # set: stop embedding, the jobs run again later

    def chunk_budget(self, embedder: Embedder) -> int:
        """Tokens a chunk may use: what is left of the model's input after the context prefix."""
        budget = min(self.settings.chunk_tokens, embedder.max_tokens)
        return budget - self.settings.context_tokens if self.settings.embed_context else budget

    def run(self, rag_index_id: str, *, reuse_embeddings: bool = True) -> None:
        """Build one document's index for one model (see `run_many`)."""
        self.run_many([rag_index_id], reuse_embeddings=reuse_embeddings)

    def run_many(self, rag_index_ids: list[str], *, reuse_embeddings: bool = True) -> None:
        """Build several indexes together; each that fails ends `failed` with a message.

        The texts of all of them that need embedding go through the model in one call (sorted by
        length, so many small documents fill whole batches), and the indexes of one workspace and
        model are published in one transaction. Chunks whose exact embedded text was embedded
        before in the same workspace (an identical re-upload, an unchanged part of an edited
        document) reuse that embedding; `reuse_embeddings=False` embeds everything again.
        """
        set_state(self.db, rag_index_ids, status="processing", progress=0.0)  # one transaction for all
        found = load_indexes(self.db, rag_index_ids)  # those deleted while queued are gone
        jobs = [job for job in (self._prepare(*found[i]) for i in rag_index_ids if i in found) if job is not None]
        by_model: dict[str, list[PendingIndex]] = {}
        for job in jobs:
            by_model.setdefault(job.index.model, []).append(job)
        for model, group in by_model.items():
            try:
                if reuse_embeddings:
                    self._reuse_stored_embeddings(group)
                self._embed_missing(group, self.models.get(model))
            except Stopping:
                log.info("stopping: %d document(s) left to index at the next start", len(group))
                raise Interrupted() from None
            except Exception as exc:
                log.exception("embedding with %s failed", model)
                self._fail(group, f"internal error while embedding: {exc}")
                continue
            by_workspace: dict[str, list[PendingIndex]] = {}
            for job in group:
                by_workspace.setdefault(job.workspace_id, []).append(job)
            for workspace_id, pending in by_workspace.items():
                try:
                    self._publish(workspace_id, model, pending)
                except Exception as exc:
                    log.exception("publishing indexes of %s with %s failed", workspace_id, model)
                    self._fail(pending, f"internal error while saving the index: {exc}")

    def _prepare(self, index: RagIndex, workspace_id: str) -> "PendingIndex | None":
        """Chunk one document (every chunk still to embed); None if that failed."""
        try:
            embedder = self.models.get(index.model)
            parsed = load_parsed(self.blobs, workspace_id, index.document_id)
            pieces = chunk_document(
                parsed,
                count_tokens=embedder.count_tokens,
                max_tokens=self.chunk_budget(embedder),
                overlap_tokens=min(self.settings.chunk_overlap_tokens, self.chunk_budget(embedder) // 2),
            )
            if not pieces:
                raise IngestError("no text could be extracted from this document, so there is nothing to index (a scanned PDF needs OCR first)")
            texts = [c.text for c in pieces]
            if self.settings.embed_context:
                title = parsed.title or self._document_name(index.document_id)
                texts = [with_context(title, c, embedder.count_tokens, embedder.max_tokens) for c in pieces]
            hashes = [text_hash(index.model, t) for t in texts]
            vectors = np.empty((len(texts), embedder.dimension), dtype=np.float32)
            missing = list(range(len(texts)))
            language = document_language(parsed.text)
            terms = chunk_terms([c.text for c in pieces], language)
            return PendingIndex(workspace_id, index, pieces, texts, hashes, vectors, missing, terms, language)
        except (ModelUnavailable, IngestError, FileNotFoundError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            log.warning("indexing %s with %s failed: %s", index.document_id, index.model, message)
            set_state(self.db, index.id, status="failed", error=message)
        except Exception as exc:
            log.exception("indexing %s with %s failed", index.document_id, index.model)
            set_state(self.db, index.id, status="failed", error=f"internal error while indexing: {exc}")
        return None

    def _fail(self, pending: list["PendingIndex"], message: str) -> None:
        set_state(self.db, [job.index.id for job in pending], status="failed", error=message)

    def _document_name(self, document_id: str) -> str:
        with self.db.read() as conn:
            return conn.execute(select(documents.c.name).where(documents.c.id == document_id)).scalar() or ""

    def _reuse_stored_embeddings(self, group: list["PendingIndex"]) -> None:
        """Take the embeddings already stored for their texts, each workspace's from its own chunks."""
        by_workspace: dict[str, list[PendingIndex]] = {}
        for job in group:
            by_workspace.setdefault(job.workspace_id, []).append(job)
        for workspace_id, pending in by_workspace.items():
            known = self._stored_embeddings(workspace_id, pending[0].index.model, [h for job in pending for h in job.hashes])
            for job in pending:
                job.missing = [i for i in job.missing if job.hashes[i] not in known]
                for i, h in enumerate(job.hashes):
                    if h in known:
                        job.vectors[i] = np.frombuffer(known[h], dtype=np.float32)

    def _stored_embeddings(self, workspace_id: str, model: str, hashes: list[str]) -> dict[str, bytes]:
        """Embeddings already stored in this workspace for these texts (never across workspaces)."""
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(hashes))
        with self.db.read() as conn:
            for start in range(0, len(unique), 500):
                rows = conn.execute(
                    select(chunks.c.text_hash, chunks.c.embedding).where(
                        chunks.c.workspace_id == workspace_id,
                        chunks.c.model == model,
                        chunks.c.text_hash.in_(unique[start : start + 500]),
                    )
                )
                found.update((row.text_hash, row.embedding) for row in rows)
        return found

    def _embed_missing(self, group: list["PendingIndex"], embedder: Embedder) -> None:
        """Embed every text of the group not embedded before, each distinct text once, in one call."""
        unique: dict[str, str] = {}  # hash -> text (the same hash is the same text within a model)
        for job in group:
            for i in job.missing:
                unique.setdefault(job.hashes[i], job.texts[i])
        if not unique:
            return
        last_update = 0.0

        def progress(done: int) -> None:
            nonlocal last_update
            if self.stopping is not None and self.stopping.is_set():
                raise Stopping()
            if time.monotonic() - last_update > 0.5 or done == len(unique):
                last_update = time.monotonic()
                # 99 at most: 100 means committed, which happens in _publish.
                set_state(self.db, [job.index.id for job in group], progress=min(99.0, 100.0 * done / len(unique)))

        vectors = embedder.embed_documents(list(unique.values()), batch_size=self.settings.embed_batch_size, on_progress=progress)
        by_hash = dict(zip(unique, vectors))
        for job in group:
            for i in job.missing:
                job.vectors[i] = by_hash[job.hashes[i]]

    def _publish(self, workspace_id: str, model: str, pending: list["PendingIndex"]) -> None:
        """Commit the chunks of every pending index of one workspace and model, then update the
        loaded search indexes once: one transaction and one generation for the whole batch."""
        with self.vectors.lock(workspace_id, model):
            with self.db.write() as conn:
                ids = [job.index.id for job in pending]
                alive = set(conn.execute(  # documents or indexes deleted while embedding are skipped
                    select(rag_indexes.c.id)
                    .join(documents, documents.c.id == rag_indexes.c.document_id)
                    .where(rag_indexes.c.id.in_(ids))
                ).scalars())
                published = [job for job in pending if job.index.id in alive]
                if not published:
                    return
                ids = [job.index.id for job in published]
                old_keys = list(conn.execute(select(chunks.c.key).where(chunks.c.rag_index_id.in_(ids))).scalars())
                conn.execute(chunks.delete().where(chunks.c.rag_index_id.in_(ids)))
                new_keys = list(conn.execute(
                    chunks.insert().returning(chunks.c.key, sort_by_parameter_order=True),
                    [row for job in published for row in job.rows()],
                ).scalars())
                conn.execute(
                    rag_indexes.update()
                    .where(rag_indexes.c.id == bindparam("index_id"))
                    .values(status="succeeded", progress_percentage=100.0, error=None, updated_at=time.time(),
                            chunks_embedded=bindparam("embedded"), chunks_reused=bindparam("reused")),
                    [{"index_id": job.index.id, "embedded": len(job.missing), "reused": len(job.pieces) - len(job.missing)}
                     for job in published],
                )
                generation = self.vectors.bump_generation(conn, workspace_id, model)
            self.vectors.apply(
                workspace_id,
                model,
                generation,
                add=ChunkVectors(
                    np.asarray(new_keys, dtype=np.int64),
                    np.vstack([job.vectors for job in published]),
                    [t for job in published for t in job.terms],
                    [job.language for job in published for _ in job.terms],
                ),
                remove=old_keys,
            )


class Stopping(Exception):
    """The service is stopping: the jobs are handed back and run again at the next start."""


@dataclass
class PendingIndex:
    """One document's index between chunking and publishing."""

    workspace_id: str
    index: RagIndex
    pieces: list[Chunk]
    texts: list[str]  # what is embedded (the chunk text, with the context prefix if enabled)
    hashes: list[str]
    vectors: np.ndarray  # filled for reused embeddings first, for the rest after embedding
    missing: list[int]  # positions still to embed
    terms: list[str]
    language: str

    def rows(self) -> list[dict]:
        return [
            {
                "id": new_id("ch_"),
                "workspace_id": self.workspace_id,
                "document_id": self.index.document_id,
                "rag_index_id": self.index.id,
                "model": self.index.model,
                "ordinal": i,
                "text": piece.text,
                "start": piece.start,
                "end": piece.end,
                "heading_path": json.dumps(list(piece.heading_path), ensure_ascii=False),
                "page_start": piece.page_start,
                "page_end": piece.page_end,
                "token_count": piece.token_count,
                "text_hash": self.hashes[i],
                "language": self.language,
                "lexical_terms": self.terms[i],
                "embedding": self.vectors[i].astype(np.float32).tobytes(),
            }
            for i, piece in enumerate(self.pieces)
        ]


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

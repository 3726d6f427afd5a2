"""The background work of a RAG index: chunk with the model's tokenizer, embed, persist, publish.

Chunks and embeddings are committed in one transaction with the index's `succeeded` status and a
bump of the workspace+model vector generation; only then is the in-memory FAISS index updated
and its file rewritten. A crash at any point leaves either the old state or the new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

import numpy as np
from sqlalchemy import select

from index.embedders import Embedder, ModelUnavailable
from ingest import Chunk, chunk_document
from ingest.errors import IngestError

from .blobs import BlobStore
from .config import Settings
from .db import Database, chunks, documents, rag_indexes
from .documents import load_parsed
from .models import ModelRegistry
from .rag_indexes import RagIndex, load_index, set_state
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

    def chunk_budget(self, embedder: Embedder) -> int:
        """Tokens a chunk may use: what is left of the model's input after the context prefix."""
        budget = min(self.settings.chunk_tokens, embedder.max_tokens)
        return budget - self.settings.context_tokens if self.settings.embed_context else budget

    def run(self, rag_index_id: str, *, reuse_embeddings: bool = True) -> None:
        """Build one document's index for one model. Failures end in `failed` with a message.

        Chunks whose exact embedded text was embedded before in this workspace (an identical
        re-upload, an unchanged part of an edited document) reuse that embedding; only new text
        goes through the model. `reuse_embeddings=False` embeds everything again.
        """
        found = load_index(self.db, rag_index_id)
        if found is None:
            return  # deleted while queued
        index, workspace_id = found
        set_state(self.db, index.id, status="processing", progress=0.0)
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
            known = self._stored_embeddings(workspace_id, index.model, hashes) if reuse_embeddings else {}
            missing = [i for i, h in enumerate(hashes) if h not in known]
            vectors = np.empty((len(texts), embedder.dimension), dtype=np.float32)
            for i, h in enumerate(hashes):
                if h in known:
                    vectors[i] = np.frombuffer(known[h], dtype=np.float32)
            if missing:
                vectors[missing] = self._embed([texts[i] for i in missing], embedder, index.id)
            language = document_language(parsed.text)
            terms = chunk_terms([c.text for c in pieces], language)
            self._publish(workspace_id, index, pieces, vectors, hashes, terms, language, embedded=len(missing))
        except (ModelUnavailable, IngestError, FileNotFoundError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            log.warning("indexing %s with %s failed: %s", index.document_id, index.model, message)
            set_state(self.db, index.id, status="failed", error=message)
        except Exception as exc:
            log.exception("indexing %s with %s failed", index.document_id, index.model)
            set_state(self.db, index.id, status="failed", error=f"internal error while indexing: {exc}")

    def _document_name(self, document_id: str) -> str:
        with self.db.read() as conn:
            return conn.execute(select(documents.c.name).where(documents.c.id == document_id)).scalar() or ""

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

    def _embed(self, texts: list[str], embedder: Embedder, rag_index_id: str) -> np.ndarray:
        last_update = 0.0

        def progress(done: int) -> None:
            nonlocal last_update
            if time.monotonic() - last_update > 0.5 or done == len(texts):
                last_update = time.monotonic()
                # 99 at most: 100 means committed, which happens in _publish.
                set_state(self.db, rag_index_id, progress=min(99.0, 100.0 * done / len(texts)))

        return embedder.embed_documents(texts, batch_size=self.settings.embed_batch_size, on_progress=progress)

    def _publish(
        self,
        workspace_id: str,
        index: RagIndex,
        pieces,
        vectors: np.ndarray,
        hashes: list[str],
        terms: list[str],
        language: str,
        embedded: int,
    ) -> None:
        rows = [
            {
                "id": new_id("ch_"),
                "workspace_id": workspace_id,
                "document_id": index.document_id,
                "rag_index_id": index.id,
                "model": index.model,
                "ordinal": i,
                "text": piece.text,
                "start": piece.start,
                "end": piece.end,
                "heading_path": json.dumps(list(piece.heading_path), ensure_ascii=False),
                "page_start": piece.page_start,
                "page_end": piece.page_end,
                "token_count": piece.token_count,
                "text_hash": hashes[i],
                "language": language,
                "lexical_terms": terms[i],
                "embedding": vectors[i].astype(np.float32).tobytes(),
            }
            for i, piece in enumerate(pieces)
        ]
        with self.vectors.lock(workspace_id, index.model):
            with self.db.write() as conn:
                alive = conn.execute(
                    select(rag_indexes.c.id)
                    .join(documents, documents.c.id == rag_indexes.c.document_id)
                    .where(rag_indexes.c.id == index.id)
                ).first()
                if alive is None:
                    return  # the document or index was deleted while embedding
                old_keys = [
                    r.key for r in conn.execute(select(chunks.c.key).where(chunks.c.rag_index_id == index.id))
                ]
                conn.execute(chunks.delete().where(chunks.c.rag_index_id == index.id))
                keys = [
                    r.key
                    for r in conn.execute(chunks.insert().returning(chunks.c.key, sort_by_parameter_order=True), rows)
                ]
                conn.execute(
                    rag_indexes.update()
                    .where(rag_indexes.c.id == index.id)
                    .values(
                        status="succeeded",
                        progress_percentage=100.0,
                        error=None,
                        chunks_embedded=embedded,
                        chunks_reused=len(pieces) - embedded,
                        updated_at=time.time(),
                    )
                )
                generation = self.vectors.bump_generation(conn, workspace_id, index.model)
            self.vectors.apply(
                workspace_id,
                index.model,
                generation,
                add=ChunkVectors(np.asarray(keys, dtype=np.int64), vectors, terms, [language] * len(keys)),
                remove=old_keys,
            )


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

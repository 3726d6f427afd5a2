"""The knowledge base: one object that wires storage, ingestion, indexing and retrieval.

The API and the CLI call only this. It owns no HTTP and no parsing logic of its own.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import unquote, urlparse

import ingest
from index.retrieval import RetrievalLimits
from ingest.errors import BlockedAddress, DocumentTooLarge, EmptyDocument

from . import documents as docs
from . import rag_indexes as ri
from . import workspaces as ws
from .blobs import LocalBlobStore
from .config import Settings
from .db import Database, now
from .documents import Document, DocumentPage
from .errors import InvalidRequest, NotFound
from .indexing import Indexer
from .jobs import Job, JobQueue, WorkerPool, run_job
from .models import ModelRegistry
from .rag_indexes import RagIndex
from .sandbox import parse_isolated
from .retrieval import RetrievalResult, Retriever
from .vectors import VectorIndexes
from .workspaces import Workspace

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE = "default"


class KnowledgeBase:
    def __init__(self, settings: Settings):
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.db_url)
        self.blobs = LocalBlobStore(settings.data_dir / "blobs")
        self.queue = JobQueue(self.db)
        self.models = ModelRegistry(settings)
        self.vectors = VectorIndexes(self.db, settings.data_dir / "indexes")
        self.indexer = Indexer(settings, self.db, self.blobs, self.models, self.vectors)
        self.retriever = Retriever(self.db, self.models, self.vectors)
        self._workers: WorkerPool | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start_workers(self) -> None:
        """Resume jobs a previous process left unfinished, then index in the background."""
        resumed = self.queue.requeue_interrupted()
        if resumed:
            log.info("resuming %d interrupted indexing job(s)", resumed)
        self._workers = WorkerPool(self.queue, self.handle_job, size=self.settings.workers)
        self._workers.start()

    def warm_up(self) -> None:
        """Load the default model and run one query through it, so the first request is fast."""
        self.retriever.embed_query(self.settings.default_model, "warm up")

    def close(self) -> None:
        if self._workers:
            self._workers.stop()
            self._workers = None
        self.db.dispose()

    def handle_job(self, job: Job) -> None:
        if job.kind == ri.INDEX_JOB:
            self.indexer.run(job.payload["rag_index_id"])
        else:
            raise ValueError(f"unknown job kind {job.kind!r}")

    def run_job_now(self, job_id: int) -> None:
        """Run a queued job in this process (the CLI does this); waits if a worker already took it."""
        job = self.queue.claim(job_id)
        if job is not None:
            run_job(self.queue, self.handle_job, job)
            return
        while self.queue.status(job_id) in ("queued", "running"):
            time.sleep(0.2)

    # --- workspaces --------------------------------------------------------------------------

    def create_workspace(self, name: str, tier: str = "free") -> tuple[Workspace, str]:
        return ws.create_workspace(self.db, name, tier, self.settings.default_model)

    def authenticate(self, api_key: str | None) -> Workspace:
        return ws.authenticate(self.db, api_key)

    def workspace(self, workspace_id: str) -> Workspace:
        return ws.get_workspace(self.db, workspace_id)

    def ensure_default_workspace(self) -> tuple[Workspace, str]:
        """The workspace `kb serve` prints a key for; created on first start, same key afterwards.

        The key is kept in `<data_dir>/default_api_key` (mode 0600) so it can be printed again;
        the database itself holds only its hash.
        """
        key_file = self.settings.data_dir / "default_api_key"
        if key_file.exists():
            api_key = key_file.read_text().strip()
            try:
                return self.authenticate(api_key), api_key
            except Exception:
                log.warning("the key in %s no longer works; creating a new default workspace", key_file)
        workspace, api_key = self.create_workspace(DEFAULT_WORKSPACE)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(api_key + "\n")
        return workspace, api_key

    # --- documents ---------------------------------------------------------------------------

    def add_text(self, workspace: Workspace, text: str, name: str | None = None) -> Document:
        data = text.encode("utf-8")
        self._check_upload_size(len(data))
        if not text.strip():
            raise EmptyDocument("the text is empty: send some text to add to the knowledge base")
        fmt = "markdown" if (name or "").lower().endswith((".md", ".markdown")) else "txt"
        parsed = ingest.parse_text(text, fmt)
        default_name = " ".join(text.split())[:60] or "Untitled text"
        return self._add(workspace, "text", data, parsed, name=name or default_name)

    def add_file(
        self, workspace: Workspace, data: bytes, filename: str | None, content_type: str | None, name: str | None = None
    ) -> Document:
        self._check_upload_size(len(data))
        failure = None
        try:
            parsed = self._parse(data, filename, content_type)
        except EmptyDocument as exc:
            if not data or ingest.detect_format(data, filename, content_type) != "pdf":
                raise
            # A scanned PDF is a real document with no text layer: keep it, say why it is not searchable.
            parsed, failure = ingest.ParsedDocument("", [], "pdf"), exc.message
        return self._add(
            workspace,
            "file",
            data,
            parsed,
            name=name or filename or parsed.title or "Untitled file",
            index_failure=failure,
            filename=filename,
            content_type=content_type,
        )

    def add_url(self, workspace: Workspace, url: str, name: str | None = None) -> Document:
        try:
            fetched = ingest.fetch_url(
                url,
                timeout=self.settings.url_timeout_secs,
                max_bytes=self.settings.max_upload_bytes,
                max_redirects=self.settings.url_max_redirects,
                allow_hosts=self.settings.url_allow_hosts,
            )
        except BlockedAddress as exc:
            raise BlockedAddress(f"{exc.message} by listing it in KB_URL_ALLOW_HOSTS") from exc
        filename = unquote(Path(urlparse(fetched.final_url).path).name) or None
        parsed = self._parse(fetched.data, filename, fetched.content_type)
        return self._add(
            workspace,
            "url",
            fetched.data,
            parsed,
            name=name or parsed.title or fetched.final_url,
            url=fetched.final_url,
            content_type=fetched.content_type,
        )

    def _parse(self, data: bytes, filename: str | None, content_type: str | None) -> ingest.ParsedDocument:
        return parse_isolated(
            data,
            filename,
            content_type,
            limits=self.settings.parse_limits,
            timeout_secs=self.settings.parse_timeout_secs,
            memory_bytes=self.settings.parse_memory_mb * 1024 * 1024,
        )

    def _check_upload_size(self, size: int) -> None:
        if size > self.settings.max_upload_bytes:
            raise DocumentTooLarge(
                f"the upload is {size} bytes, over the limit of {self.settings.max_upload_bytes} bytes (KB_MAX_UPLOAD_BYTES)"
            )

    def _add(
        self,
        workspace: Workspace,
        doc_type: str,
        data: bytes,
        parsed: ingest.ParsedDocument,
        *,
        name: str,
        index_failure: str | None = None,
        **extra,
    ) -> Document:
        t = now()
        doc = Document(
            id=ws.new_id(),
            workspace_id=workspace.id,
            name=name.strip()[:255] or "Untitled",
            type=doc_type,
            format=parsed.format,
            size_bytes=len(data),
            char_count=len(parsed.text),
            content_hash=docs.content_hash(data),
            created_at=t,
            updated_at=t,
            metadata=dict(parsed.metadata),
            **extra,
        )
        docs.store_parsed(self.blobs, workspace.id, doc.id, data, parsed)
        try:
            with self.db.write() as conn:
                docs.insert_document(conn, doc)
                ri.create_index(
                    conn, self.queue, workspace.id, doc.id, workspace.default_model, doc.size_bytes, failure=index_failure
                )
        except BaseException:
            self.blobs.delete_document(workspace.id, doc.id)
            raise
        self.queue.notify()
        return doc

    def list_documents(self, workspace: Workspace, *, page_size: int = 30, cursor: str | None = None, search: str | None = None) -> DocumentPage:
        return docs.list_documents(self.db, workspace.id, page_size=page_size, cursor=cursor, search=search)

    def get_document(self, workspace: Workspace, document_id: str) -> Document:
        return docs.get_document(self.db, workspace.id, document_id)

    def rename_document(self, workspace: Workspace, document_id: str, name: str) -> Document:
        return docs.rename_document(self.db, workspace.id, document_id, name)

    def document_text(self, workspace: Workspace, document_id: str) -> str:
        doc = self.get_document(workspace, document_id)
        return docs.load_text(self.blobs, workspace.id, doc.id)

    def delete_document(self, workspace: Workspace, document_id: str) -> None:
        """Remove the document, its chunks and vectors. Retrieval stops returning it at once."""
        self.get_document(workspace, document_id)
        with self.db.read() as conn:
            models = sorted({index.model for index in ri.list_indexes(self.db, workspace.id, document_id)})
        with ExitStack() as stack:
            for model in models:  # sorted: every writer takes these locks in one order
                stack.enter_context(self.vectors.lock(workspace.id, model))
            with self.db.write() as conn:
                keys = docs.chunk_keys_by_model(conn, workspace.id, document_id)
                if not docs.delete_document_rows(conn, workspace.id, document_id):
                    raise NotFound(f"document {document_id!r} not found in this workspace")
                generations = {model: self.vectors.bump_generation(conn, workspace.id, model) for model in keys}
            for model, generation in generations.items():
                self.vectors.apply(workspace.id, model, generation, remove=keys[model])
        self.blobs.delete_document(workspace.id, document_id)

    def get_chunk(self, workspace: Workspace, document_id: str, chunk_id: str):
        from sqlalchemy import select

        from .db import chunks

        self.get_document(workspace, document_id)
        with self.db.read() as conn:
            row = conn.execute(
                select(chunks).where(
                    chunks.c.id == chunk_id, chunks.c.document_id == document_id, chunks.c.workspace_id == workspace.id
                )
            ).first()
        if row is None:
            raise NotFound(f"chunk {chunk_id!r} not found in document {document_id!r}")
        return row

    # --- RAG indexes -------------------------------------------------------------------------

    def ensure_rag_index(self, workspace: Workspace, document_id: str, model: str) -> RagIndex:
        """Start an index of the document for `model`, or report the one that exists (retrying a failed one)."""
        self.models.require_known(model)
        doc = self.get_document(workspace, document_id)
        with self.db.write() as conn:
            index = ri.find_index(conn, workspace.id, doc.id, model)
            if index is None:
                index = ri.create_index(conn, self.queue, workspace.id, doc.id, model, doc.size_bytes)
            elif index.status == "failed":
                index = ri.retry_index(conn, self.queue, index)
        self.queue.notify()
        return index

    def list_rag_indexes(self, workspace: Workspace, document_id: str) -> list[RagIndex]:
        self.get_document(workspace, document_id)
        return ri.list_indexes(self.db, workspace.id, document_id)

    # --- retrieval ---------------------------------------------------------------------------

    def retrieve(
        self,
        workspace: Workspace,
        query: str,
        *,
        document_ids: list[str] | None = None,
        embedding_model: str | None = None,
        limits: RetrievalLimits = RetrievalLimits(),
    ) -> RetrievalResult:
        if limits.max_retrieved_rag_chunks_count < 1:
            raise InvalidRequest("max_retrieved_rag_chunks_count must be at least 1")
        return self.retriever.retrieve(
            workspace, query, document_ids=document_ids, embedding_model=embedding_model, limits=limits
        )

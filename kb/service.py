"""The knowledge base: one object that wires storage, ingestion, indexing and retrieval.

The API and the CLI call only this. It owns no HTTP and no parsing logic of its own.
"""

from __future__ import annotations

import json
import logging
import os
import time

from sqlalchemy import select, update

from index.retrieval import RetrievalLimits
from index.stores import set_search_threads

from . import documents as docs
from . import quotas
from . import rag_indexes as ri
from . import workspaces as ws
from .agents import Agents
from .blobs import LocalBlobStore
from .config import Settings
from .db import Database, chunks, documents, now
from .documents import Document, DocumentPage
from .errors import Conflict, InvalidRequest, NotFound
from .fulltext import FullTextIndex, SearchHit
from .ingestion import Ingestion, Prepared
from .indexing import Indexer
from .jobs import Job, JobQueue, WorkerPool, run_jobs
from .models import ModelRegistry
from .rag_indexes import RagIndex
from .removal import remove_documents, remove_rag_index
from .retrieval import RetrievalResult, Retriever, SearchOptions
from .signing import LinkSigner
from .vectors import VectorIndexes
from .workspaces import Workspace

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE = "default"
INDEX_BATCH_JOBS = 64  # queued indexing jobs one worker takes at once (embedded together)


class KnowledgeBase:
    def __init__(self, settings: Settings):
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.db_url)
        self.blobs = LocalBlobStore(settings.data_dir / "blobs")
        self.queue = JobQueue(self.db, on_give_up=lambda job, error: ri.set_state(self.db, job.payload["rag_index_id"], status="failed", error=error))
        self.models = ModelRegistry(settings)
        set_search_threads(1)
        self.vectors = VectorIndexes(
            self.db,
            settings.data_dir / "indexes",
            int(settings.index_cache_mb * 2**20),
            settings.vector_store,
            # "auto" stores switch when kb says so, outside the lock searches wait on (kb.vectors.apply)
            {"hnsw_threshold": settings.hnsw_threshold, "auto_switch": False} if settings.vector_store == "auto" else {},
        )
        self.indexer = Indexer(settings, self.db, self.blobs, self.models, self.vectors)
        self.retriever = Retriever(self.db, self.models, self.vectors)
        self.fulltext = FullTextIndex(self.db)
        self.ingestion = Ingestion(settings)
        self.links = LinkSigner(settings.data_dir)
        self.agents = Agents(self)
        self._workers: WorkerPool | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start_workers(self) -> None:
        """Resume jobs a previous process left unfinished, then index in the background."""
        resumed = self.queue.requeue_interrupted()
        if resumed:
            log.info("resuming %d interrupted indexing job(s)", resumed)
        self._workers = WorkerPool(self.queue, self.handle_jobs, size=self.settings.workers, batch_size=INDEX_BATCH_JOBS)
        self.indexer.stopping = self._workers.stopping  # embedding stops early when the pool stops
        self._workers.start()

    def warm_up(self) -> None:
        """Load the default model and run one query through it, so the first request is fast."""
        self.retriever.embed_query(self.settings.default_model, "warm up")

    def close(self) -> None:
        if self._workers:
            self._workers.stop()
            self._workers = None
        self.vectors.close()  # writes indexes changed since their last save
        self.db.dispose()

    def handle_jobs(self, batch: list[Job]) -> None:
        """Run jobs of one kind together (a worker hands over the queued jobs of the kind it took)."""
        unknown = [job.kind for job in batch if job.kind != ri.INDEX_JOB]
        if unknown:
            raise ValueError(f"unknown job kind {unknown[0]!r}")
        self.indexer.run_many([job.payload["rag_index_id"] for job in batch])

    def run_queued_jobs(self) -> int:
        """Run the oldest queued job and others of its kind here, as a worker would; returns how many."""
        job = self.queue.claim()
        if job is None:
            return 0
        batch = [job] + self.queue.claim_more(job.kind, INDEX_BATCH_JOBS - 1)
        run_jobs(self.queue, self.handle_jobs, batch)
        return len(batch)

    def run_job_now(self, job_id: int) -> None:
        """Run a queued job in this process (the CLI does this); waits if a worker already took it."""
        job = self.queue.claim(job_id)
        if job is not None:
            run_jobs(self.queue, self.handle_jobs, [job])
            return
        while self.queue.status(job_id) in ("queued", "running"):
            time.sleep(0.2)

    # --- workspaces --------------------------------------------------------------------------

    def create_workspace(self, name: str, tier: str | None = None, **overrides: int | None) -> tuple[Workspace, str]:
        """A new workspace and its API key; `overrides` set single limits (rag_max_bytes, kb_max_bytes...)."""
        tier = ws.check_tier(tier or self.settings.default_tier, self.settings.tiers)
        return ws.create_workspace(self.db, name, tier, self.settings.default_model, **overrides)

    def update_workspace(self, workspace_id: str, tier: str | None = None, **overrides: int | None) -> Workspace:
        if tier is not None:
            ws.check_tier(tier, self.settings.tiers)
        return ws.update_workspace(self.db, workspace_id, tier, **overrides)

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
        # The machine's owner uses it: the largest standard tier, not the free one.
        workspace, api_key = self.create_workspace(DEFAULT_WORKSPACE, "enterprise")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(api_key + "\n")
        return workspace, api_key

    # --- adding documents ---------------------------------------------------------------------

    def add_text(
        self, workspace: Workspace, text: str, name: str | None = None, parent_folder_id: str | None = None
    ) -> Document:
        return self._add(workspace, "text", self.ingestion.from_text(text, name), name, parent_folder_id)

    def add_file(
        self,
        workspace: Workspace,
        data: bytes,
        filename: str | None,
        content_type: str | None,
        name: str | None = None,
        parent_folder_id: str | None = None,
    ) -> Document:
        return self._add(workspace, "file", self.ingestion.from_file(data, filename, content_type), name, parent_folder_id)

    def add_url(
        self, workspace: Workspace, url: str, name: str | None = None, parent_folder_id: str | None = None
    ) -> Document:
        self._check_folder(workspace, parent_folder_id)  # before the fetch: fail fast
        return self._add(workspace, "url", self.ingestion.from_url(url), name, parent_folder_id)

    def create_folder(self, workspace: Workspace, name: str, parent_folder_id: str | None = None) -> Document:
        if not name.strip():
            raise InvalidRequest("a folder needs a name")
        folder = Document(
            id=ws.new_id("fo_"), workspace_id=workspace.id, name=name.strip()[:255], type="folder", format="folder",
            size_bytes=0, char_count=0, content_hash="", created_at=now(), updated_at=now(),
            parent_folder_id=parent_folder_id,
        )
        with self.db.write() as conn:
            self._check_folder(workspace, parent_folder_id, conn)
            docs.insert_document(conn, folder)
        return folder

    def _check_folder(self, workspace: Workspace, folder_id: str | None, conn=None) -> None:
        if folder_id is None:
            return
        if conn is None:
            with self.db.read() as read_conn:
                return self._check_folder(workspace, folder_id, read_conn)
        row = conn.execute(
            select(documents.c.type).where(documents.c.workspace_id == workspace.id, documents.c.id == folder_id)
        ).first()
        if row is None:
            raise NotFound(f"folder {folder_id!r} not found in this workspace")
        if row.type != "folder":
            raise InvalidRequest(f"{folder_id!r} is a document, not a folder")

    def _add(
        self, workspace: Workspace, doc_type: str, prepared: Prepared, name: str | None, parent_folder_id: str | None
    ) -> Document:
        t = now()
        doc = Document(
            id=ws.new_id(),
            workspace_id=workspace.id,
            name=(name or prepared.default_name).strip()[:255] or "Untitled",
            type=doc_type,
            format=prepared.parsed.format,
            size_bytes=len(prepared.data),
            char_count=len(prepared.parsed.text),
            content_hash=docs.content_hash(prepared.data),
            created_at=t,
            updated_at=t,
            filename=prepared.filename,
            url=prepared.url,
            content_type=prepared.content_type,
            parent_folder_id=parent_folder_id,
            metadata=dict(prepared.parsed.metadata),
        )
        docs.store_parsed(self.blobs, workspace.id, doc.id, prepared.data, prepared.parsed)
        try:
            with self.db.write() as conn:
                self._check_folder(workspace, parent_folder_id, conn)
                quotas.check_storage(conn, self.settings, workspace.id, doc.size_bytes, doc.char_count)
                docs.insert_document(conn, doc)
                FullTextIndex.add(conn, workspace.id, doc.id, prepared.parsed.text)
                admission = self._admit(conn, workspace, doc.size_bytes, prepared)
                ri.create_index(conn, self.queue, workspace.id, doc.id, workspace.default_model, doc.size_bytes, admission)
        except BaseException:
            self.blobs.delete_document(workspace.id, doc.id)
            raise
        self.queue.notify()
        return doc

    def _admit(self, conn, workspace: Workspace, size_bytes: int, prepared: Prepared | None = None,
               excluding_index: str | None = None) -> quotas.Admission:
        if prepared is not None and prepared.index_failure:
            return quotas.Admission("failed", prepared.index_failure)
        return quotas.admit_index(conn, self.settings, workspace.id, size_bytes, excluding_index=excluding_index)

    # --- changing documents -------------------------------------------------------------------

    def update_document(
        self, workspace: Workspace, document_id: str, *, name: str | None = None, content: str | None = None
    ) -> Document:
        """Rename, and for text documents replace the text (re-indexed in the background)."""
        doc = self.get_document(workspace, document_id)
        if content is not None:
            if doc.type != "text":
                raise InvalidRequest("only text documents take new content; use update-file for files and refresh for URLs")
            doc = self._replace(workspace, doc, self.ingestion.from_text(content, fmt=doc.format))
        if name is not None:
            doc = docs.rename_document(self.db, workspace.id, document_id, name)
        return doc

    def rename_document(self, workspace: Workspace, document_id: str, name: str) -> Document:
        return docs.rename_document(self.db, workspace.id, document_id, name)

    def update_file(
        self, workspace: Workspace, document_id: str, data: bytes, filename: str | None, content_type: str | None
    ) -> Document:
        """Replace a file document's content; its id, name and folder stay, its indexes are rebuilt."""
        doc = self.get_document(workspace, document_id)
        if doc.type != "file":
            raise InvalidRequest(f"document {document_id!r} is a {doc.type} document; update-file takes file documents")
        return self._replace(workspace, doc, self.ingestion.from_file(data, filename, content_type))

    def refresh(self, workspace: Workspace, document_id: str) -> Document:
        """Fetch a URL document again; re-index only if its content changed."""
        doc = self.get_document(workspace, document_id)
        if doc.type != "url" or not doc.url:
            raise InvalidRequest(f"document {document_id!r} is a {doc.type} document; only URL documents can be refreshed")
        return self._replace(workspace, doc, self.ingestion.from_url(doc.url))

    def _replace(self, workspace: Workspace, doc: Document, prepared: Prepared) -> Document:
        new_hash = docs.content_hash(prepared.data)
        if new_hash == doc.content_hash:
            return doc  # unchanged: nothing to re-embed
        with self.db.write() as conn:
            quotas.check_storage(
                conn, self.settings, workspace.id, len(prepared.data), len(prepared.parsed.text),
                freed_bytes=doc.size_bytes, freed_chars=doc.char_count,
            )
        docs.store_parsed(self.blobs, workspace.id, doc.id, prepared.data, prepared.parsed)
        with self.db.write() as conn:
            quotas.check_storage(
                conn, self.settings, workspace.id, len(prepared.data), len(prepared.parsed.text),
                freed_bytes=doc.size_bytes, freed_chars=doc.char_count,
            )
            conn.execute(
                update(documents)
                .where(documents.c.id == doc.id, documents.c.workspace_id == workspace.id)
                .values(
                    format=prepared.parsed.format,
                    size_bytes=len(prepared.data),
                    char_count=len(prepared.parsed.text),
                    content_hash=new_hash,
                    metadata_json=json.dumps(prepared.parsed.metadata, ensure_ascii=False),
                    filename=prepared.filename or doc.filename,
                    url=prepared.url or doc.url,
                    content_type=prepared.content_type or doc.content_type,
                    updated_at=now(),
                )
            )
            FullTextIndex.put(conn, workspace.id, doc.id, prepared.parsed.text)
            for index in ri.indexes_of(conn, workspace.id, doc.id):
                admission = self._admit(conn, workspace, len(prepared.data), prepared, excluding_index=index.id)
                ri.restart_index(conn, self.queue, index, len(prepared.data), admission)
        self.queue.notify()
        return self.get_document(workspace, doc.id)

    def move(self, workspace: Workspace, document_ids: list[str], move_to: str | None) -> None:
        """Move documents or folders into `move_to` (None: the root)."""
        with self.db.write() as conn:
            self._check_folder(workspace, move_to, conn)
            for document_id in document_ids:
                row = conn.execute(
                    select(documents.c.type).where(documents.c.workspace_id == workspace.id, documents.c.id == document_id)
                ).first()
                if row is None:
                    raise NotFound(f"document {document_id!r} not found in this workspace")
                if row.type == "folder" and move_to and (
                    move_to == document_id or move_to in docs.descendant_ids(conn, workspace.id, document_id)
                ):
                    raise InvalidRequest(f"cannot move folder {document_id!r} into itself or one of its subfolders")
            conn.execute(
                update(documents)
                .where(documents.c.workspace_id == workspace.id, documents.c.id.in_(document_ids))
                .values(parent_folder_id=move_to, updated_at=now())
            )

    # --- reading documents --------------------------------------------------------------------

    def list_documents(self, workspace: Workspace, query: docs.ListQuery = docs.ListQuery()) -> DocumentPage:
        return docs.list_documents(self.db, workspace.id, query)

    def get_document(self, workspace: Workspace, document_id: str) -> Document:
        return docs.get_document(self.db, workspace.id, document_id)

    def document_text(self, workspace: Workspace, document_id: str) -> str:
        doc = self.get_document(workspace, document_id)
        if doc.is_folder:
            raise InvalidRequest(f"{document_id!r} is a folder; folders have no content")
        return docs.load_text(self.blobs, workspace.id, doc.id)

    def folder_path(self, workspace: Workspace, parent_folder_id: str | None) -> list[tuple[str, str]]:
        with self.db.read() as conn:
            return docs.folder_path(conn, workspace.id, parent_folder_id)

    def folder_counts(self, workspace: Workspace, folder_id: str) -> tuple[int, int]:
        with self.db.read() as conn:
            return docs.folder_counts(conn, workspace.id, folder_id)

    def search(
        self, workspace: Workspace, query: str, *, page_size: int = 30, types: tuple[str, ...] = (), cursor: str | None = None
    ) -> tuple[list[tuple[Document, SearchHit]], str | None]:
        """Full-text search over document contents: (document, hit) pairs, best first, and the next cursor."""
        if not query.strip():
            raise InvalidRequest("query must not be empty")
        if not 1 <= page_size <= 100:
            raise InvalidRequest("page_size must be between 1 and 100")
        offset = docs.decode_cursor(cursor)
        allowed = None
        if types:
            page = docs.list_documents(self.db, workspace.id, docs.ListQuery(page_size=100, types=types))
            allowed = [d.id for d in page.documents]
            while page.has_more:
                page = docs.list_documents(
                    self.db, workspace.id, docs.ListQuery(page_size=100, types=types, cursor=page.next_cursor)
                )
                allowed += [d.id for d in page.documents]
        hits = self.fulltext.search(workspace.id, query, limit=page_size + 1, offset=offset, document_ids=allowed)
        found = {d.id: d for d in self._documents(workspace, [h.document_id for h in hits[:page_size]])}
        results = [(found[h.document_id], h) for h in hits[:page_size] if h.document_id in found]
        return results, docs.encode_cursor(offset + page_size) if len(hits) > page_size else None

    def _documents(self, workspace: Workspace, document_ids: list[str]) -> list[Document]:
        if not document_ids:
            return []
        with self.db.read() as conn:
            rows = conn.execute(
                select(documents).where(documents.c.workspace_id == workspace.id, documents.c.id.in_(document_ids))
            ).fetchall()
        return [Document.from_row(r) for r in rows]

    def chunks(
        self, workspace: Workspace, document_id: str, model: str | None, *, page_size: int = 30, cursor: str | None = None
    ) -> tuple[list, str | None]:
        """The document's chunks for a model, in document order, and the next cursor."""
        doc = self.get_document(workspace, document_id)
        model = self.models.require_known(model or workspace.default_model)
        if not 1 <= page_size <= 1000:
            raise InvalidRequest("page_size must be between 1 and 1000")
        offset = docs.decode_cursor(cursor)
        with self.db.read() as conn:
            rows = conn.execute(
                select(chunks)
                .where(chunks.c.workspace_id == workspace.id, chunks.c.document_id == doc.id, chunks.c.model == model)
                .order_by(chunks.c.ordinal)
                .offset(offset)
                .limit(page_size + 1)
            ).fetchall()
        return rows[:page_size], docs.encode_cursor(offset + page_size) if len(rows) > page_size else None

    def get_chunk(self, workspace: Workspace, document_id: str, chunk_id: str, model: str | None = None):
        self.get_document(workspace, document_id)
        query = select(chunks).where(
            chunks.c.id == chunk_id, chunks.c.document_id == document_id, chunks.c.workspace_id == workspace.id
        )
        if model is not None:
            query = query.where(chunks.c.model == self.models.require_known(model))
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"chunk {chunk_id!r} not found in document {document_id!r}")
        return row

    def source_file_link(self, workspace: Workspace, document_id: str) -> tuple[int, str]:
        """(expires, signature) of a link to download the original upload without an API key."""
        doc = self.get_document(workspace, document_id)
        if doc.is_folder:
            raise InvalidRequest(f"{document_id!r} is a folder; folders have no source file")
        return self.links.sign(workspace.id, doc.id)

    def source_file(self, workspace_id: str, document_id: str, expires: int, signature: str) -> tuple[bytes, Document]:
        self.links.verify(workspace_id, document_id, expires, signature)
        doc = docs.get_document(self.db, workspace_id, document_id)
        return self.blobs.get(workspace_id, doc.id, docs.ORIGINAL), doc

    # --- deleting -----------------------------------------------------------------------------

    def delete_document(self, workspace: Workspace, document_id: str, force: bool = False) -> None:
        """Delete a document (or a folder with everything in it). Retrieval stops returning it at once.

        Refused when a folder is not empty or an agent uses the document, unless `force`; with
        `force`, the document is also detached from those agents.
        """
        doc = self.get_document(workspace, document_id)
        ids = [doc.id]
        if doc.is_folder:
            with self.db.read() as conn:
                below = docs.descendant_ids(conn, workspace.id, doc.id)
            if below and not force:
                raise Conflict(f"folder {doc.name!r} is not empty ({len(below)} items); delete it with force=true")
            ids += below
        dependents = self.agents.dependent_agents(workspace, ids)
        if dependents and not force:
            names = ", ".join(sorted({a.name for a in dependents}))
            raise Conflict(f"agents depend on {doc.name!r} ({names}); remove it from them first, or delete with force=true")
        if dependents:
            self.agents.detach_documents(workspace, ids)
        remove_documents(self.db, self.vectors, self.blobs, workspace.id, ids)

    # --- RAG indexes -------------------------------------------------------------------------

    def ensure_rag_index(self, workspace: Workspace, document_id: str, model: str, create: bool = True) -> RagIndex:
        """Start an index of the document for `model`, or report the one that exists (retrying a failed one)."""
        self.models.require_known(model)
        doc = self.get_document(workspace, document_id)
        if doc.is_folder:
            raise InvalidRequest(f"{document_id!r} is a folder; index the documents in it")
        with self.db.write() as conn:
            index = ri.find_index(conn, workspace.id, doc.id, model)
            if index is None:
                if not create:
                    raise NotFound(f"document {document_id!r} has no index for {model!r}")
                admission = self._admit(conn, workspace, doc.size_bytes)
                index = ri.create_index(conn, self.queue, workspace.id, doc.id, model, doc.size_bytes, admission)
            elif index.status in ("failed", "rag_limit_exceeded", "document_too_small") and create:
                # Asked again: retry a failure, and re-check limits that may have changed since.
                admission = self._admit(conn, workspace, doc.size_bytes, excluding_index=index.id)
                index = ri.restart_index(conn, self.queue, index, doc.size_bytes, admission)
        self.queue.notify()
        return index

    def list_rag_indexes(self, workspace: Workspace, document_id: str) -> list[RagIndex]:
        self.get_document(workspace, document_id)
        return ri.list_indexes(self.db, workspace.id, document_id)

    def first_index_statuses(self, workspace: Workspace, document_ids: list[str]) -> dict[str, str]:
        """Status of the index each document's upload created, for many documents (`kb ingest` polls it)."""
        return ri.first_index_statuses(self.db, workspace.id, document_ids)

    def delete_rag_index(self, workspace: Workspace, document_id: str, rag_index_id: str) -> RagIndex:
        index = next((i for i in self.list_rag_indexes(workspace, document_id) if i.id == rag_index_id), None)
        if index is None:
            raise NotFound(f"RAG index {rag_index_id!r} not found for document {document_id!r}")
        remove_rag_index(self.db, self.vectors, workspace.id, index.id, index.model)
        return index

    def limits_and_usage(self, workspace_id: str) -> tuple[quotas.Limits, quotas.Usage]:
        with self.db.read() as conn:
            return quotas.limits(conn, self.settings, workspace_id), quotas.usage(conn, workspace_id)

    def rag_usage(self, workspace: Workspace) -> tuple[int, int, dict[str, int]]:
        """(bytes used, bytes allowed, bytes used per model) of the workspace's RAG indexes."""
        lim, use = self.limits_and_usage(workspace.id)
        return use.rag_bytes, lim.rag_max_bytes, use.rag_bytes_by_model

    # --- retrieval ---------------------------------------------------------------------------

    def retrieve(
        self,
        workspace: Workspace,
        query: str,
        *,
        document_ids: list[str] | None = None,
        embedding_model: str | None = None,
        limits: RetrievalLimits = RetrievalLimits(),
        options: SearchOptions = SearchOptions(),
    ) -> RetrievalResult:
        if limits.max_retrieved_rag_chunks_count < 1:
            raise InvalidRequest("max_retrieved_rag_chunks_count must be at least 1")
        return self.retriever.retrieve(
            workspace, query, document_ids=document_ids, embedding_model=embedding_model, limits=limits, options=options
        )

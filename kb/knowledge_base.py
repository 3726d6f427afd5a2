"""The knowledge base: builds the stores and services and owns their lifecycle.

No SQL and no business logic here: each service is an attribute (`kb.documents`, `kb.folders`,
`kb.agents`, `kb.retrieval`, `kb.rag_indexes`, `kb.search`, ...), built with only the stores and
services it uses. The API and the CLI call the services.
"""

from __future__ import annotations

import logging
import time

from index.stores import set_search_threads

from .indexes import HandOver, VectorIndexes
from .jobs import JobKinds, JobQueue, Scheduler, WorkerPool
from .services.agents import Agents
from .services.attributes import Attributes
from .services.auto_sync import AutoSync
from .services.chunks import Chunks
from .services.citations import Citations
from .services.crawls import Crawls
from .services.documents import Documents
from .services.external_knowledge import ExternalKnowledge
from .services.folders import Folders
from .services.gaps import GapLog
from .services.idempotency import Idempotency
from .services.indexing import Indexer, index_job_kind
from .services.ingestion import Ingestion
from .services.links import LinkSigner, SourceFiles
from .services.models import ModelRegistry
from .services.orphans import remove_orphaned_files
from .services.quotas import Quotas
from .services.rag_indexes import RagIndexes
from .services.reindex import Reindex
from .services.removal import Removal
from .services.retrieval import Retriever
from .services.search import FullTextSearch
from .services.slots import WorkspaceSlots
from .services.workspaces import Workspaces
from .settings import Settings
from .storage import open_storage

log = logging.getLogger(__name__)


class KnowledgeBase:
    def __init__(self, settings: Settings):
        self.settings = settings
        data_dir = settings.storage.data_dir
        self.storage = s = open_storage(settings.storage)  # migrates the schema first
        self.db = s.db
        self.job_kinds = JobKinds()
        jobs = settings.jobs
        self.queue = JobQueue(s.db, self.job_kinds, store=s.jobs, stale_secs=jobs.job_lease_secs,
                              heartbeat_secs=jobs.job_heartbeat_secs)
        self.scheduler = Scheduler(s.db, self.queue, s.schedules)
        self.models = ModelRegistry(settings.embedding, settings.embedding.model_cache_dir or data_dir / "models")
        set_search_threads(1)
        index = settings.index
        self.vectors = VectorIndexes(
            s.db, s.generations, s.chunks, s.index_files, int(index.index_cache_mb * 2**20), index.vector_store,
            # "auto" stores switch when kb says so, outside the lock searches wait on (kb.indexes.loaded)
            {"hnsw_threshold": index.hnsw_threshold, "auto_switch": False} if index.vector_store == "auto" else {},
            HandOver(index.index_save_delay_secs, index.index_swap_wait_secs, index.index_file_wait_secs,
                     index.index_file_grace_secs),
        )
        self.workspaces = Workspaces(s.db, s.workspaces, settings.workspaces, settings.embedding.default_model,
                                     data_dir / "default_api_key")
        self.quotas = Quotas(s.db, s.workspaces, s.documents, s.rag_indexes, s.quota_lock, settings.workspaces, s.agents)
        self.removal = Removal(s.db, s.documents, s.rag_indexes, s.chunks, s.fulltext, self.vectors, s.blobs, self.queue)
        self.rag_indexes = RagIndexes(s.db, s.rag_indexes, s.documents, self.queue, self.quotas, self.models, self.removal)
        self.indexer = Indexer(index, settings.embedding, s.db, self.rag_indexes, s.rag_indexes, s.chunks, s.documents,
                               s.blobs, self.models, self.vectors)
        self.job_kinds.register(index_job_kind(self.indexer, self.rag_indexes))
        self.attributes = Attributes(s.db, s.attributes, s.documents, s.blobs)
        self.gaps = GapLog(s.db, s.gaps, settings.gaps, self.models.default_distance)
        self.job_kinds.register(self.gaps.prune_job_kind())
        self.retrieval = Retriever(s.db, s.chunks, s.documents, self.models, self.vectors, self.attributes, self.gaps)
        self.citations = Citations(s.db, s.documents, s.attributes)
        self.agents = Agents(s.db, s.agents, s.documents, s.blobs, self.models, self.retrieval, self.quotas)
        self.folders = Folders(s.db, s.documents)
        self.ingestion = Ingestion(settings.ingest)
        self.documents = Documents(s.db, s.documents, s.fulltext, s.blobs, self.ingestion, self.quotas,
                                   self.rag_indexes, self.folders, self.agents, self.removal,
                                   WorkspaceSlots(settings.ingest.url_fetches_per_workspace, "URL fetches",
                                                  "KB_URL_FETCHES_PER_WORKSPACE"), self.attributes,
                                   Idempotency(s.db, s.idempotency, settings.requests.idempotency_ttl_secs))
        self.external_knowledge = ExternalKnowledge(self.retrieval, self.documents, self.folders, self.citations)
        self.chunks = Chunks(s.db, s.chunks, s.documents, self.models)
        self.search = FullTextSearch(s.db, s.fulltext, s.documents, self.attributes)
        self.source_files = SourceFiles(LinkSigner(data_dir), s.documents, s.db, s.blobs)
        self.auto_sync = AutoSync(s.db, s.sync, s.crawls, self.workspaces, self.documents, self.folders, self.ingestion,
                                  settings.crawl, settings.ingest)
        self.crawls = Crawls(s.db, s.crawls, self.documents, self.folders, self.ingestion, self.auto_sync, self.queue,
                             settings.crawl, settings.ingest, self.workspaces)
        self.job_kinds.register(self.crawls.job_kind())
        self.job_kinds.register(self.auto_sync.job_kind())
        self.reindex = Reindex(s.db, s.rag_indexes, s.chunks, self.vectors, self.indexer, self.models)
        self._workers: WorkerPool | None = None
        self.orphans_removed = remove_orphaned_files(s.db, s.documents, s.blobs, settings.storage.orphan_grace_secs)

    # --- lifecycle ---------------------------------------------------------------------------

    def start_workers(self) -> None:
        """Resume jobs a previous process left unfinished, then run jobs (and schedules) in the background."""
        resumed = self.queue.requeue_interrupted()
        if resumed:
            log.info("resuming %d interrupted job(s)", resumed)
        backfilled = self.attributes.backfill_page_counts()  # documents stored before attributes existed
        if backfilled:
            log.info("page_count attribute added to %d document(s)", backfilled)
        self.auto_sync.schedule(self.scheduler)
        if self.settings.gaps.gap_log:
            self.gaps.ensure_schedule(self.scheduler)
        self._workers = WorkerPool(self.queue, self.job_kinds, size=self.settings.jobs.workers, scheduler=self.scheduler,
                                   reap_secs=self.settings.jobs.job_reap_secs)
        self._workers.start()

    def warm_up(self) -> None:
        """Load the default model and run one query through it, so the first request is fast."""
        self.retrieval.embed_query(self.models.resolve(self.settings.embedding.default_model).served, "warm up")

    def stop_workers(self, timeout: float = 30.0) -> None:
        """Take no new job; wait up to `timeout` for running ones, then give the rest back to the queue."""
        if self._workers:
            self._workers.stop(timeout)
            self._workers = None

    def close(self) -> None:
        self.stop_workers()
        self.gaps.close()  # writes the gap events still queued
        self.vectors.close()  # writes indexes changed since their last save
        self.storage.close()

    # --- running jobs here (the CLI and tests) -----------------------------------------------

    def run_queued_jobs(self) -> int:
        """Run the oldest due job and others of its kind here, as a worker would; returns how many."""
        return WorkerPool(self.queue, self.job_kinds).run_one_batch()

    def run_job_now(self, job_id: int) -> None:
        """Run a queued job in this process (the CLI does this); waits if a worker already took it."""
        pool = WorkerPool(self.queue, self.job_kinds)
        job = self.queue.claim(job_id)
        if job is not None:
            pool.run_claimed([job])
            return
        while self.queue.status(job_id) in ("queued", "running"):
            time.sleep(0.2)

"""The storage layer: every table, every SQL statement, every file kb keeps.

`open_storage` opens (and migrates) the metadata database and builds the repositories, the
dialect's full-text index, job claims and quota lock, and the blob and index-file stores. Services
receive the parts they use, typed by the interfaces in `repositories.py` and
`interfaces.py`; nothing above this package runs SQL or touches the data directory.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import StorageSettings
from .blobs import LocalBlobStore
from .database import Database, now
from .migrate import open_database
from .index_files import LocalIndexFiles
from .interfaces import BlobStore, FullTextIndex, IndexFileStore, QuotaLock, Tx
from .sql.agents import AgentRepository
from .sql.attributes import AttributeRepository
from .sql.chunks import ChunkRepository
from .sql.crawls import CrawlRepository, SyncRepository
from .sql.documents import DocumentRepository
from .sql.gaps import GapRepository
from .sql.generations import GenerationRepository
from .sql.jobs import JobRepository
from .sql.rag_indexes import RagIndexRepository
from .sql.idempotency import IdempotencyRepository
from .sql.schedules import ScheduleRepository
from .sql.workspaces import WorkspaceRepository


@dataclass(frozen=True)
class Storage:
    db: Database
    workspaces: WorkspaceRepository
    documents: DocumentRepository
    attributes: AttributeRepository
    rag_indexes: RagIndexRepository
    chunks: ChunkRepository
    generations: GenerationRepository
    agents: AgentRepository
    jobs: JobRepository
    schedules: ScheduleRepository
    crawls: CrawlRepository
    sync: SyncRepository
    gaps: GapRepository
    idempotency: IdempotencyRepository
    fulltext: FullTextIndex
    quota_lock: QuotaLock
    blobs: BlobStore
    index_files: IndexFileStore

    def close(self) -> None:
        self.db.dispose()


def job_repository(db: Database) -> JobRepository:
    return JobRepository(db.dialect.job_claims())


def open_storage(settings: StorageSettings) -> Storage:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(settings.db_url)
    return Storage(
        db=db,
        workspaces=WorkspaceRepository(),
        documents=DocumentRepository(),
        attributes=AttributeRepository(),
        rag_indexes=RagIndexRepository(),
        chunks=ChunkRepository(),
        generations=GenerationRepository(),
        agents=AgentRepository(),
        jobs=job_repository(db),
        schedules=ScheduleRepository(),
        crawls=CrawlRepository(),
        sync=SyncRepository(),
        gaps=GapRepository(),
        idempotency=IdempotencyRepository(),
        fulltext=db.dialect.fulltext(),
        quota_lock=db.dialect.quota_lock(),
        blobs=LocalBlobStore(settings.data_dir / "blobs"),
        index_files=LocalIndexFiles(settings.data_dir / "indexes"),
    )


__all__ = ["Database", "Storage", "Tx", "job_repository", "now", "open_database", "open_storage"]

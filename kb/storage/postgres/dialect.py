"""PostgreSQL's engines and its ways: row locks skipped by concurrent claimers, advisory locks per
workspace and for migrations, a `tsvector` column with a GIN index for full-text search.

Several processes (API replicas, `kb worker`s, the CLI) share one database, each with its own
small connection pool. Write transactions run at READ COMMITTED, so a statement after a lock sees
what the lock's previous holder committed (the quota check reads usage after taking the
workspace's lock); read transactions run at REPEATABLE READ, one snapshot for the whole
transaction as SQLite's reads have.
"""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from ..interfaces import Dialect, FullTextIndex, JobClaims, QuotaLock, Tx
from ..sql.jobs import SqlJobClaims
from .fulltext import TABLE, TsvectorFullText

# The first key of kb's two-key advisory locks (`pg_advisory_xact_lock(int, int)`), so they never
# meet another application's locks on the same database; the second key says what is locked.
LOCK_NAMESPACE = 0x6B62  # "kb"
MIGRATION_LOCK = 0
QUOTA_LOCK_NAMESPACE = LOCK_NAMESPACE + 1  # second key: hashtext(workspace id)

# Every replica and worker has its own pool of up to POOL_SIZE connections, opened as needed and then
# kept open: with a smaller kept pool and overflow, a replica answering more requests at once than it
# keeps connections opened (and closed) a PostgreSQL connection per request (BENCHMARKS.md "Scale out").
POOL_SIZE = 20
MAX_OVERFLOW = 0
POOL_TIMEOUT_SECS = 30
POOL_RECYCLE_SECS = 1800  # reconnect now and then (servers and proxies drop idle connections)


class WorkspaceAdvisoryLock(QuotaLock):
    """`pg_advisory_xact_lock` on the workspace: quota checks of one workspace run one at a time
    across every process on the database; other workspaces never wait. Released at commit."""

    def lock_workspace(self, tx: Tx, workspace_id: str) -> None:
        tx.execute(text("SELECT pg_advisory_xact_lock(:ns, hashtext(:w))"), {"ns": QUOTA_LOCK_NAMESPACE, "w": workspace_id})


class PostgresDialect(Dialect):
    name = "postgresql"

    def is_internal(self, table: str) -> bool:
        """The full-text table is created by revision 0012 on PostgreSQL only, outside `schema.metadata`."""
        return table == TABLE

    def create_engines(self, url: str) -> tuple[Engine, Engine]:
        writer = create_engine(
            url, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_timeout=POOL_TIMEOUT_SECS,
            pool_recycle=POOL_RECYCLE_SECS, pool_pre_ping=True, isolation_level="READ COMMITTED",
        )
        # One pool: the reader is the writer's engine with another isolation level per transaction.
        reader = writer.execution_options(isolation_level="REPEATABLE READ")
        return writer, reader

    def fulltext(self) -> FullTextIndex:
        return TsvectorFullText()

    def job_claims(self) -> JobClaims:
        return SqlJobClaims(skip_locked=True)  # FOR UPDATE SKIP LOCKED: claimers pass over each other's rows

    def quota_lock(self) -> QuotaLock:
        return WorkspaceAdvisoryLock()

    def lock_for_migration(self, tx: Tx) -> None:
        tx.execute(text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": LOCK_NAMESPACE, "key": MIGRATION_LOCK})

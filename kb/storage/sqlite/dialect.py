"""SQLite's engines and its ways: one writer at a time (BEGIN IMMEDIATE), FTS5 full-text search."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

from ..interfaces import Dialect, FullTextIndex, JobClaims, QuotaLock, Tx
from ..sql.jobs import SqlJobClaims
from .fulltext import TABLE_PREFIX, Fts5FullText


def _pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # pysqlite's implicit BEGIN off: we issue our own
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process crash
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class SerialisedWrites(QuotaLock):
    """Every write transaction holds SQLite's write lock from its start (BEGIN IMMEDIATE), so quota
    checks are already serialised: two uploads racing for the last byte never both pass."""

    def lock_workspace(self, tx: Tx, workspace_id: str) -> None:
        return None


class SqliteDialect(Dialect):
    name = "sqlite"

    def is_internal(self, table: str) -> bool:
        """Each workspace's FTS5 table and its shadow tables (`kb/storage/sqlite/fulltext.py`)."""
        return table.startswith(TABLE_PREFIX)

    def create_engines(self, url: str) -> tuple[Engine, Engine]:
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        args = {"check_same_thread": False, "timeout": 30}
        writer, reader = create_engine(url, connect_args=args), create_engine(url, connect_args=args)
        for engine, begin in ((writer, "BEGIN IMMEDIATE"), (reader, "BEGIN")):
            event.listen(engine, "connect", _pragmas)
            event.listen(engine, "begin", lambda conn, sql=begin: conn.exec_driver_sql(sql))
        return writer, reader

    def fulltext(self) -> FullTextIndex:
        return Fts5FullText()

    def job_claims(self) -> JobClaims:
        return SqlJobClaims(skip_locked=False)  # one writer at a time: nothing to skip

    def quota_lock(self) -> QuotaLock:
        return SerialisedWrites()

    def lock_for_migration(self, tx: Tx) -> None:
        return None  # the migration runs in a write transaction: BEGIN IMMEDIATE holds the lock

"""The metadata database: engines, read and write transactions, and the dialect behind them.

`write()` transactions are serialised where the database needs it (SQLite: BEGIN IMMEDIATE, so
two writers never deadlock upgrading a read lock); `read()` ones never block writers. What
differs between databases lives in the `Dialect` (`kb/storage/dialects.py`).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

from sqlalchemy.engine import Connection

from .dialects import dialect_for
from .interfaces import Dialect


class Database:
    def __init__(self, url: str, dialect: Dialect | None = None):
        self.url = url
        self.dialect = dialect or dialect_for(url)
        self.writer, self.reader = self.dialect.create_engines(url)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect.name == "sqlite"

    def write(self) -> AbstractContextManager[Connection]:
        """`with db.write() as tx:` one transaction, committed on success."""
        return self.writer.begin()

    def read(self) -> AbstractContextManager[Connection]:
        return self.reader.begin()

    def dispose(self) -> None:
        self.writer.dispose()
        self.reader.dispose()


def now() -> float:
    return time.time()

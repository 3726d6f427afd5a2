"""SQLite: the embedded default (one file in the data directory, WAL mode)."""

from .dialect import SqliteDialect

__all__ = ["SqliteDialect"]

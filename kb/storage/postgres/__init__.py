"""PostgreSQL: the shared metadata store and job queue of several API and worker processes."""

from .dialect import PostgresDialect

__all__ = ["PostgresDialect"]

"""The seams of the storage layer: what differs between databases, and where bytes live.

The metadata repositories (`kb/storage/sql/`) are portable SQLAlchemy Core; what a database does
its own way sits behind the small interfaces below, provided by its `Dialect`:

- `FullTextIndex`: search over documents' text (SQLite FTS5; a `tsvector` column on PostgreSQL).
- `JobClaims`: taking queued jobs so that two workers never share one (SQLite's single writer;
  `FOR UPDATE SKIP LOCKED` on PostgreSQL).
- `QuotaLock`: serialising the quota checks of one workspace (SQLite's `BEGIN IMMEDIATE`; a row
  or advisory lock on PostgreSQL).

A PostgreSQL implementation is one `Dialect` subclass (its own module) and one `register_dialect`
line in `kb/storage/dialects.py`. Files are behind `BlobStore` and `IndexFileStore` (a local
directory now; object storage later).
"""

from __future__ import annotations

from collections.abc import Iterator

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from sqlalchemy.engine import Connection, Engine

from ..records import Job

# An open transaction (from `Database.read()` or `.write()`). Services pass it from one
# repository call to the next and never look inside.
Tx: TypeAlias = Connection


class FullTextIndex(ABC):
    """Documents' extracted text, searchable by words, kept in the document's own transactions."""

    @abstractmethod
    def add(self, tx: Tx, workspace_id: str, document_id: str, content: str) -> None:
        """The text of a new document (`replace` for one that may be indexed already)."""

    @abstractmethod
    def replace(self, tx: Tx, workspace_id: str, document_id: str, content: str) -> None: ...

    @abstractmethod
    def remove(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> None: ...

    @abstractmethod
    def search(
        self, tx: Tx, workspace_id: str, terms: Sequence[str], *, limit: int, offset: int = 0,
        document_ids: Sequence[str] | None = None,
    ) -> list[tuple[str, float, str]]:
        """(document id, score, content) of documents holding any of `terms`, best first."""


class JobClaims(ABC):
    """Marks queued jobs running for one owner; returns exactly the jobs it marked."""

    @abstractmethod
    def claim(self, tx: Tx, conditions: Sequence[Any], limit: int, values: Mapping[str, Any]) -> list[Job]:
        """Up to `limit` queued jobs meeting `conditions`, oldest first, updated with `values`."""


class QuotaLock(ABC):
    """Held for the rest of the transaction: quota checks of one workspace run one at a time."""

    @abstractmethod
    def lock_workspace(self, tx: Tx, workspace_id: str) -> None: ...


class Dialect(ABC):
    """What one kind of database does its own way."""

    name: str = ""

    def is_internal(self, table: str) -> bool:
        """Whether `table` is one of the dialect's own tables, not in `schema.metadata` (full-text tables)."""
        return False

    @abstractmethod
    def create_engines(self, url: str) -> tuple[Engine, Engine]:
        """(writer, reader) engines; they may be one engine."""

    @abstractmethod
    def fulltext(self) -> FullTextIndex: ...

    @abstractmethod
    def job_claims(self) -> JobClaims: ...

    @abstractmethod
    def quota_lock(self) -> QuotaLock: ...

    @abstractmethod
    def lock_for_migration(self, tx: Tx) -> None:
        """Make concurrent starts migrate one at a time (held until `tx` ends)."""


class BlobStore(ABC):
    """Keyed byte storage scoped by workspace and document: original uploads, text, structure."""

    @abstractmethod
    def put(self, workspace_id: str, document_id: str, name: str, data: bytes) -> None: ...

    def put_many(self, workspace_id: str, document_id: str, files: dict[str, bytes]) -> None:
        """Several files of one document; all are durable when this returns."""
        for name, data in files.items():
            self.put(workspace_id, document_id, name, data)

    @abstractmethod
    def get(self, workspace_id: str, document_id: str, name: str) -> bytes: ...

    @abstractmethod
    def delete_document(self, workspace_id: str, document_id: str) -> None: ...

    def document_folders(self) -> Iterator[tuple[str, str, float]]:
        """(workspace id, document id, last change as a Unix time) of every document's files kept."""
        return iter(())


class IndexFileStore(ABC):
    """The derived search-index files of a workspace and model, one set per generation.

    Readers read a file into memory in one go (`read`), so a reader uses a generation's files only
    for the duration of that read. Writers keep a generation's files for a grace period after a
    newer generation's files are all written (`remove_superseded`), and readers take the newest
    complete set (`generations`), so a file is never removed while a reader that chose it reads it
    unless the read outlasts the grace period.
    """

    @abstractmethod
    def write(self, workspace_id: str, model: str, generation: int, kind: str, data: bytes) -> None:
        """Atomically: a reader sees the whole file or none."""

    @abstractmethod
    def read(self, workspace_id: str, model: str, generation: int, kind: str) -> bytes | None:
        """The file's bytes, or None when there is none."""

    @abstractmethod
    def generations(self, workspace_id: str, model: str) -> dict[int, float]:
        """Generations whose files of every kind are there, each with when its last file was written (Unix time)."""

    @abstractmethod
    def remove_superseded(self, workspace_id: str, model: str, grace_secs: float, now: float | None = None) -> list[int]:
        """Remove the files of every generation older than one whose files were all written at
        least `grace_secs` ago (and writers' temporary files that old); the generations removed."""

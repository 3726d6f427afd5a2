"""Where document bytes live: original uploads and extracted text, behind a small interface."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path

from index.files import write_atomically


class BlobStore(ABC):
    """Keyed byte storage scoped by workspace and document."""

    @abstractmethod
    def put(self, workspace_id: str, document_id: str, name: str, data: bytes) -> None: ...

    @abstractmethod
    def get(self, workspace_id: str, document_id: str, name: str) -> bytes: ...

    @abstractmethod
    def delete_document(self, workspace_id: str, document_id: str) -> None: ...


class LocalBlobStore(BlobStore):
    """Files under `root/<workspace>/<document>/<name>`, each written atomically and fsynced."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, workspace_id: str, document_id: str, name: str = "") -> Path:
        for part in (workspace_id, document_id, name):
            if "/" in part or part in (".", ".."):
                raise ValueError(f"invalid blob key part {part!r}")
        return self.root / workspace_id / document_id / name

    def put(self, workspace_id: str, document_id: str, name: str, data: bytes) -> None:
        write_atomically(self._path(workspace_id, document_id, name), data)

    def get(self, workspace_id: str, document_id: str, name: str) -> bytes:
        return self._path(workspace_id, document_id, name).read_bytes()

    def delete_document(self, workspace_id: str, document_id: str) -> None:
        shutil.rmtree(self._path(workspace_id, document_id), ignore_errors=True)

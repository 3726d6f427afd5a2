"""Document bytes in a local directory: `root/<workspace>/<document>/<name>`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from index.files import fsync_dir, write_atomically

from .interfaces import BlobStore


class LocalBlobStore(BlobStore):
    """Each file written atomically and fsynced."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, workspace_id: str, document_id: str, name: str = "") -> Path:
        for part in (workspace_id, document_id, name):
            if "/" in part or part in (".", ".."):
                raise ValueError(f"invalid blob key part {part!r}")
        return self.root / workspace_id / document_id / name

    def put(self, workspace_id: str, document_id: str, name: str, data: bytes) -> None:
        self.put_many(workspace_id, document_id, {name: data})

    def put_many(self, workspace_id: str, document_id: str, files: dict[str, bytes]) -> None:
        """Each file replaced atomically; the folder synced once for all of them, and the parent of
        each folder created for them, so that a new document's folder survives a crash too."""
        folder = self._path(workspace_id, document_id)
        created = []
        while not folder.is_dir() and folder != self.root.parent:
            created.append(folder)
            folder = folder.parent
        for name, data in files.items():
            write_atomically(self._path(workspace_id, document_id, name), data, sync_dir=False)
        fsync_dir(self._path(workspace_id, document_id))
        for new in created:
            fsync_dir(new.parent)

    def get(self, workspace_id: str, document_id: str, name: str) -> bytes:
        return self._path(workspace_id, document_id, name).read_bytes()

    def delete_document(self, workspace_id: str, document_id: str) -> None:
        shutil.rmtree(self._path(workspace_id, document_id), ignore_errors=True)

    def document_folders(self) -> Iterator[tuple[str, str, float]]:
        if not self.root.is_dir():
            return
        for workspace in self.root.iterdir():
            if workspace.is_dir():
                for document in workspace.iterdir():
                    if document.is_dir():
                        yield workspace.name, document.name, _last_change(document)


def _last_change(folder: Path) -> float:
    """The newest modification time of the folder and the files in it."""
    try:
        return max([folder.stat().st_mtime] + [f.stat().st_mtime for f in folder.iterdir()])
    except FileNotFoundError:  # changing right now: as new as can be
        return float("inf")

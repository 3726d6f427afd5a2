"""Folders: documents of type "folder" that other documents and folders sit in."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidRequest, KBError, NotFound
from ..records import Document, FolderCounts, Workspace, new_id
from ..storage import Database, Tx, now
from ..storage.repositories import DocumentStore, MAX_FOLDER_DEPTH
from .names import display_name

FolderPath = list[tuple[str, str]]  # (id, name) from the root down


class Folders:
    def __init__(self, db: Database, documents: DocumentStore):
        self.db = db
        self.documents = documents

    def check(self, workspace: Workspace, folder_id: str | None, tx: Tx | None = None) -> None:
        """A 404 unless `folder_id` (None: the root) is a folder of this workspace."""
        if folder_id is None:
            return
        if tx is None:
            with self.db.read() as own:
                return self.check(workspace, folder_id, own)
        kind = self.documents.types_of(tx, workspace.id, [folder_id]).get(folder_id)
        if kind is None:
            raise NotFound(f"folder {folder_id!r} not found in this workspace")
        if kind != "folder":
            raise InvalidRequest(f"{folder_id!r} is a document, not a folder")

    def create(self, workspace: Workspace, name: str, parent_folder_id: str | None = None,
               within: Callable[[Tx, Document], None] | None = None) -> Document:
        """A new folder; `within` runs in the transaction that stores it (auto-sync settings, a crawl)."""
        name = display_name(name)
        if not name:
            raise InvalidRequest("a folder needs a name (control characters and bidirectional overrides are dropped)")
        t = now()
        folder = Document(
            id=new_id("fo_"), workspace_id=workspace.id, name=name, type="folder", format="folder",
            size_bytes=0, char_count=0, content_hash="", created_at=t, updated_at=t, parent_folder_id=parent_folder_id,
        )
        with self.db.write() as tx:
            self.check(workspace, parent_folder_id, tx)
            self.documents.insert(tx, folder)
            if within is not None:
                within(tx, folder)
        return folder

    def move(self, workspace: Workspace, document_ids: list[str], move_to: str | None) -> None:
        """Move documents or folders into `move_to` (None: the root); all of them or none."""
        failures = self.move_each(workspace, document_ids, move_to, all_or_nothing=True)
        if failures:
            raise next(iter(failures.values()))

    def move_each(self, workspace: Workspace, document_ids: list[str], move_to: str | None, *,
                  all_or_nothing: bool = False) -> dict[str, KBError]:
        """Move each document or folder that can be moved; returns the error of each that could not.
        A `move_to` that is not a folder of this workspace fails the whole call."""
        failures: dict[str, KBError] = {}
        with self.db.write() as tx:
            self.check(workspace, move_to, tx)
            kinds = self.documents.types_of(tx, workspace.id, document_ids)
            for document_id in dict.fromkeys(document_ids):
                if document_id not in kinds:
                    failures[document_id] = NotFound(f"document {document_id!r} not found in this workspace")
                elif kinds[document_id] == "folder" and move_to and (
                    move_to == document_id or move_to in self.documents.descendant_ids(tx, workspace.id, document_id)
                ):
                    failures[document_id] = InvalidRequest(
                        f"cannot move folder {document_id!r} into itself or one of its subfolders"
                    )
                if failures and all_or_nothing:
                    return failures
            movable = [d for d in dict.fromkeys(document_ids) if d not in failures]
            if movable:
                self.documents.move(tx, workspace.id, movable, move_to, now())
        return failures

    def path(self, workspace: Workspace, parent_folder_id: str | None) -> FolderPath:
        """(id, name) of the folders from the root down to `parent_folder_id`."""
        return self.paths(workspace, [parent_folder_id]).get(parent_folder_id, [])

    def paths(self, workspace: Workspace, parent_folder_ids: list[str | None]) -> dict[str | None, FolderPath]:
        """`path` of many folders at once (one query for all of them)."""
        with self.db.read() as tx:
            known = self.documents.ancestors(tx, workspace.id, [f for f in parent_folder_ids if f])
        paths: dict[str | None, FolderPath] = {}
        for start in dict.fromkeys(parent_folder_ids):
            path: FolderPath = []
            current = start
            while current and current in known and len(path) < MAX_FOLDER_DEPTH:
                folder_id, name, parent = known[current]
                path.append((folder_id, name))
                current = parent
            paths[start] = list(reversed(path))
        return paths

    def counts(self, workspace: Workspace, folder_ids: list[str]) -> dict[str, FolderCounts]:
        """(direct children, documents anywhere below) of each folder."""
        with self.db.read() as tx:
            return self.documents.folder_counts(tx, workspace.id, folder_ids)

    def descendant_ids(self, workspace: Workspace, folder_id: str) -> list[str]:
        with self.db.read() as tx:
            return self.documents.descendant_ids(tx, workspace.id, folder_id)

"""Document attributes (set by clients and by kb) and the documents a filter and folder scope allow.

Client attributes are set at upload and replaced whole by PATCH. Automatic ones: `source_type`,
`format`, `file_name`, `url`, `created_at`, `updated_at` are the document's own fields; `site`,
`page_count` and `language` are stored when its content is stored (see `kb.attributes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from ingest import ParsedDocument

from ..attributes import Value, format_date, language_code
from ..errors import InvalidRequest, NotFound
from ..filters import Filter
from ..indexes import document_language
from ..records import Document
from ..storage import Database, Tx
from ..storage.interfaces import BlobStore
from ..storage.repositories import AttributeStore, DocumentStore
from .document_files import load_parsed

MAX_FOLDER_IDS = 100
PAGED_FORMATS = ("pdf",)  # formats whose parser counts pages


def stored_automatic(doc: Document, parsed: ParsedDocument) -> dict[str, Value]:
    """The automatic attributes kb stores for a document with this content."""
    values = {"language": Value("string", text=language_code(document_language(parsed.text)))}
    if parsed.pages is not None:
        values["page_count"] = Value("number", number=float(parsed.pages))
    host = (urlsplit(doc.url).hostname or "").lower() if doc.type == "url" and doc.url else ""
    if host:
        values["site"] = Value("string", text=host)
    return values


def column_attributes(doc: Document) -> dict[str, Any]:
    """The automatic attributes that are the document's own fields, as JSON."""
    values: dict[str, Any] = {"source_type": doc.type, "format": doc.format}
    if doc.type == "file" and doc.filename:
        values["file_name"] = doc.filename
    if doc.type == "url" and doc.url:
        values["url"] = doc.url
    values["created_at"] = format_date(doc.created_at)
    values["updated_at"] = format_date(doc.updated_at)
    return values


class Attributes:
    def __init__(self, db: Database, repo: AttributeStore, documents: DocumentStore, blobs: BlobStore):
        self.db = db
        self.repo = repo
        self.documents = documents
        self.blobs = blobs

    # --- writing (inside the caller's transaction) -----------------------------------------------

    def store(self, tx: Tx, doc: Document, parsed: ParsedDocument, client: dict[str, Value] | None = None) -> None:
        """A document's automatic attributes for its (new) content; and its client ones, if given."""
        self.repo.replace(tx, doc.workspace_id, doc.id, stored_automatic(doc, parsed), automatic=True)
        if client is not None:
            self.repo.replace(tx, doc.workspace_id, doc.id, client, automatic=False)

    def set_client(self, tx: Tx, workspace_id: str, document_id: str, values: dict[str, Value]) -> None:
        self.repo.replace(tx, workspace_id, document_id, values, automatic=False)

    # --- reading ---------------------------------------------------------------------------------

    def of_documents(self, workspace_id: str, docs: Sequence[Document]) -> dict[str, dict[str, Any]]:
        """document id -> its attributes as JSON (client and automatic; folders have none): one query."""
        wanted = [d for d in docs if not d.is_folder]
        with self.db.read() as tx:
            stored = self.repo.of_documents(tx, workspace_id, [d.id for d in wanted])
        result: dict[str, dict[str, Any]] = {d.id: {} for d in docs}
        for doc in wanted:
            values = {key: value.as_json() for key, value in stored.get(doc.id, {}).items()}
            result[doc.id] = dict(sorted(values.items())) | column_attributes(doc)
        return result

    def allowed_documents(self, tx: Tx, workspace_id: str, f: Filter | None, folder_ids: Sequence[str] | None,
                          document_ids: Sequence[str] | None) -> list[str] | None:
        """Ids of the documents a search may return: among `document_ids` (when given), below the
        folders `folder_ids` (sub-folders included), passing `f`. None: every document (no
        restriction was given, or the filter lets every document of the workspace through)."""
        within = list(dict.fromkeys(document_ids)) if document_ids is not None else None
        if folder_ids is not None:
            below = set(self.documents_below(tx, workspace_id, folder_ids))
            within = [d for d in within if d in below] if within is not None else sorted(below)
        if f is None:
            return within
        found = self.repo.matching(tx, workspace_id, f, within)
        if within is None and len(found) == self.repo.count_documents(tx, workspace_id):
            return None
        return found

    def documents_below(self, tx: Tx, workspace_id: str, folder_ids: Sequence[str]) -> list[str]:
        """Documents (not folders) anywhere below the folders; each must be a folder of the workspace."""
        ids = self.checked_folders(tx, workspace_id, folder_ids)
        below: list[str] = []
        for folder_id in ids:
            below += self.documents.descendant_ids(tx, workspace_id, folder_id)
        kinds = self.documents.types_of(tx, workspace_id, list(dict.fromkeys(below)))
        return [d for d, kind in kinds.items() if kind != "folder"]

    def checked_folders(self, tx: Tx, workspace_id: str, folder_ids: Sequence[str]) -> list[str]:
        """`folder_ids` without repeats, each checked to be a folder of the workspace (at most 100 of them)."""
        ids = list(dict.fromkeys(folder_ids))
        if len(ids) > MAX_FOLDER_IDS:
            raise InvalidRequest(f"folder_ids has {len(ids)} folders; at most {MAX_FOLDER_IDS} are allowed",
                                 details={"field": "folder_ids"})
        kinds = self.documents.types_of(tx, workspace_id, ids)
        missing = [i for i in ids if i not in kinds]
        if missing:
            raise NotFound(f"folder_ids: folders not found in this workspace: {', '.join(missing)}",
                           details={"field": "folder_ids"})
        not_folders = [i for i in ids if kinds[i] != "folder"]
        if not_folders:
            raise InvalidRequest(f"folder_ids: not folders but documents: {', '.join(not_folders)}; "
                                 "pass them in document_ids", details={"field": "folder_ids"})
        return ids

    # --- upkeep ----------------------------------------------------------------------------------

    def backfill_page_counts(self) -> int:
        """`page_count` of documents stored before attributes existed (from their files); returns how
        many were added. Idempotent: documents that have one, or whose parser counted none, are skipped."""
        with self.db.read() as tx:
            lacking = self.repo.lacking(tx, "page_count", PAGED_FORMATS)
        added = 0
        for workspace_id, document_id in lacking:
            try:
                pages = load_parsed(self.blobs, workspace_id, document_id).pages
            except (FileNotFoundError, KeyError, ValueError):
                continue
            if pages is None:
                continue
            with self.db.write() as tx:
                self.repo.add(tx, workspace_id, document_id, "page_count", Value("number", number=float(pages)))
            added += 1
        return added

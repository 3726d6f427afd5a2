"""Documents of a workspace: adding them (text, file, URL), changing, reading and deleting them.

Every query is scoped by workspace. An upload is acknowledged only once its files, its row, its
full-text entry, its index row and its indexing job are committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..attributes import Value, parse_attributes
from ..errors import Conflict, InvalidRequest, NotFound
from ..records import Document, DocumentPage, ListQuery, Workspace, new_id
from ..storage import Database, Tx, now
from ..storage.interfaces import BlobStore, FullTextIndex
from ..storage.repositories import DOCUMENT_SORT_KEYS, DocumentStore
from .agents import Agents
from .attributes import Attributes
from .cursors import decode_cursor, encode_cursor
from .document_files import content_hash, load_text, store_parsed
from .folders import Folders
from .idempotency import Idempotency, IdempotencyKey
from .ingestion import Ingestion, Prepared
from .names import display_name, file_name
from .quotas import Quotas
from .rag_indexes import RagIndexes
from .removal import Removal
from .slots import WorkspaceSlots

DOCUMENT_TYPES = ("file", "url", "text", "folder")

# Work done in the transaction that stores a new document (auto-sync state, a crawl's frontier).
Within = Callable[[Tx, Document], None]


class _Replay(Exception):
    def __init__(self, document_id: str):
        super().__init__(document_id)
        self.document_id = document_id


class Documents:
    def __init__(self, db: Database, repo: DocumentStore, fulltext: FullTextIndex, blobs: BlobStore,
                 ingestion: Ingestion, quotas: Quotas, rag_indexes: RagIndexes, folders: Folders, agents: Agents,
                 removal: Removal, fetches: WorkspaceSlots, attributes: Attributes, idempotency: Idempotency):
        self.db = db
        self.idempotency = idempotency
        self.repo = repo
        self.fulltext = fulltext
        self.blobs = blobs
        self.ingestion = ingestion
        self.quotas = quotas
        self.rag_indexes = rag_indexes
        self.folders = folders
        self.agents = agents
        self.removal = removal
        self.fetches = fetches  # URL fetches each workspace may run at once
        self.attributes = attributes

    # --- adding --------------------------------------------------------------------------------

    # `attributes`: the client's attributes (kb.attributes.parse_attributes), checked before anything is done.
    # With an `IdempotencyKey` (`idempotency.idempotency_key`), a request made before with the same
    # key answers with the document it created, before any parsing or fetching.

    def add_text(self, workspace: Workspace, text: str, name: str | None = None, parent_folder_id: str | None = None,
                 attributes: Any = None, idempotency: IdempotencyKey | None = None) -> Document:
        values = parse_attributes(attributes)
        return self._replayed(workspace, idempotency) or self._add(
            workspace, "text", self.ingestion.from_text(text, name), name, parent_folder_id, values,
            idempotency=idempotency)

    def add_file(self, workspace: Workspace, data: bytes, filename: str | None, content_type: str | None,
                 name: str | None = None, parent_folder_id: str | None = None, attributes: Any = None,
                 idempotency: IdempotencyKey | None = None) -> Document:
        values = parse_attributes(attributes)
        return self._replayed(workspace, idempotency) or self._add(
            workspace, "file", self.ingestion.from_file(data, filename, content_type), name, parent_folder_id, values,
            idempotency=idempotency)

    def add_url(self, workspace: Workspace, url: str, name: str | None = None, parent_folder_id: str | None = None,
                attributes: Any = None, within: Within | None = None,
                idempotency: IdempotencyKey | None = None) -> Document:
        values = parse_attributes(attributes)
        replayed = self._replayed(workspace, idempotency)
        if replayed:
            return replayed
        self.folders.check(workspace, parent_folder_id)  # before the fetch: fail fast
        with self.fetches.hold(workspace.id):
            prepared = self.ingestion.from_url(url)
        return self._add(workspace, "url", prepared, name, parent_folder_id, values, within, idempotency=idempotency)

    def add_prepared(self, workspace: Workspace, doc_type: str, prepared: Prepared, name: str | None = None,
                     parent_folder_id: str | None = None, within: Within | None = None) -> Document:
        """Store content already fetched and parsed (a crawled page); `within` runs in the storing transaction."""
        self.ingestion.check_size(len(prepared.data))
        return self._add(workspace, doc_type, prepared, name, parent_folder_id, {}, within)

    def _replayed(self, workspace: Workspace, key: IdempotencyKey | None) -> Document | None:
        first = self.idempotency.replay(workspace.id, key)
        if first is None:
            return None
        try:
            return self.get(workspace, first)
        except NotFound:
            raise Conflict(f"the document created with Idempotency-Key {key.key!r} was deleted since; "
                           "send a new key to upload it again") from None

    def _add(self, workspace: Workspace, doc_type: str, prepared: Prepared, name: str | None,
             parent_folder_id: str | None, attributes: dict[str, Value], within: Within | None = None,
             idempotency: IdempotencyKey | None = None) -> Document:
        t = now()
        doc = Document(
            id=new_id(), workspace_id=workspace.id, name=display_name(name or "") or display_name(prepared.default_name) or "Untitled",
            type=doc_type, format=prepared.parsed.format, size_bytes=len(prepared.data),
            char_count=len(prepared.parsed.text), content_hash=content_hash(prepared.data), created_at=t, updated_at=t,
            filename=file_name(prepared.filename), url=prepared.url, content_type=prepared.content_type,
            parent_folder_id=parent_folder_id, metadata=dict(prepared.parsed.metadata),
        )
        store_parsed(self.blobs, workspace.id, doc.id, prepared.data, prepared.parsed)
        try:
            with self.db.write() as tx:
                first = self.idempotency.claim(tx, workspace.id, idempotency, doc.id)
                if first is not None:  # a request with the same key stored its document meanwhile
                    raise _Replay(first)
                self.folders.check(workspace, parent_folder_id, tx)
                self.quotas.check_storage(tx, workspace.id, doc.size_bytes, doc.char_count)
                self.repo.insert(tx, doc)
                self.attributes.store(tx, doc, prepared.parsed, attributes)
                self.fulltext.add(tx, workspace.id, doc.id, prepared.parsed.text)
                admission = self.rag_indexes.admit(tx, workspace.id, doc.size_bytes, failure=prepared.index_failure)
                self.rag_indexes.create_for_upload(tx, workspace, doc.id, doc.size_bytes, admission)
                if within is not None:
                    within(tx, doc)
        except _Replay as replay:
            self.blobs.delete_document(workspace.id, doc.id)
            return self.get(workspace, replay.document_id)
        except BaseException:
            self.blobs.delete_document(workspace.id, doc.id)
            raise
        self.rag_indexes.notify()
        return doc

    # --- changing ------------------------------------------------------------------------------

    def update(self, workspace: Workspace, document_id: str, *, name: str | None = None,
               content: str | None = None, attributes: Any = None) -> Document:
        """Rename, replace the client attributes (whole: `{}` removes them all), and replace the
        content (re-indexed in the background).

        New `content` becomes the document's text, whatever its type: a text document's whole
        content; a file's or a URL document's text (Markdown when the document was Markdown, plain
        text otherwise), what is indexed and what its size counts, while the uploaded file (or the
        fetched page) stays its source file until `update-file` (or `refresh`) replaces both.
        """
        values = parse_attributes(attributes) if attributes is not None else None
        doc = self.get(workspace, document_id)
        if values is not None and doc.is_folder:
            raise InvalidRequest(f"{document_id!r} is a folder; folders have no attributes",
                                 details={"field": "attributes"})
        if content is not None:
            if doc.is_folder:
                raise InvalidRequest(f"{document_id!r} is a folder; folders have no content")
            fmt = "markdown" if doc.format == "markdown" else "txt"
            doc = self._replace(workspace, doc, self.ingestion.from_text(content, fmt=fmt),
                                keep_source=doc.type != "text")
        if values is not None:
            with self.db.write() as tx:
                self.attributes.set_client(tx, workspace.id, doc.id, values)
                self.repo.update_content(tx, workspace.id, doc.id, {"updated_at": now()})
            doc = self.get(workspace, document_id)
        if name is not None:
            doc = self.rename(workspace, document_id, name)
        return doc

    def rename(self, workspace: Workspace, document_id: str, name: str) -> Document:
        name = display_name(name)
        if not name:
            raise InvalidRequest("name must not be empty (control characters and bidirectional overrides are dropped)")
        with self.db.write() as tx:
            if not self.repo.rename(tx, workspace.id, document_id, name, now()):
                raise NotFound(f"document {document_id!r} not found in this workspace")
        return self.get(workspace, document_id)

    def update_file(self, workspace: Workspace, document_id: str, data: bytes, filename: str | None,
                    content_type: str | None) -> Document:
        """Replace a file document's content; its id, name and folder stay, its indexes are rebuilt."""
        doc = self.get(workspace, document_id)
        if doc.type != "file":
            raise InvalidRequest(f"document {document_id!r} is a {doc.type} document; update-file takes file documents")
        return self._replace(workspace, doc, self.ingestion.from_file(data, filename, content_type))

    def refresh(self, workspace: Workspace, document_id: str) -> Document:
        """Fetch a URL document again; re-index only if its content changed."""
        doc = self.get(workspace, document_id)
        if doc.type != "url" or not doc.url:
            raise InvalidRequest(f"document {document_id!r} is a {doc.type} document; only URL documents can be refreshed")
        with self.fetches.hold(workspace.id):
            prepared = self.ingestion.from_url(doc.url)
        return self._replace(workspace, doc, prepared)

    def replace_content(self, workspace: Workspace, doc: Document, prepared: Prepared) -> Document:
        """New content fetched for a document (auto-sync), re-indexed if it changed."""
        self.ingestion.check_size(len(prepared.data))
        return self._replace(workspace, doc, prepared)

    def _replace(self, workspace: Workspace, doc: Document, prepared: Prepared, *, keep_source: bool = False) -> Document:
        """New content for a document, re-indexed if it changed. `keep_source`: the original file stays."""
        new_hash = content_hash(prepared.data)
        if new_hash == doc.content_hash:
            return doc  # unchanged: nothing to re-embed
        size, chars = len(prepared.data), len(prepared.parsed.text)
        with self.db.write() as tx:  # refuse before replacing the files...
            self.quotas.check_storage(tx, workspace.id, size, chars, freed_bytes=doc.size_bytes, freed_chars=doc.char_count)
        store_parsed(self.blobs, workspace.id, doc.id, None if keep_source else prepared.data, prepared.parsed)
        with self.db.write() as tx:  # ...and check again with the rows written
            self.quotas.check_storage(tx, workspace.id, size, chars, freed_bytes=doc.size_bytes, freed_chars=doc.char_count)
            self.repo.update_content(tx, workspace.id, doc.id, {
                "format": prepared.parsed.format, "size_bytes": size, "char_count": chars, "content_hash": new_hash,
                "metadata": prepared.parsed.metadata, "filename": file_name(prepared.filename) or doc.filename,
                "url": prepared.url or doc.url, "content_type": prepared.content_type or doc.content_type,
                "updated_at": now(),
            })
            self.attributes.store(tx, replace(doc, url=prepared.url or doc.url), prepared.parsed)
            self.fulltext.replace(tx, workspace.id, doc.id, prepared.parsed.text)
            self.rag_indexes.restart_all(tx, workspace.id, doc.id, size, prepared.index_failure)
        self.rag_indexes.notify()
        return self.get(workspace, doc.id)

    # --- reading -------------------------------------------------------------------------------

    def get(self, workspace: Workspace | str, document_id: str) -> Document:
        workspace_id = workspace if isinstance(workspace, str) else workspace.id
        with self.db.read() as tx:
            doc = self.repo.get(tx, workspace_id, document_id)
        if doc is None:
            raise NotFound(f"document {document_id!r} not found in this workspace")
        return doc

    def get_many(self, workspace: Workspace, document_ids: list[str]) -> dict[str, Document]:
        """The documents among `document_ids` that exist in the workspace, by id (one query)."""
        with self.db.read() as tx:
            return {d.id: d for d in self.repo.get_many(tx, workspace.id, document_ids)}

    def list(self, workspace: Workspace, q: ListQuery = ListQuery()) -> DocumentPage:
        """A page of the workspace's documents and folders, filtered and sorted as asked."""
        if not 1 <= q.page_size <= 100:
            raise InvalidRequest("page_size must be between 1 and 100")
        if q.sort_by not in DOCUMENT_SORT_KEYS:
            raise InvalidRequest(f"sort_by must be one of {', '.join(DOCUMENT_SORT_KEYS)}")
        if q.sort_direction not in ("asc", "desc"):
            raise InvalidRequest("sort_direction must be asc or desc")
        unknown = [t for t in q.types if t not in DOCUMENT_TYPES]
        if unknown:
            raise InvalidRequest(f"unknown document type {unknown[0]!r}; types are {', '.join(DOCUMENT_TYPES)}")
        offset = decode_cursor(q.cursor)
        with self.db.read() as tx:
            below = self.repo.descendant_ids(tx, workspace.id, q.ancestor_folder_id) if q.ancestor_folder_id else None
            rows = self.repo.page(tx, workspace.id, q, offset, only_ids=below)
        has_more = len(rows) > q.page_size
        return DocumentPage(rows[: q.page_size], encode_cursor(offset + q.page_size) if has_more else None, has_more)

    def text(self, workspace: Workspace, document_id: str) -> str:
        doc = self.get(workspace, document_id)
        if doc.is_folder:
            raise InvalidRequest(f"{document_id!r} is a folder; folders have no content")
        return load_text(self.blobs, workspace.id, doc.id)

    # --- deleting ------------------------------------------------------------------------------

    def delete(self, workspace: Workspace, document_id: str, force: bool = False) -> None:
        """Delete a document (or a folder with everything in it). Retrieval stops returning it at once.

        Refused when a folder is not empty or an agent uses the document, unless `force`; with
        `force`, the document is also detached from those agents.
        """
        doc = self.get(workspace, document_id)
        ids = [doc.id]
        if doc.is_folder:
            below = self.folders.descendant_ids(workspace, doc.id)
            if below and not force:
                raise Conflict(f"folder {doc.name!r} is not empty ({len(below)} items); delete it with force=true")
            ids += below
        dependents = self.agents.dependent_agents(workspace, ids)
        if dependents and not force:
            names = ", ".join(sorted({a.name for a in dependents}))
            raise Conflict(f"agents depend on {doc.name!r} ({names}); remove it from them first, or delete with force=true")
        if dependents:
            self.agents.detach_documents(workspace, ids)
        self.removal.remove_documents(workspace.id, ids)

"""RAG indexes: one per document and served embedding model, with status and progress; each admitted
one is built by an `index_document` job (`kb/services/indexing.py`).

Indexes are stored under the model that serves them (`ModelRegistry.resolve`); a client that asked
by another name (ElevenLabs' `e5_mistral_7b_instruct` served by MiniLM) gets the same index back
under its name, and listings show it under that name too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InvalidRequest, ModelNotInstalled, NotFound
from ..jobs import JobQueue
from ..records import RagIndex, Workspace, new_id
from ..storage import Database, Tx, now
from ..storage.repositories import DocumentStore, RagIndexStore
from .index_jobs import INDEX_JOB, index_subject
from .models import ModelRegistry, ServedModel
from .quotas import Admission, Quotas
from .removal import Removal

STATUSES = ("created", "processing", "succeeded", "failed", "rag_limit_exceeded", "document_too_small")
TERMINAL_STATUSES = ("succeeded", "failed", "rag_limit_exceeded", "document_too_small")
RETRYABLE_STATUSES = ("failed", "rag_limit_exceeded", "document_too_small")


@dataclass(frozen=True)
class NamedIndex:
    """An index as a client sees it: under a model name it asked for, or its served model's name.
    Every name a model serves shares that model's one index per document (and its usage)."""

    index: RagIndex
    name: str


class RagIndexes:
    def __init__(self, db: Database, repo: RagIndexStore, documents: DocumentStore, queue: JobQueue,
                 quotas: Quotas, models: ModelRegistry, removal: Removal):
        self.db = db
        self.repo = repo
        self.documents = documents
        self.queue = queue
        self.quotas = quotas
        self.models = models
        self.removal = removal

    # --- inside a caller's transaction -------------------------------------------------------

    def admit(self, tx: Tx, workspace_id: str, size_bytes: int, *, failure: str | None = None,
              excluding_index: str | None = None) -> Admission:
        """`failure`: why the content has nothing to index (the index ends failed with it)."""
        if failure:
            return Admission("failed", failure)
        return self.quotas.admit_index(tx, workspace_id, size_bytes, excluding_index=excluding_index)

    def create(self, tx: Tx, workspace_id: str, document_id: str, model: str, size_bytes: int,
               admission: Admission = Admission("created"), requested_names: tuple[str, ...] = ()) -> RagIndex:
        """Insert an index for a served model, with its job when it was admitted.

        An index that was not admitted (over the RAG limit, too small, nothing to index) is recorded
        with that status and its message, and no job is queued: nothing is partially indexed.
        """
        index = RagIndex(new_id("ri_"), document_id, model, admission.status, 0.0, size_bytes, admission.message,
                         workspace_id=workspace_id, requested_names=requested_names)
        self.repo.insert(tx, workspace_id, index, now())
        if admission.admitted:
            self._enqueue(tx, index.id, workspace_id)
        return index

    def create_for_upload(self, tx: Tx, workspace: Workspace, document_id: str, size_bytes: int,
                          admission: Admission) -> RagIndex:
        """The index a new document gets at once: for the model serving the workspace's default. When
        that model is not on this machine the document is still stored, its index failed saying why."""
        try:
            choice = self.models.resolve(workspace.default_model)
        except ModelNotInstalled as exc:
            return self.create(tx, workspace.id, document_id, workspace.default_model, size_bytes,
                               Admission("failed", exc.message))
        names = (choice.requested,) if choice.substituted else ()
        return self.create(tx, workspace.id, document_id, choice.served, size_bytes, admission, names)

    def restart(self, tx: Tx, index: RagIndex, size_bytes: int, admission: Admission) -> RagIndex:
        """Run an existing index again (its document changed, or it failed): its current chunks serve until then."""
        self.repo.restart(tx, index.id, admission.status, size_bytes, admission.message, now())
        if admission.admitted:
            self._enqueue(tx, index.id, index.workspace_id)
        return replace(index, status=admission.status, progress_percentage=0.0, used_bytes=size_bytes,
                       error=admission.message, chunks_embedded=0, chunks_reused=0)

    def restart_all(self, tx: Tx, workspace_id: str, document_id: str, size_bytes: int, failure: str | None) -> None:
        """Every index of a document whose content changed, admitted again against the limits."""
        for index in self.repo.of_document(tx, workspace_id, document_id):
            admission = self.admit(tx, workspace_id, size_bytes, failure=failure, excluding_index=index.id)
            self.restart(tx, index, size_bytes, admission)

    def _enqueue(self, tx: Tx, rag_index_id: str, workspace_id: str) -> None:
        self.queue.enqueue(tx, INDEX_JOB, {"rag_index_id": rag_index_id}, subject=index_subject(rag_index_id),
                           tenant=workspace_id)

    def notify(self) -> None:
        """Wake the workers (after the transaction that queued jobs committed)."""
        self.queue.notify()

    # --- on their own ------------------------------------------------------------------------

    def ensure(self, workspace: Workspace, document_id: str, model: str, create: bool = True) -> NamedIndex:
        """Start an index of the document for the model serving the name `model`, or report the one
        that exists (retrying a failed one), under the name asked for."""
        choice = self.models.resolve(model)
        with self.db.write() as tx:
            doc = self.documents.get(tx, workspace.id, document_id)
            if doc is None:
                raise NotFound(f"document {document_id!r} not found in this workspace")
            if doc.is_folder:
                raise InvalidRequest(f"{document_id!r} is a folder; index the documents in it")
            index = self.repo.find(tx, workspace.id, doc.id, choice.served)
            if index is None:
                if not create:
                    raise NotFound(f"document {document_id!r} has no index for {model!r}")
                index = self.create(tx, workspace.id, doc.id, choice.served, doc.size_bytes,
                                    self.admit(tx, workspace.id, doc.size_bytes))
            elif index.status in RETRYABLE_STATUSES and create:
                # Asked again: retry a failure, and re-check limits that may have changed since.
                admission = self.admit(tx, workspace.id, doc.size_bytes, excluding_index=index.id)
                index = self.restart(tx, index, doc.size_bytes, admission)
            index = self._remember_name(tx, index, choice)
        self.notify()
        return NamedIndex(index, choice.requested)

    def _remember_name(self, tx: Tx, index: RagIndex, choice: ServedModel) -> RagIndex:
        """Record that a client asked for `index` by another name than its model's (listings show it)."""
        if not choice.substituted or choice.requested in index.requested_names:
            return index
        names = (*index.requested_names, choice.requested)
        self.repo.set_requested_names(tx, index.id, names)
        return replace(index, requested_names=names)

    def list(self, workspace: Workspace, document_id: str) -> list[RagIndex]:
        with self.db.read() as tx:
            if self.documents.get(tx, workspace.id, document_id) is None:
                raise NotFound(f"document {document_id!r} not found in this workspace")
            return self.repo.of_document(tx, workspace.id, document_id)

    def list_named(self, workspace: Workspace, document_id: str) -> list[NamedIndex]:
        """The document's indexes, each under its served model's name and under every other name a
        client asked for it by that its model still serves (one index, listed once per name)."""
        return [
            NamedIndex(index, name)
            for index in self.list(workspace, document_id)
            for name in (index.model, *(n for n in index.requested_names if self.models.serves(n, index.model)))
        ]

    def of_documents(self, workspace: Workspace, document_ids: list[str]) -> dict[str, list[RagIndex]]:
        """The indexes of many documents of the workspace, by document id (a page of a listing)."""
        with self.db.read() as tx:
            return self.repo.of_documents(tx, workspace.id, document_ids)

    def first_statuses(self, workspace: Workspace, document_ids: list[str]) -> dict[str, str]:
        """Status of the index each document's upload created, for many documents (`kb ingest` polls it)."""
        with self.db.read() as tx:
            return self.repo.first_statuses(tx, workspace.id, document_ids)

    def delete(self, workspace: Workspace, document_id: str, rag_index_id: str) -> RagIndex:
        index = next((i for i in self.list(workspace, document_id) if i.id == rag_index_id), None)
        if index is None:
            raise NotFound(f"RAG index {rag_index_id!r} not found for document {document_id!r}")
        self.removal.remove_rag_index(workspace.id, index.id, index.model)
        return index

    def load(self, rag_index_ids: list[str]) -> dict[str, RagIndex]:
        """The indexes that still exist, by id."""
        with self.db.read() as tx:
            return self.repo.load(tx, rag_index_ids)

    def set_state(self, rag_index_ids: str | list[str], *, status: str | None = None, progress: float | None = None,
                  error: str | None = None) -> None:
        values: dict = {"updated_at": now()}
        if status is not None:
            values["status"] = status
            values["error"] = error
        if progress is not None:
            values["progress_percentage"] = round(progress, 1)
        ids = [rag_index_ids] if isinstance(rag_index_ids, str) else rag_index_ids
        with self.db.write() as tx:
            self.repo.set_state(tx, ids, values)

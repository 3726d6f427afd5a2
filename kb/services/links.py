"""Signed, expiring links to download a document's original file without an API key."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from ..errors import InvalidRequest, NotFound, Unauthorized
from ..records import Document
from ..storage import Database
from ..storage.interfaces import BlobStore
from ..storage.repositories import DocumentStore
from .document_files import load_original

LINK_TTL_SECS = 3600


class LinkSigner:
    def __init__(self, data_dir: Path):
        key_file = Path(data_dir) / "link_secret"
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        self._key = key_file.read_text().strip().encode()

    def _mac(self, workspace_id: str, document_id: str, expires: int) -> str:
        message = f"{workspace_id}:{document_id}:{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, workspace_id: str, document_id: str, ttl: int = LINK_TTL_SECS) -> tuple[int, str]:
        expires = int(time.time()) + ttl
        return expires, self._mac(workspace_id, document_id, expires)

    def verify(self, workspace_id: str, document_id: str, expires: int, signature: str) -> None:
        if expires < time.time():
            raise Unauthorized("this download link has expired; ask for a new one with GET …/source-file-url")
        if not hmac.compare_digest(self._mac(workspace_id, document_id, expires), signature):
            raise Unauthorized("invalid download link signature")


class SourceFiles:
    """Signed links to a document's original upload, and the download they open."""

    def __init__(self, signer: LinkSigner, documents: DocumentStore, db: Database, blobs: BlobStore):
        self.signer = signer
        self.documents = documents
        self.db = db
        self.blobs = blobs

    def link(self, workspace_id: str, document_id: str) -> tuple[int, str]:
        """(expires, signature) of a link to download the original upload without an API key."""
        doc = self._document(workspace_id, document_id)
        if doc.is_folder:
            raise InvalidRequest(f"{document_id!r} is a folder; folders have no source file")
        return self.signer.sign(workspace_id, doc.id)

    def open(self, workspace_id: str, document_id: str, expires: int, signature: str) -> tuple[bytes, Document]:
        self.signer.verify(workspace_id, document_id, expires, signature)
        doc = self._document(workspace_id, document_id)
        return load_original(self.blobs, workspace_id, doc.id), doc

    def _document(self, workspace_id: str, document_id: str) -> Document:
        with self.db.read() as tx:
            doc = self.documents.get(tx, workspace_id, document_id)
        if doc is None:
            raise NotFound(f"document {document_id!r} not found in this workspace")
        return doc

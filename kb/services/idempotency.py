"""`Idempotency-Key` of uploads: a retried upload with the same key in the same workspace answers with
the document the first one created, instead of adding it twice.

The key is claimed inside the write transaction that inserts the document, so two racing requests
with one key store one document. A key is remembered for `KB_IDEMPOTENCY_TTL_SECS`; sent again with
a different request (another endpoint, text, file or name) it is refused, 422 `idempotency_key_reused`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import IdempotencyKeyReused, InvalidRequest
from ..storage import Database, Tx, now
from ..storage.repositories import IdempotencyStore

MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class IdempotencyKey:
    key: str
    fingerprint: str  # of the request: endpoint and content


def idempotency_key(key: str | None, endpoint: str, *parts: bytes | str | None) -> IdempotencyKey | None:
    """The key of a request (None without one), checked: 1–255 printable ASCII characters."""
    if key is None:
        return None
    if not (0 < len(key) <= MAX_KEY_CHARS and key.isascii() and key.isprintable()):
        raise InvalidRequest(f"the Idempotency-Key header must be 1 to {MAX_KEY_CHARS} printable ASCII characters "
                             "(a UUID is a good key)")
    digest = hashlib.sha256(endpoint.encode())
    for part in parts:
        data = b"\x00" if part is None else part if isinstance(part, bytes) else part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big") + data)
    return IdempotencyKey(key, digest.hexdigest())


class Idempotency:
    def __init__(self, db: Database, repo: IdempotencyStore, ttl_secs: float):
        self.db = db
        self.repo = repo
        self.ttl_secs = ttl_secs

    def replay(self, workspace_id: str, key: IdempotencyKey | None) -> str | None:
        """The id of the document a first request with this key created, if any (before any work)."""
        if key is None:
            return None
        with self.db.read() as tx:
            return self._found(tx, workspace_id, key)

    def claim(self, tx: Tx, workspace_id: str, key: IdempotencyKey | None, document_id: str) -> str | None:
        """In the transaction inserting `document_id`: take the key for it; or the id of the document a
        concurrent request with the same key stored first (then this one must not be stored)."""
        if key is None:
            return None
        first = self._found(tx, workspace_id, key)
        if first is None:
            t = now()
            if not self.repo.insert(tx, workspace_id, key.key, key.fingerprint, document_id, t, t - self.ttl_secs):
                first = self._found(tx, workspace_id, key)  # taken meanwhile (PostgreSQL: now committed, visible)
        return first

    def _found(self, tx: Tx, workspace_id: str, key: IdempotencyKey) -> str | None:
        found = self.repo.find(tx, workspace_id, key.key, now() - self.ttl_secs)
        if found is None:
            return None
        fingerprint, document_id = found
        if fingerprint != key.fingerprint:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {key.key!r} was used for a different request in this workspace (within the last "
                f"{self.ttl_secs:g} s); send a new key for a new upload, or the same request to get its answer again"
            )
        return document_id

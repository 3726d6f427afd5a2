"""Signed, expiring links to download a document's original file without an API key."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from .errors import Unauthorized

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

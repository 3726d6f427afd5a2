"""Idempotency keys: (workspace, key) → the request's fingerprint and the document it created."""

from __future__ import annotations

from sqlalchemy import delete, select

from ..interfaces import Tx
from ..schema import idempotency_keys as keys


class IdempotencyRepository:
    def find(self, tx: Tx, workspace_id: str, key: str, since: float) -> tuple[str, str] | None:
        """(fingerprint, document id) of a key used since `since`."""
        row = tx.execute(select(keys.c.fingerprint, keys.c.document_id).where(
            keys.c.workspace_id == workspace_id, keys.c.key == key, keys.c.created_at >= since)).first()
        return (row.fingerprint, row.document_id) if row else None

    def insert(self, tx: Tx, workspace_id: str, key: str, fingerprint: str, document_id: str, now: float,
               expired_before: float) -> None:
        """Remember the key (replacing an expired one), and forget every workspace's expired keys."""
        tx.execute(delete(keys).where(keys.c.created_at < expired_before))
        tx.execute(keys.insert().values(workspace_id=workspace_id, key=key, fingerprint=fingerprint,
                                        document_id=document_id, created_at=now))

"""Idempotency keys: (workspace, key) → the request's fingerprint and the document it created."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..interfaces import Tx
from ..schema import idempotency_keys as keys


class IdempotencyRepository:
    def find(self, tx: Tx, workspace_id: str, key: str, since: float) -> tuple[str, str] | None:
        """(fingerprint, document id) of a key used since `since`."""
        row = tx.execute(select(keys.c.fingerprint, keys.c.document_id).where(
            keys.c.workspace_id == workspace_id, keys.c.key == key, keys.c.created_at >= since)).first()
        return (row.fingerprint, row.document_id) if row else None

    def insert(self, tx: Tx, workspace_id: str, key: str, fingerprint: str, document_id: str, now: float,
               expired_before: float) -> bool:
        """Remember the key (replacing an expired one), and forget every workspace's expired keys.
        False if a concurrent transaction inserted the key first: on PostgreSQL the insert waits for
        it and then fails (SQLite's single writer never gets here); the savepoint keeps `tx` usable."""
        tx.execute(delete(keys).where(keys.c.created_at < expired_before))
        try:
            with tx.begin_nested():
                tx.execute(keys.insert().values(workspace_id=workspace_id, key=key, fingerprint=fingerprint,
                                                document_id=document_id, created_at=now))
        except IntegrityError:
            return False
        return True

"""Workspaces (tenants) and the hashes of their API keys."""

from __future__ import annotations

from sqlalchemy import bindparam, select, update

from ...records import Workspace, WorkspaceLimitOverrides
from ..interfaces import Tx
from ..schema import api_keys, workspaces

LIMIT_COLUMNS = ("rag_max_bytes", "kb_max_bytes", "kb_max_chars", "min_rag_document_bytes")


def _workspace(row) -> Workspace:
    return Workspace(row.id, row.name, row.tier, row.default_model)


# Built once: every authenticated request runs it.
_BY_KEY_HASH = (select(workspaces).join(api_keys, api_keys.c.workspace_id == workspaces.c.id)
                .where(api_keys.c.key_hash == bindparam("key_hash")))


class WorkspaceRepository:
    def insert(self, tx: Tx, workspace: Workspace, key_hash: str, now: float, limits: dict[str, int]) -> None:
        tx.execute(
            workspaces.insert().values(
                id=workspace.id, name=workspace.name, tier=workspace.tier, default_model=workspace.default_model,
                created_at=now, **limits,
            )
        )
        tx.execute(api_keys.insert().values(key_hash=key_hash, workspace_id=workspace.id, created_at=now))

    def by_key_hash(self, tx: Tx, key_hash: str) -> Workspace | None:
        row = tx.execute(_BY_KEY_HASH, {"key_hash": key_hash}).first()
        return _workspace(row) if row else None

    def get(self, tx: Tx, workspace_id: str) -> Workspace | None:
        row = tx.execute(select(workspaces).where(workspaces.c.id == workspace_id)).first()
        return _workspace(row) if row else None

    def find_by_name(self, tx: Tx, name: str) -> Workspace | None:
        row = tx.execute(select(workspaces).where(workspaces.c.name == name).order_by(workspaces.c.created_at)).first()
        return _workspace(row) if row else None

    def update(self, tx: Tx, workspace_id: str, values: dict) -> bool:
        return tx.execute(update(workspaces).where(workspaces.c.id == workspace_id).values(**values)).rowcount > 0

    def limit_overrides(self, tx: Tx, workspace_id: str) -> WorkspaceLimitOverrides | None:
        row = tx.execute(select(workspaces).where(workspaces.c.id == workspace_id)).first()
        if row is None:
            return None
        return WorkspaceLimitOverrides(row.tier, **{name: getattr(row, name) for name in LIMIT_COLUMNS})

"""Workspaces (tenants) and their API keys. Keys are shown once and stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, update

from .db import Database, api_keys, now, workspaces
from .errors import InvalidRequest, NotFound, Unauthorized


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    tier: str
    default_model: str


def new_id(prefix: str = "") -> str:
    """An opaque, unguessable id (ids never reveal counts or order across tenants)."""
    return prefix + secrets.token_urlsafe(15).replace("-", "x").replace("_", "y")


def hash_key(api_key: str) -> str:
    # API keys carry 256 bits of randomness, so a plain SHA-256 is a safe, fast lookup hash.
    return hashlib.sha256(api_key.encode()).hexdigest()


def check_tier(tier: str, tiers: Iterable[str]) -> str:
    if tier not in tiers:
        raise InvalidRequest(f"unknown tier {tier!r}; choose one of {', '.join(tiers)}")
    return tier


def check_limits(overrides: dict[str, int | None]) -> dict[str, int]:
    given = {k: v for k, v in overrides.items() if v is not None}
    for name, value in given.items():
        if value < 0:
            raise InvalidRequest(f"{name} must be zero or more, not {value}")
    return given


def create_workspace(
    db: Database, name: str, tier: str, default_model: str, **overrides: int | None
) -> tuple[Workspace, str]:
    workspace = Workspace(new_id("ws_"), name, tier, default_model)
    api_key = "kb_" + secrets.token_urlsafe(32)
    with db.write() as conn:
        conn.execute(
            workspaces.insert().values(
                id=workspace.id, name=name, tier=tier, default_model=default_model, created_at=now(),
                **check_limits(overrides),
            )
        )
        conn.execute(api_keys.insert().values(key_hash=hash_key(api_key), workspace_id=workspace.id, created_at=now()))
    return workspace, api_key


def authenticate(db: Database, api_key: str | None) -> Workspace:
    if not api_key:
        raise Unauthorized("missing API key: send it in the xi-api-key header")
    with db.read() as conn:
        row = conn.execute(
            select(workspaces)
            .join(api_keys, api_keys.c.workspace_id == workspaces.c.id)
            .where(api_keys.c.key_hash == hash_key(api_key))
        ).first()
    if row is None:
        raise Unauthorized("invalid API key: check the xi-api-key header (kb workspace create prints a new key)")
    return Workspace(row.id, row.name, row.tier, row.default_model)


def get_workspace(db: Database, workspace_id: str) -> Workspace:
    with db.read() as conn:
        row = conn.execute(select(workspaces).where(workspaces.c.id == workspace_id)).first()
    if row is None:
        raise NotFound(f"workspace {workspace_id!r} not found")
    return Workspace(row.id, row.name, row.tier, row.default_model)


def find_workspace_by_name(db: Database, name: str) -> Workspace | None:
    with db.read() as conn:
        row = conn.execute(select(workspaces).where(workspaces.c.name == name).order_by(workspaces.c.created_at)).first()
    return Workspace(row.id, row.name, row.tier, row.default_model) if row else None


def update_workspace(db: Database, workspace_id: str, tier: str | None = None, **overrides: int | None) -> Workspace:
    """Change the tier and/or override single limits (a value of -1 is not allowed; use the tier)."""
    values = check_limits(overrides)
    if tier is not None:
        values["tier"] = tier
    if values:
        with db.write() as conn:
            result = conn.execute(update(workspaces).where(workspaces.c.id == workspace_id).values(**values))
        if result.rowcount == 0:
            raise NotFound(f"workspace {workspace_id!r} not found")
    return get_workspace(db, workspace_id)

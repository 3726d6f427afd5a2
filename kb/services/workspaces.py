"""Workspaces (tenants) and their API keys. Keys are shown once and stored only as hashes."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

from ..errors import InvalidRequest, KBError, NotFound, Unauthorized
from ..records import Workspace, new_id
from ..settings import WorkspaceSettings
from ..storage import Database, now
from ..storage.repositories import WorkspaceStore

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE = "default"


def hash_key(api_key: str) -> str:
    # API keys carry 256 bits of randomness, so a plain SHA-256 is a safe, fast lookup hash.
    return hashlib.sha256(api_key.encode()).hexdigest()


def check_limits(overrides: dict[str, int | None]) -> dict[str, int]:
    given = {k: v for k, v in overrides.items() if v is not None}
    for name, value in given.items():
        if value < 0:
            raise InvalidRequest(f"{name} must be zero or more, not {value}")
    return given


class Workspaces:
    """`default_key_file`: where the `default` workspace's key is kept (mode 0600) to print it again."""

    def __init__(self, db: Database, repo: WorkspaceStore, settings: WorkspaceSettings, default_model: str,
                 default_key_file: Path):
        self.db = db
        self.repo = repo
        self.settings = settings
        self.default_model = default_model
        self.default_key_file = Path(default_key_file)

    def check_tier(self, tier: str) -> str:
        tiers = self.settings.tiers
        if tier not in tiers:
            raise InvalidRequest(f"unknown tier {tier!r}; choose one of {', '.join(tiers)}")
        return tier

    def create(self, name: str, tier: str | None = None, **overrides: int | None) -> tuple[Workspace, str]:
        """A new workspace and its API key; `overrides` set single limits (rag_max_bytes, kb_max_bytes...)."""
        tier = self.check_tier(tier or self.settings.default_tier)
        workspace = Workspace(new_id("ws_"), name, tier, self.default_model)
        api_key = "kb_" + secrets.token_urlsafe(32)
        with self.db.write() as tx:
            self.repo.insert(tx, workspace, hash_key(api_key), now(), check_limits(overrides))
        return workspace, api_key

    def update(self, workspace_id: str, tier: str | None = None, **overrides: int | None) -> Workspace:
        """Change the tier and/or override single limits."""
        values = check_limits(overrides)
        if tier is not None:
            values["tier"] = self.check_tier(tier)
        if values:
            with self.db.write() as tx:
                if not self.repo.update(tx, workspace_id, values):
                    raise NotFound(f"workspace {workspace_id!r} not found")
        return self.get(workspace_id)

    def authenticate(self, api_key: str | None) -> Workspace:
        if not api_key:
            raise Unauthorized("missing API key: send it in the xi-api-key header")
        with self.db.read() as tx:
            workspace = self.repo.by_key_hash(tx, hash_key(api_key))
        if workspace is None:
            raise Unauthorized("invalid API key: check the xi-api-key header (kb workspace create prints a new key)")
        return workspace

    def get(self, workspace_id: str) -> Workspace:
        with self.db.read() as tx:
            workspace = self.repo.get(tx, workspace_id)
        if workspace is None:
            raise NotFound(f"workspace {workspace_id!r} not found")
        return workspace

    def find_by_name(self, name: str) -> Workspace | None:
        with self.db.read() as tx:
            return self.repo.find_by_name(tx, name)

    def resolve(self, ref: str) -> Workspace | None:
        """A workspace by id, else by name (the CLI's `--workspace`)."""
        try:
            return self.get(ref)
        except KBError:
            return self.find_by_name(ref)

    def ensure_default(self) -> tuple[Workspace, str]:
        """The workspace `kb serve` prints a key for; created on first start, same key afterwards.

        The key is kept in `default_key_file` (mode 0600) so it can be printed again; the database
        itself holds only its hash.
        """
        key_file = self.default_key_file
        if key_file.exists():
            api_key = key_file.read_text().strip()
            try:
                return self.authenticate(api_key), api_key
            except Exception:
                log.warning("the key in %s no longer works; creating a new default workspace", key_file)
        # The machine's owner uses it: the largest standard tier, not the free one.
        workspace, api_key = self.create(DEFAULT_WORKSPACE, "enterprise")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(api_key + "\n")
        return workspace, api_key

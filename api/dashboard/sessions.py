"""Dashboard sessions: an opaque random token in an http-only cookie, the session itself in this process.

The cookie holds no API key and no workspace id, only a random token; the server keeps the SHA-256 of
the token with the workspace it signed in to, a per-session CSRF token and its flash messages. Signing
out forgets the session; so does restarting the server (everyone signs in again). Sessions expire after
`TTL_SECS` idle.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

COOKIE = "kb_dashboard_session"
PRE_COOKIE = "kb_dashboard_signin"  # the sign-in form's CSRF token (double submit, before a session exists)
TTL_SECS = 12 * 3600
MAX_SESSIONS = 10_000  # the oldest idle session goes first past this


@dataclass
class Session:
    workspace_id: str
    csrf_token: str
    last_seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, message): "ok" | "error"

    def flash(self, kind: str, message: str) -> None:
        self.flashes.append((kind, message))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token.encode(), token.encode())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, ttl_secs: float = TTL_SECS, max_sessions: int = MAX_SESSIONS):
        self.ttl = ttl_secs
        self.max = max_sessions
        self._items: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, workspace_id: str) -> tuple[str, Session]:
        """A new session: (the cookie's token, the session)."""
        token = secrets.token_urlsafe(32)
        session = Session(workspace_id, secrets.token_urlsafe(32), time.time())
        with self._lock:
            self._items[_digest(token)] = session
            while len(self._items) > self.max:
                self._items.popitem(last=False)
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        key = _digest(token)
        now = time.time()
        with self._lock:
            session = self._items.get(key)
            if session is None:
                return None
            if now - session.last_seen > self.ttl:
                del self._items[key]
                return None
            session.last_seen = now
            self._items.move_to_end(key)
            return session

    def close(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._items.pop(_digest(token), None)

"""Per-workspace concurrency limits: one workspace may run only so many slow operations at once.

A slow operation (fetching a URL) holds a slot of its workspace while it runs; when the
workspace's slots are all taken, one more is refused at once with `TooManyRequests` (HTTP 429)
instead of waiting, so a workspace that floods kb with slow work cannot take the threads every
workspace shares. Counted per process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import TooManyRequests


class WorkspaceSlots:
    def __init__(self, limit: int, what: str, setting: str):
        """`what`: the operations, plural ("URL fetches"); `setting`: the variable that sets `limit`."""
        if limit < 1:
            raise ValueError(f"{setting} must be at least 1, not {limit}")
        self.limit = limit
        self.what = what
        self.setting = setting
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, workspace_id: str) -> Iterator[None]:
        """Take one of the workspace's slots for the block, or raise `TooManyRequests` if none is free."""
        with self._lock:
            held = self._held.get(workspace_id, 0)
            if held >= self.limit:
                raise TooManyRequests(
                    f"this workspace already has {held} {self.what} running, the most it may run at once "
                    f"({self.setting}={self.limit}); wait for one to finish and try again"
                )
            self._held[workspace_id] = held + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._held[workspace_id] - 1
                if left:
                    self._held[workspace_id] = left
                else:
                    del self._held[workspace_id]

    def held(self, workspace_id: str) -> int:
        with self._lock:
            return self._held.get(workspace_id, 0)

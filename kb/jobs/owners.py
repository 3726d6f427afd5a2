"""Who runs a job: `<host>:<pid>` owners, whether an owner is alive, and the jobs running here."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

HOST = socket.gethostname()


def process_owner() -> str:
    """The owner recorded on the jobs this process claims (read at each claim: a fork changes it)."""
    return f"{HOST}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host; a zombie (exited, not reaped) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust os.kill
    return stat.rpartition(")")[2].split()[0] != "Z"


class RunningHere:
    """(database, job id) of the jobs this process is running, whichever queue claimed them: a job
    that names this process as owner but is not here was left by an earlier process that had the
    same pid (a restarted container runs its server under the same pid again)."""

    def __init__(self) -> None:
        self._items: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def add(self, keys) -> None:
        with self._lock:
            self._items.update(keys)

    def discard(self, keys) -> None:
        with self._lock:
            self._items.difference_update(keys)

    def __contains__(self, key: tuple[str, int]) -> bool:
        with self._lock:
            return key in self._items


RUNNING = RunningHere()

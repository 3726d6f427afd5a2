"""Job kinds: what runs a kind of job, how many at once, and what happens when it fails.

A kind is registered once (`JobKinds.register`); a worker runs only the kinds it knows. Its
handler gets the claimed jobs and a `JobContext`, which tells it whether the pool is stopping or a
job was cancelled (learned at each heartbeat, or at once with `check()`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..records import Job
from ..storage import Tx

MAX_ATTEMPTS = 5  # claims of a job that never finished (its process died) before it is failed


class Interrupted(Exception):
    """Raised by a handler that gave up because the pool is stopping: its jobs are queued again."""


class Cancelled(Exception):
    """Raised by a handler that stopped because its jobs were cancelled: they end `cancelled`."""


class JobContext:
    """What a running handler may ask: should it stop, and which of its jobs were cancelled."""

    def __init__(self, jobs: list[Job], ask_cancelled: Callable[[list[int]], set[int]],
                 stopping: threading.Event | None = None,
                 ask_running: Callable[[Tx, list[int]], set[int]] | None = None):
        self._ask_cancelled = ask_cancelled
        self._ask_running = ask_running
        self.jobs = jobs
        self.stopping = stopping or threading.Event()
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()

    def note_cancelled(self, job_ids) -> None:
        with self._lock:
            self._cancelled.update(job_ids)

    @property
    def cancelled(self) -> set[int]:
        """Jobs of this batch whose cancellation was asked, as of the last heartbeat or check."""
        with self._lock:
            return set(self._cancelled)

    def check(self) -> set[int]:
        """Ask the database now which jobs of this batch were cancelled."""
        self.note_cancelled(self._ask_cancelled([job.id for job in self.jobs]))
        return self.cancelled

    def still_running(self, tx: Tx, job_ids: list[int]) -> set[int]:
        """Those of the jobs this process still runs, read in the caller's transaction `tx` (its
        commit then publishes the results of those only: another process took over the others)."""
        return set(job_ids) if self._ask_running is None else self._ask_running(tx, job_ids)

    def raise_if_stopping(self) -> None:
        """`Interrupted` if the pool stops; `Cancelled` if every job of the batch was cancelled."""
        if self.stopping.is_set():
            raise Interrupted()
        if self.jobs and len(self.cancelled) == len(self.jobs):
            raise Cancelled()


Handler = Callable[[list[Job], JobContext], None]


@dataclass(frozen=True)
class JobKind:
    """A kind of job and its policies.

    `batch_size`: queued jobs of the kind one worker takes and hands to `handler` together.
    `retries`: runs after a failure before the job ends `failed`; each waits `retry_delay_secs`,
    doubled every time. `max_attempts`: claims interrupted by a dead process before it is failed.
    `on_give_up(job, error)`: called once the job ended failed (for good), to record the failure
    on whatever it worked on.
    """

    name: str
    handler: Handler
    batch_size: int = 1
    retries: int = 0
    retry_delay_secs: float = 60.0
    max_attempts: int = MAX_ATTEMPTS
    on_give_up: Callable[[Job, str], None] | None = None

    def retry_delay(self, attempts: int) -> float:
        return self.retry_delay_secs * 2 ** max(0, attempts - 1)


class JobKinds:
    """The registry: job kind name → `JobKind`."""

    def __init__(self, *kinds: JobKind):
        self._kinds: dict[str, JobKind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: JobKind) -> JobKind:
        if kind.name in self._kinds:
            raise ValueError(f"job kind {kind.name!r} is registered already")
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> JobKind | None:
        return self._kinds.get(name)

    def names(self) -> list[str]:
        return list(self._kinds)

    def max_attempts(self, name: str) -> int:
        kind = self._kinds.get(name)
        return kind.max_attempts if kind else MAX_ATTEMPTS

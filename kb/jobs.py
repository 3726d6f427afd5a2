"""A persistent job queue in the metadata database, with worker threads that drain it.

Jobs are inserted in the same transaction as the rows they work on, so an acknowledged upload
always has its indexing job. A job left `running` by a crashed process is queued again at start.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from .db import Database, jobs, now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: dict


class JobQueue:
    """Enqueue inside a caller's transaction; claim atomically, so two workers never share a job."""

    def __init__(self, db: Database):
        self.db = db
        self._wakeup = threading.Condition()

    def enqueue(self, conn: Connection, kind: str, payload: dict) -> int:
        t = now()
        result = conn.execute(
            jobs.insert().values(kind=kind, payload=json.dumps(payload), status="queued", created_at=t, updated_at=t)
        )
        return int(result.inserted_primary_key[0])

    def notify(self) -> None:
        with self._wakeup:
            self._wakeup.notify_all()

    def wait(self, timeout: float) -> None:
        with self._wakeup:
            self._wakeup.wait(timeout)

    def claim(self, job_id: int | None = None) -> Job | None:
        """Take the oldest queued job (or the given one) and mark it running."""
        with self.db.write() as conn:
            query = select(jobs.c.id, jobs.c.kind, jobs.c.payload).where(jobs.c.status == "queued")
            query = query.where(jobs.c.id == job_id) if job_id is not None else query.order_by(jobs.c.id).limit(1)
            row = conn.execute(query).first()
            if row is None:
                return None
            claimed = conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id, jobs.c.status == "queued")
                .values(status="running", attempts=jobs.c.attempts + 1, updated_at=now())
            )
            if claimed.rowcount != 1:
                return None
        return Job(row.id, row.kind, json.loads(row.payload))

    def finish(self, job_id: int, error: str | None = None) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(status="failed" if error else "done", error=error, updated_at=now())
            )

    def status(self, job_id: int) -> str | None:
        with self.db.read() as conn:
            return conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()

    def requeue_interrupted(self) -> int:
        """Put jobs a dead process left running back in the queue (call once at start)."""
        with self.db.write() as conn:
            result = conn.execute(
                update(jobs).where(jobs.c.status == "running").values(status="queued", updated_at=now())
            )
        return result.rowcount


class WorkerPool:
    """Threads that run queued jobs with `handler(job)` until stopped."""

    def __init__(self, queue: JobQueue, handler: Callable[[Job], None], size: int = 1, poll_secs: float = 1.0):
        self.queue = queue
        self.handler = handler
        self.size = size
        self.poll_secs = poll_secs
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.size):
            thread = threading.Thread(target=self._run, name=f"kb-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self.queue.notify()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self.queue.claim()
            if job is None:
                self.queue.wait(self.poll_secs)
                continue
            run_job(self.queue, self.handler, job)


def run_job(queue: JobQueue, handler: Callable[[Job], None], job: Job) -> None:
    """Run one claimed job; a handler exception marks the job failed instead of killing the worker."""
    try:
        handler(job)
    except Exception as exc:  # the handler records domain failures itself; this is the last resort
        log.exception("job %s (%s) failed", job.id, job.kind)
        queue.finish(job.id, error=f"{type(exc).__name__}: {exc}")
    else:
        queue.finish(job.id)

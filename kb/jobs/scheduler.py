"""Periodic jobs: a schedule enqueues a job of its kind every `interval_secs`.

Any number of processes may run `run_due` at once: a schedule moves on by compare-and-set, so
exactly one of them enqueues each run. A schedule whose last job is still queued or running is
moved on without a new job (no pile-up behind a slow one). Delayed one-off jobs need no schedule:
`JobQueue.enqueue(..., delay_secs=...)`.
"""

from __future__ import annotations

import logging

from ..records import Schedule
from ..storage import Database, now
from ..storage.repositories import ACTIVE_JOB_STATUSES, ScheduleStore
from .queue import JobQueue

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, db: Database, queue: JobQueue, schedules: ScheduleStore):
        self.db = db
        self.queue = queue
        self.schedules = schedules

    def schedule(
        self, schedule_id: str, kind: str, payload: dict, every_secs: float, *, first_run_at: float | None = None
    ) -> Schedule:
        """Create or change a schedule; its first job is due at `first_run_at` (default: one interval from now)."""
        if every_secs <= 0:
            raise ValueError("a schedule's interval must be positive")
        t = now()
        schedule = Schedule(schedule_id, kind, dict(payload), float(every_secs),
                            t + every_secs if first_run_at is None else first_run_at)
        with self.db.write() as tx:
            self.schedules.put(tx, schedule, t)
        return schedule

    def unschedule(self, schedule_ids: list[str]) -> None:
        with self.db.write() as tx:
            self.schedules.remove(tx, schedule_ids)

    def get(self, schedule_id: str) -> Schedule | None:
        with self.db.read() as tx:
            return self.schedules.get(tx, schedule_id)

    def run_due(self, at: float | None = None) -> list[int]:
        """Enqueue a job for every schedule that is due; returns the new jobs' ids."""
        t = now() if at is None else at
        enqueued: list[int] = []
        with self.db.write() as tx:
            for schedule in self.schedules.due(tx, t):
                busy = schedule.last_job_id is not None and self.queue.store.status(tx, schedule.last_job_id) in ACTIVE_JOB_STATUSES
                if not self.schedules.advance(tx, schedule, t + schedule.interval_secs, schedule.last_job_id, t):
                    continue  # another process ran this one
                if busy:
                    log.info("schedule %s: its last job %s has not ended; skipping this run", schedule.id, schedule.last_job_id)
                    continue
                job_id = self.queue.enqueue(tx, schedule.kind, schedule.payload, subject=f"schedule:{schedule.id}")
                self.schedules.set_last_job(tx, schedule.id, job_id)
                enqueued.append(job_id)
        return enqueued

"""A persistent job queue in the metadata database.

Jobs are inserted in the same transaction as the rows they work on, so an acknowledged upload
always has its indexing job. Several processes may share one database (a server, `kb ingest`, a
second server): a claim records its owner (`<host>:<pid>`), and the owner refreshes the job's
heartbeat while it runs. A running job is queued again only when its owner is gone: a process of
this host that no longer exists, or a heartbeat older than `stale_secs` (the only sign available
for another host). A job interrupted `max_attempts` times (its kind's) is failed instead of
retried forever. Jobs may wait (`run_at`) and be cancelled, queued or running.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from ..records import Job, RunningJob
from ..storage import Database, Tx, job_repository, now
from ..storage.repositories import JobStore
from .kinds import JobKinds
from .owners import HOST, RUNNING, pid_alive, process_owner

log = logging.getLogger(__name__)

HEARTBEAT_SECS = 10.0  # how often the owner of a running job refreshes `heartbeat_at`
STALE_SECS = 120.0  # a running job whose heartbeat is older belongs to nobody


class JobQueue:
    """Enqueue inside a caller's transaction; claim atomically, so two workers never share a job.

    `kinds` gives each kind's `max_attempts` and `on_give_up` (called outside any transaction for
    each job failed for good); kinds it does not know get the defaults.
    """

    def __init__(
        self,
        db: Database,
        kinds: JobKinds | None = None,
        *,
        store: JobStore | None = None,
        stale_secs: float = STALE_SECS,
        heartbeat_secs: float = HEARTBEAT_SECS,
    ):
        self.db = db
        self.kinds = kinds or JobKinds()
        self.store = store or job_repository(db)
        self.stale_secs = stale_secs
        self.heartbeat_secs = heartbeat_secs
        # One spelling per database file, so two queues of this process on it agree on what runs here.
        database = make_url(db.url).database if db.is_sqlite else None
        self._db_key = f"sqlite:{Path(database).resolve()}" if database else db.url
        self._wakeup = threading.Condition()

    # --- adding and waking -------------------------------------------------------------------

    def enqueue(
        self, tx: Tx, kind: str, payload: dict, *, delay_secs: float | None = None, run_at: float | None = None,
        subject: str | None = None, tenant: str | None = None,
    ) -> int:
        """A job in the caller's transaction; not claimed before `run_at` (or `delay_secs` from now).
        `tenant` (a workspace id): its jobs take turns with other workspaces' instead of queueing ahead."""
        t = now()
        if delay_secs is not None:
            run_at = t + delay_secs
        return self.store.enqueue(tx, kind, payload, t, run_at=run_at, subject=subject, tenant=tenant)

    def notify(self) -> None:
        with self._wakeup:
            self._wakeup.notify_all()

    def wait(self, timeout: float) -> None:
        with self._wakeup:
            self._wakeup.wait(timeout)

    # --- claiming ------------------------------------------------------------------------------

    def claim(self, job_id: int | None = None, *, kinds: list[str] | None = None) -> Job | None:
        """Take the oldest due queued job (of `kinds`, or the given one), mark it running here."""
        jobs = self._claim(limit=1, job_id=job_id, kinds=kinds)
        return jobs[0] if jobs else None

    def claim_more(self, first: Job, limit: int) -> list[Job]:
        """Take up to `limit` more due queued jobs of `first`'s kind and tenant, for a worker that runs
        several together (many small documents are indexed in one embedding call). One tenant per
        batch: another workspace's job, next in the fair order, never waits for a batch of these."""
        return self._claim(limit=limit, kind=first.kind, tenant_of=first) if limit > 0 else []

    def _claim(self, **conditions) -> list[Job]:
        taken: list[tuple[str, int]] = []
        try:
            with self.db.write() as tx:
                jobs = self.store.claim(tx, process_owner(), now(), **conditions)
                # Before the commit: a reaper, which reads after it, always finds the jobs here.
                taken = [(self._db_key, job.id) for job in jobs]
                RUNNING.add(taken)
        except BaseException:
            RUNNING.discard(taken)
            raise
        return jobs

    # --- while running -------------------------------------------------------------------------

    def heartbeat(self, job_id: int) -> bool:
        """Refresh a job this process runs; False if it is no longer this process's."""
        return not self.heartbeat_many([job_id])

    def heartbeat_many(self, job_ids: list[int]) -> list[int]:
        """Refresh jobs this process runs (one transaction); returns those that are no longer this process's."""
        lost, _ = self._beat(job_ids)
        return lost

    def _beat(self, job_ids: list[int]) -> tuple[list[int], set[int]]:
        """(jobs no longer this process's, jobs whose cancellation was asked)."""
        with self.db.write() as tx:
            refreshed = self.store.heartbeat(tx, job_ids, process_owner(), now())
        return [j for j in job_ids if j not in refreshed], {j for j, cancel in refreshed.items() if cancel}

    def still_running(self, tx: Tx, job_ids: list[int]) -> set[int]:
        """Those of the jobs this process still runs, read in the caller's transaction: a worker that
        was thought dead (frozen past its lease) and lost its jobs must not publish its late results."""
        return self.store.running_for(tx, job_ids, process_owner())

    def cancel_requested(self, job_ids: list[int]) -> set[int]:
        with self.db.read() as tx:
            return self.store.cancel_requested(tx, job_ids)

    @contextmanager
    def keep_alive(self, job_ids: list[int], on_cancel: Callable[[set[int]], None] | None = None) -> Iterator[None]:
        """Refresh the jobs' heartbeats every `heartbeat_secs` from a thread, while the block runs;
        `on_cancel(ids)` hears of jobs whose cancellation was asked."""
        stop = threading.Event()
        alive = list(job_ids)

        def beat() -> None:
            while alive and not stop.wait(self.heartbeat_secs):
                try:
                    lost, cancelled = self._beat(alive)
                    for job_id in lost:
                        log.warning("job %s was taken over by another process (this one looked dead)", job_id)
                        alive.remove(job_id)
                    if cancelled and on_cancel is not None:
                        on_cancel(cancelled)
                except Exception:
                    log.warning("could not refresh the heartbeats of jobs %s", alive, exc_info=True)

        thread = threading.Thread(target=beat, name=f"kb-heartbeat-{job_ids[0]}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    # --- ending --------------------------------------------------------------------------------

    def finish(self, job_id: int, error: str | None = None) -> None:
        """Record the end of a job this process runs (a job another process took over is left to it)."""
        self.finish_many([job_id], error)

    def finish_many(self, job_ids: list[int], error: str | None = None) -> None:
        """`finish` for several jobs, in one transaction (cancelled meanwhile: they end `cancelled`)."""
        try:
            with self.db.write() as tx:
                finished = self.store.finish(tx, job_ids, process_owner(), now(), error)
        finally:
            self._forget(job_ids)
        for job_id in job_ids:
            if job_id not in finished:
                log.warning("job %s ended here after another process took it over; it runs again there", job_id)

    def mark_cancelled(self, job_ids: list[int]) -> None:
        """Jobs this process ran until they were cancelled."""
        try:
            with self.db.write() as tx:
                self.store.mark_cancelled(tx, job_ids, process_owner(), now())
        finally:
            self._forget(job_ids)

    def retry_later(self, job_ids: list[int], delay_secs: float, error: str) -> set[int]:
        """Queue failed jobs again in `delay_secs` (not those cancelled meanwhile); returns those queued."""
        try:
            with self.db.write() as tx:
                t = now()
                return self.store.retry_later(tx, job_ids, process_owner(), t, t + delay_secs, error)
        finally:
            self._forget(job_ids)

    def release(self, job_ids: list[int]) -> int:
        """Give back jobs this process runs but will not finish (it is stopping politely): queued
        again without counting the attempt, so restarts never add up to `max_attempts`."""
        try:
            with self.db.write() as tx:
                return self.store.release(tx, job_ids, process_owner(), now())
        finally:
            self._forget(job_ids)

    def _forget(self, job_ids: list[int]) -> None:
        RUNNING.discard([(self._db_key, job_id) for job_id in job_ids])

    # --- looking and cancelling ----------------------------------------------------------------

    def status(self, job_id: int) -> str | None:
        with self.db.read() as tx:
            return self.store.status(tx, job_id)

    def cancel(self, job_ids: list[int], tx: Tx | None = None) -> dict[int, str]:
        """Cancel jobs: a queued one ends `cancelled` at once, a running one is asked to stop (its
        handler hears of it at its next heartbeat or check). {job id: status now}."""
        if tx is None:
            with self.db.write() as own:
                return self.cancel(job_ids, own)
        return self.store.cancel(tx, job_ids, now())

    def cancel_subject(self, tx: Tx, subjects: list[str]) -> list[int]:
        """Cancel the queued and running jobs of these subjects (in the caller's transaction)."""
        ids = self.store.active_of_subject(tx, subjects)
        if ids:
            self.store.cancel(tx, ids, now())
        return ids

    # --- reaping -------------------------------------------------------------------------------

    def _abandoned(self, job: RunningJob, t: float) -> bool:
        """Whether the owner of a running job is gone."""
        if job.heartbeat_at is None or t - job.heartbeat_at > self.stale_secs:
            return True
        host, _, pid = (job.owner or "").rpartition(":")
        if host != HOST or not pid.isdigit() or int(pid) <= 0:
            return False  # another host: only its heartbeat tells
        if job.owner == process_owner():
            return (self._db_key, job.id) not in RUNNING
        return not pid_alive(int(pid))

    def requeue_interrupted(self) -> int:
        """Queue again the running jobs whose owner is gone (dead process of this host, or stale
        heartbeat); fail those already claimed their kind's `max_attempts` times. Returns how many
        were queued."""
        t = now()
        requeued, given_up = 0, []
        with self.db.write() as tx:
            for job in self.store.running(tx):
                if not self._abandoned(job, t):
                    continue
                if job.attempts >= self.kinds.max_attempts(job.kind):
                    error = (
                        f"gave up after {job.attempts} attempts: the process running this job stopped each time "
                        "before it finished (it may be what crashes the process)"
                    )
                    if self.store.fail_abandoned(tx, job.id, error, t):
                        given_up.append((Job(job.id, job.kind, job.payload, job.attempts), error))
                elif self.store.requeue_abandoned(tx, job.id, t):
                    requeued += 1
        for job, error in given_up:
            log.error("job %s (%s) %s", job.id, job.kind, error)
            self.give_up(job, error)
        return requeued

    def give_up(self, job: Job, error: str) -> None:
        """Tell the job's kind that the job failed for good."""
        kind = self.kinds.get(job.kind)
        if kind is not None and kind.on_give_up is not None:
            try:
                kind.on_give_up(job, error)
            except Exception:
                log.exception("could not record the failure of job %s", job.id)

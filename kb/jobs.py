"""A persistent job queue in the metadata database, with worker threads that drain it.

Jobs are inserted in the same transaction as the rows they work on, so an acknowledged upload
always has its indexing job. Several processes may share one database (a server, `kb ingest`, a
second server): a claim records its owner (`<host>:<pid>`), and the owner refreshes the job's
heartbeat while it runs. A running job is queued again only when its owner is gone: a process of
this host that no longer exists, or a heartbeat older than `stale_secs` (the only sign available
for another host). A job interrupted `max_attempts` times is failed instead of retried forever.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Row

from .db import Database, jobs, now

log = logging.getLogger(__name__)

HEARTBEAT_SECS = 10.0  # how often the owner of a running job refreshes `heartbeat_at`
STALE_SECS = 120.0  # a running job whose heartbeat is older belongs to nobody
REAP_SECS = 30.0  # how often a worker pool looks for jobs of dead owners
MAX_ATTEMPTS = 5  # claims of a job that never finished before it is failed

HOST = socket.gethostname()

# (database, job id) of the jobs this process is running, whichever JobQueue claimed them: a job
# that names this process as owner but is not here was left by an earlier process that had the
# same pid (a restarted container runs its server under the same pid again).
_running: set[tuple[str, int]] = set()
_running_lock = threading.Lock()


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: dict
    attempts: int = 0  # claims so far, this one included


def process_owner() -> str:
    """The owner recorded on the jobs this process claims (read at each claim: a fork changes it)."""
    return f"{HOST}:{os.getpid()}"


def _forget(key: tuple[str, int] | None) -> None:
    with _running_lock:
        _running.discard(key)


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


class JobQueue:
    """Enqueue inside a caller's transaction; claim atomically, so two workers never share a job.

    `on_give_up(job, error)` is called (outside any transaction) for each job failed because it was
    interrupted `max_attempts` times, so the owner of the job's subject can record the failure.
    """

    def __init__(
        self,
        db: Database,
        *,
        on_give_up: Callable[[Job, str], None] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        stale_secs: float = STALE_SECS,
        heartbeat_secs: float = HEARTBEAT_SECS,
    ):
        self.db = db
        self.on_give_up = on_give_up
        self.max_attempts = max_attempts
        self.stale_secs = stale_secs
        self.heartbeat_secs = heartbeat_secs
        # One spelling per database file, so two queues of this process on it agree on what runs here.
        self._db_key = f"sqlite:{Path(db.url.removeprefix('sqlite:///')).resolve()}" if db.is_sqlite else db.url
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
        """Take the oldest queued job (or the given one), mark it running and owned by this process."""
        owner = process_owner()
        taken = None
        try:
            with self.db.write() as conn:
                query = select(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts).where(jobs.c.status == "queued")
                query = query.where(jobs.c.id == job_id) if job_id is not None else query.order_by(jobs.c.id).limit(1)
                row = conn.execute(query).first()
                if row is None:
                    return None
                t = now()
                claimed = conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row.id, jobs.c.status == "queued")
                    .values(status="running", attempts=jobs.c.attempts + 1, owner=owner, heartbeat_at=t, updated_at=t)
                )
                if claimed.rowcount != 1:
                    return None
                # Before the commit: a reaper, which reads after it, always finds the job here.
                taken = (self._db_key, row.id)
                with _running_lock:
                    _running.add(taken)
        except BaseException:
            _forget(taken)
            raise
        return Job(row.id, row.kind, json.loads(row.payload), row.attempts + 1)

    def claim_more(self, kind: str, limit: int) -> list[Job]:
        """Take up to `limit` more queued jobs of `kind`, oldest first, for a worker that runs
        several together (many small documents are indexed in one embedding call)."""
        if limit <= 0:
            return []
        owner, taken = process_owner(), []
        try:
            with self.db.write() as conn:
                rows = conn.execute(
                    select(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts)
                    .where(jobs.c.status == "queued", jobs.c.kind == kind)
                    .order_by(jobs.c.id)
                    .limit(limit)
                ).fetchall()
                if not rows:
                    return []
                t = now()
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_([r.id for r in rows]), jobs.c.status == "queued")
                    .values(status="running", attempts=jobs.c.attempts + 1, owner=owner, heartbeat_at=t, updated_at=t)
                )
                taken = [(self._db_key, r.id) for r in rows]
                with _running_lock:
                    _running.update(taken)
        except BaseException:
            for item in taken:
                _forget(item)
            raise
        return [Job(r.id, r.kind, json.loads(r.payload), r.attempts + 1) for r in rows]

    def heartbeat(self, job_id: int) -> bool:
        """Refresh a job this process runs; False if it is no longer this process's."""
        return not self.heartbeat_many([job_id])

    def heartbeat_many(self, job_ids: list[int]) -> list[int]:
        """Refresh jobs this process runs (one transaction); returns those that are no longer this process's."""
        with self.db.write() as conn:
            refreshed = set(conn.execute(
                update(jobs)
                .where(*_running_here(job_ids))
                .values(heartbeat_at=now())
                .returning(jobs.c.id)
            ).scalars())
        return [job_id for job_id in job_ids if job_id not in refreshed]

    @contextmanager
    def keep_alive(self, job_ids: list[int]) -> Iterator[None]:
        """Refresh the jobs' heartbeats every `heartbeat_secs` from a thread, while the block runs."""
        stop = threading.Event()
        alive = list(job_ids)

        def beat() -> None:
            while alive and not stop.wait(self.heartbeat_secs):
                try:
                    for job_id in self.heartbeat_many(alive):
                        log.warning("job %s was taken over by another process (this one looked dead)", job_id)
                        alive.remove(job_id)
                except Exception:
                    log.warning("could not refresh the heartbeats of jobs %s", alive, exc_info=True)

        thread = threading.Thread(target=beat, name=f"kb-heartbeat-{job_ids[0]}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def finish(self, job_id: int, error: str | None = None) -> None:
        """Record the end of a job this process runs (a job another process took over is left to it)."""
        self.finish_many([job_id], error)

    def finish_many(self, job_ids: list[int], error: str | None = None) -> None:
        """`finish` for several jobs, in one transaction."""
        try:
            with self.db.write() as conn:
                finished = set(conn.execute(
                    update(jobs)
                    .where(*_running_here(job_ids))
                    .values(status="failed" if error else "done", error=error, updated_at=now())
                    .returning(jobs.c.id)
                ).scalars())
        finally:
            for job_id in job_ids:
                _forget((self._db_key, job_id))
        for job_id in job_ids:
            if job_id not in finished:
                log.warning("job %s ended here after another process took it over; it runs again there", job_id)

    def release(self, job_ids: list[int]) -> int:
        """Give back jobs this process runs but will not finish (it is stopping politely): queued
        again without counting the attempt, so restarts never add up to `max_attempts`."""
        with self.db.write() as conn:
            released = conn.execute(
                update(jobs)
                .where(*_running_here(job_ids))
                .values(status="queued", owner=None, heartbeat_at=None, attempts=jobs.c.attempts - 1, updated_at=now())
            ).rowcount
        for job_id in job_ids:
            _forget((self._db_key, job_id))
        return released

    def status(self, job_id: int) -> str | None:
        with self.db.read() as conn:
            return conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()

    def _abandoned(self, row: Row, t: float) -> bool:
        """Whether the owner of a running job is gone."""
        if row.heartbeat_at is None or t - row.heartbeat_at > self.stale_secs:
            return True
        host, _, pid = (row.owner or "").rpartition(":")
        if host != HOST or not pid.isdigit() or int(pid) <= 0:
            return False  # another host: only its heartbeat tells
        if row.owner == process_owner():
            with _running_lock:
                return (self._db_key, row.id) not in _running
        return not pid_alive(int(pid))

    def requeue_interrupted(self) -> int:
        """Queue again the running jobs whose owner is gone (dead process of this host, or stale
        heartbeat); fail those already claimed `max_attempts` times. Returns how many were queued."""
        t = now()
        requeued, given_up = 0, []
        with self.db.write() as conn:
            rows = conn.execute(
                select(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts, jobs.c.owner, jobs.c.heartbeat_at)
                .where(jobs.c.status == "running")
            ).fetchall()
            for row in rows:
                if not self._abandoned(row, t):
                    continue
                same = (jobs.c.id == row.id, jobs.c.status == "running")
                if row.attempts >= self.max_attempts:
                    error = (
                        f"gave up after {row.attempts} attempts: the process running this job stopped each time "
                        "before it finished (it may be what crashes the process)"
                    )
                    conn.execute(update(jobs).where(*same).values(status="failed", error=error, updated_at=t))
                    given_up.append((Job(row.id, row.kind, json.loads(row.payload), row.attempts), error))
                else:
                    conn.execute(
                        update(jobs).where(*same).values(status="queued", owner=None, heartbeat_at=None, updated_at=t)
                    )
                    requeued += 1
        for job, error in given_up:
            log.error("job %s (%s) %s", job.id, job.kind, error)
            if self.on_give_up is not None:
                try:
                    self.on_give_up(job, error)
                except Exception:
                    log.exception("could not record the failure of job %s", job.id)
        return requeued


class WorkerPool:
    """Threads that run queued jobs with `handler(jobs)` until stopped, and a thread that queues
    again, every `reap_secs`, the jobs of owners that died meanwhile (a crashed `kb ingest`).

    A worker takes the oldest queued job and up to `batch_size - 1` more of the same kind, and
    hands them to the handler together."""

    def __init__(
        self,
        queue: JobQueue,
        handler: Callable[[list[Job]], None],
        size: int = 1,
        poll_secs: float = 1.0,
        reap_secs: float = REAP_SECS,
        batch_size: int = 1,
    ):
        self.queue = queue
        self.handler = handler
        self.size = size
        self.batch_size = max(1, batch_size)
        self.poll_secs = poll_secs
        self.reap_secs = reap_secs
        self._stop = threading.Event()
        self.stopping = self._stop  # set once stop() begins: long jobs may check it and give up
        self._threads: list[threading.Thread] = []
        self._current: dict[int, list[int]] = {}  # worker number -> ids of the jobs it runs

    def start(self) -> None:
        targets = [(self._run, (i,), f"kb-worker-{i}") for i in range(self.size)] + [(self._reap, (), "kb-job-reaper")]
        for target, args, name in targets:
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        # A process that exits without stop() would kill a worker in the middle of native code
        # (onnxruntime aborts the process then): stop at exit, giving running jobs a moment.
        atexit.register(self.stop, EXIT_GRACE_SECS)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; wait up to `timeout` for each running one, then give back the rest."""
        atexit.unregister(self.stop)
        self._stop.set()
        self.queue.notify()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        unfinished = [job_id for ids in self._current.values() for job_id in ids]
        if unfinished:
            released = self.queue.release(unfinished)
            log.warning("stopping with %d job(s) unfinished; they run again at the next start", released)

    def _run(self, number: int) -> None:
        lower_thread_priority()
        while not self._stop.is_set():
            try:
                job = self.queue.claim()
                if job is not None:
                    batch = [job] + self.queue.claim_more(job.kind, self.batch_size - 1)
                    self._current[number] = [j.id for j in batch]
                    try:
                        run_jobs(self.queue, self.handler, batch)
                    finally:
                        self._current.pop(number, None)
                    continue
            except Exception:  # the database was unavailable (locked too long, gone): try again
                log.warning("worker could not claim or finish a job", exc_info=True)
            self.queue.wait(self.poll_secs)

    def _reap(self) -> None:
        while not self._stop.wait(self.reap_secs):
            try:
                if self.queue.requeue_interrupted():
                    self.queue.notify()
            except Exception:
                log.warning("could not look for interrupted jobs", exc_info=True)


BACKGROUND_NICENESS = 10
EXIT_GRACE_SECS = 10.0


def lower_thread_priority(niceness: int = BACKGROUND_NICENESS) -> None:
    """Let the OS run this thread only when request threads leave a core free.

    Linux schedules threads one by one, so a worker thread (and the embedding it runs on itself)
    can yield to the threads answering queries. Elsewhere this does nothing.
    """
    if not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except OSError as exc:
        log.info("could not lower the priority of a worker thread: %s", exc)


def _running_here(job_ids: list[int]) -> tuple:
    """The conditions of jobs among `job_ids` that this process is running."""
    return (jobs.c.id.in_(job_ids), jobs.c.status == "running", jobs.c.owner == process_owner())


class Interrupted(Exception):
    """Raised by a handler that gave up because the pool is stopping: its jobs are queued again."""


def run_jobs(queue: JobQueue, handler: Callable[[list[Job]], None], batch: list[Job]) -> None:
    """Run claimed jobs together, keeping their heartbeats fresh; a handler exception marks them
    failed instead of killing the worker (`Interrupted` queues them again instead)."""
    with queue.keep_alive([job.id for job in batch]):
        try:
            handler(batch)
        except Interrupted:
            queue.release([job.id for job in batch])
            return
        except Exception as exc:  # the handler records domain failures itself; this is the last resort
            log.exception("jobs %s (%s) failed", [job.id for job in batch], batch[0].kind)
            error = f"{type(exc).__name__}: {exc}"
        else:
            error = None
    queue.finish_many([job.id for job in batch], error=error)

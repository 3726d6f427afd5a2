"""Worker threads that drain the queue, running each job with its kind's handler."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time

from ..records import Job
from .kinds import Cancelled, Interrupted, JobContext, JobKind, JobKinds
from .queue import JobQueue
from .scheduler import Scheduler

log = logging.getLogger(__name__)

REAP_SECS = 30.0  # how often a worker pool looks for jobs of dead owners
SCHEDULE_SECS = 5.0  # how often it enqueues the periodic jobs that are due
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


def run_batch(queue: JobQueue, kind: JobKind, batch: list[Job], stopping: threading.Event | None = None) -> None:
    """Run claimed jobs of one kind together, keeping their heartbeats fresh.

    A handler exception fails the jobs (or queues them again later, while the kind allows retries)
    instead of killing the worker; `Interrupted` queues them again at once, `Cancelled` ends them
    `cancelled`.
    """
    ids = [job.id for job in batch]
    context = JobContext(batch, queue.cancel_requested, stopping, queue.still_running)
    with queue.keep_alive(ids, on_cancel=context.note_cancelled):
        try:
            kind.handler(batch, context)
        except Interrupted:
            queue.release(ids)
            return
        except Cancelled:
            queue.mark_cancelled(ids)
            return
        except Exception as exc:  # handlers record domain failures themselves; this is the last resort
            log.exception("jobs %s (%s) failed", ids, kind.name)
            error = f"{type(exc).__name__}: {exc}"
        else:
            error = None
    if error is None:
        queue.finish_many(ids)
        return
    again = [job for job in batch if job.attempts <= kind.retries]
    retried = queue.retry_later([job.id for job in again], kind.retry_delay(max(j.attempts for j in again)), error) if again else set()
    final = [job for job in batch if job.id not in retried]
    if final:
        queue.finish_many([job.id for job in final], error=error)
        for job in final:
            queue.give_up(job, error)


class WorkerPool:
    """Threads that run queued jobs of the registered kinds until stopped; a thread that queues
    again, every `reap_secs`, the jobs of owners that died meanwhile (a crashed `kb ingest`); and,
    with a scheduler, a thread that enqueues periodic jobs when they are due.

    A worker takes the oldest due job of a kind it knows and up to the kind's `batch_size - 1`
    more of the same kind, and hands them to the kind's handler together."""

    def __init__(
        self,
        queue: JobQueue,
        kinds: JobKinds,
        size: int = 1,
        poll_secs: float = 1.0,
        reap_secs: float = REAP_SECS,
        scheduler: Scheduler | None = None,
        schedule_secs: float = SCHEDULE_SECS,
    ):
        self.queue = queue
        self.kinds = kinds
        self.size = size
        self.poll_secs = poll_secs
        self.reap_secs = reap_secs
        self.scheduler = scheduler
        self.schedule_secs = schedule_secs
        self._stop = threading.Event()
        self.stopping = self._stop  # set once stop() begins: long jobs may check it and give up
        self._threads: list[threading.Thread] = []
        self._current: dict[int, list[int]] = {}  # worker number -> ids of the jobs it runs

    def start(self) -> None:
        targets = [(self._run, (i,), f"kb-worker-{i}") for i in range(self.size)] + [(self._reap, (), "kb-job-reaper")]
        if self.scheduler is not None:
            targets.append((self._schedule, (), "kb-scheduler"))
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

    def run_one_batch(self, number: int = 0) -> int:
        """Claim and run one batch here; returns how many jobs it held (0: nothing was due)."""
        job = self.queue.claim(kinds=self.kinds.names())
        if job is None:
            return 0
        kind = self.kinds.get(job.kind)
        assert kind is not None
        batch = [job] + self.queue.claim_more(job, kind.batch_size - 1)
        self.run_claimed(batch, number)
        return len(batch)

    def run_claimed(self, batch: list[Job], number: int = 0) -> None:
        """Run jobs of one kind this process has claimed."""
        kind = self.kinds.get(batch[0].kind)
        if kind is None:
            self.queue.finish_many([job.id for job in batch], error=f"unknown job kind {batch[0].kind!r}")
            return
        self._current[number] = [j.id for j in batch]
        try:
            run_batch(self.queue, kind, batch, self._stop)
        finally:
            self._current.pop(number, None)

    def _run(self, number: int) -> None:
        lower_thread_priority()
        while not self._stop.is_set():
            try:
                if self.run_one_batch(number):
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

    def _schedule(self) -> None:
        assert self.scheduler is not None
        while True:
            try:
                if self.scheduler.run_due():
                    self.queue.notify()
            except Exception:
                log.warning("could not enqueue the periodic jobs that are due", exc_info=True)
            if self._stop.wait(self.schedule_secs):
                return

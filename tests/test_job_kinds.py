"""Job kinds registered from outside kb run through the worker pool; delayed, periodic, retried and
cancelled jobs. Real databases (SQLite, or PostgreSQL with KB_TEST_DATABASE=postgresql) and real
worker threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import database_url, make_kb
from kb.jobs import Cancelled, JobKind, JobKinds, JobQueue, Scheduler, WorkerPool
from kb.storage import Database, job_repository, now, open_database
from kb.storage.sql.schedules import ScheduleRepository


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(database_url(tmp_path))
    yield database
    database.dispose()


def enqueue(queue: JobQueue, kind: str, payload: dict | None = None, **options) -> int:
    with queue.db.write() as tx:
        return queue.enqueue(tx, kind, payload or {}, **options)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_kind_registered_outside_kb_runs_in_the_knowledge_bases_workers(tmp_path):
    kb = make_kb(tmp_path / "data", workers=1)
    seen: list[tuple[str, ...]] = []
    kb.job_kinds.register(JobKind("greet", lambda batch, context: seen.append(tuple(j.payload["name"] for j in batch)),
                                  batch_size=2))
    try:
        kb.start_workers()
        ids = [enqueue(kb.queue, "greet", {"name": name}) for name in ("ada", "grace", "linus")]
        kb.queue.notify()
        wait_for(lambda: all(kb.queue.status(i) == "done" for i in ids))
    finally:
        kb.close()
    assert sorted(name for batch in seen for name in batch) == ["ada", "grace", "linus"]
    assert max(len(batch) for batch in seen) <= 2  # the kind's batch size


def test_a_worker_takes_only_kinds_it_knows(db):
    queue = JobQueue(db)
    known, unknown = enqueue(queue, "known"), enqueue(queue, "elsewhere")
    pool = WorkerPool(queue, JobKinds(JobKind("known", lambda batch, context: None)))
    assert pool.run_one_batch() == 1 and pool.run_one_batch() == 0
    assert (queue.status(known), queue.status(unknown)) == ("done", "queued")


def test_a_delayed_job_is_not_claimed_before_its_time(db):
    queue = JobQueue(db)
    later = enqueue(queue, "test", delay_secs=0.6)
    soon = enqueue(queue, "test")
    assert queue.claim().id == soon
    assert queue.claim() is None
    time.sleep(0.7)
    assert queue.claim().id == later


def test_a_failing_kind_is_retried_after_its_delay_then_given_up_with_its_callback(db):
    runs, given_up = [], []

    def flaky(batch, context):
        runs.append(time.monotonic())
        raise RuntimeError(f"attempt {batch[0].attempts} failed")

    kind = JobKind("flaky", flaky, retries=1, retry_delay_secs=0.3, on_give_up=lambda job, error: given_up.append(error))
    queue = JobQueue(db, JobKinds(kind))
    job_id = enqueue(queue, "flaky")
    pool = WorkerPool(queue, queue.kinds)
    assert pool.run_one_batch() == 1
    assert queue.status(job_id) == "queued" and not given_up  # retried later...
    assert pool.run_one_batch() == 0  # ...not at once
    time.sleep(0.35)
    assert pool.run_one_batch() == 1
    assert queue.status(job_id) == "failed"
    assert given_up == ["RuntimeError: attempt 2 failed"] and runs[1] - runs[0] >= 0.3


def test_cancelling_a_queued_job_ends_it_before_it_runs(db):
    ran = []
    queue = JobQueue(db, JobKinds(JobKind("test", lambda batch, context: ran.extend(batch))))
    job_id = enqueue(queue, "test")
    assert queue.cancel([job_id]) == {job_id: "cancelled"}
    assert WorkerPool(queue, queue.kinds).run_one_batch() == 0
    assert ran == [] and queue.status(job_id) == "cancelled"


def test_a_running_job_hears_of_its_cancellation_at_its_next_heartbeat_and_stops(db):
    started, stopped = threading.Event(), threading.Event()

    def long_running(batch, context):
        started.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.02)
            context.raise_if_stopping()  # what the handler checks costs nothing: the heartbeat asks
        stopped.set()

    queue = JobQueue(db, JobKinds(JobKind("long", long_running)), heartbeat_secs=0.1)
    job_id = enqueue(queue, "long")
    pool = WorkerPool(queue, queue.kinds, poll_secs=0.05)
    pool.start()
    try:
        assert started.wait(30)
        assert queue.cancel([job_id]) == {job_id: "running"}  # asked to stop
        wait_for(lambda: queue.status(job_id) == "cancelled", timeout=10)
    finally:
        pool.stop()
    assert not stopped.is_set()  # it stopped early, not at the end of its work


def test_a_handler_may_check_for_cancellation_at_once(db):
    queue = JobQueue(db)
    job_id = enqueue(queue, "test")
    checked = []

    def handler(batch, context):
        queue.cancel([job_id])
        checked.append(context.check())
        raise Cancelled()

    WorkerPool(queue, JobKinds(JobKind("test", handler))).run_one_batch()
    assert checked == [{job_id}] and queue.status(job_id) == "cancelled"


def test_a_job_that_finishes_after_its_cancellation_was_asked_ends_cancelled(db):
    queue = JobQueue(db)
    job_id = enqueue(queue, "test")
    WorkerPool(queue, JobKinds(JobKind("test", lambda batch, context: queue.cancel([job_id])))).run_one_batch()
    assert queue.status(job_id) == "cancelled"


def test_cancelling_the_jobs_of_a_subject(db):
    queue = JobQueue(db)
    mine = [enqueue(queue, "test", subject="document:a") for _ in range(2)]
    other = enqueue(queue, "test", subject="document:b")
    with db.write() as tx:
        assert sorted(queue.cancel_subject(tx, ["document:a"])) == mine
    assert [queue.status(j) for j in (*mine, other)] == ["cancelled", "cancelled", "queued"]


def test_a_schedule_enqueues_its_job_every_interval_never_piling_up(db):
    queue = JobQueue(db)
    scheduler = Scheduler(db, queue, ScheduleRepository())
    t0 = now()
    scheduler.schedule("refresh:doc", "refresh", {"document_id": "doc"}, every_secs=60, first_run_at=t0)
    assert scheduler.run_due(at=t0 - 1) == []  # not due yet
    [first] = scheduler.run_due(at=t0)
    assert scheduler.run_due(at=t0 + 1) == []  # next run in 60 s
    assert scheduler.run_due(at=t0 + 61) == []  # due, but the first job has not run: skipped
    job = queue.claim()
    assert (job.id, job.kind, job.payload) == (first, "refresh", {"document_id": "doc"})
    queue.finish(job.id)
    [second] = scheduler.run_due(at=t0 + 122)
    assert second != first and scheduler.get("refresh:doc").last_job_id == second
    scheduler.unschedule(["refresh:doc"])
    assert scheduler.run_due(at=t0 + 1000) == [] and scheduler.get("refresh:doc") is None


def test_schedulers_of_several_processes_enqueue_each_run_once(tmp_path):
    url = database_url(tmp_path)
    dbs = [open_database(url) for _ in range(4)]
    schedulers = [Scheduler(d, JobQueue(d), ScheduleRepository()) for d in dbs]
    t0 = now()
    for n in range(20):
        schedulers[0].schedule(f"s{n}", "tick", {"n": n}, every_secs=3600, first_run_at=t0)
    results: list[list[int]] = []
    go = threading.Event()

    def run(scheduler: Scheduler) -> None:
        go.wait()
        results.append(scheduler.run_due(at=t0))

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(60)
    enqueued = [job_id for found in results for job_id in found]
    assert len(enqueued) == len(set(enqueued)) == 20
    with dbs[0].read() as tx:
        assert len(job_repository(dbs[0]).statuses(tx, enqueued)) == 20
    for d in dbs:
        d.dispose()


def test_the_worker_pool_runs_due_schedules(db):
    ran = threading.Event()
    queue = JobQueue(db, JobKinds(JobKind("tick", lambda batch, context: ran.set())))
    scheduler = Scheduler(db, queue, ScheduleRepository())
    scheduler.schedule("tick", "tick", {}, every_secs=3600, first_run_at=now())
    pool = WorkerPool(queue, queue.kinds, poll_secs=0.05, scheduler=scheduler, schedule_secs=0.05)
    pool.start()
    try:
        assert ran.wait(30)
    finally:
        pool.stop()

"""The job queue with several processes on one database: owners, heartbeats, requeue, attempts.

Real databases (SQLite files; PostgreSQL with KB_TEST_DATABASE=postgresql) and real processes: a job's owner is alive or dead because a process
really is (or was killed), and concurrent claims come from separate processes and threads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from helpers import REPO, database_url, make_kb
from kb.jobs import HOST, MAX_ATTEMPTS, JobKind, JobKinds, JobQueue, WorkerPool, pid_alive, process_owner, run_batch
from kb.storage import Database, now, open_database
from kb.storage.schema import jobs

# Claims one job in a separate process, then dies as a crashing indexer would: SIGKILL, no cleanup.
CRASHER = """
import os, signal, sys
from kb.jobs import JobQueue
from kb.storage import open_database
assert JobQueue(open_database(sys.argv[1])).claim() is not None
os.kill(os.getpid(), signal.SIGKILL)
"""

# Two threads claiming until the queue is empty, once ready (file argv[2]/<pid>) and told to go (argv[2]/go).
CLAIMER = """
import json, os, sys, threading, time
from pathlib import Path
from kb.jobs import JobQueue
from kb.storage import open_database
queue = JobQueue(open_database(sys.argv[1]))
(Path(sys.argv[2]) / str(os.getpid())).touch()
go = Path(sys.argv[2]) / "go"
claimed = []
def take():
    while not go.exists():
        time.sleep(0.005)
    while (job := queue.claim()) is not None:
        claimed.append(job.id)
threads = [threading.Thread(target=take) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"pid": os.getpid(), "ids": claimed}))
"""


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(database_url(tmp_path))  # SQLite, or PostgreSQL with KB_TEST_DATABASE=postgresql
    yield database
    database.dispose()


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of another process that is alive for the whole test."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def python(code: str, *args: str, check_exit: int | None = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    if check_exit is not None:
        assert done.returncode == check_exit, done.stderr
    return done


def kinds(handler, *names: str, **policy) -> JobKinds:
    """A registry running each of `names` (default "test") with `handler`."""
    return JobKinds(*(JobKind(name, handler, **policy) for name in names or ("test",)))


def add_jobs(queue: JobQueue, count: int = 1) -> list[int]:
    with queue.db.write() as conn:
        return [queue.enqueue(conn, "test", {"n": i}) for i in range(count)]


def job_row(db: Database, job_id: int):
    with db.read() as conn:
        return conn.execute(select(jobs).where(jobs.c.id == job_id)).one()


def set_running(db: Database, job_id: int, owner: str | None, heartbeat_age: float | None = 0.0) -> None:
    """Mark a job running under `owner`, as that owner's claim would (heartbeat `heartbeat_age` s ago)."""
    heartbeat = None if heartbeat_age is None else now() - heartbeat_age
    with db.write() as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == job_id)
            .values(status="running", owner=owner, heartbeat_at=heartbeat, attempts=jobs.c.attempts + 1)
        )


def test_job_of_a_live_process_stays_running(db, live_pid):
    queue = JobQueue(db)
    here, elsewhere = add_jobs(queue, 2)
    set_running(db, here, f"{HOST}:{live_pid}")
    set_running(db, elsewhere, "another-host:12345")  # fresh heartbeat, pid unknowable
    assert queue.requeue_interrupted() == 0
    assert [job_row(db, j).status for j in (here, elsewhere)] == ["running", "running"]
    assert queue.claim() is None


def test_job_of_a_dead_process_is_queued_again(db):
    queue = JobQueue(db)
    [job_id] = add_jobs(queue)
    python(CRASHER, db.url, check_exit=-signal.SIGKILL)
    crashed = job_row(db, job_id)
    assert crashed.status == "running" and crashed.owner.startswith(f"{HOST}:") and crashed.heartbeat_at

    assert queue.requeue_interrupted() == 1
    row = job_row(db, job_id)
    assert (row.status, row.owner, row.heartbeat_at, row.attempts) == ("queued", None, None, 1)
    job = queue.claim()
    assert (job.id, job.attempts) == (job_id, 2)
    assert job_row(db, job_id).owner == process_owner()


def test_owner_pid_liveness(live_pid, monkeypatch):
    assert pid_alive(live_pid) and pid_alive(os.getpid())
    assert not pid_alive(dead_pid())

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # exits, but is not reaped yet
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{zombie.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not pid_alive(zombie.pid)
    finally:
        zombie.wait()

    def not_permitted(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("kb.jobs.owners.os.kill", not_permitted)  # a process of another user
    assert pid_alive(live_pid)


def test_stale_heartbeat_is_queued_again_even_if_the_owner_looks_alive(db, live_pid):
    queue = JobQueue(db, stale_secs=60)
    stale_here, stale_elsewhere, fresh, legacy = add_jobs(queue, 4)
    set_running(db, stale_here, f"{HOST}:{live_pid}", heartbeat_age=61)  # alive but hung
    set_running(db, stale_elsewhere, "another-host:12345", heartbeat_age=61)
    set_running(db, fresh, "another-host:12345", heartbeat_age=59)
    set_running(db, legacy, None, heartbeat_age=None)  # left by a version without owners
    assert queue.requeue_interrupted() == 3
    assert [job_row(db, j).status for j in (stale_here, stale_elsewhere, fresh, legacy)] == [
        "queued", "queued", "running", "queued"
    ]


def test_job_left_by_an_earlier_process_with_this_pid_is_queued_again(db):
    """A restarted container runs the server under the same pid: its own old jobs are not alive."""
    queue = JobQueue(db)
    leftover, mine = add_jobs(queue, 2)
    set_running(db, leftover, process_owner())
    assert queue.claim().id == mine
    assert queue.requeue_interrupted() == 1
    assert (job_row(db, leftover).status, job_row(db, mine).status) == ("queued", "running")
    queue.finish(mine)


def test_concurrent_claims_from_processes_and_threads_never_share_a_job(db, tmp_path):
    queue = JobQueue(db)
    expected = set(add_jobs(queue, 300))
    signals = tmp_path / "signals"
    signals.mkdir()
    go = signals / "go"
    children = [
        subprocess.Popen([sys.executable, "-c", CLAIMER, db.url, str(signals)], cwd=REPO, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    here: list[int] = []

    def take() -> None:
        while not go.exists():
            time.sleep(0.005)
        while (job := queue.claim()) is not None:
            here.append(job.id)

    threads = [threading.Thread(target=take) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(list(signals.iterdir())) < len(children):  # every child ready to claim
            assert time.monotonic() < deadline and all(child.poll() is None for child in children)
            time.sleep(0.02)
        go.touch()
        for thread in threads:
            thread.join(60)
        outputs = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    finally:
        for child in children:
            child.kill()
            child.wait()

    claims = {os.getpid(): here} | {out["pid"]: out["ids"] for out in outputs}
    every = [job_id for ids in claims.values() for job_id in ids]
    assert len(every) == len(set(every)) == len(expected) and set(every) == expected
    assert sum(1 for ids in claims.values() if ids) >= 2  # the claims really were concurrent
    with db.read() as conn:
        owners = dict(conn.execute(select(jobs.c.id, jobs.c.owner)).fetchall())
    assert all(owners[job_id] == f"{HOST}:{pid}" for pid, ids in claims.items() for job_id in ids)


def test_job_interrupted_too_often_ends_failed(db):
    given_up = []
    queue = JobQueue(db, kinds(None, max_attempts=3, on_give_up=lambda job, error: given_up.append((job, error))))
    [job_id] = add_jobs(queue)
    for attempt in range(1, 4):
        python(CRASHER, db.url, check_exit=-signal.SIGKILL)
        assert job_row(db, job_id).attempts == attempt
        assert queue.requeue_interrupted() == (1 if attempt < 3 else 0)
    row = job_row(db, job_id)
    assert row.status == "failed" and "gave up after 3 attempts" in row.error
    [(job, error)] = given_up
    assert (job.id, job.payload, error) == (job_id, {"n": 0}, row.error)
    assert queue.claim() is None


def test_index_whose_job_keeps_crashing_ends_failed_with_the_message(tmp_path):
    """The service's give-up callback: the RAG index the job was building ends `failed`."""
    kb = make_kb(tmp_path)
    try:
        workspace, _ = kb.workspaces.create("w")
        doc = kb.documents.add_text(workspace, "A document whose indexing kills the process every time. " * 20, "poison")
        for _ in range(MAX_ATTEMPTS):
            assert kb.rag_indexes.list(workspace, doc.id)[0].status == "created"  # never run here
            python(CRASHER, kb.db.url, check_exit=-signal.SIGKILL)
            kb.queue.requeue_interrupted()
        [index] = kb.rag_indexes.list(workspace, doc.id)
        assert index.status == "failed" and f"gave up after {MAX_ATTEMPTS} attempts" in index.error
        with kb.db.read() as conn:
            assert conn.execute(select(jobs.c.status)).scalars().all() == ["failed"]
    finally:
        kb.close()


def test_running_job_keeps_its_heartbeat_fresh_and_the_heartbeat_thread_stops(db):
    queue = JobQueue(db, heartbeat_secs=0.05)
    [job_id] = add_jobs(queue)
    beats = []

    def handler(batch, context) -> None:
        [job] = batch
        for _ in range(8):
            beats.append(job_row(db, job.id).heartbeat_at)
            time.sleep(0.05)

    run_batch(queue, JobKind("test", handler), [queue.claim()])
    assert len(set(beats)) >= 3 and beats == sorted(beats)
    assert job_row(db, job_id).status == "done"
    assert not [t for t in threading.enumerate() if t.name.startswith("kb-heartbeat")]


def test_process_that_lost_its_job_does_not_finish_it(db):
    """Taken over after looking dead (e.g. stopped for minutes): the new owner's run is the one that counts."""
    queue = JobQueue(db)
    job = queue.claim(add_jobs(queue)[0])
    set_running(db, job.id, "another-host:12345")
    assert not queue.heartbeat(job.id)
    queue.finish(job.id, error="late")
    row = job_row(db, job.id)
    assert (row.status, row.owner, row.error) == ("running", "another-host:12345", None)


def test_a_batch_of_jobs_is_refreshed_and_finished_together_leaving_taken_over_ones_alone(db):
    queue = JobQueue(db)
    ids = add_jobs(queue, 4)
    first = queue.claim(ids[0])
    claimed = [first] + queue.claim_more(first, 3)
    assert [job.id for job in claimed] == ids
    set_running(db, ids[2], "another-host:12345", heartbeat_age=5)  # taken over meanwhile
    before = job_row(db, ids[0]).heartbeat_at
    time.sleep(0.01)
    assert queue.heartbeat_many(ids) == [ids[2]]  # the one that is no longer this process's
    assert job_row(db, ids[0]).heartbeat_at > before
    queue.finish_many(ids)
    rows = [job_row(db, job_id) for job_id in ids]
    assert [(r.status, r.error) for r in rows] == [("done", None), ("done", None), ("running", None), ("done", None)]
    assert rows[2].owner == "another-host:12345"
    assert queue.claim() is None  # nothing was queued again
    failed = add_jobs(queue, 2)
    queue.claim(failed[0]), queue.claim(failed[1])
    queue.finish_many(failed, error="disk full")
    assert {(job_row(db, j).status, job_row(db, j).error) for j in failed} == {("failed", "disk full")}


def test_worker_pool_periodically_picks_up_jobs_of_dead_owners(db, live_pid):
    """No restart needed: a running pool takes over the job of a `kb ingest` that crashed."""
    queue = JobQueue(db)
    crashed, other = add_jobs(queue, 2)
    set_running(db, other, f"{HOST}:{live_pid}")
    python(CRASHER, db.url, check_exit=-signal.SIGKILL)
    ran = []
    pool = WorkerPool(queue, kinds(lambda batch, context: ran.extend(job.id for job in batch)), poll_secs=0.05, reap_secs=0.2)
    pool.start()
    try:
        deadline = time.monotonic() + 30
        while queue.status(crashed) != "done":
            assert time.monotonic() < deadline, job_row(db, crashed)
            time.sleep(0.05)
    finally:
        pool.stop()
    assert ran == [crashed] and queue.status(other) == "running"
    assert not [t for t in threading.enumerate() if t.name.startswith(("kb-worker", "kb-job-reaper"))]


def test_pool_stopped_politely_gives_back_the_job_it_could_not_finish(db):
    """A restart is not a crash: the job is queued again and the attempt does not count."""
    queue = JobQueue(db)
    [job_id] = add_jobs(queue)
    started, release = threading.Event(), threading.Event()

    def slow(batch, context) -> None:
        started.set()
        release.wait(30)

    pool = WorkerPool(queue, kinds(slow), poll_secs=0.05)
    pool.start()
    try:
        assert started.wait(30)
        pool.stop(timeout=0.2)
        row = job_row(db, job_id)
        assert (row.status, row.owner, row.attempts) == ("queued", None, 0)
    finally:
        release.set()
    deadline = time.monotonic() + 30
    while [t for t in threading.enumerate() if t.name.startswith(("kb-worker", "kb-heartbeat"))]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job_row(db, job_id).status == "queued"  # the late end changed nothing
    assert queue.claim().id == job_id


def test_a_worker_takes_queued_jobs_of_one_kind_together(db):
    """Many small documents are indexed in one embedding call: the worker hands them over at once."""
    queue = JobQueue(db)
    with db.write() as conn:
        ids = [queue.enqueue(conn, "index", {"n": n}) for n in range(5)]
        other = queue.enqueue(conn, "other", {})
    batches: list[list[int]] = []
    record = lambda batch, context: batches.append([job.id for job in batch])  # noqa: E731
    pool = WorkerPool(queue, kinds(record, "index", "other", batch_size=4), poll_secs=0.05)
    pool.start()
    try:
        deadline = time.monotonic() + 30
        while any(queue.status(i) != "done" for i in [*ids, other]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        pool.stop()
    assert batches == [ids[:4], ids[4:], [other]]  # oldest first, at most 4, never mixed kinds


def test_a_workspace_that_queues_many_jobs_delays_another_by_one_of_its_own(db):
    """Jobs of different tenants take turns: B's job, queued after A's twenty, is claimed second,
    and A's jobs keep their own order. Service jobs (no tenant) keep first-come order."""
    queue = JobQueue(db)
    with db.write() as conn:
        a = [queue.enqueue(conn, "test", {"n": n}, tenant="ws_a") for n in range(20)]
    with db.write() as conn:
        b = [queue.enqueue(conn, "test", {"n": n}, tenant="ws_b") for n in range(2)]
    claimed = []
    while (job := queue.claim()) is not None:
        claimed.append(job.id)
    assert claimed[:4] == [a[0], b[0], a[1], b[1]]
    assert claimed[4:] == a[2:]
    assert {job_row(db, i).tenant for i in a} == {"ws_a"}


def test_indexing_jobs_of_uploads_take_turns_across_workspaces(tmp_path):
    """Through the real upload path: index jobs carry their workspace; a worker's batch (as
    run_one_batch claims it) holds one workspace's jobs only, and the next claim goes to the other
    workspace's job although the flooding one queued eleven more before it."""
    kb = make_kb(tmp_path / "data", workers=0)
    try:
        a, _ = kb.workspaces.create("flooder")
        b, _ = kb.workspaces.create("neighbour")
        for n in range(12):
            kb.documents.add_text(a, f"Flood document number {n} about lighthouses and harbours. " * 20, f"a{n}")
        mine = kb.documents.add_text(b, "The neighbour's one document about sourdough starters. " * 20, "b")
        first = kb.queue.claim()
        batch = [first] + kb.queue.claim_more(first, 3)
        assert [job.tenant for job in batch] == [a.id] * 4
        assert {job_row(kb.db, job.id).tenant for job in batch} == {a.id}
        turn = kb.queue.claim()
        assert turn.tenant == b.id and kb.queue.claim_more(turn, 3) == []
        assert turn.payload["rag_index_id"] in {index.id for index in kb.rag_indexes.list(b, mine.id)}
        assert kb.queue.claim().tenant == a.id  # then A's again
    finally:
        kb.close()

"""PostgreSQL as the shared metadata store and job queue of several processes (issue 16).

Always on a real PostgreSQL (tests/postgres.py starts a throw-away cluster, installing the Debian
package when it is missing), whatever KB_TEST_DATABASE says: quota reservations from two
processes racing for the last bytes; job claims from two processes never sharing a job; full-text
search whose scores are the workspace's own (and BM25 as on SQLite); and the processes of a
scaled-out kb: `kb serve --workers 0` and `kb worker` on one database and one data dir, a worker
killed with SIGKILL in the middle of a job loses it to another once its lease ran out, a worker
stopped with SIGTERM gives its job back, and the job completes without a duplicated chunk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

import postgres
from helpers import CORPUS, KB, REPO, Process, kb_env, make_kb, start_api, wait_index_status
from kb.jobs import HOST, JobQueue
from kb.storage import Database, open_database
from kb.storage.postgres.fulltext import TsvectorFullText, segments, tokens
from kb.storage.schema import chunks, jobs, rag_indexes
from kb.storage.sqlite.fulltext import Fts5FullText



@pytest.fixture
def pg_url() -> str:
    return postgres.fresh_database_url()


def _go(signals: Path, children: list[subprocess.Popen], name: str = "go") -> None:
    """Wait until every child has said it is ready (a file named by its pid), then tell them to go."""
    deadline = time.monotonic() + 120
    while len([p for p in signals.iterdir() if p.name.isdigit()]) < len(children):
        assert time.monotonic() < deadline, "children did not get ready"
        for child in children:
            assert child.poll() is None, child.communicate()[1]
        time.sleep(0.02)
    (signals / name).touch()


# --- quotas ----------------------------------------------------------------------------------

# Opens the knowledge base on the shared database, then in each round (file argv[4]/go<round>)
# tries to store one document; prints {"round": n, "stored": bool} per round.
RACER = r"""
import json, os, sys, time
from pathlib import Path
from kb.errors import QuotaExceeded
from kb.knowledge_base import KnowledgeBase
from kb.settings import load_settings
url, data_dir, workspace_id, signals, rounds, size = sys.argv[1:7]
kb = KnowledgeBase(load_settings(environ={}, data_dir=data_dir, database_url=url, workers=0,
                                 tiers_file=os.environ["KB_TIERS_FILE"], model_cache_dir=os.environ["KB_MODEL_CACHE_DIR"]))
ws = kb.workspaces.get(workspace_id)
signals = Path(signals)
(signals / str(os.getpid())).touch()
for n in range(int(rounds)):
    go = signals / f"go{n}"
    while not go.exists():
        time.sleep(0.001)
    try:
        kb.documents.add_text(ws, ("x" * (int(size) - 12)) + f" {os.getpid():>10} ", f"racer {os.getpid()} {n}")
        stored = True
    except QuotaExceeded:
        stored = False
    print(json.dumps({"round": n, "stored": stored}), flush=True)
kb.close()
"""


def test_uploads_from_two_processes_racing_for_the_last_bytes_never_both_succeed(tmp_path, pg_url):
    size, rounds = 4_000, 6
    kb = make_kb(tmp_path / "data", database_url=pg_url, workers=0)
    try:
        workspace, _ = kb.workspaces.create("racing")
        signals = tmp_path / "signals"
        signals.mkdir()
        children = [
            subprocess.Popen([sys.executable, "-c", RACER, pg_url, str(tmp_path / "data"), workspace.id, str(signals),
                              str(rounds), str(size)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        try:
            outcomes = []
            for n in range(rounds):
                used = kb.quotas.limits_and_usage(workspace.id)[1].kb_bytes
                assert used == n * size
                kb.workspaces.update(workspace.id, kb_max_bytes=used + size + size // 2)  # room for one more only
                _go(signals, children, f"go{n}")
                outcomes.append([json.loads(child.stdout.readline()) for child in children])
            for child in children:
                assert child.wait(60) == 0, child.stderr.read()
        finally:
            for child in children:
                child.kill()
                child.wait()
        for n, pair in enumerate(outcomes):
            assert [o["round"] for o in pair] == [n, n]
            assert sorted(o["stored"] for o in pair) == [False, True], (n, pair)  # exactly one, every round
        listed = kb.documents.list(workspace).documents
        assert len(listed) == rounds
        assert kb.quotas.limits_and_usage(workspace.id)[1].kb_bytes == rounds * size
    finally:
        kb.close()


# --- job claims ------------------------------------------------------------------------------

# Two threads claiming batches (one job, then up to 4 more of its kind) until the queue is empty.
CLAIMER = r"""
import json, os, sys, threading, time
from pathlib import Path
from kb.jobs import JobQueue
from kb.storage import open_database
queue = JobQueue(open_database(sys.argv[1]))
signals = Path(sys.argv[2])
(signals / str(os.getpid())).touch()
claimed = []
def take():
    while not (signals / "go").exists():
        time.sleep(0.002)
    while (job := queue.claim()) is not None:
        claimed.extend([job.id] + [j.id for j in queue.claim_more(job, 4)])
threads = [threading.Thread(target=take) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"pid": os.getpid(), "ids": claimed}))
"""


def test_a_claim_marks_exactly_the_jobs_it_returns(pg_url):
    """Regression: as `IN (subquery … LIMIT 1 FOR UPDATE SKIP LOCKED)` a claim of one job marked
    every queued job running (PostgreSQL ran the subquery once per row) and returned them all."""
    db = open_database(pg_url)
    try:
        queue = JobQueue(db)
        with db.write() as tx:
            ids = [queue.enqueue(tx, "test", {"n": i}, tenant="ws") for i in range(6)]
        first = queue.claim()
        assert first.id == ids[0]
        assert [job.id for job in queue.claim_more(first, 2)] == ids[1:3]
        with db.read() as tx:
            statuses = dict(tx.execute(select(jobs.c.id, jobs.c.status)).fetchall())
        assert statuses == {**{i: "running" for i in ids[:3]}, **{i: "queued" for i in ids[3:]}}
    finally:
        db.dispose()


def test_claims_from_two_processes_never_share_a_job(tmp_path, pg_url):
    db = open_database(pg_url)
    try:
        queue = JobQueue(db)
        with db.write() as tx:
            expected = {queue.enqueue(tx, "test", {"n": i}, tenant=f"ws{i % 3}") for i in range(400)}
        signals = tmp_path / "signals"
        signals.mkdir()
        children = [subprocess.Popen([sys.executable, "-c", CLAIMER, pg_url, str(signals)], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        try:
            _go(signals, children)
            outputs = [json.loads(child.communicate(timeout=120)[0]) for child in children]
        finally:
            for child in children:
                child.kill()
                child.wait()
        every = [job_id for out in outputs for job_id in out["ids"]]
        assert len(every) == len(set(every)) == len(expected) and set(every) == expected
        assert all(out["ids"] for out in outputs)  # both processes claimed: the claims were concurrent
        with db.read() as tx:
            rows = dict(tx.execute(select(jobs.c.id, jobs.c.owner).where(jobs.c.status == "running")).fetchall())
        # each claim returned exactly the jobs it marked: every job is owned by the process that got it
        assert {job_id: f"{HOST}:{out['pid']}" for out in outputs for job_id in out["ids"]} == rows
    finally:
        db.dispose()


# --- full-text search ------------------------------------------------------------------------

B_NOTES = [
    "The Zorblax pump needs its gasket replaced every 400 operating hours to avoid leaks in the circuit.",
    "A condensing boiler recovers heat from flue gases; the Zorblax valve keeps the pressure steady.",
    "Tomatoes need six hours of sun, regular watering and a stake to climb as they grow.",
    "The library opens at nine and closes at five on weekdays.",
    "Bring a passport and two photographs to renew an identity card.",
    "Crème brûlée: the café's crème is caramelised à la minute. Crème!",
]
A_NOTES = [f"Zorblax pump {i}: the gasket and the valve of the Zorblax boiler were replaced; tomatoes and sun. "
           * (1 + i % 3) for i in range(10)]
QUERIES = [["zorblax", "gasket"], ["pump", "leaks"], ["tomatoes", "sun", "watering"], ["creme"], ["café"], ["nothing"]]


def _indexed(index, url: str, rows: list[tuple[str, str, str]]) -> Database:
    db = open_database(url)
    with db.write() as tx:
        for workspace_id, document_id, content in rows:
            index.add(tx, workspace_id, document_id, content)
    return db


def _search(index, db: Database, workspace_id: str, terms: list[str], **options) -> list[tuple[str, float, str]]:
    with db.read() as tx:
        return index.search(tx, workspace_id, terms, limit=100, **options)


def test_full_text_scores_are_the_workspace_own_and_bm25_as_on_sqlite(tmp_path):
    b_rows = [("ws_b", f"b{i}", text) for i, text in enumerate(B_NOTES)]
    a_rows = [("ws_a", f"a{i}", text) for i, text in enumerate(A_NOTES)]
    pg = TsvectorFullText()
    alone = _indexed(pg, postgres.fresh_database_url(), b_rows)
    shared = _indexed(pg, postgres.fresh_database_url(), a_rows + b_rows)
    sqlite = _indexed(Fts5FullText(), f"sqlite:///{tmp_path / 'kb.sqlite3'}", b_rows)
    try:
        for terms in QUERIES:
            b_alone = _search(pg, alone, "ws_b", terms)
            assert _search(pg, shared, "ws_b", terms) == b_alone  # A's documents change nothing of B's
            fts5 = _search(Fts5FullText(), sqlite, "ws_b", terms)
            assert [d for d, _, _ in b_alone] == [d for d, _, _ in fts5], terms
            assert [s for _, s, _ in b_alone] == pytest.approx([s for _, s, _ in fts5], abs=1e-5), terms
        assert _search(pg, shared, "ws_b", ["zorblax", "gasket"])[0][0] == "b0"
        assert {d for d, _, _ in _search(pg, shared, "ws_a", ["zorblax"])} == {d for _, d, _ in a_rows}
        assert _search(pg, shared, "ws_nobody", ["zorblax"]) == []
        assert [d for d, _, _ in _search(pg, shared, "ws_b", ["zorblax"], document_ids=["b1", "a1"])] == ["b1"]
        # removing A's documents leaves B as it was; removing B's leaves nothing to find
        with shared.write() as tx:
            pg.remove(tx, "ws_a", [d for _, d, _ in a_rows])
            pg.replace(tx, "ws_b", "b2", "Cucumbers grow on vines.")
        assert _search(pg, shared, "ws_a", ["zorblax"]) == []
        assert [d for d, _, _ in _search(pg, shared, "ws_b", ["cucumbers"])] == ["b2"]
        assert _search(pg, shared, "ws_b", ["tomatoes"]) == []
    finally:
        for db in (alone, shared, sqlite):
            db.dispose()


def test_long_documents_are_stored_in_segments_and_counted_whole(pg_url):
    """A tsvector keeps positions up to 16,383 and 1 MB: a long document is split, its words counted whole."""
    words = [f"w{i % 5000}" for i in range(50_000)] + ["needle"]
    parts = list(segments(words))
    assert len(parts) == 4 and sum(count for _, count in parts) == len(words)
    pg = TsvectorFullText()
    db = _indexed(pg, pg_url, [("ws", "long", " ".join(words)), ("ws", "short", "w1 w2 haystack")])
    try:
        found = _search(pg, db, "ws", ["needle"])
        assert [d for d, _, _ in found] == ["long"] and found[0][1] > 0
        assert len(found[0][2]) == 100_000  # the text kept for snippets: its start
        assert tokens("Crème BRÛLÉE, e-mail_x 42") == ["creme", "brulee", "e", "mail", "x", "42"]
    finally:
        db.dispose()


# --- processes: kb serve --workers 0 and kb worker -------------------------------------------


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def test_api_process_and_worker_process_share_the_database_and_data_dir(tmp_path, pg_url, processes):
    data_dir = tmp_path / "data"
    # short leases, so that the test sees a take-over soon; the worker's threads: one
    env = kb_env(pg_url, KB_JOB_HEARTBEAT_SECS="1", KB_JOB_LEASE_SECS="4", KB_JOB_REAP_SECS="1")
    api, url, api_key = start_api(data_dir, env, tmp_path / "api.log")
    processes.append(api)
    first = Process(["worker", "--data-dir", str(data_dir)], env, tmp_path / "worker1.log")
    processes.append(first)
    first.wait_for("kb worker: 1 job thread(s) on postgresql")
    client = httpx.Client(base_url=url, headers={"xi-api-key": api_key}, timeout=120)

    # 1. an upload through the API is indexed by the worker and retrievable through the API
    text = "The blue whale feeds almost only on krill and can weigh two hundred tonnes. " * 3
    small = client.post(f"{KB}/text", json={"text": text, "name": "whales"}).json()["id"]
    assert wait_index_status(client, small, lambda i: i["status"] in ("succeeded", "failed"))["status"] == "succeeded"
    found = client.post(f"{KB}/rag/retrieve", json={"query": "what do whales eat"}).json()["chunks"]
    assert found and found[0]["document_id"] == small
    assert client.get(f"{KB}/search", params={"query": "krill"}).json()["results"][0]["document"]["id"] == small

    # 2. a second worker; the worker running a long job is killed (SIGKILL) in the middle of it,
    # as if on another host (its pid means nothing here: only its lease tells), and the other one
    # takes the job over once the lease has run out, and completes it without a duplicated chunk
    second = Process(["worker", "--data-dir", str(data_dir)], env, tmp_path / "worker2.log")
    processes.append(second)
    second.wait_for("kb worker: 1 job thread(s) on postgresql")
    workers = {first.pid: first, second.pid: second}
    big = (CORPUS / "pdf" / "GeoTopo-komprimiert.pdf").read_bytes()
    document = client.post(f"{KB}/file", files={"file": ("GeoTopo.pdf", big, "application/pdf")}).json()["id"]
    wait_index_status(client, document, lambda i: i["status"] == "processing" and i["progress_percentage"] > 5)
    db = Database(pg_url)
    try:
        with db.read() as tx:
            job = tx.execute(select(jobs.c.id, jobs.c.status, jobs.c.owner).where(jobs.c.kind == "index_document")
                             .order_by(jobs.c.id.desc()).limit(1)).one()
        assert job.status == "running" and job.owner.startswith(f"{HOST}:")
        victim = workers[int(job.owner.rpartition(":")[2])]
        survivor = next(w for w in workers.values() if w is not victim)
        os.killpg(victim.pid, signal.SIGSTOP)  # frozen: no more heartbeats, its pid still alive
        with db.write() as tx:
            tx.execute(update(jobs).where(jobs.c.id == job.id).values(owner=f"another-host:{victim.pid}"))
        victim.kill()
        with db.read() as tx:
            lease_ends = tx.execute(select(jobs.c.heartbeat_at).where(jobs.c.id == job.id)).scalar_one() + 4
        deadline = time.monotonic() + 120
        while True:
            with db.read() as tx:
                owner = tx.execute(select(jobs.c.owner).where(jobs.c.id == job.id)).scalar_one()
            if owner == f"{HOST}:{survivor.pid}":
                taken_over = time.time()
                break
            assert time.monotonic() < deadline, survivor.output()
            time.sleep(0.05)
        assert taken_over >= lease_ends  # not before the lease ran out

        # 3. SIGTERM stops the survivor politely in the middle of the job: it exits 0 and gives the
        # job back (queued, this attempt not counted); a third worker completes it
        time.sleep(2)
        survivor.process.send_signal(signal.SIGTERM)
        assert survivor.process.wait(60) == 0, survivor.output()
        assert "kb worker: stopping" in survivor.output()
        with db.read() as tx:
            given_back = tx.execute(select(jobs.c.status, jobs.c.owner, jobs.c.attempts).where(jobs.c.id == job.id)).one()
        assert (given_back.status, given_back.owner, given_back.attempts) == ("queued", None, 1)
        third = Process(["worker", "--data-dir", str(data_dir)], env, tmp_path / "worker3.log")
        processes.append(third)
        done = wait_index_status(client, document, lambda i: i["status"] in ("succeeded", "failed"), timeout=600)
        assert done["status"] == "succeeded", done
        # the index is published before its job is marked done (the next transaction): wait for that one
        deadline = time.monotonic() + 60
        while True:
            with db.read() as tx:
                ended = tx.execute(select(jobs.c.status, jobs.c.owner, jobs.c.attempts).where(jobs.c.id == job.id)).one()
            if ended.status != "running" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert (ended.status, ended.owner, ended.attempts) == ("done", f"{HOST}:{third.pid}", 2)
        with db.read() as tx:
            index_id = tx.execute(select(rag_indexes.c.id).where(rag_indexes.c.document_id == document)).scalar_one()
            count, ordinals, distinct = tx.execute(
                select(func.count(), func.count(func.distinct(chunks.c.ordinal)), func.max(chunks.c.ordinal))
                .where(chunks.c.rag_index_id == index_id)
            ).one()
        assert count == ordinals == distinct + 1 > 50  # every chunk once, ordinals 0..n-1
        hits = client.post(f"{KB}/rag/retrieve", json={"query": "Was ist ein topologischer Raum?"}).json()["chunks"]
        assert hits and hits[0]["document_id"] == document
        assert third.stop() == 0, third.output()
    finally:
        db.dispose()
        client.close()

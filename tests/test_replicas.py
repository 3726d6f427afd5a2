"""Two API replicas and two workers as real processes on loopback, sharing PostgreSQL and a data dir (issue 16).

One throw-away PostgreSQL cluster (tests/postgres.py) and one set of processes for the module: two
`kb serve --workers 0` on fixed ports and two `kb worker`, all with the same KB_DATABASE_URL and
--data-dir, and short job leases (JOB_TIMINGS). Workspaces are made with the `kb workspace` CLI on
the same database. Proven here: an upload through replica A, once a worker indexed it, is retrieved
and listed through replica B with the same chunks and distances as through A; uploads through both
replicas racing for the last bytes of a quota never both succeed; a `kb reindex` run from a third
process is served by both replicas without a restart (they read the workspace's generation from the
database on each retrieval and load the new generation's files); a worker SIGKILLed while it embeds
a batch of several documents loses the batch to the other worker, which completes it with every
chunk stored once and retrieval identical to an uninterrupted run; a worker frozen (SIGSTOP) past
its lease loses its batch the same way and, woken, publishes nothing over the survivor's; and
replica A, SIGKILLed and then SIGTERMed while clients upload and retrieve through it, loses no
upload it answered 200, stores none twice (clients retry cut requests with the same
Idempotency-Key), and all of them get indexed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy import text as sql

import postgres
from helpers import CORPUS, KB, KB_BIN, TERMINAL_STATUSES, BackgroundThreads, Process, free_port, kb_env, make_kb, wait_index_status
from kb.jobs import HOST
from kb.storage import Database
from kb.storage.schema import chunks, documents, jobs, rag_indexes, vector_generations

NOTES = {
    "whales": "The blue whale feeds almost only on krill and can weigh two hundred tonnes. "
              "Humpback whales sing long songs during the breeding season in warm waters. " * 3,
    "boilers": "A condensing boiler recovers heat from the flue gases; its pressure should stay between "
               "one and two bar, and the expansion vessel is checked once a year. " * 3,
}
QUERIES = ["what do whales eat", "how heavy is a blue whale", "boiler pressure", "expansion vessel check"]


# Short leases, so a worker's jobs change hands within seconds of its death (on one host the
# survivor also sees the dead pid at its next reap); the heartbeat stays well inside the lease.
JOB_TIMINGS = {"KB_JOB_HEARTBEAT_SECS": "1", "KB_JOB_LEASE_SECS": "10", "KB_JOB_REAP_SECS": "1"}
WORKER_READY = "kb worker: 1 job thread(s) on postgresql"


@dataclass
class Setup:
    url: str
    data_dir: Path
    env: dict[str, str]
    replicas: list[str]  # base URLs of replica A and replica B
    logs: Path
    ports: list[int]  # of replica A and replica B
    current: dict[str, Process] = field(default_factory=dict)  # "replica a", "replica b", "worker 1", "worker 2"
    started: list[Process] = field(default_factory=list)  # every process started, stopped at the end

    def cli(self, *args: str) -> dict:
        """A `kb` command from a process of its own, on the same database and data dir; its JSON output."""
        done = subprocess.run([str(KB_BIN), *args, "--data-dir", str(self.data_dir)], env=self.env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:  # a report after progress lines: the last line
            return json.loads(done.stdout.strip().splitlines()[-1])

    def clients(self, api_key: str) -> list[httpx.Client]:
        return [httpx.Client(base_url=url, headers={"xi-api-key": api_key}, timeout=120) for url in self.replicas]

    def start(self, name: str, args: list[str]) -> Process:
        """A `kb` process, now the current one under `name` (a replacement after a kill or a restart)."""
        stem = name.replace(" ", "_")
        process = Process(args, self.env, self.logs / f"{stem}.{len(list(self.logs.glob(f'{stem}.*.log')))}.log")
        self.started.append(process)
        self.current[name] = process
        return process

    def start_replica(self, i: int) -> Process:
        """Replica A (0) or B (1) on its port, once it answers /health."""
        process = self.start(f"replica {'ab'[i]}", ["serve", "--data-dir", str(self.data_dir), "--port",
                                                     str(self.ports[i]), "--workers", "0"])
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{self.replicas[i]}/health", timeout=5).status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            assert process.process.poll() is None, process.output()
            assert time.monotonic() < deadline, process.output()
            time.sleep(0.2)

    def start_worker(self, name: str) -> Process:
        return self.start(name, ["worker", "--data-dir", str(self.data_dir)])

    def db(self) -> Database:
        return Database(self.url)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[Setup]:
    url = postgres.fresh_database_url_or_skip()
    root = tmp_path_factory.mktemp("replicas")
    ports = [free_port(), free_port()]
    setup = Setup(url, root / "data", kb_env(url, **JOB_TIMINGS), [f"http://127.0.0.1:{p}" for p in ports], root,
                  ports)
    try:
        setup.start_replica(0)  # first alone: it migrates the schema and makes the default workspace
        workers = [setup.start_worker(f"worker {n}") for n in (1, 2)]
        setup.start_replica(1)
        for worker in workers:
            worker.wait_for(WORKER_READY)
        yield setup
    finally:
        for process in setup.started:
            process.stop()


@pytest.fixture(scope="module")
def shared(setup: Setup) -> Iterator[tuple[str, list[httpx.Client], dict[str, str]]]:
    """A workspace with two documents uploaded through replica A and indexed by the worker."""
    made = setup.cli("workspace", "create", "shared")
    clients = setup.clients(made["api_key"])
    a = clients[0]
    ids = {}
    for name, text in NOTES.items():
        response = a.post(f"{KB}/text", json={"text": text, "name": name})
        assert response.status_code == 200, response.text
        ids[name] = response.json()["id"]
    for document_id in ids.values():
        assert wait_index_status(a, document_id, lambda i: i["status"] in ("succeeded", "failed"))["status"] == "succeeded"
    yield made["workspace_id"], clients, ids
    for client in clients:
        client.close()


def _retrieve(client: httpx.Client, query: str) -> list[tuple[str, str, float, str]]:
    response = client.post(f"{KB}/rag/retrieve", json={"query": query})
    assert response.status_code == 200, response.text
    return [(c["document_id"], c["chunk_id"], c["vector_distance"], c["text"]) for c in response.json()["chunks"]]


def _answers(clients: list[httpx.Client]) -> list[list[list[tuple[str, str, float, str]]]]:
    return [[_retrieve(client, query) for query in QUERIES] for client in clients]


def test_an_upload_through_replica_a_is_retrieved_and_listed_through_replica_b(shared):
    _, (a, b), ids = shared
    through_a, through_b = _answers([a, b])
    assert through_b == through_a  # same chunks, same distances, same order
    assert through_b[0][0][0] == ids["whales"] and through_b[2][0][0] == ids["boilers"]
    listed = b.get(KB, params={"page_size": 100})
    assert listed.status_code == 200, listed.text
    assert {d["id"] for d in listed.json()["documents"]} == set(ids.values())
    # and the other way round: B's upload, indexed by the worker, is found through A
    text = "Tomatoes need six hours of sun, regular watering and a stake to climb as they grow. " * 3
    tomato = b.post(f"{KB}/text", json={"text": text, "name": "tomatoes"}).json()["id"]
    try:
        assert wait_index_status(a, tomato, lambda i: i["status"] in ("succeeded", "failed"))["status"] == "succeeded"
        hits_a, hits_b = _retrieve(a, "how to grow tomatoes"), _retrieve(b, "how to grow tomatoes")
        assert hits_a == hits_b and hits_a[0][0] == tomato
    finally:
        assert b.delete(f"{KB}/{tomato}").status_code == 200


def test_uploads_through_two_replicas_racing_for_the_last_bytes_never_both_succeed(setup: Setup):
    size, rounds = 3_000, 8
    limit = size + size // 2  # room for one upload, never two
    made = setup.cli("workspace", "create", "tight", "--kb-max-bytes", str(limit))
    assert setup.cli("workspace", "show", "tight")["limits"]["kb_max_bytes"] == limit
    clients = setup.clients(made["api_key"])
    kb = make_kb(setup.data_dir, database_url=setup.url, workers=0)
    try:
        for n in range(rounds):
            barrier = threading.Barrier(2)
            results: list[httpx.Response | None] = [None, None]

            def upload(i: int) -> None:
                text = (f"round {n} replica {'ab'[i]} " + "quota race " * size)[:size]
                barrier.wait()
                results[i] = clients[i].post(f"{KB}/text", json={"text": text, "name": f"race {n} {'ab'[i]}"})

            threads = [threading.Thread(target=upload, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            statuses = sorted(r.status_code for r in results)
            assert statuses == [200, 413], [r.text for r in results]
            loser = next(r for r in results if r.status_code == 413)
            assert loser.json()["detail"]["status"] == "quota_exceeded"
            winner = next(r for r in results if r.status_code == 200).json()["id"]
            _, usage = kb.quotas.limits_and_usage(made["workspace_id"])
            assert usage.documents == 1 and size <= usage.kb_bytes <= limit
            # free the bytes for the next round (through the other replica than the winner's, half the time)
            assert clients[n % 2].delete(f"{KB}/{winner}").status_code == 200
            _, usage = kb.quotas.limits_and_usage(made["workspace_id"])
            assert usage.documents == 0 and usage.kb_bytes == 0
    finally:
        kb.close()
        for client in clients:
            client.close()


def _generations(setup: Setup, workspace_id: str) -> dict[str, int]:
    db = Database(setup.url)
    try:
        with db.read() as tx:
            rows = tx.execute(select(vector_generations.c.model, vector_generations.c.generation)
                              .where(vector_generations.c.workspace_id == workspace_id)).fetchall()
        return dict(rows)
    finally:
        db.dispose()


def _index_files(setup: Setup, workspace_id: str) -> set[str]:
    return {p.name for p in setup.data_dir.rglob("*") if p.parent.name == workspace_id and ".g" in p.name}


def test_a_reindex_from_a_third_process_is_served_by_both_replicas_without_a_restart(setup: Setup, shared):
    workspace_id, (a, b), ids = shared
    before = _answers([a, b])
    assert before[0] == before[1]
    generations = _generations(setup, workspace_id)
    assert generations and all(g > 0 for g in generations.values())

    report = setup.cli("reindex", "--workspace", "shared")
    assert report["workspace_id"] == workspace_id and sum(report["vectors"].values()) > 0

    # the reindex published a new generation in the database, with its files, and removed the old ones
    after_generations = _generations(setup, workspace_id)
    assert set(after_generations) == set(generations)
    assert all(after_generations[m] == generations[m] + 1 for m in generations), (generations, after_generations)
    files = _index_files(setup, workspace_id)
    # the new generation's files are written; older ones stay KB_INDEX_FILE_GRACE_SECS for readers elsewhere
    assert all(any(f".g{g}.faiss" in name for name in files) for g in after_generations.values()), files

    # both replicas (never restarted) see the new generation on their next retrieval and answer as before
    assert _answers([a, b]) == before
    # and go on from it: an upload indexed after the reindex (generation + 1) is found through both
    text = "The library opens at nine and closes at five on weekdays; on Saturdays it opens at ten. " * 3
    library = a.post(f"{KB}/text", json={"text": text, "name": "library"}).json()["id"]
    try:
        assert wait_index_status(b, library, lambda i: i["status"] in ("succeeded", "failed"))["status"] == "succeeded"
        assert all(_generations(setup, workspace_id)[m] == after_generations[m] + 1 for m in generations)
        hits = [_retrieve(client, "when does the library open") for client in (a, b)]
        assert hits[0] == hits[1] and hits[0][0][0] == library
        assert _retrieve(a, QUERIES[0])[0][0] == ids["whales"]
    finally:
        assert a.delete(f"{KB}/{library}").status_code == 200


# --- a worker killed in the middle of a batch ---------------------------------------------------

MSMARCO = CORPUS / "retrieval" / "msmarco-5k"
TAKEOVER_DOCUMENTS, PASSAGES_PER_DOCUMENT = 16, 16


def _passages(start: int, count: int) -> list[str]:
    lines = (MSMARCO / "corpus.jsonl").read_text(encoding="utf-8").split("\n")  # U+0085 inside passages
    return [json.loads(line)["text"] for line in lines[start:start + count]]


def _msmarco_queries(count: int) -> list[str]:
    lines = (MSMARCO / "queries.jsonl").read_text(encoding="utf-8").split("\n")
    return [json.loads(line)["text"] for line in lines[:count]]


def _upload_all(clients: list[httpx.Client], documents: dict[str, str]) -> dict[str, str]:
    """Upload in one burst through both replicas (two threads); name -> document id."""
    ids: dict[str, str] = {}
    names = list(documents)

    def upload(i: int) -> None:
        for name in names[i::2]:
            response = clients[i].post(f"{KB}/text", json={"text": documents[name], "name": name})
            assert response.status_code == 200, response.text
            ids[name] = response.json()["id"]

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert sorted(ids) == sorted(names)
    return ids


def _wait_all_succeeded(client: httpx.Client, ids: dict[str, str], timeout: float = 300) -> None:
    for document_id in ids.values():
        status = wait_index_status(client, document_id, lambda i: i["status"] in TERMINAL_STATUSES, timeout)
        assert status["status"] == "succeeded", status


def _named_hits(client: httpx.Client, queries: list[str]) -> list[list[tuple[str, str, float]]]:
    """Per query: (document name, chunk text, distance rounded), comparable across workspaces."""
    found = []
    for query in queries:
        response = client.post(f"{KB}/rag/retrieve", json={"query": query, "max_vector_distance": 2.0,
                                                            "max_retrieved_rag_chunks_count": 8})
        assert response.status_code == 200, response.text
        found.append([(c["document_name"], c["text"], round(c["vector_distance"], 4)) for c in response.json()["chunks"]])
    return found


def _chunks_by_name(db: Database, workspace_id: str) -> dict[str, list[tuple[int, str]]]:
    with db.read() as tx:
        rows = tx.execute(select(documents.c.name, chunks.c.ordinal, chunks.c.text)
                          .join(documents, documents.c.id == chunks.c.document_id)
                          .where(chunks.c.workspace_id == workspace_id)
                          .order_by(documents.c.name, chunks.c.ordinal, chunks.c.key)).fetchall()
    found: dict[str, list[tuple[int, str]]] = {}
    for name, ordinal, text in rows:
        found.setdefault(name, []).append((ordinal, text))
    return found


def _jobs_of(db: Database, workspace_id: str) -> list:
    with db.read() as tx:
        return tx.execute(select(jobs.c.id, jobs.c.status, jobs.c.owner, jobs.c.attempts, jobs.c.payload)
                          .where(jobs.c.tenant == workspace_id).order_by(jobs.c.id)).fetchall()


def _chunk_ids(db: Database, workspace_id: str) -> set[str]:
    with db.read() as tx:
        return set(tx.execute(select(chunks.c.id).where(chunks.c.workspace_id == workspace_id)).scalars())


def _progress(db: Database, index_ids: list[str]) -> dict[str, tuple[str, float]]:
    with db.read() as tx:
        rows = tx.execute(select(rag_indexes.c.id, rag_indexes.c.status, rag_indexes.c.progress_percentage)
                          .where(rag_indexes.c.id.in_(index_ids))).fetchall()
    return {i: (status, progress) for i, status, progress in rows}


def _owner(process: Process) -> str:
    return f"{HOST}:{process.pid}"


@dataclass
class Uninterrupted:
    """The takeover documents indexed with both workers alive throughout: what an interrupted run must end as."""

    documents: dict[str, str]  # name -> text
    queries: list[str]
    workspace_id: str
    chunks: dict[str, list[tuple[int, str]]]
    hits: list[list[tuple[str, str, float]]]


@pytest.fixture(scope="module")
def uninterrupted(setup: Setup) -> Uninterrupted:
    passages = _passages(0, TAKEOVER_DOCUMENTS * PASSAGES_PER_DOCUMENT)
    texts = {f"msmarco-{n:02d}": " ".join(passages[n * PASSAGES_PER_DOCUMENT:(n + 1) * PASSAGES_PER_DOCUMENT])
             for n in range(TAKEOVER_DOCUMENTS)}
    queries = _msmarco_queries(8)
    made = setup.cli("workspace", "create", "uninterrupted")
    clients = setup.clients(made["api_key"])
    db = setup.db()
    try:
        _wait_all_succeeded(clients[0], _upload_all(clients, texts))
        hits = _named_hits(clients[0], queries)
        assert _named_hits(clients[1], queries) == hits
        assert sum(len(h) for h in hits) >= 4 * len(queries)
        stored = _chunks_by_name(db, made["workspace_id"])
        assert sorted(stored) == sorted(texts)
        assert all([o for o, _ in c] == list(range(len(c))) and len(c) > 1 for c in stored.values())
        return Uninterrupted(texts, queries, made["workspace_id"], stored, hits)
    finally:
        db.dispose()
        for client in clients:
            client.close()


def _batch_being_embedded(db: Database, workspace_id: str) -> tuple[str, dict[int, str]]:
    """Wait for a worker to embed a batch of at least two of the workspace's jobs: (its owner, {job id: index id})."""
    deadline = time.monotonic() + 300
    while True:
        running: dict[str, list] = {}
        for job in _jobs_of(db, workspace_id):
            if job.status == "running":
                running.setdefault(job.owner, []).append(job)
        embedding = {
            owner: {j.id: json.loads(j.payload)["rag_index_id"] for j in batch} for owner, batch in running.items()
            if len(batch) >= 2 and all(
                status == "processing" and 0 < progress < 90
                for status, progress in _progress(db, [json.loads(j.payload)["rag_index_id"] for j in batch]).values())
        }
        if embedding:
            owner = max(embedding, key=lambda o: len(embedding[o]))
            return owner, embedding[owner]
        jobs_now = _jobs_of(db, workspace_id)
        assert any(j.status in ("queued", "running") for j in jobs_now), f"indexing ended before a batch was seen: {jobs_now}"
        assert time.monotonic() < deadline, f"no batch seen being embedded: {jobs_now}"
        time.sleep(0.05)


def _assert_unpublished(db: Database, batch: dict[int, str]) -> None:
    assert not any(s == "succeeded" for s, _ in _progress(db, list(batch.values())).values())
    with db.read() as tx:
        assert not tx.execute(select(chunks.c.key).where(chunks.c.rag_index_id.in_(list(batch.values())))).first()


def _assert_as_uninterrupted(db: Database, workspace_id: str, clients: list[httpx.Client], expected: Uninterrupted,
                             batch: dict[int, str], survivor: str) -> None:
    """Every job done once more for the batch only (by `survivor`); chunks and retrieval as uninterrupted."""
    final = {j.id: j for j in _jobs_of(db, workspace_id)}
    assert len(final) == len(expected.documents)
    assert all(j.status == "done" for j in final.values()), final
    assert {final[i].owner for i in batch} == {survivor}
    # Claimed by the stricken worker, then by the survivor (on a saturated machine a lease may also lapse
    # and a job be claimed once more: the chunks and answers below must be the same either way).
    attempts = {i: j.attempts for i, j in final.items()}
    assert all(attempts[i] >= 2 for i in batch), attempts
    # No chunk duplicated or missing: per document the same ordinals and texts as the uninterrupted run.
    assert _chunks_by_name(db, workspace_id) == expected.chunks
    # and retrieval through both replicas answers exactly as it does.
    for client in clients:
        assert _named_hits(client, expected.queries) == expected.hits


def test_a_worker_killed_in_the_middle_of_a_batch_loses_it_to_the_other_with_nothing_duplicated_or_missing(
        setup: Setup, uninterrupted: Uninterrupted):
    made = setup.cli("workspace", "create", "killed-worker")
    workspace_id = made["workspace_id"]
    clients = setup.clients(made["api_key"])
    db = setup.db()
    stricken = None
    try:
        workers = {_owner(setup.current[name]): name for name in ("worker 1", "worker 2")}
        ids = _upload_all(clients, uninterrupted.documents)
        owner, batch = _batch_being_embedded(db, workspace_id)
        stricken = workers[owner]
        setup.current[stricken].kill()  # SIGKILL, then reaped: its pid is gone
        # It died with its batch unpublished (the survivor's next reap, within a second, queues it again).
        _assert_unpublished(db, batch)

        # The other worker takes the batch over and completes it (the replacement starts only after).
        _wait_all_succeeded(clients[1], ids)
        survivor = next(o for o in workers if o != owner)
        _assert_as_uninterrupted(db, workspace_id, clients, uninterrupted, batch, survivor)
    finally:
        if stricken is not None:  # two workers again for the tests after this one, even after a failure
            setup.start_worker(stricken).wait_for(WORKER_READY)
        db.dispose()
        for client in clients:
            client.close()


def _tcp_ports(pid: int) -> set[int]:
    """Local ports of the process's TCP sockets (its database connections among them)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _freeze_outside_transactions(process: Process, db: Database) -> None:
    """SIGSTOP, at a moment when none of the process's database sessions is in a transaction: a
    process frozen holding row locks (a heartbeat, a progress update) would stall the survivor too."""
    for _ in range(200):
        os.kill(process.pid, signal.SIGSTOP)
        ports = _tcp_ports(process.pid)
        with db.read() as tx:
            busy = tx.execute(sql("SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY(:ports) "
                                   "AND state <> 'idle'"), {"ports": list(ports)}).scalar_one()
        if ports and not busy:
            return
        os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("could not freeze the worker outside a transaction")


def test_a_worker_frozen_past_its_lease_loses_its_batch_and_publishes_nothing_of_it_once_woken(
        setup: Setup, uninterrupted: Uninterrupted):
    """SIGSTOP: the worker's pid lives on, so only its silent heartbeat (the lease, all that another
    host can see) lets the other take the batch over. Woken afterwards (SIGCONT), it finishes
    embedding its copy of the batch but publishes none of it: the survivor's chunks stay, ids and
    generation unchanged, and everything is as in the uninterrupted run."""
    made = setup.cli("workspace", "create", "frozen-worker")
    workspace_id = made["workspace_id"]
    clients = setup.clients(made["api_key"])
    db = setup.db()
    try:
        workers = {_owner(setup.current[name]): name for name in ("worker 1", "worker 2")}
        ids = _upload_all(clients, uninterrupted.documents)
        owner, batch = _batch_being_embedded(db, workspace_id)
        frozen = setup.current[workers[owner]]
        _freeze_outside_transactions(frozen, db)
        survivor = next(o for o in workers if o != owner)
        try:
            _assert_unpublished(db, batch)
            # Once the lease runs out, the survivor claims the batch and indexes it.
            _wait_all_succeeded(clients[1], ids)
            taken = {j.id: j for j in _jobs_of(db, workspace_id) if j.id in batch}
            assert all(j.owner == survivor and j.status == "done" for j in taken.values()), taken
            published, generation = _chunk_ids(db, workspace_id), _generations(setup, workspace_id)
            hits = _retrieve(clients[0], uninterrupted.queries[0])
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        # Woken, it learns that the jobs are no longer its own: it publishes nothing, and its late
        # finish leaves them to the survivor.
        frozen.wait_for("after another process took it over", timeout=300)
        assert frozen.process.poll() is None
        _assert_as_uninterrupted(db, workspace_id, clients, uninterrupted, batch, survivor)
        # The survivor's chunks stay (a chunk id a client was given still answers), at the same generation.
        assert _chunk_ids(db, workspace_id) == published and _generations(setup, workspace_id) == generation
        for document_id, chunk_id, _, text in hits:
            response = clients[1].get(f"{KB}/{document_id}/chunk/{chunk_id}")
            assert response.status_code == 200 and response.json()["content"] == text, response.text
    finally:
        db.dispose()
        for client in clients:
            client.close()


# --- a replica restarted under load ---------------------------------------------------------------

class Load(BackgroundThreads):
    """Client threads on replica A: uploaders (each upload retried on a transport error, with the same
    Idempotency-Key, until it is answered) and a retriever; every answer other than 200 is noted."""

    def __init__(self, url: str, api_key: str, texts: list[str], uploaders: int = 3):
        super().__init__(*[self._upload] * uploaders, self._retrieve, join_secs=300)
        self.url, self.api_key, self.texts = url, api_key, texts
        self.lock = threading.Lock()
        self.next = 0
        self.acknowledged: dict[str, str] = {}  # document name -> id, of uploads answered 200
        self.retried: set[str] = set()  # names of uploads that met a transport error before their answer
        self.unexpected: list[str] = []  # any answer but 200, and uploads never answered
        self.retrievals = {"answered": 0, "transport errors": 0}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"xi-api-key": self.api_key}, timeout=60)

    def wait_acknowledged(self, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count:
            assert not self.stop.is_set() and time.monotonic() < deadline, (len(self.acknowledged), self.unexpected)
            time.sleep(0.1)

    def _upload(self) -> None:
        with self.client() as client:
            while not self.stop.is_set():
                with self.lock:
                    n, self.next = self.next, self.next + 1
                if n >= len(self.texts):
                    return
                name, key = f"load-{n:04d}", f"load-key-{n}"
                deadline = time.monotonic() + 240
                while True:
                    try:
                        response = client.post(f"{KB}/text", json={"text": self.texts[n], "name": name},
                                               headers={"Idempotency-Key": key})
                        break
                    except httpx.TransportError:  # refused, reset, or cut before the answer: send it again
                        with self.lock:
                            self.retried.add(name)
                        if time.monotonic() > deadline:
                            with self.lock:
                                self.unexpected.append(f"{name}: never answered")
                            return
                        time.sleep(0.1)
                with self.lock:
                    if response.status_code == 200:
                        self.acknowledged[name] = response.json()["id"]
                    else:
                        self.unexpected.append(f"{name}: {response.status_code} {response.text[:300]}")
                time.sleep(0.02)

    def _retrieve(self) -> None:
        with self.client() as client:
            while not self.stop.is_set():
                try:
                    response = client.post(f"{KB}/rag/retrieve", json={"query": "what is the definition of a muscle"})
                except httpx.TransportError:
                    self.retrievals["transport errors"] += 1
                    time.sleep(0.1)
                    continue
                self.retrievals["answered"] += 1
                if response.status_code != 200:
                    with self.lock:
                        self.unexpected.append(f"retrieve: {response.status_code} {response.text[:300]}")
                time.sleep(0.05)


def test_a_replica_restarted_under_load_loses_no_upload_it_acknowledged(setup: Setup):
    made = setup.cli("workspace", "create", "under-load")
    workspace_id = made["workspace_id"]
    texts = _passages(2000, 600)
    a, b = setup.clients(made["api_key"])
    db = setup.db()
    try:
        with Load(setup.replicas[0], made["api_key"], texts) as load:
            load.wait_acknowledged(15)
            # kill -9: whatever it acknowledged was committed before the answer left
            setup.current["replica a"].kill()
            setup.start_replica(0)  # the same port; the clients' retries reach it once it listens
            load.wait_acknowledged(len(load.acknowledged) + 15)
            # SIGTERM, as an orchestrator rolling the replica would: requests in flight are answered first
            stopped = setup.current["replica a"]
            assert stopped.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
            assert "Application shutdown complete" in stopped.output(), stopped.output()
            setup.start_replica(0)
            load.wait_acknowledged(len(load.acknowledged) + 15)
        assert not load.unexpected, load.unexpected
        assert load.retried, "no upload met the restarts: nothing was proven"
        assert load.retrievals["answered"] > 0 and load.retrievals["transport errors"] > 0, load.retrievals
        acknowledged = dict(load.acknowledged)

        # Every upload answered 200 is there, through replica B, and indexed by the workers, with its chunks.
        for name, document_id in acknowledged.items():
            response = b.get(f"{KB}/{document_id}")
            assert response.status_code == 200 and response.json()["name"] == name, response.text
        _wait_all_succeeded(b, acknowledged)
        with db.read() as tx:
            stored = tx.execute(select(documents.c.name, documents.c.id).where(documents.c.workspace_id == workspace_id)
                                .order_by(documents.c.name)).fetchall()
            chunked = set(tx.execute(select(chunks.c.document_id).where(chunks.c.workspace_id == workspace_id)).scalars())
        # Each upload once: a retry after a cut answer got the first document back (Idempotency-Key), none
        # was stored twice; and every upload was answered in the end, so nothing is there but those.
        assert [name for name, _ in stored] == sorted(acknowledged)
        assert dict(stored) == acknowledged
        assert chunked == set(acknowledged.values())
        # The restarted replica serves them too.
        hits = _named_hits(a, ["what is the definition of a muscle"])[0]
        assert hits and {name for name, _, _ in hits} <= set(acknowledged)
    finally:
        db.dispose()
        a.close()
        b.close()

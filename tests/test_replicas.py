"""Two API replicas and a worker as real processes on loopback, sharing PostgreSQL and a data dir (issue 16).

One throw-away PostgreSQL cluster (tests/postgres.py) and one set of processes for the module: two
`kb serve --workers 0` on different ports and one `kb worker`, all with the same KB_DATABASE_URL and
--data-dir. Workspaces are made with the `kb workspace` CLI on the same database. Proven here: an
upload through replica A, once the worker indexed it, is retrieved and listed through replica B
with the same chunks and distances as through A; uploads through both replicas racing for the last
bytes of a quota never both succeed; a `kb reindex` run from a third process is served by both
replicas without a restart (they read the workspace's generation from the database on each
retrieval and load the new generation's files).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

import postgres
from helpers import KB, KB_BIN, Process, kb_env, make_kb, start_api, wait_index_status
from kb.storage import Database
from kb.storage.schema import vector_generations

NOTES = {
    "whales": "The blue whale feeds almost only on krill and can weigh two hundred tonnes. "
              "Humpback whales sing long songs during the breeding season in warm waters. " * 3,
    "boilers": "A condensing boiler recovers heat from the flue gases; its pressure should stay between "
               "one and two bar, and the expansion vessel is checked once a year. " * 3,
}
QUERIES = ["what do whales eat", "how heavy is a blue whale", "boiler pressure", "expansion vessel check"]


@dataclass
class Setup:
    url: str
    data_dir: Path
    env: dict[str, str]
    replicas: list[str]  # base URLs of replica A and replica B
    logs: Path

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


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[Setup]:
    try:
        url = postgres.fresh_database_url()
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL could not be started: {exc}")
    root = tmp_path_factory.mktemp("replicas")
    data_dir = root / "data"
    env = kb_env(url)
    started: list[Process] = []
    try:
        replicas = []
        for name in ("a", "b"):
            process, base_url, _ = start_api(data_dir, env, root / f"replica_{name}.log")
            started.append(process)
            replicas.append(base_url)
        worker = Process(["worker", "--data-dir", str(data_dir)], env, root / "worker.log")
        started.append(worker)
        worker.wait_for("kb worker: 1 job thread(s) on postgresql")
        yield Setup(url, data_dir, env, replicas, root)
    finally:
        for process in started:
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
    assert files and all(any(f".g{g}." in name for g in after_generations.values()) for name in files), files

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

"""Crash recovery, proven with SIGKILL: a `kb serve` killed in the middle of indexing resumes after
a restart on the same data dir and ends exactly where an uninterrupted run ends.

Two real server processes on two data dirs get the same uploads in the same order: short texts,
a 117-page PDF (about 330 chunks, several seconds of embedding), then more documents. The first
is only ever stopped politely; the second is SIGKILLed while the PDF's index is half embedded,
then started again. Afterwards every job is done (the interrupted one ran twice, no other one
did), every index holds its chunks exactly once, the FAISS file holds exactly the stored chunks,
and retrieval answers exactly as in the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import select

from helpers import CORPUS, data_dir_env, free_port, make_kb
from index.stores import load_store
from kb.storage.schema import chunks, documents, jobs, rag_indexes
from kb.jobs import HOST
from kb.services.index_jobs import INDEX_JOB

KB_BIN = Path(sys.executable).parent / "kb"
KB = "/v1/convai/knowledge-base"
MODEL = "all-MiniLM-L6-v2"
BIG = "GeoTopo-komprimiert.pdf"

# In upload order: indexed before the big PDF, the PDF (being indexed at the kill), queued after it.
UPLOADS: list[tuple[str, str]] = [
    ("text", "The blue whale feeds almost only on krill and can weigh two hundred tonnes."),
    ("text", "Sourdough bread needs flour, water, salt and a starter fed the day before baking."),
    ("text", "Green tea is brewed with water well below boiling point, for about two minutes."),
    ("file", f"pdf/{BIG}"),
    ("file", "html/dw.com.colonial.html"),
    ("file", "pdf/pdflatex-4-pages.pdf"),
    ("text", "Owls hunt at night; their soft feathers let them fly almost without a sound."),
    ("text", "A lighthouse keeper once trimmed the lamp's wick and wound its clockwork every night."),
]

QUERIES = [
    "Was ist ein topologischer Raum?",
    "Fundamentalgruppe und Überlagerungen",
    "kompakte Hausdorff-Räume",
    "Homotopie von Wegen",
    "Euler-Charakteristik einer Fläche",
    "Berlin renames streets named after colonial leaders",
    "blind text without meaning",
    "what do whales eat",
    "how to brew tea",
    "birds that hunt at night",
]


class Server:
    """`kb serve` as a child process in its own process group, logging to a file."""

    def __init__(self, data_dir: Path, api_key: str, log: Path):
        self.port = free_port()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **data_dir_env(data_dir)}
        command = [str(KB_BIN), "serve", "--data-dir", str(data_dir), "--port", str(self.port), "--workers", "1"]
        with open(log, "ab") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.log = log
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers={"xi-api-key": api_key}, timeout=120)
        deadline = time.monotonic() + 120
        while not self._healthy():
            assert self.process.poll() is None, f"kb serve exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"kb serve did not start: {log.read_text()[-3000:]}"
            time.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            return self.client.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """SIGTERM, as an operator would; then whatever is left of its process group goes."""
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # its parsing helpers, if any outlived it
        except ProcessLookupError:
            pass


@contextmanager
def servers() -> Iterator[list[Server]]:
    """Every server started in the block is stopped at its end, whatever happens."""
    started: list[Server] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def create_workspace(data_dir: Path) -> tuple[str, str]:
    done = subprocess.run(
        [str(KB_BIN), "workspace", "create", "crash-test", "--data-dir", str(data_dir)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", **data_dir_env(data_dir)}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    return created["workspace_id"], created["api_key"]


def upload_all(client: httpx.Client) -> dict[str, str]:
    """Upload UPLOADS in order; document id -> document name."""
    names = {}
    for i, (kind, value) in enumerate(UPLOADS):
        if kind == "text":
            response = client.post(f"{KB}/text", json={"text": value, "name": f"note-{i}"})
        else:
            path = CORPUS / value
            response = client.post(f"{KB}/file", files={"file": (path.name, path.read_bytes())})
        assert response.status_code == 200, response.text
        names[response.json()["id"]] = response.json()["name"]
    return names


def index_states(client: httpx.Client, names: dict[str, str]) -> dict[str, tuple[str, float]]:
    """Document name -> (status, progress) of its index for the default model."""
    states = {}
    for document_id, name in names.items():
        response = client.get(f"{KB}/{document_id}/rag-index")
        response.raise_for_status()
        [index] = response.json()["indexes"]
        states[name] = (index["status"], index["progress_percentage"])
    return states


def wait_all_succeeded(client: httpx.Client, names: dict[str, str], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = index_states(client, names)
        assert not [s for s, _ in states.values() if s not in ("created", "processing", "succeeded")], states
        if all(s == "succeeded" for s, _ in states.values()):
            return
        assert time.monotonic() < deadline, f"indexing did not finish: {states}"
        time.sleep(0.2)


def retrieval_results(client: httpx.Client) -> list[list[tuple[str, str, float]]]:
    results = []
    for query in QUERIES:
        response = client.post(
            f"{KB}/rag/retrieve",
            json={"query": query, "max_vector_distance": 2.0, "max_retrieved_rag_chunks_count": 5},
        )
        assert response.status_code == 200, response.text
        results.append([(c["document_name"], c["text"], round(c["vector_distance"], 4)) for c in response.json()["chunks"]])
    return results


def stored_chunks(db) -> dict[str, list[tuple[int, int, str]]]:
    """Document name -> its chunks as (ordinal, key, text), in ordinal order."""
    with db.read() as conn:
        rows = conn.execute(
            select(documents.c.name, chunks.c.ordinal, chunks.c.key, chunks.c.text)
            .join(documents, documents.c.id == chunks.c.document_id)
            .order_by(documents.c.name, chunks.c.ordinal)
        ).fetchall()
    found: dict[str, list[tuple[int, int, str]]] = {}
    for row in rows:
        found.setdefault(row.name, []).append((row.ordinal, row.key, row.text))
    return found


def test_server_killed_mid_indexing_recovers_to_the_same_state_as_an_uninterrupted_run(tmp_path):
    reference_dir, crash_dir = tmp_path / "reference", tmp_path / "crashed"
    _, reference_key = create_workspace(reference_dir)
    workspace_id, crash_key = create_workspace(crash_dir)

    with servers() as started:
        # The uninterrupted run.
        started.append(reference := Server(reference_dir, reference_key, tmp_path / "reference.log"))
        reference_names = upload_all(reference.client)
        wait_all_succeeded(reference.client, reference_names)
        expected = retrieval_results(reference.client)
        reference.stop()

        # The same uploads, SIGKILLed while the big PDF is half embedded.
        started.append(doomed := Server(crash_dir, crash_key, tmp_path / "crashed.log"))
        names = upload_all(doomed.client)
        assert sorted(names.values()) == sorted(reference_names.values())
        deadline = time.monotonic() + 600
        while True:
            states = index_states(doomed.client, names)
            if 0 < states[BIG][1] < 90:  # embedding, well before the publishing commit
                break
            assert states[BIG][0] in ("created", "processing"), f"too late to kill mid-way: {states}"
            assert time.monotonic() < deadline, states
            time.sleep(0.05)
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait()  # reaped: its pid is dead, not a zombie

        kb = make_kb(crash_dir)
        try:
            with kb.db.read() as conn:
                [left] = conn.execute(select(jobs).where(jobs.c.status == "running", jobs.c.kind == INDEX_JOB)).fetchall()
                assert left.owner == f"{HOST}:{doomed.process.pid}"
                statuses = dict(conn.execute(select(documents.c.name, rag_indexes.c.status).join(
                    documents, documents.c.id == rag_indexes.c.document_id)).fetchall())
            assert statuses[BIG] == "processing" and BIG not in stored_chunks(kb.db)
            assert {"succeeded", "created"} <= set(statuses.values())  # done before the kill, and queued
        finally:
            kb.close()

        # Restarted on the same data dir: it finds the dead owner's job and finishes everything.
        started.append(restarted := Server(crash_dir, crash_key, tmp_path / "restarted.log"))
        wait_all_succeeded(restarted.client, names)
        recovered = retrieval_results(restarted.client)
        restarted.stop()

    assert recovered == expected
    assert sum(len(hits) for hits in expected) >= 3 * len(QUERIES)

    reference_kb, kb = make_kb(reference_dir), make_kb(crash_dir)
    try:
        with kb.db.read() as conn:
            # index jobs only: on a slow run the gap log's pruning (first due 60 s after a start) has run too
            job_rows = conn.execute(select(jobs.c.status, jobs.c.attempts, jobs.c.error)
                                    .where(jobs.c.kind == INDEX_JOB)).fetchall()
            index_rows = conn.execute(select(rag_indexes.c.id, rag_indexes.c.status)).fetchall()
            ordinals = {
                index_id: [o for o, in conn.execute(
                    select(chunks.c.ordinal).where(chunks.c.rag_index_id == index_id).order_by(chunks.c.ordinal))]
                for index_id, _ in index_rows
            }
        # Every job done, none failed; the interrupted one was claimed twice, every other once.
        assert [(s, e) for s, _, e in job_rows] == [("done", None)] * len(UPLOADS)
        assert sorted(a for _, a, _ in job_rows) == [1] * (len(UPLOADS) - 1) + [2]
        assert [s for _, s in index_rows] == ["succeeded"] * len(UPLOADS)
        # No chunk duplicated or missing: ordinals 0..n-1 once each, texts as in the uninterrupted run.
        assert all(o == list(range(len(o))) and o for o in ordinals.values())
        stored = stored_chunks(kb.db)
        assert {n: [(o, t) for o, _, t in c] for n, c in stored.items()} == {
            n: [(o, t) for o, _, t in c] for n, c in stored_chunks(reference_kb.db).items()
        }
        # The FAISS file of the current generation holds exactly the stored chunks, each once.
        generation = kb.vectors.current_generation(workspace_id, MODEL)
        # (older generations' files stay for KB_INDEX_FILE_GRACE_SECS after a newer one's are written)
        current = crash_dir / "indexes" / workspace_id / f"{MODEL}.g{generation}.faiss"
        on_disk = [int(f.name.rsplit(".g", 1)[1].split(".")[0]) for f in current.parent.glob("*.faiss")]
        assert current.exists() and max(on_disk) == generation, on_disk
        keys = sorted(k for c in stored.values() for _, k, _ in c)
        store = load_store(current)
        every_id, _ = store.search(np.ones(store.dimension, dtype=np.float32), len(store) + 10)
        assert sorted(every_id.tolist()) == keys
        assert len(kb.vectors.get(workspace_id, MODEL, store.dimension)) == len(keys)
    finally:
        reference_kb.close()
        kb.close()

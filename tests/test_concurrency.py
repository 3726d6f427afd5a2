"""Concurrency: many uploaders and retrievers at once against one live server, in two workspaces.

32 uploader threads (16 per workspace; 2 text documents and 1 .txt/.md file each) and 32
retriever threads (16 per workspace; 10 retrievals each) start together on a barrier, each with
its own HTTP client. Afterwards: every response was 2xx, nothing anywhere said "database is
locked", no document was lost or duplicated, every index ended `succeeded`, every document is
found by its own distinctive sentence, and no retrieval ever returned another workspace's chunk.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from helpers import LiveServer, add_text, make_kb
from kb.storage.schema import jobs
from kb.services.rag_indexes import INDEX_JOB

KB = "/v1/convai/knowledge-base"
UPLOADERS = 32  # half per workspace
DOCS_PER_UPLOADER = 3  # the last one as a file (.txt or .md), the others as text
RETRIEVERS = 32  # half per workspace
RETRIEVALS_EACH = 10
JOIN_TIMEOUT = 120  # seconds; a thread still running after that is a deadlock or a hang
INDEX_TIMEOUT = 120

COLOURS = "amber azure crimson golden indigo ivory jade lilac maroon olive saffron scarlet teal violet".split()
ANIMALS = "badger beaver falcon ferret gecko heron ibis lynx marmot otter pelican puffin stoat walrus".split()
CITIES = "Bergen Cusco Dakar Fez Hobart Kyoto Lagos Lima Nantes Oulu Perth Quito Riga Tartu".split()
THINGS = "anchors banjos candles compasses flutes kettles lanterns marbles pebbles ribbons spoons violins".split()
PLACES = "attic barn cellar chapel garage greenhouse lighthouse mill observatory pantry shed workshop".split()


@dataclass(frozen=True)
class Planned:
    """A document to upload: its workspace, name, distinctive sentence and full text."""

    workspace: int
    name: str
    sentence: str
    text: str
    as_file: bool
    markdown: bool


@dataclass
class Outcome:
    errors: list[str] = field(default_factory=list)
    uploaded: dict[Planned, str] = field(default_factory=dict)  # -> document id
    retrieved: list[tuple[int, str, str, str]] = field(default_factory=list)  # (workspace, doc id, name, text)
    finished: dict[str, float] = field(default_factory=dict)  # "upload"/"retrieve" -> when the last thread ended
    lock = threading.Lock()

    def done(self, kind: str) -> None:
        with self.lock:
            self.finished[kind] = max(self.finished.get(kind, 0.0), time.monotonic())

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


class Recorder(logging.Handler):
    """Every log record of the server (kb, SQLAlchemy, uvicorn), formatted with its traceback."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s [%(threadName)s] %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def problems(self) -> list[str]:
        return [line for line in self.lines if line.startswith(("ERROR", "CRITICAL")) or "database is locked" in line]

    def excerpt(self, limit: int = 3) -> str:
        found = self.problems()
        return "\n\nserver log:\n" + "\n".join(found[:limit]) if found else ""


def plan_documents() -> list[list[Planned]]:
    """Per uploader, its documents: unique sentences (unique words + a code), so each is findable."""
    rng = random.Random(20240607)
    combos = [(c, a, p, t, pl) for c in COLOURS for a in ANIMALS for p in CITIES for t in THINGS for pl in PLACES]
    picks = rng.sample(combos, UPLOADERS * DOCS_PER_UPLOADER)
    plan = []
    for u in range(UPLOADERS):
        ws = u % 2
        docs = []
        for k in range(DOCS_PER_UPLOADER):
            colour, animal, city, thing, place = picks[u * DOCS_PER_UPLOADER + k]
            code = f"w{ws}u{u:02d}d{k}"
            sentence = (
                f"The {colour} {animal} of {city} keeps {rng.randint(3, 999)} {thing} "
                f"in the {place} behind the old station, under register {code}."
            )
            as_file = k == DOCS_PER_UPLOADER - 1
            markdown = as_file and u % 4 >= 2
            body = f"{sentence}\n\nNobody else in the village is allowed to touch them."
            text = f"# Notes {code}\n\n{body}\n" if markdown else body
            name = f"ws{ws}-u{u:02d}-d{k}" + ((".md" if markdown else ".txt") if as_file else "")
            docs.append(Planned(ws, name, sentence, text, as_file, markdown))
        plan.append(docs)
    return plan


def guarded(target):
    """Run a thread body; any exception it raises becomes an error of the run instead of vanishing."""

    def run(*args) -> None:
        try:
            target(*args)
        except Exception as exc:  # noqa: BLE001
            args[-1].error(f"{threading.current_thread().name}: {type(exc).__name__}: {exc}")

    return run


def uploader(server: LiveServer, key: str, docs: list[Planned], barrier: threading.Barrier, out: Outcome) -> None:
    with server.client(key) as http:
        barrier.wait(60)
        for doc in docs:
            try:
                if doc.as_file:
                    mime = "text/markdown" if doc.markdown else "text/plain"
                    response = http.post(f"{KB}/file", files={"file": (doc.name, doc.text.encode(), mime)})
                else:
                    response = http.post(f"{KB}/text", json={"text": doc.text, "name": doc.name})
            except httpx.HTTPError as exc:
                out.error(f"upload {doc.name}: {type(exc).__name__}: {exc}")
                continue
            if response.status_code // 100 != 2:
                out.error(f"upload {doc.name}: {response.status_code} {response.text}")
                continue
            with out.lock:
                out.uploaded[doc] = response.json()["id"]
    out.done("upload")


def retriever(
    server: LiveServer, key: str, ws: int, queries: list[str], barrier: threading.Barrier, out: Outcome
) -> None:
    with server.client(key) as http:
        barrier.wait(60)
        for query in queries:
            body = {"query": query, "max_vector_distance": 2.0, "max_retrieved_rag_chunks_count": 100}
            try:
                response = http.post(f"{KB}/rag/retrieve", json=body)
            except httpx.HTTPError as exc:
                out.error(f"retrieve ws{ws}: {type(exc).__name__}: {exc}")
                continue
            if response.status_code // 100 != 2:
                out.error(f"retrieve ws{ws}: {response.status_code} {response.text}")
                continue
            with out.lock:
                out.retrieved.extend(
                    (ws, c["document_id"], c["document_name"], c["text"]) for c in response.json()["chunks"]
                )
    out.done("retrieve")


def wait_all_indexed(http: httpx.Client, ids: list[str]) -> dict[str, str]:
    """Status of each document's (only) index once none is pending, or at the timeout."""
    status: dict[str, str] = {}
    pending = list(ids)
    deadline = time.monotonic() + INDEX_TIMEOUT
    while pending and time.monotonic() < deadline:
        still = []
        for document_id in pending:
            response = http.get(f"{KB}/{document_id}/rag-index")
            assert response.status_code == 200, response.text
            indexes = response.json()["indexes"]
            status[document_id] = ",".join(i["status"] for i in indexes) or "none"
            if not indexes or indexes[0]["status"] not in ("succeeded", "failed"):
                still.append(document_id)
        pending = still
        if pending:
            time.sleep(0.2)
    return status


def list_all(http: httpx.Client) -> list[dict]:
    documents, cursor = [], None
    while True:
        params = {"page_size": 100, **({"cursor": cursor} if cursor else {})}
        response = http.get(KB, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        documents += page["documents"]
        if not page["has_more"]:
            return documents
        cursor = page["next_cursor"]


def test_concurrent_uploads_and_retrievals(tmp_path):
    started = time.monotonic()
    kb = make_kb(tmp_path / "data", workers=2)
    keys = [kb.workspaces.create(f"load-{ws}")[1] for ws in (0, 1)]
    server = LiveServer(kb)  # configures uvicorn's loggers: attach the recorder after it
    recorder = Recorder()
    watched = [logging.getLogger(), logging.getLogger("uvicorn")]  # uvicorn's does not propagate to the root
    for logger in watched:
        logger.addHandler(recorder)
    try:
        server.start()
        # One indexed document per workspace before the load: background indexing yields the CPU
        # to requests (it runs at a lower priority), so under this load the uploads may only
        # become searchable after it; the retrievals still have something to return (or leak).
        seeds = {}
        for ws, key in enumerate(keys):
            with server.client(key) as http:
                seeds[ws] = add_text(http, f"Seed note of workspace {ws}: the grey walrus of Tartu keeps {ws} lanterns.", f"ws{ws}-seed")
        ready = time.monotonic()
        plan = plan_documents()
        sentences = [d.sentence for docs in plan for d in docs]
        rng = random.Random(7)
        out = Outcome()
        barrier = threading.Barrier(UPLOADERS + RETRIEVERS)
        threads = [
            threading.Thread(
                target=guarded(uploader), args=(server, keys[u % 2], plan[u], barrier, out), name=f"up-{u}"
            )
            for u in range(UPLOADERS)
        ]
        for r in range(RETRIEVERS):
            ws = r % 2
            # Sentences of both workspaces: a chunk of the other one must never come back.
            queries = [rng.choice(sentences) for _ in range(RETRIEVALS_EACH)]
            threads.append(
                threading.Thread(
                    target=guarded(retriever), args=(server, keys[ws], ws, queries, barrier, out), name=f"rt-{r}"
                )
            )
        for thread in threads:
            thread.start()
        load_start = time.monotonic()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        hung = [t.name for t in threads if t.is_alive()]
        load_done = time.monotonic()
        assert not hung, f"threads still running after {JOIN_TIMEOUT}s (deadlock?): {hung}" + recorder.excerpt()
        assert out.errors == [], "\n".join(out.errors) + recorder.excerpt()

        # No lost documents: every upload acknowledged, listed exactly once, indexed.
        ids = {ws: sorted(i for d, i in out.uploaded.items() if d.workspace == ws) for ws in (0, 1)}
        assert len(out.uploaded) == UPLOADERS * DOCS_PER_UPLOADER
        assert len(set(out.uploaded.values())) == len(out.uploaded)
        owner = {i: d.workspace for d, i in out.uploaded.items()} | {i: ws for ws, i in seeds.items()}
        with server.client(keys[0]) as http0, server.client(keys[1]) as http1:
            clients = (http0, http1)
            for ws, http in enumerate(clients):
                listed = list_all(http)
                assert sorted(d["id"] for d in listed if d["id"] != seeds[ws]) == ids[ws]
                assert all(d["name"].startswith(f"ws{ws}-") for d in listed)
            for ws, http in enumerate(clients):
                status = wait_all_indexed(http, ids[ws])
                not_done = {i: s for i, s in status.items() if s != "succeeded"}
                assert not_done == {}, f"workspace {ws}: indexes not succeeded: {not_done}" + recorder.excerpt()
            indexed = time.monotonic()

            # Every document is found by its own sentence.
            for doc, document_id in out.uploaded.items():
                response = clients[doc.workspace].post(
                    f"{KB}/rag/retrieve", json={"query": doc.sentence, "document_ids": [document_id]}
                )
                assert response.status_code == 200, response.text
                hits = response.json()["chunks"]
                assert hits, f"{doc.name} ({document_id}) not found by its sentence"
                assert hits[0]["document_id"] == document_id
                assert doc.sentence in hits[0]["text"]
            checked = time.monotonic()

        # Isolation under load: nothing another workspace uploaded ever came back.
        assert out.retrieved, "the retrievals during the load returned nothing at all"
        leaks = [
            (ws, i, name) for ws, i, name, text in out.retrieved
            if owner.get(i) != ws or not name.startswith(f"ws{ws}-") or f"under register w{1 - ws}" in text
        ]
        assert leaks == [], f"retrieval returned other workspaces' chunks: {leaks[:5]}"

        # The queue agrees: every job done on its first attempt (a job is marked done just after
        # its index is published, so give the last ones a moment).
        query = select(jobs.c.status, jobs.c.attempts, jobs.c.error).where(jobs.c.kind == INDEX_JOB)
        queue_deadline = time.monotonic() + 30
        while True:
            with kb.db.read() as conn:
                rows = conn.execute(query).fetchall()
            if all(r.status in ("done", "failed") for r in rows) or time.monotonic() > queue_deadline:
                break
            time.sleep(0.1)
        assert len(rows) == UPLOADERS * DOCS_PER_UPLOADER + len(seeds)
        assert all(r.status == "done" and r.attempts == 1 for r in rows), [r for r in rows if r.status != "done"]
    finally:
        server.stop()
        for logger in watched:
            logger.removeHandler(recorder)

    locked = [line for line in recorder.lines if "database is locked" in line.lower()]
    assert locked == [], "\n".join(locked)
    assert recorder.problems() == [], "\n".join(recorder.problems())
    print(
        f"\nconcurrency: server start {ready - started:.1f}s, load {load_done - load_start:.1f}s "
        f"(uploads done +{out.finished['upload'] - load_start:.1f}s, retrievals done "
        f"+{out.finished['retrieve'] - load_start:.1f}s; {len(out.uploaded)} uploads, "
        f"{RETRIEVERS * RETRIEVALS_EACH} retrievals, {len(out.retrieved)} chunks back), "
        f"indexed +{indexed - load_done:.1f}s, checks +{checked - indexed:.1f}s, total {time.monotonic() - started:.1f}s"
    )

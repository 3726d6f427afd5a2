"""One tenant cannot stall another (issue 11), through a real server: while workspace A floods kb
with slow URLs (a local server trickling a byte a second), huge agent configs, pathological
Markdown and a large document, every one of workspace B's retrievals succeeds. A's floods get
clear answers (429 when it fetches too many URLs at once, 4xx for an oversized agent), and
deleting A's large document cancels its indexing job. Latencies are measured by
`bench/noisy_neighbours.py`, not asserted here.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select

from helpers import LiveServer, add_text, make_kb, retrieve
from kb.services.agent_config import MAX_KNOWLEDGE_BASE_ITEMS
from kb.storage.schema import jobs

KB = "/v1/convai/knowledge-base"
FETCHES_PER_WORKSPACE = 2


class Trickle:
    """A 127.0.0.1 server that answers every request one byte a second, never finishing."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/slow"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + b"X" * 10_000:
                    if self.stop.wait(1.0):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def live(tmp_path) -> Iterator[tuple[LiveServer, str, str]]:
    kb = make_kb(tmp_path / "data", url_allow_hosts=("127.0.0.1",), url_timeout_secs=4.0,
                 url_fetches_per_workspace=FETCHES_PER_WORKSPACE)
    _, key_a = kb.workspaces.create("noisy A")
    _, key_b = kb.workspaces.create("quiet B")
    server = LiveServer(kb).start()
    yield server, key_a, key_b
    server.stop()
    kb.close()


class Retrievals:
    """Workspace B's retrievals, one after another on a thread, until stopped."""

    def __init__(self, client: httpx.Client, query: str):
        self.client, self.query = client, query
        self.statuses: list[int] = []
        self.found: list[bool] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            response = self.client.post(f"{KB}/rag/retrieve", json={"query": self.query, "max_vector_distance": 2})
            self.statuses.append(response.status_code)
            self.found.append(response.status_code == 200 and bool(response.json()["chunks"]))

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(60)
        assert self.statuses and set(self.statuses) == {200}, self.statuses
        assert all(self.found)


def _markdown_bomb() -> str:
    """One 48 KB Markdown line that made the old heading expression backtrack for 30 s."""
    return "# a" + " " * 48_000 + "b\n\nbody text after the heading"


def test_floods_of_one_workspace_leave_the_other_answering(live):
    server, key_a, key_b = live
    trickle = Trickle()
    with server.client(key_a) as a, server.client(key_b) as b:
        add_text(b, "The lighthouse keeper climbs 212 steps every evening to light the lamp.", "lighthouse")
        quiet = Retrievals(b, "how many steps does the lighthouse keeper climb")
        try:
            # Slow URLs: at most FETCHES_PER_WORKSPACE run at once, the rest are refused at once.
            with ThreadPoolExecutor(12) as pool:
                answers = list(pool.map(lambda i: a.post(f"{KB}/url", json={"url": f"{trickle.url}?{i}"}), range(12)))
            statuses = sorted(r.status_code for r in answers)
            assert statuses.count(429) >= 12 - FETCHES_PER_WORKSPACE and set(statuses) <= {400, 429}, statuses
            refused_response = next(r for r in answers if r.status_code == 429)
            assert refused_response.headers["retry-after"] == "1"
            refused = refused_response.json()["detail"]
            assert refused["status"] == "too_many_requests"
            assert "KB_URL_FETCHES_PER_WORKSPACE" in refused["message"]
            timed_out = [r.json()["detail"] for r in answers if r.status_code == 400]
            assert timed_out and all(d["status"] == "fetch_failed" and "4 s" in d["message"] for d in timed_out)

            # Huge agent configs: refused before any document lookup, nothing stored.
            locators = [{"type": "text", "name": f"d{i}", "id": f"doc{i}"} for i in range(45_000)]
            huge = a.post("/v1/convai/agents/create",
                          json={"conversation_config": {"agent": {"prompt": {"knowledge_base": locators}}}})
            # 45,000 locators are over the agent body limit: refused before parsing
            assert huge.status_code == 413 and huge.json()["detail"]["status"] == "request_too_large", huge.text
            over = a.post("/v1/convai/agents/create", json={"conversation_config": {"agent": {"prompt": {
                "knowledge_base": locators[:MAX_KNOWLEDGE_BASE_ITEMS + 1]}}}})
            assert 400 <= over.status_code < 500 and "knowledge_base" in over.text, over.text
            at_limit = a.post("/v1/convai/agents/create", json={"conversation_config": {"agent": {"prompt": {
                "knowledge_base": locators[:MAX_KNOWLEDGE_BASE_ITEMS]}}}})
            assert at_limit.status_code == 400 and "not found in this workspace" in at_limit.json()["detail"]["message"]
            assert a.get("/v1/convai/agents").json()["agents"] == []

            # Pathological Markdown sent as text: parsed (in the sandbox) in linear time.
            bomb = a.post(f"{KB}/text", json={"text": _markdown_bomb(), "name": "bomb.md"})
            assert bomb.status_code == 200, bomb.text
            heading = a.get(f"{KB}/{bomb.json()['id']}/content").text
            assert heading.startswith("a b") and "body text after the heading" in heading
        finally:
            trickle.close()
            quiet.finish()


def test_deleting_a_document_cancels_its_indexing_job(live):
    server, key_a, key_b = live
    kb = server.kb
    sentence = "Harbour cranes lift containers from the ships onto trucks waiting on the quay. "
    with server.client(key_a) as a, server.client(key_b) as b:
        add_text(b, "The lighthouse keeper climbs 212 steps every evening to light the lamp.", "lighthouse")
        quiet = Retrievals(b, "lighthouse steps")
        try:
            big = a.post(f"{KB}/text", json={"text": sentence * 12_000, "name": "big"})  # about 1 MB
            assert big.status_code == 200, big.text
            document_id = big.json()["id"]
            deadline = time.monotonic() + 120
            while a.get(f"{KB}/{document_id}/rag-index").json()["indexes"][0]["status"] != "processing":
                assert time.monotonic() < deadline, "the index never started"
                time.sleep(0.05)
            with kb.db.read() as tx:
                (job_id,) = tx.execute(select(jobs.c.id).where(jobs.c.status == "running")).scalars().all()
            assert a.delete(f"{KB}/{document_id}").status_code == 200
            while (status := kb.queue.status(job_id)) == "running":
                assert time.monotonic() < deadline, "the job of the deleted document kept running"
                time.sleep(0.2)
            assert status == "cancelled"
            assert a.get(f"{KB}/{document_id}").status_code == 404
            assert retrieve(a, "harbour cranes", max_vector_distance=2)["chunks"] == []
        finally:
            quiet.finish()

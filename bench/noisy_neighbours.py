"""Noisy neighbours (issue 11): workspace B's retrieval latency while workspace A misbehaves.

A real `kb serve` in its own process (bench/common/server.py), A's clients in another process, B's one
client in this one, so neither the server nor A's client threads share an interpreter with B's timing.
B holds a few documents and retrieves in a loop; the script prints B's p50 / p99 / max latency (and any
failure) while quiet, then while each of A's floods runs: slow URLs (a 127.0.0.1 server trickling a
byte a second; A's clients retry a 429 at once, as a hostile client would, then after its
Retry-After, as a well-behaved one does), agents with 45,000
knowledge-base locators, 48 KB Markdown heading lines sent as text, and a large document being indexed
(and deleted). Then the indexing side: how long B's new document waits to be indexed, alone and
queued behind A's backlog of uploads (about 7 KB, 6 chunks each; fair claims: behind about one of A's jobs). Run:

    HF_HUB_OFFLINE=1 .venv/bin/python bench/noisy_neighbours.py [--secs 20] [--urls 48] [--backlog 200]
        [--phases "large document,markdown"] [--only-indexing | --no-indexing]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common.server import SpawnedServer, create_workspace  # noqa: E402

KB = "/v1/convai/knowledge-base"

B_TEXTS = {
    "lighthouse": "The lighthouse keeper climbs 212 steps every evening to light the lamp.",
    "bakery": "Our bakery sells rye bread, croissants and apple tarts from seven in the morning.",
    "trains": "Trains to the coast leave every hour from platform four, the last one at eleven.",
}
QUERIES = ["how many steps to the lamp", "when does the bakery open", "last train to the coast"]


class Trickle:
    """Answers every request a byte a second, forever."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/slow"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + b"X" * 100_000:
                    if self.stop.wait(1.0):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                return


def measure(client: httpx.Client, secs: float, flood: mp.Process | None) -> dict:
    """B's retrievals for `secs` seconds while A's flood process runs."""
    if flood is not None:
        flood.start()
        time.sleep(1.0)  # let the flood build up
    latencies, failures, n = [], 0, 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        started = time.perf_counter()
        response = client.post(f"{KB}/rag/retrieve", json={"query": QUERIES[n % len(QUERIES)], "max_vector_distance": 2})
        latencies.append((time.perf_counter() - started) * 1000)
        failures += response.status_code != 200 or not response.json()["chunks"]
        n += 1
    latencies.sort()
    return {
        "n": len(latencies), "failed": failures, "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], "max": latencies[-1],
    }


def time_to_indexed(client: httpx.Client, text: str, name: str) -> float:
    """Seconds from B's upload until its index is done."""
    started = time.perf_counter()
    response = client.post(f"{KB}/text", json={"text": text, "name": name})
    response.raise_for_status()
    document_id = response.json()["id"]
    while True:
        indexes = client.get(f"{KB}/{document_id}/rag-index").json()["indexes"]
        if indexes and indexes[0]["status"] not in ("created", "processing"):
            return time.perf_counter() - started
        time.sleep(0.02)


def index_waits(url: str, key_a: str, b: httpx.Client, backlog: int) -> tuple[list[float], list[float]]:
    """B's time to indexed (5 uploads) alone, then with A's `backlog` uploads queued just before each."""
    alone = [time_to_indexed(b, f"Quiet note {i}: the ferry leaves at {i} pm from the north pier. " * 10, f"q{i}")
             for i in range(5)]
    behind = []
    with httpx.Client(base_url=url, headers={"xi-api-key": key_a}, timeout=120) as a, ThreadPoolExecutor(8) as pool:
        for round_ in range(5):
            list(pool.map(lambda i: a.post(f"{KB}/text", json={
                "text": f"Backlog note {round_}-{i} about harbour cranes and container ships. " * 100,
                "name": f"a{round_}-{i}"}), range(backlog)))
            behind.append(time_to_indexed(b, f"Busy note {round_}: the ferry leaves at noon. " * 10, f"b{round_}"))
    return alone, behind


def a_request(kind: str, http: httpx.Client, slow_url: str) -> httpx.Response:
    if kind == "slow URLs, polite":
        response = http.post(f"{KB}/url", json={"url": slow_url})
        if response.status_code == 429:
            time.sleep(float(response.headers.get("retry-after", "1")))
        return response
    if kind == "slow URLs":
        return http.post(f"{KB}/url", json={"url": slow_url})
    if kind == "huge agents":
        locators = [{"type": "text", "name": f"d{i}", "id": f"doc{i}"} for i in range(45_000)]
        return http.post("/v1/convai/agents/create", json={"conversation_config": {"agent": {"prompt": {"knowledge_base": locators}}}})
    bomb = "# a" + " " * 48_000 + "b\n\nbody"
    return http.post(f"{KB}/text", json={"text": bomb, "name": "bomb.md"})


def flood(kind: str, threads: int, url: str, key: str, slow_url: str, secs: float, out) -> None:
    """A's side, in its own process: `threads` clients repeating `kind` for `secs` seconds; status counts to `out`."""
    counts: dict[int, int] = {}
    lock = threading.Lock()
    end = time.monotonic() + secs

    def big_document() -> None:
        big = "Harbour cranes lift containers from the ships onto trucks waiting on the quay. " * 60_000  # ~5 MB
        with httpx.Client(base_url=url, headers={"xi-api-key": key}, timeout=300) as http:
            while time.monotonic() < end:
                response = http.post(f"{KB}/text", json={"text": big, "name": "big"})
                counts[response.status_code] = counts.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    time.sleep(secs / 2)
                    http.delete(f"{KB}/{response.json()['id']}")

    def worker() -> None:
        with httpx.Client(base_url=url, headers={"xi-api-key": key}, timeout=120) as http:
            while time.monotonic() < end:
                try:
                    code = a_request(kind, http, slow_url).status_code
                except httpx.HTTPError:
                    code = -1
                with lock:
                    counts[code] = counts.get(code, 0) + 1

    if kind == "large document":
        big_document()
    else:
        with ThreadPoolExecutor(threads) as pool:
            for _ in range(threads):
                pool.submit(worker)
    out.put(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--secs", type=float, default=20.0, help="seconds of B's retrievals per phase")
    parser.add_argument("--urls", type=int, default=48, help="concurrent slow URL uploads of A")
    parser.add_argument("--backlog", type=int, default=200, help="uploads (7 KB each) A queues before each of B's")
    parser.add_argument("--only-indexing", action="store_true", help="skip the retrieval phases")
    parser.add_argument("--phases", default="", help="only these floods, comma-separated kinds (e.g. 'large document')")
    parser.add_argument("--no-indexing", action="store_true", help="skip the indexing-behind-a-backlog measurement")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="kb-noisy-"))
    server = SpawnedServer(root, "noisy", env_extra={"KB_URL_ALLOW_HOSTS": "127.0.0.1"})
    try:
        key_a = create_workspace(server.data_dir, "A", server.env)
        key_b = create_workspace(server.data_dir, "B", server.env)
        b = httpx.Client(base_url=server.url, headers={"xi-api-key": key_b}, timeout=300)
        ids = []
        for name, text in B_TEXTS.items():
            response = b.post(f"{KB}/text", json={"text": text, "name": name})
            response.raise_for_status()
            ids.append(response.json()["id"])
        while not all(b.post(f"{KB}/rag/retrieve", json={"query": text, "max_vector_distance": 2}).json()["chunks"]
                      for text in B_TEXTS.values()):
            time.sleep(0.2)  # indexed
        for _ in range(50):  # warm up B's path
            b.post(f"{KB}/rag/retrieve", json={"query": QUERIES[0], "max_vector_distance": 2})
        trickle = Trickle()
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        phases: list[tuple[str, str | None, int]] = [
            ("quiet", None, 0),
            (f"{args.urls} slow URLs, 429 retried at once", "slow URLs", args.urls),
            (f"{args.urls} slow URLs, 429 after Retry-After", "slow URLs, polite", args.urls),
            ("45,000-locator agents (4 clients)", "huge agents", 4),
            ("48 KB Markdown lines as text (4 clients)", "markdown", 4),
            ("large document (5 MB) indexed, then deleted", "large document", 1),
        ]
        if not args.only_indexing:
            print(f"B's retrieval latency over HTTP, {args.secs:g} s per phase (ms)")
            print(f"{'while A runs':45} {'n':>5} {'failed':>6} {'p50':>8} {'p99':>8} {'max':>8}")
        answers = {}
        wanted = {kind.strip() for kind in args.phases.split(",") if kind.strip()}
        if wanted:
            phases = [p for p in phases if p[1] is None or p[1] in wanted]
        for label, kind, threads in [] if args.only_indexing else phases:
            process = None if kind is None else ctx.Process(
                target=flood, args=(kind, threads, server.url, key_a, trickle.url, args.secs + 1, out), daemon=True)
            r = measure(b, args.secs, process)
            if process is not None:
                answers[label] = out.get(timeout=600)
                process.join(60)
            print(f"{label:45} {r['n']:5d} {r['failed']:6d} {r['p50']:8.1f} {r['p99']:8.1f} {r['max']:8.1f}", flush=True)
            time.sleep(2)  # let the server settle between phases
        if not args.no_indexing:
            alone, behind = index_waits(server.url, key_a, b, args.backlog)
            print(f"B's upload to indexed, s (median of 5): alone {statistics.median(alone):.2f}; "
                  f"behind A's {args.backlog} just-queued uploads {statistics.median(behind):.2f}")
        print("A's answers (status: count):")
        for label, counts in answers.items():
            print(f"  {label}: {dict(sorted(counts.items()))}")
        trickle.stop.set()
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""Noisy neighbours (issue 11): workspace B's retrieval latency while workspace A misbehaves.

A real server (bench/kbharness.py). B holds a few documents and retrieves in a loop; the script
prints B's p50 / p99 / max latency (and any failure) while quiet, then while each of A's floods
runs: slow URLs (a 127.0.0.1 server trickling a byte a second), agents with 45,000
knowledge-base locators, 48 KB Markdown heading lines sent as text, and a large document
being indexed (and deleted). Run:

    nice -n 15 python bench/noisy_neighbours.py [--secs 20] [--urls 48]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from kbharness import KB, Server

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


def measure(client: httpx.Client, secs: float, flood: Callable[[threading.Event], None] | None) -> dict:
    """B's retrievals for `secs` seconds, while `flood` runs on other threads until told to stop."""
    stop = threading.Event()
    threads = []
    if flood is not None:
        threads = [threading.Thread(target=flood, args=(stop,), daemon=True)]
        for t in threads:
            t.start()
        time.sleep(1.0)  # let the flood build up
    latencies, failures, n = [], 0, 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        started = time.perf_counter()
        response = client.post(f"{KB}/rag/retrieve", json={"query": QUERIES[n % len(QUERIES)], "max_vector_distance": 2})
        latencies.append((time.perf_counter() - started) * 1000)
        failures += response.status_code != 200 or not response.json()["chunks"]
        n += 1
    stop.set()
    for t in threads:
        t.join(60)
    latencies.sort()
    return {
        "n": len(latencies), "failed": failures, "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], "max": latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--secs", type=float, default=20.0, help="seconds of B's retrievals per phase")
    parser.add_argument("--urls", type=int, default=48, help="concurrent slow URL uploads of A")
    args = parser.parse_args()

    server = Server("noisy", url_allow_hosts=("127.0.0.1",))
    a, b = server.workspace("A"), server.workspace("B")
    for name, text in B_TEXTS.items():
        response = b.http.post(f"{KB}/text", json={"text": text, "name": name})
        response.raise_for_status()
        b.ids[name] = response.json()["id"]
    b.wait_indexed()
    trickle = Trickle()
    statuses: dict[str, dict[int, int]] = {}

    def repeat(label: str, call: Callable[[], httpx.Response], threads: int) -> Callable[[threading.Event], None]:
        counts = statuses.setdefault(label, {})
        lock = threading.Lock()

        def flood(stop: threading.Event) -> None:
            def worker() -> None:
                http = httpx.Client(base_url=a.url, headers={"xi-api-key": a.key}, timeout=120)
                while not stop.is_set():
                    try:
                        code = call_with(http).status_code
                    except httpx.HTTPError:
                        code = -1
                    with lock:
                        counts[code] = counts.get(code, 0) + 1

            call_with = call
            with ThreadPoolExecutor(threads) as pool:
                for _ in range(threads):
                    pool.submit(worker)
        return flood

    locators = [{"type": "text", "name": f"d{i}", "id": f"doc{i}"} for i in range(45_000)]
    huge_agent = {"conversation_config": {"agent": {"prompt": {"knowledge_base": locators}}}}
    bomb = "# a" + " " * 48_000 + "b\n\nbody"
    big = "Harbour cranes lift containers from the ships onto trucks waiting on the quay. " * 60_000  # ~5 MB

    def big_document(stop: threading.Event) -> None:
        counts = statuses.setdefault("large document (5 MB) indexed, then deleted", {})
        while not stop.is_set():
            response = a.http.post(f"{KB}/text", json={"text": big, "name": "big"})
            counts[response.status_code] = counts.get(response.status_code, 0) + 1
            if response.status_code == 200:
                stop.wait(args.secs / 2)
                a.http.delete(f"{KB}/{response.json()['id']}")

    phases: list[tuple[str, Callable[[threading.Event], None] | None]] = [
        ("quiet", None),
        (f"{args.urls} slow URLs at once", repeat("slow URLs", lambda h: h.post(f"{KB}/url", json={"url": trickle.url}), args.urls)),
        ("45,000-locator agents (4 clients)", repeat("huge agents", lambda h: h.post("/v1/convai/agents/create", json=huge_agent), 4)),
        ("48 KB Markdown lines as text (4 clients)", repeat("markdown", lambda h: h.post(f"{KB}/text", json={"text": bomb, "name": "bomb.md"}), 4)),
        ("large document (5 MB) indexed, then deleted", big_document),
    ]
    print(f"B's retrieval latency over HTTP, {args.secs:g} s per phase (ms)")
    print(f"{'while A runs':45} {'n':>5} {'failed':>6} {'p50':>8} {'p99':>8} {'max':>8}")
    for label, flood in phases:
        r = measure(b.http, args.secs, flood)
        print(f"{label:45} {r['n']:5d} {r['failed']:6d} {r['p50']:8.1f} {r['p99']:8.1f} {r['max']:8.1f}", flush=True)
    print("A's answers (status: count):")
    for label, counts in statuses.items():
        print(f"  {label}: {dict(sorted(counts.items()))}")
    trickle.stop.set()
    server.stop()


if __name__ == "__main__":
    main()

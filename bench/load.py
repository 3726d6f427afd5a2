"""Load benchmark: concurrent uploads and retrievals against a running kb server, over HTTP.

Usage (from the repository root):

    # start a throwaway `kb serve` on a temporary data dir and a free loopback port (what the
    # figures in BENCHMARKS.md use); it is stopped and deleted at the end
    HF_HUB_OFFLINE=1 .venv/bin/python bench/load.py --spawn [--workers 2]

    # or against a server that is already running (loopback only)
    .venv/bin/python bench/load.py --url http://127.0.0.1:8000 --data-dir data
    .venv/bin/python bench/load.py --url http://127.0.0.1:8000 --api-key kb_...

    common options: [--uploaders 32] [--retrievers 32] [--duration 30] [--max-uploads N]
        [--max-retrievals N] [--upload-rate R] [--seed-docs 500] [--unique-queries]
        [--drain-timeout 300] [--json PATH] [--corpus DIR]

Phases:

1. seed: `--seed-docs` msmarco-5k passages (half of them, at most, among the passages judged
   relevant to the 50 msmarco queries in qrels/test.tsv, the rest random; fixed seed) are uploaded
   as text documents (`POST /text`, 8 at a time), then the benchmark waits until every one's index
   has left `created`/`processing`.
2. mixed: `--uploaders` threads upload further passages as text documents, each as fast as it can
   (or, with `--upload-rate R`, all together at about R uploads/s), while `--retrievers` threads
   call `POST /rag/retrieve` with the msmarco queries (round robin, each thread from its own
   offset; request defaults otherwise). Every thread has its own HTTP client and stops by itself
   at `--duration` seconds or when `--max-uploads` / `--max-retrievals` are reached. kb caches
   query embeddings (50 distinct queries: all cached after the first round); with
   `--unique-queries` each query gets a " #n" suffix, so every retrieval embeds its query.
3. drain: uploads of the mixed phase keep being tracked until all are indexed, or for at most
   `--drain-timeout` seconds.

Reported: uploads/s and retrievals/s of the mixed phase (requests completed / phase wall time),
errors by kind and HTTP status, latency p50/p90/p99/max of every upload and every retrieval of
the phase, and time to searchable: from sending an upload to the first time a poller sees its
index `succeeded` (`GET /{id}/rag-index`, oldest pending first, about every 0.1 s; so figures are
late by up to one poll round). Polling requests are not counted in any figure above. With
`--spawn`, the server's log is scanned for "database is locked", tracebacks and ERROR lines.

The client threads share the machine with the server: on a small machine the benchmark itself
takes a real share of the CPU. Only loopback addresses are accepted for `--url`.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from common.net import free_port, require_loopback
from common.stats import percentile

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
KB = "/v1/convai/knowledge-base"
PENDING = ("created", "processing")

# Limits out of the way for the spawned server (its tiers file, if this kb version reads one):
# msmarco passages are mostly under kb's default 500-byte minimum for RAG indexing.
PERMISSIVE_TIERS = """\
[defaults]
rag_max_bytes = 10_000_000_000
kb_max_bytes = 10_000_000_000
kb_max_chars = 10_000_000_000
min_rag_document_bytes = 0

[tiers.free]
[tiers.starter]
[tiers.creator]
[tiers.pro]
[tiers.scale]
[tiers.business]
[tiers.enterprise]
"""


# --- corpus --------------------------------------------------------------------------------


def load_jsonl(path: Path) -> list[dict]:
    """Lines split on "\\n" only: msmarco passages contain U+0085, which str.splitlines() splits on."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def load_msmarco(corpus: Path, seed_docs: int, rng: random.Random) -> tuple[list[dict], list[dict], list[str]]:
    """(seed passages, remaining passages in random order, query texts)."""
    root = corpus / "retrieval" / "msmarco-5k"
    passages = load_jsonl(root / "corpus.jsonl")
    queries = [q["text"] for q in load_jsonl(root / "queries.jsonl")]
    relevant: set[str] = set()
    for line in (root / "qrels" / "test.tsv").read_text(encoding="utf-8").split("\n"):
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].strip().isdigit() and int(parts[2]) > 0:
            relevant.add(parts[1])
    rng.shuffle(passages)
    judged = [p for p in passages if p["_id"] in relevant][: seed_docs // 2]
    taken = {p["_id"] for p in judged}
    others = [p for p in passages if p["_id"] not in taken]
    seed = judged + others[: seed_docs - len(judged)]
    rest = others[seed_docs - len(judged):]
    return seed, rest, queries


# --- measurements --------------------------------------------------------------------------


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else float("nan"),
    }


@dataclass
class Stats:
    """Outcomes of one kind of request: latencies of every completed request, errors by kind."""

    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    error_samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float, response: httpx.Response | None, exc: Exception | None = None) -> bool:
        with self.lock:
            if exc is not None:
                self.errors[type(exc).__name__] += 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(f"{type(exc).__name__}: {exc}")
                return False
            self.latencies.append(seconds)
            if response.status_code // 100 == 2:
                self.ok += 1
                return True
            self.errors[str(response.status_code)] += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{response.status_code}: {response.text[:300]}")
            return False


class SearchableTracker:
    """Polls the indexes of uploaded documents, oldest first, and notes when each leaves `created`/`processing`.

    Indexing jobs run oldest first, so a round stops at a run of still-pending documents instead of
    polling the whole backlog.
    """

    def __init__(self, url: str, api_key: str, poll_secs: float = 0.1, window: int = 200, stop_after_pending: int = 8):
        self.client = httpx.Client(base_url=url, headers={"xi-api-key": api_key}, timeout=60)
        self.poll_secs = poll_secs
        self.window = window
        self.stop_after_pending = stop_after_pending
        self.pending: collections.OrderedDict[str, tuple[float, str]] = collections.OrderedDict()
        self.done: dict[str, tuple[str, float, str]] = {}  # id -> (final status, seconds to it, phase)
        self.poll_errors: collections.Counter = collections.Counter()
        self.polls = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracker", daemon=True)

    def add(self, document_id: str, sent_at: float, phase: str) -> None:
        with self.lock:
            self.pending[document_id] = (sent_at, phase)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        self.client.close()

    def outstanding(self, phase: str | None = None) -> int:
        with self.lock:
            return sum(1 for _, p in self.pending.values() if phase is None or p == phase)

    def wait_drained(self, timeout: float, phase: str | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while self.outstanding(phase) and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.outstanding(phase) == 0

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                head = list(self.pending.items())[: self.window]
            misses = 0
            for document_id, (sent_at, phase) in head:
                if self._stop.is_set():
                    return
                try:
                    response = self.client.get(f"{KB}/{document_id}/rag-index")
                    self.polls += 1
                except httpx.HTTPError as exc:
                    self.poll_errors[type(exc).__name__] += 1
                    continue
                if response.status_code != 200:
                    self.poll_errors[str(response.status_code)] += 1
                    continue
                indexes = response.json()["indexes"]
                status = indexes[0]["status"] if indexes else "none"
                if status in PENDING:
                    misses += 1
                    if misses >= self.stop_after_pending:
                        break
                    continue
                seen = time.monotonic()
                with self.lock:
                    self.pending.pop(document_id, None)
                    self.done[document_id] = (status, seen - sent_at, phase)
            time.sleep(self.poll_secs)

    def results(self, phase: str) -> tuple[list[float], collections.Counter]:
        with self.lock:
            items = [v for v in self.done.values() if v[2] == phase]
        statuses = collections.Counter(status for status, _, _ in items)
        return [secs for status, secs, _ in items if status == "succeeded"], statuses


# --- the server ----------------------------------------------------------------------------


class SpawnedServer:
    """`kb serve` on a temporary data dir and a free loopback port, in its own process group."""

    def __init__(self, workers: int | None):
        self.tmp = Path(tempfile.mkdtemp(prefix="kb-load-"))
        self.data_dir = self.tmp / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.tmp / "server.log"
        tiers = self.tmp / "tiers.toml"
        tiers.write_text(PERMISSIVE_TIERS)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "KB_TIERS_FILE": str(tiers)}
        self.command = [
            sys.executable, "-c", "from kb.cli import main; main()", "serve",
            "--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", str(self.port),
        ] + (["--workers", str(workers)] if workers else [])
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.command, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 180) -> str:
        """Wait for /health; return the default workspace's API key."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"kb serve exited with {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return (self.data_dir / "default_api_key").read_text().strip()
            except (httpx.HTTPError, FileNotFoundError):
                pass
            time.sleep(0.25)
        raise SystemExit(f"kb serve did not answer /health within {timeout}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully (lifespan: workers stop)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own group: the server and its parser children
                self.process.wait(10)
        self._log.close()

    def scan_log(self) -> dict:
        text = self.log_path.read_text(errors="replace")
        lines = text.split("\n")
        return {
            "database_is_locked": sum("database is locked" in line for line in lines),
            "tracebacks": sum(line.startswith("Traceback") for line in lines),
            "error_lines": [line for line in lines if line.startswith("ERROR")][:10],
        }

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- load ----------------------------------------------------------------------------------


class Passages:
    """Hands out passages to upload, thread-safely; after the last one, numbered copies of the first ones."""

    def __init__(self, passages: list[dict]):
        self.passages = passages
        self.next = 0
        self.lock = threading.Lock()

    def take(self) -> tuple[str, str]:
        with self.lock:
            n = self.next
            self.next += 1
        passage = self.passages[n % len(self.passages)]
        round_ = n // len(self.passages)
        suffix = f" (copy {round_})" if round_ else ""
        return f"msmarco-{passage['_id']}{suffix}", passage["text"] + suffix


class Budget:
    """A shared count of requests still allowed (None: unlimited) and, optionally, a pace."""

    def __init__(self, limit: int | None, rate: float | None = None):
        self.remaining = limit
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()
        self.lock = threading.Lock()

    def take(self, end: float) -> bool:
        with self.lock:
            if self.remaining is not None:
                if self.remaining <= 0:
                    return False
                self.remaining -= 1
            wait_until = self.next_at
            self.next_at = max(self.next_at, time.monotonic()) + self.interval
        delay = wait_until - time.monotonic()
        if delay > 0:
            if wait_until >= end:
                return False
            time.sleep(delay)
        return time.monotonic() < end


def upload(http: httpx.Client, name: str, text: str, stats: Stats) -> tuple[str | None, float]:
    sent = time.monotonic()
    try:
        response = http.post(f"{KB}/text", json={"text": text, "name": name})
    except httpx.HTTPError as exc:
        stats.record(time.monotonic() - sent, None, exc)
        return None, sent
    ok = stats.record(time.monotonic() - sent, response)
    return (response.json()["id"] if ok else None), sent


def seed(url: str, api_key: str, passages: list[dict], tracker: SearchableTracker, concurrency: int = 8) -> dict:
    stats = Stats()
    source = Passages(passages)
    remaining = Budget(len(passages))
    ids: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        with httpx.Client(base_url=url, headers={"xi-api-key": api_key}, timeout=60) as http:
            while remaining.take(math.inf):
                name, text = source.take()
                document_id, sent = upload(http, name, text, stats)
                if document_id:
                    tracker.add(document_id, sent, "seed")
                    with lock:
                        ids.append(document_id)

    started = time.monotonic()
    threads = [threading.Thread(target=run, name=f"seed-{i}") for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uploaded = time.monotonic()
    drained = tracker.wait_drained(600, "seed")
    indexed = time.monotonic()
    _, statuses = tracker.results("seed")
    return {
        "documents": len(ids),
        "upload_secs": uploaded - started,
        "indexed_secs": indexed - started,
        "all_indexed": drained,
        "index_statuses": dict(statuses),
        "upload_errors": dict(stats.errors),
        "error_samples": stats.error_samples,
    }


def mixed(args, url: str, api_key: str, passages: list[dict], queries: list[str], tracker: SearchableTracker) -> dict:
    uploads, retrievals = Stats(), Stats()
    source = Passages(passages)
    upload_budget = Budget(args.max_uploads, args.upload_rate)
    retrieval_budget = Budget(args.max_retrievals)
    query_counter = iter(range(10**12))
    query_lock = threading.Lock()
    chunks_returned: list[int] = []
    barrier = threading.Barrier(args.uploaders + args.retrievers + 1)
    window: dict[str, float] = {}

    def uploader() -> None:
        with httpx.Client(base_url=url, headers={"xi-api-key": api_key}, timeout=args.timeout) as http:
            barrier.wait()
            while upload_budget.take(window["end"]):
                name, text = source.take()
                document_id, sent = upload(http, name, text, uploads)
                if document_id:
                    tracker.add(document_id, sent, "mixed")

    def retriever(offset: int) -> None:
        with httpx.Client(base_url=url, headers={"xi-api-key": api_key}, timeout=args.timeout) as http:
            barrier.wait()
            i = offset
            while retrieval_budget.take(window["end"]):
                query = queries[i % len(queries)]
                i += 1
                if args.unique_queries:
                    with query_lock:
                        query = f"{query} #{next(query_counter)}"
                sent = time.monotonic()
                try:
                    response = http.post(f"{KB}/rag/retrieve", json={"query": query})
                except httpx.HTTPError as exc:
                    retrievals.record(time.monotonic() - sent, None, exc)
                    continue
                if retrievals.record(time.monotonic() - sent, response):
                    with query_lock:
                        chunks_returned.append(len(response.json()["chunks"]))

    threads = [threading.Thread(target=uploader, name=f"up-{i}", daemon=True) for i in range(args.uploaders)]
    threads += [
        threading.Thread(target=retriever, args=(i * 7,), name=f"rt-{i}", daemon=True) for i in range(args.retrievers)
    ]
    for thread in threads:
        thread.start()
    window["start"] = time.monotonic()
    window["end"] = window["start"] + args.duration
    barrier.wait()
    for thread in threads:
        thread.join(max(0.1, window["end"] + args.timeout + 5 - time.monotonic()))
    finished = time.monotonic()
    hung = [t.name for t in threads if t.is_alive()]
    elapsed = finished - window["start"]
    drained = tracker.wait_drained(args.drain_timeout, "mixed")
    drain_secs = time.monotonic() - finished
    searchable, statuses = tracker.results("mixed")
    return {
        "elapsed_secs": elapsed,
        "uploads": {**summary(uploads.latencies), "ok": uploads.ok, "per_sec": uploads.ok / elapsed,
                    "errors": dict(uploads.errors), "error_samples": uploads.error_samples},
        "retrievals": {**summary(retrievals.latencies), "ok": retrievals.ok, "per_sec": retrievals.ok / elapsed,
                       "errors": dict(retrievals.errors), "error_samples": retrievals.error_samples,
                       "with_chunks": sum(1 for n in chunks_returned if n),
                       "mean_chunks": sum(chunks_returned) / len(chunks_returned) if chunks_returned else 0.0},
        "searchable": {**summary(searchable), "index_statuses": dict(statuses),
                       "not_done_at_drain_timeout": tracker.outstanding("mixed"),
                       "drain_secs_after_load": drain_secs, "all_indexed": drained},
        "hung_threads": hung,
    }


# --- report --------------------------------------------------------------------------------


def ms(x: float) -> str:
    return "-" if x != x else f"{x * 1000:.0f}"


def secs(x: float) -> str:
    return "-" if x != x else f"{x:.2f}"


def print_report(result: dict) -> None:
    cfg, sd, mx = result["config"], result["seed"], result["mixed"]
    print()
    print(f"machine: {result['machine']}; 1-min load average {result['loadavg_1m']['before']:.1f} before, "
          f"{result['loadavg_1m']['after']:.1f} after")
    env = f"  env {result['server_env']}" if result["server_env"] else ""
    print(f"server:  {result['server']}  (indexing workers: {cfg['workers'] or 'server default'}){env}")
    print(f"seed:    {sd['documents']} passages uploaded in {sd['upload_secs']:.1f}s, all indexed after "
          f"{sd['indexed_secs']:.1f}s ({sd['documents'] / sd['indexed_secs']:.1f} docs/s); "
          f"statuses {sd['index_statuses']}; errors {sd['upload_errors'] or 'none'}")
    up, rt, sr = mx["uploads"], mx["retrievals"], mx["searchable"]
    notes = (" (unique queries)" if cfg["unique_queries"] else "") + (
        f" (uploads paced at {cfg['upload_rate']}/s)" if cfg["upload_rate"] else "")
    print(f"mixed:   {cfg['uploaders']} uploaders + {cfg['retrievers']} retrievers for {mx['elapsed_secs']:.1f}s{notes}")
    print()
    print(f"{'':12} {'ok':>6} {'per s':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}  errors")
    for label, s in (("uploads", up), ("retrievals", rt)):
        print(f"{label:12} {s['ok']:>6} {s['per_sec']:>7.1f} {ms(s['p50']):>7} {ms(s['p90']):>7} {ms(s['p99']):>7} "
              f"{ms(s['max']):>7}  {s['errors'] or 'none'}")
    print()
    print(f"retrievals returning >=1 chunk: {rt['with_chunks']}/{rt['ok']} (mean {rt['mean_chunks']:.1f} chunks)")
    print(f"time to searchable (upload sent -> index succeeded), {sr['count']} documents: "
          f"p50 {secs(sr['p50'])}s, p90 {secs(sr['p90'])}s, p99 {secs(sr['p99'])}s, max {secs(sr['max'])}s")
    print(f"  index statuses {sr['index_statuses']}; backlog drained {sr['drain_secs_after_load']:.1f}s after the "
          f"load stopped; still pending at the drain timeout: {sr['not_done_at_drain_timeout']}")
    if mx["hung_threads"]:
        print(f"threads that did not stop: {mx['hung_threads']}")
    for label, s in (("upload", up), ("retrieval", rt)):
        for sample in s["error_samples"]:
            print(f"{label} error: {sample}")
    if "server_log" in result:
        log = result["server_log"]
        print(f"server log: 'database is locked' x{log['database_is_locked']}, tracebacks x{log['tracebacks']}, "
              f"ERROR lines x{len(log['error_lines'])}")
        for line in log["error_lines"]:
            print(f"  {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running kb server (loopback only)")
    target.add_argument("--spawn", action="store_true", help="start a throwaway `kb serve` on a temp data dir")
    parser.add_argument("--api-key", help="workspace key (with --url)")
    parser.add_argument("--data-dir", type=Path, help="read DATA_DIR/default_api_key (with --url)")
    parser.add_argument("--workers", type=int, help="indexing threads of the spawned server (kb serve --workers)")
    parser.add_argument("--uploaders", type=int, default=32)
    parser.add_argument("--retrievers", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of mixed load (default 30)")
    parser.add_argument("--max-uploads", type=int, help="stop uploading after this many")
    parser.add_argument("--max-retrievals", type=int, help="stop retrieving after this many")
    parser.add_argument("--upload-rate", type=float, help="pace all uploaders together to about this many per second")
    parser.add_argument("--seed-docs", type=int, default=500)
    parser.add_argument("--unique-queries", action="store_true", help="make every query distinct (no embedding cache hits)")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="max seconds to wait for the upload backlog")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout, seconds")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the passage choice")
    args = parser.parse_args()
    if args.duration <= 0 or args.duration > 3600:
        parser.error("--duration must be in (0, 3600]")

    rng = random.Random(args.seed)
    seed_passages, rest, queries = load_msmarco(args.corpus, args.seed_docs, rng)

    server = None
    if args.spawn:
        server = SpawnedServer(args.workers)
        print(f"starting: {' '.join(server.command)}", flush=True)
        url, api_key = server.url, server.wait_ready()
    else:
        require_loopback(args.url)
        url = args.url.rstrip("/")
        if args.api_key:
            api_key = args.api_key
        elif args.data_dir:
            api_key = (args.data_dir / "default_api_key").read_text().strip()
        else:
            parser.error("--url needs --api-key or --data-dir")
        if args.workers:
            print("note: --workers applies to --spawn only", file=sys.stderr)

    load_before = os.getloadavg()
    tracker = SearchableTracker(url, api_key)
    tracker.start()
    try:
        print(f"seeding {len(seed_passages)} passages...", flush=True)
        seeded = seed(url, api_key, seed_passages, tracker)
        print(f"mixed load for {args.duration:.0f}s...", flush=True)
        mixed_result = mixed(args, url, api_key, rest, queries, tracker)
    finally:
        tracker.stop()
        if server:
            server.stop()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
                   f"Python {platform.python_version()}",
        "server": url if not server else f"spawned: {' '.join(server.command)}",
        "server_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
        "loadavg_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seed": seeded,
        "mixed": mixed_result,
        "tracker": {"polls": tracker.polls, "poll_errors": dict(tracker.poll_errors)},
    }
    if server:
        result["server_log"] = server.scan_log()
        server.cleanup()
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    failures = sum(mixed_result[k]["errors"] and sum(mixed_result[k]["errors"].values()) or 0
                   for k in ("uploads", "retrievals"))
    return 1 if failures or mixed_result["hung_threads"] else 0


if __name__ == "__main__":
    sys.exit(main())

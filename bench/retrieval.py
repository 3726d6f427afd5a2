"""Retrieval benchmark: quality (msmarco-5k, multilingual known-item sets), latency and indexing throughput over HTTP.

Usage (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/retrieval.py [--part msmarco,latency,scale,multilingual,backends]
        [--modes hybrid,dense,lexical] [--json PATH] [--scale 100000] [--latency-requests 500]
        [--concurrency 8] [--upload-clients 4] [--langs ar,ja,de,zh,en] [--no-ml-combined]
        [--backends torch,onnx-int8] [--backend-passages N] [--num-candidates N] [--budget-ms MS] [--embed-cache F]
        [--url http://127.0.0.1:8000 (--api-key KEY | --data-dir DIR)] [--keep] [--check-sets]

Without --url the script starts its own `kb serve` (`.venv/bin/kb serve --data-dir TMP --port FREE`,
environment: this process's, plus HF_HUB_OFFLINE=1; so any `KB_*` setting given to the script, e.g.
KB_EMBED_BACKEND or KB_WORKERS, reaches the server) on a temporary data dir, and creates one workspace
per corpus with `kb workspace create NAME --tier enterprise --min-rag-document-bytes 0`. With --url and
--data-dir (that server's data dir) it creates the workspaces the same way; with --url and --api-key
every part shares that one workspace, which must be empty (and accept small documents: `kb workspace set
WS --min-rag-document-bytes 0`, msmarco passages are short), and each part deletes its documents after it.

Parts (default: all but `scale` and `backends`, which take long; `--part all` runs everything):

msmarco       The 5,000 msmarco-5k passages are uploaded as text documents (`POST /text`, name = passage
              id, `--upload-clients` at a time); the script waits until every index is done (batched
              `POST /rag-index` status reads, oldest first) and reports indexing throughput: chunks/s
              from the first upload sent to the last index seen `succeeded`, upload time separately,
              and the rate after the last upload (indexing alone). Then the 43 judged queries (7 of
              the 50 have no judgements and are left out) are asked in each `--modes` search mode
              (`max_retrieved_rag_chunks_count` 10, `max_vector_distance` 2.0, `max_documents_length`
              10,000,000); chunks map to passages by `document_name`; nDCG@10 (graded gains, as
              trec_eval) and Recall@10 against qrels/test.tsv (no header row). In-process baselines on
              the raw passages: BM25 (bm25s, Lucene variant k1=1.5 b=0.75, English Snowball stemmer and
              stopwords), exact dense search (sentence-transformers with the bundled all-MiniLM-L6-v2,
              normalised embeddings, numpy dot product) and their reciprocal-rank fusion (k=60, top 100
              of each). Also checks that every returned `vector_distance` is the true cosine distance
              (compared with the in-process embeddings, for chunks that are a whole passage).
busy          Retrieval latency while a large document is being indexed on the same cores: `--busy-file`
              (default epub/moby-dick.epub, about 1,600 chunks) is uploaded to the msmarco workspace, and
              while its index is not done one client sends cold hybrid retrieve calls back to back
              (the 50 queries, each text distinct). p50/p99 of those calls beside the same client's
              figures on the idle server just before, and how long the indexing took. Target p99 <= 50 ms.
latency       On the msmarco workspace (built first if the msmarco part did not run), per mode:
              `--latency-requests` retrieve calls (the 50 queries cycled) for each of cold (every query
              text distinct: " #<n>" appended, so the server's query-embedding cache never hits) and
              warm (the 50 texts, asked once before, so cached), sequentially (one client) and with
              `--concurrency` clients (one persistent httpx.Client each). Client-side p50/p99 and
              requests/s; the server's own `timings_ms` (embed, total) when present, else its
              `rag_latency_secs`.
scale         A workspace of `--scale` chunks (default 100,000) built over HTTP from synthetic Markdown
              documents: `--scale-sections` sections (default 100) per document, each `# Topic d.i:
              <words>` followed by 1-3 msmarco sentences recombined at random (seed 0), so each heading
              starts a chunk and every chunk text is distinct (no embedding reuse). Reports how long
              upload and indexing took, then the same latency figures as `latency`, in each mode.
multilingual  For each language of bench/data/multilingual/documents.json (Arabic, Japanese, German,
              Chinese, English), its documents are uploaded as files into a workspace of their own,
              then every question of `<lang>.jsonl` is asked in each mode (top 10); a hit is a
              retrieved chunk of the question's document whose text contains the question's quote.
              hit@1, hit@10, MRR@10 per language and mode, and whether hybrid >= max(dense, lexical).
              Then (unless --no-ml-combined) all documents in ONE workspace and all questions again:
              the per-language workspaces are tiny for some languages (the Chinese page is 2 chunks).
              Before asking, every quote is looked up in the document's chunks (`GET /{id}/chunks`);
              questions whose quote is in no chunk are reported as unanswerable.
backends      Indexing throughput of the msmarco passages with `KB_EMBED_BACKEND=torch` and
              `KB_EMBED_BACKEND=onnx-int8` (fresh servers and data dirs; needs the spawned mode),
              against plain sentence-transformers in this process on the same passages
              (`model.encode(passages, batch_size=32)`, default settings), as a ratio (`--backend-passages N`:
              the first N passages only, for a quick check). Two ways per backend:
              stored first, then indexed: uploaded to a server with `KB_WORKERS=0` (stored, jobs
              queued), which stops; a server with workers on the same data dir indexes them (chunks/s
              from its /health answer to the last index done: indexing alone, the target's measure);
              uploads and indexing at once: uploaded to a fresh server that indexes meanwhile
              (chunks/s from the first upload to the last index done). A backend value
              that `kb config` does not know is reported as not available (torch is then still run,
              as the server's only backend).

Before a mode other than dense is used, the server is probed: if it neither rejects an unknown
`search_mode` (422) nor answers with `timings_ms`, it does not support search modes yet, and those
modes are reported as "not available yet" (`--force-modes` sends them anyway).

Every part is bounded (`--index-timeout`, `--scale-timeout`); progress goes to stderr, figures to stdout,
and with --json all figures (per query too) to a file, rewritten after each part. The machine is
shared: each part records the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from context_prefix import load_msmarco  # noqa: E402  (passages, queries, qrels; "\n"-only split, no qrels header)
from load import free_port, percentile, require_loopback  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
ML_DIR = BENCH / "data" / "multilingual"
KB = "/v1/convai/knowledge-base"
RETRIEVE = f"{KB}/rag/retrieve"
MODES = ("hybrid", "dense", "lexical")
PARTS = ("msmarco", "latency", "busy", "scale", "multilingual", "backends")
DEFAULT_PARTS = ("msmarco", "latency", "busy", "multilingual")
TERMINAL = ("succeeded", "failed", "rag_limit_exceeded", "document_too_small")
TOP_K = 10
BIG_LENGTH = 10_000_000  # max_documents_length: the API's maximum, so no chunk is cut for length
RRF_K = 60
T0 = time.monotonic()


# ---- small utilities -------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def ms(x: float | None) -> str:
    return "-" if x is None or x != x else (f"{x:.1f}" if x < 100 else f"{x:.0f}")


def f3(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def p(values: list[float], q: float) -> float | None:
    return percentile(sorted(values), q) if values else None


# ---- the server and workspaces -----------------------------------------------------------------------


def kb_command() -> list[str]:
    exe = REPO / ".venv" / "bin" / "kb"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kb.cli"]


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(extra or {})}


class SpawnedServer:
    """`kb serve` on its own data dir and a free loopback port, in its own process group."""

    def __init__(self, root: Path, label: str, env_extra: dict[str, str] | None = None, data_dir: Path | None = None):
        self.label = label
        self.data_dir = data_dir or root / f"data-{label}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = server_env(env_extra)
        self.log_path = root / f"server-{label}.log"
        self.command = kb_command() + ["serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
                                       "--port", str(self.port)]
        self._log = open(self.log_path, "wb")
        log(f"starting server {label}: {' '.join(self.command)}"
            + (f" with {env_extra}" if env_extra else ""))
        self.spawned_at = time.monotonic()
        self.process = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready()
        self.ready_at = time.monotonic()

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kb serve exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"kb serve did not answer /health within {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def create_workspace(self, name: str) -> str:
        return create_workspace(self.data_dir, name, self.env)

    def scan_log(self) -> dict:
        lines = self.log_path.read_text(errors="replace").split("\n")
        return {"tracebacks": sum(line.startswith("Traceback") for line in lines),
                "error_lines": [line for line in lines if line.startswith("ERROR")][:5]}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()
        log(f"server {self.label} stopped")


def create_workspace(data_dir: Path, name: str, env: dict[str, str]) -> str:
    """`kb workspace create NAME --tier enterprise --min-rag-document-bytes 0`; returns the API key."""
    cmd = kb_command() + ["workspace", "create", name, "--tier", "enterprise", "--min-rag-document-bytes", "0",
                          "--data-dir", str(data_dir)]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()[-1000:]}")
    return json.loads(out.stdout.strip().split("\n")[-1])["api_key"]


class Target:
    """Where the parts run: a spawned server, or --url with workspaces made from --data-dir, or one --api-key."""

    def __init__(self, args):
        self.args = args
        self.spawned = not args.url
        self.server: SpawnedServer | None = None  # started on first use (the backends part runs its own)
        self.root = Path(tempfile.mkdtemp(prefix="kb-retrieval-bench-"))
        self.keys: dict[str, str] = {}
        self.shared_key = None
        self._url = None
        if args.url:
            require_loopback(args.url)
            self._url = args.url.rstrip("/")
            self.shared_key = args.api_key
            self.data_dir = args.data_dir
            self.env = server_env()
        self.run_tag = f"{int(time.time()) % 100000:05d}"

    @property
    def url(self) -> str:
        if self._url is None:
            self.server = SpawnedServer(self.root, "main")
            self._url, self.data_dir, self.env = self.server.url, self.server.data_dir, self.server.env
        return self._url

    def workspace(self, purpose: str) -> tuple[str, bool]:
        """(API key, fresh) of the workspace for `purpose`: created once per run; shared with --api-key."""
        self.url  # noqa: B018 - starts the spawned server if needed
        if self.shared_key:
            return self.shared_key, False
        if purpose not in self.keys:
            self.keys[purpose] = create_workspace(self.data_dir, f"bench-{purpose}-{self.run_tag}", self.env)
            log(f"workspace bench-{purpose}-{self.run_tag} created")
        return self.keys[purpose], True

    def close(self) -> None:
        if self.server:
            self.server.stop()
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            log(f"kept {self.root}")


def client(url: str, key: str, timeout: float = 120) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"xi-api-key": key}, timeout=timeout)


# ---- uploading and waiting ------------------------------------------------------------------------------


def upload_all(url: str, key: str, items: list[dict], clients: int, what: str) -> dict:
    """Upload `items` ({"name", "text"} or {"name", "path"}) with `clients` threads; ids in item order."""
    ids: list[str | None] = [None] * len(items)
    sent_at: list[float] = [0.0] * len(items)
    errors: Counter = Counter()
    samples: list[str] = []
    counter = itertools.count()
    lock = threading.Lock()
    done = [0]

    def one(http: httpx.Client, item: dict) -> httpx.Response:
        if "text" in item:
            return http.post(f"{KB}/text", json={"text": item["text"], "name": item["name"]})
        data = Path(item["path"]).read_bytes()
        return http.post(f"{KB}/file", files={"file": (Path(item["path"]).name, data)}, data={"name": item["name"]})

    def worker() -> None:
        with client(url, key, timeout=300) as http:
            while True:
                i = next(counter)
                if i >= len(items):
                    return
                for attempt in range(3):
                    sent_at[i] = time.monotonic()
                    try:
                        response = one(http, items[i])
                    except httpx.HTTPError as exc:
                        kind, detail = type(exc).__name__, str(exc)
                    else:
                        if response.status_code == 200:
                            ids[i] = response.json()["id"]
                            break
                        kind, detail = str(response.status_code), response.text[:300]
                        if response.status_code < 500:
                            attempt = 99  # a 4xx will not change: no retry
                    if attempt >= 2:
                        with lock:
                            errors[kind] += 1
                            if len(samples) < 5:
                                samples.append(f"{items[i]['name']}: {kind} {detail}")
                        break
                    time.sleep(0.5)
                with lock:
                    done[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    last_log = started
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        if time.monotonic() - last_log > 15:
            last_log = time.monotonic()
            log(f"  uploading {what}: {done[0]}/{len(items)} ({done[0] / (last_log - started):.1f}/s)")
    for t in threads:
        t.join()
    finished = time.monotonic()
    return {"ids": ids, "first_sent": min((s for s in sent_at if s), default=started), "last_acked": finished,
            "upload_secs": finished - started, "errors": dict(errors), "error_samples": samples,
            "uploaded": sum(1 for i in ids if i)}


def detect_model(http: httpx.Client, document_id: str) -> str | None:
    response = http.get(f"{KB}/{document_id}/rag-index")
    response.raise_for_status()
    indexes = response.json()["indexes"]
    return indexes[0]["model"] if indexes else None


def read_index_batch(http: httpx.Client, model: str, document_ids: list[str]) -> dict[str, dict | None]:
    """The indexes of up to 100 documents for `model` in one `POST /rag-index` (raises on an error status)."""
    response = http.post(f"{KB}/rag-index", json={"items": [
        {"document_id": d, "model": model, "create_if_missing": False} for d in document_ids]})
    response.raise_for_status()
    return {d: r.get("data") for d, r in response.json().items()}


def index_chunks(data: dict) -> int:
    return int(data.get("chunks_embedded") or 0) + int(data.get("chunks_reused") or 0)


def wait_indexed(url: str, key: str, ids: list[str], timeout: float, what: str, poll_secs: float = 0.5) -> dict:
    """Poll the indexes of `ids` (oldest first, 100 per `POST /rag-index`) until all are terminal.

    Returns {id: {"status", "seen", "chunks", "error"}}, plus "timed_out" and "model". `seen` is the
    monotonic time of the poll that first saw the index terminal (late by up to one poll round)."""
    ids = [i for i in ids if i]
    state: dict[str, dict] = {}
    if not ids:
        return {"docs": state, "timed_out": False, "model": None}
    deadline = time.monotonic() + timeout
    with client(url, key) as http:
        model = None
        while model is None:
            model = detect_model(http, ids[0])
            if model is None:
                time.sleep(poll_secs)
        batch_ok = True
        pending = list(ids)
        last_log = time.monotonic()
        started = last_log
        while pending:
            if time.monotonic() > deadline:
                log(f"  {what}: gave up waiting, {len(pending)} of {len(ids)} indexes not done")
                return {"docs": state, "timed_out": True, "model": model, "pending": len(pending)}
            quiet_batches = 0
            for start in range(0, len(pending), 100):
                batch = pending[start:start + 100]
                results = {}
                if batch_ok:
                    try:
                        results = read_index_batch(http, model, batch)
                    except httpx.HTTPStatusError as exc:
                        batch_ok = False
                        log(f"  batch status read answered {exc.response.status_code}; polling one document at a time")
                if not batch_ok:
                    for d in batch:
                        response = http.get(f"{KB}/{d}/rag-index")
                        indexes = [i for i in response.json().get("indexes", []) if i["model"] == model]
                        results[d] = indexes[0] if indexes else None
                now = time.monotonic()
                newly = 0
                for d, data in results.items():
                    if data and data["status"] in TERMINAL and d not in state:
                        state[d] = {"status": data["status"], "seen": now, "error": data.get("error"),
                                    "chunks": index_chunks(data), "chunks_embedded": int(data.get("chunks_embedded") or 0)}
                        newly += 1
                quiet_batches = 0 if newly else quiet_batches + 1
                if quiet_batches >= 2:
                    break  # jobs run oldest first: later documents are not done either
            pending = [d for d in pending if d not in state]
            if time.monotonic() - last_log > 15:
                last_log = time.monotonic()
                n = len(ids) - len(pending)
                chunks = sum(s["chunks"] for s in state.values())
                log(f"  indexing {what}: {n}/{len(ids)} documents, {chunks} chunks "
                    f"({chunks / (last_log - started):.1f} chunks/s since waiting began)")
            if pending:
                time.sleep(poll_secs)
    return {"docs": state, "timed_out": False, "model": model}


def indexing_report(up: dict, waited: dict, n_items: int) -> dict:
    docs = waited["docs"]
    statuses = Counter(s["status"] for s in docs.values())
    ok = [s for s in docs.values() if s["status"] == "succeeded"]
    chunks = sum(s["chunks"] for s in ok)
    t0, t_up = up["first_sent"], up["last_acked"]
    t_done = max((s["seen"] for s in docs.values()), default=t_up)
    total = max(t_done - t0, 1e-9)
    after = [s for s in ok if s["seen"] > t_up]
    drain = t_done - t_up
    # indexing rate per fifth of the documents, in the order they finished: shows a slowdown as the index grows
    by_time = sorted(ok, key=lambda s: s["seen"])
    quintiles, previous = [], t0
    for q in range(5):
        group = by_time[q * len(by_time) // 5:(q + 1) * len(by_time) // 5]
        if group:
            span = max(group[-1]["seen"] - previous, 1e-9)
            quintiles.append(round(sum(s["chunks"] for s in group) / span, 2))
            previous = group[-1]["seen"]
    return {
        "documents": n_items, "uploaded": up["uploaded"], "upload_errors": up["errors"],
        "upload_error_samples": up["error_samples"], "statuses": dict(statuses),
        "failed_samples": [s["error"] for s in docs.values() if s["status"] != "succeeded"][:3],
        "timed_out": waited["timed_out"], "chunks": chunks,
        "chunks_embedded": sum(s["chunks_embedded"] for s in ok),
        "upload_secs": up["upload_secs"], "uploads_per_sec": up["uploaded"] / max(up["upload_secs"], 1e-9),
        "indexed_secs": total, "chunks_per_sec": chunks / total, "docs_per_sec": len(ok) / total,
        "chunks_done_when_uploads_ended": sum(s["chunks"] for s in ok if s["seen"] <= t_up),
        "drain_secs": drain,
        "chunks_per_sec_by_fifth": quintiles,
        # indexing alone (no upload traffic): chunks finished after the last upload / the time after it
        "drain_chunks_per_sec": (sum(s["chunks"] for s in after) / drain) if drain > 2 and len(after) >= 0.05 * len(ok) else None,
        "model": waited["model"],
    }


def index_line(r: dict) -> str:
    drain = (f"; after the last upload {r['drain_chunks_per_sec']:.1f} chunks/s for {r['drain_secs']:.0f} s"
             if r["drain_chunks_per_sec"] else "")
    return (f"{r['uploaded']}/{r['documents']} documents uploaded in {r['upload_secs']:.1f} s "
            f"({r['uploads_per_sec']:.1f}/s); {r['chunks']} chunks indexed {r['indexed_secs']:.1f} s after the first "
            f"upload: {r['chunks_per_sec']:.1f} chunks/s ({r['docs_per_sec']:.1f} docs/s){drain}; "
            f"statuses {r['statuses']}"
            + (f"; chunks/s by fifth of the documents {r['chunks_per_sec_by_fifth']}" if len(r.get("chunks_per_sec_by_fifth") or []) == 5 else "")
            + (f"; upload errors {r['upload_errors']}" if r["upload_errors"] else "")
            + ("; TIMED OUT" if r["timed_out"] else "")
            + ("; WARNING: documents under the workspace's min_rag_document_bytes were not indexed "
               "(`kb workspace set WS --min-rag-document-bytes 0`)" if r["statuses"].get("document_too_small") else ""))


def delete_documents(url: str, key: str, ids: list[str]) -> None:
    ids = [i for i in ids if i]
    with client(url, key) as http:
        for start in range(0, len(ids), 100):
            http.post(f"{KB}/bulk-delete", json={"document_ids": ids[start:start + 100], "force": True})


def ensure_empty(url: str, key: str) -> None:
    with client(url, key) as http:
        response = http.get(KB, params={"page_size": 1})
        response.raise_for_status()
        if response.json().get("documents"):
            raise RuntimeError("the --api-key workspace is not empty: the figures would mix in its documents")


# ---- search modes -----------------------------------------------------------------------------------------


class Features:
    """What the server's retrieve endpoint supports, probed once per server."""

    def __init__(self):
        self.cache: dict[str, dict] = {}

    def probe(self, url: str, key: str) -> dict:
        if url in self.cache:
            return self.cache[url]
        with client(url, key) as http:
            bogus = http.post(RETRIEVE, json={"query": "probe", "search_mode": "no-such-mode"})
            lexical = http.post(RETRIEVE, json={"query": "probe", "search_mode": "lexical", "max_vector_distance": 2.0})
        body = lexical.json() if lexical.status_code == 200 else {}
        found = {
            "rejects_unknown_mode": bogus.status_code == 422,
            "lexical_status": lexical.status_code,
            "timings_ms": "timings_ms" in body,
            "skipped": "skipped" in body,
        }
        found["search_mode"] = found["rejects_unknown_mode"] or found["timings_ms"]
        self.cache[url] = found
        log(f"server features: {found}")
        return found


FEATURES = Features()


def usable_modes(args, url: str, key: str) -> tuple[list[str], dict[str, str]]:
    """(modes to run, {mode: why skipped})."""
    wanted = list(args.modes)
    if wanted == ["dense"] or args.force_modes:
        return wanted, {}
    found = FEATURES.probe(url, key)
    if found["search_mode"]:
        return wanted, {}
    skipped = {m: "not available yet (the server ignores search_mode)" for m in wanted if m != "dense"}
    return [m for m in wanted if m == "dense"], skipped


def retrieve_body(args, query: str, mode: str, k: int = TOP_K) -> dict:
    body = {"query": query, "search_mode": mode, "max_retrieved_rag_chunks_count": k,
            "max_vector_distance": 2.0, "max_documents_length": BIG_LENGTH}
    if args.num_candidates:
        body["num_candidates"] = args.num_candidates
    if args.budget_ms:
        body["budget_ms"] = args.budget_ms
    return body


def retrieve(http: httpx.Client, body: dict) -> dict:
    for attempt in range(3):
        try:
            response = http.post(RETRIEVE, json=body)
        except httpx.HTTPError:
            if attempt == 2:
                raise
            time.sleep(1)
            continue
        if response.status_code == 200:
            return response.json()
        if response.status_code < 500 or attempt == 2:
            raise RuntimeError(f"retrieve answered {response.status_code}: {response.text[:300]}")
        time.sleep(1)
    raise AssertionError


# ---- msmarco ---------------------------------------------------------------------------------------------


class Msmarco:
    """The corpus, plus lazily computed in-process embeddings (shared by the msmarco and backends parts)."""

    def __init__(self, corpus: Path, cache: Path | None = None):
        passages, queries, qrels = load_msmarco(corpus)
        self.cache = cache
        self.passages = passages
        self.queries = queries
        self.qrels = qrels
        self.judged = [q for q in queries if q["_id"] in qrels]
        self.text_of = {p["_id"]: p["text"] for p in passages}
        self._model = None
        self.vectors = None  # passage embeddings in passage order
        self.encode_secs = None  # wall time of model.encode(passages, batch_size=32), when measured here

    def model(self):
        if self._model is None:
            import transformers
            from sentence_transformers import SentenceTransformer

            from kb.settings import bundled_model_path

            transformers.logging.set_verbosity_error()
            self._model = SentenceTransformer(bundled_model_path(), device="cpu")
        return self._model

    def _cache_key(self) -> str:
        import hashlib

        from kb.settings import bundled_model_path

        digest = hashlib.sha256("\n".join(p["text"] for p in self.passages).encode("utf-8"))
        digest.update(bundled_model_path().encode("utf-8"))
        return digest.hexdigest()

    def encode_passages(self, force_timing: bool = False):
        """Plain sentence-transformers: model.encode(passages, batch_size=32), default settings, timed.

        With `--embed-cache FILE.npz`, vectors of an earlier run are reused (not when a timing is needed)."""
        import numpy as np

        if self.vectors is not None and (self.encode_secs is not None or not force_timing):
            return self.vectors
        if self.cache and self.cache.exists() and not force_timing:
            data = np.load(self.cache, allow_pickle=False)
            if str(data["key"]) == self._cache_key():
                log(f"passage embeddings from {self.cache}")
                self.vectors = data["vectors"]
                return self.vectors
        model = self.model()
        texts = [p["text"] for p in self.passages]
        model.encode(texts[:64], batch_size=32)  # warm-up
        log(f"encoding {len(texts)} passages in-process (sentence-transformers, batch 32)...")
        started = time.perf_counter()
        raw = model.encode(texts, batch_size=32)
        self.encode_secs = time.perf_counter() - started
        vectors = np.asarray(raw, dtype=np.float32)
        self.vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        log(f"  {len(texts) / self.encode_secs:.1f} passages/s")
        if self.cache:
            np.savez(self.cache, key=np.array(self._cache_key()), vectors=self.vectors)
        return self.vectors

    def encode_queries(self, texts: list[str]):
        return self.model().encode(texts, batch_size=32, normalize_embeddings=True)


def ndcg_recall(ranked: list[str], grades: dict[str, int], k: int = TOP_K) -> tuple[float, float]:
    ranked = ranked[:k]
    dcg = sum(grades.get(pid, 0) / math.log2(rank + 2) for rank, pid in enumerate(ranked))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    relevant = {pid for pid, g in grades.items() if g > 0}
    recall = len(relevant & set(ranked)) / len(relevant) if relevant else 0.0
    return (dcg / idcg if idcg else 0.0), recall


def dedupe(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def baselines(ms: Msmarco) -> dict:
    """BM25 (bm25s), exact dense (sentence-transformers + numpy), RRF of both: {method: {qid: ranked ids}}."""
    import bm25s
    import numpy as np
    import Stemmer

    pids = [p["_id"] for p in ms.passages]
    stemmer = Stemmer.Stemmer("english")
    log("BM25 baseline (bm25s, English stemmer and stopwords)...")
    tokens = bm25s.tokenize([p["text"] for p in ms.passages], stopwords="en", stemmer=stemmer, show_progress=False)
    bm25 = bm25s.BM25()
    bm25.index(tokens, show_progress=False)
    q_tokens = bm25s.tokenize([q["text"] for q in ms.judged], stopwords="en", stemmer=stemmer, show_progress=False,
                              return_ids=False)
    idx, scores = bm25.retrieve(q_tokens, k=100, show_progress=False)
    runs = {"bm25": {}, "dense": {}, "rrf": {}}
    for qi, q in enumerate(ms.judged):
        runs["bm25"][q["_id"]] = [pids[j] for j, s in zip(idx[qi], scores[qi]) if s > 0]
    log("exact dense baseline (sentence-transformers, numpy)...")
    vectors = ms.encode_passages()
    qv = ms.encode_queries([q["text"] for q in ms.judged])
    sims = qv @ vectors.T
    for qi, q in enumerate(ms.judged):
        top = np.argsort(-sims[qi])[:100]
        runs["dense"][q["_id"]] = [pids[j] for j in top]
    for q in ms.judged:
        fused: dict[str, float] = {}
        for run in (runs["bm25"], runs["dense"]):
            for rank, pid in enumerate(run[q["_id"]]):
                fused[pid] = fused.get(pid, 0.0) + 1.0 / (RRF_K + rank + 1)
        runs["rrf"][q["_id"]] = sorted(fused, key=lambda pid: -fused[pid])
    return runs


def build_msmarco_workspace(args, target: Target, ms: Msmarco, state: dict) -> dict:
    """Upload the 5,000 passages into the msmarco workspace once per run; returns the indexing report."""
    if "msmarco_ws" in state:
        return state["msmarco_ws"]
    key, fresh = target.workspace("msmarco")
    if not fresh:
        ensure_empty(target.url, key)
    items = [{"name": p["_id"], "text": p["text"]} for p in ms.passages]
    log(f"uploading {len(items)} msmarco passages with {args.upload_clients} clients...")
    up = upload_all(target.url, key, items, args.upload_clients, "msmarco")
    waited = wait_indexed(target.url, key, up["ids"], args.index_timeout, "msmarco")
    report = indexing_report(up, waited, len(items))
    log("msmarco indexed: " + index_line(report))
    state["msmarco_ws"] = {"key": key, "ids": up["ids"], "indexing": report}
    return state["msmarco_ws"]


def part_msmarco(args, target: Target, ms: Msmarco, state: dict) -> dict:
    ws = build_msmarco_workspace(args, target, ms, state)
    key = ws["key"]
    modes, skipped = usable_modes(args, target.url, key)
    runs: dict[str, dict[str, list[str]]] = {}
    raw: dict[str, dict[str, list[dict]]] = {}
    latencies: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    with client(target.url, key) as http:
        for mode in modes:
            log(f"msmarco: {len(ms.judged)} queries, mode {mode}")
            runs[mode], raw[mode], latencies[mode] = {}, {}, []
            try:
                for q in ms.judged:
                    started = time.perf_counter()
                    answer = retrieve(http, retrieve_body(args, q["text"], mode))
                    latencies[mode].append(time.perf_counter() - started)
                    raw[mode][q["_id"]] = [{"name": c["document_name"], "d": c.get("vector_distance"), "text": c["text"]}
                                           for c in answer["chunks"]]
                    runs[mode][q["_id"]] = dedupe([c["document_name"] for c in answer["chunks"]])
            except Exception as exc:  # noqa: BLE001 - report and go on with the other modes
                errors[mode] = f"{type(exc).__name__}: {exc}"
                log(f"  mode {mode} failed: {errors[mode]}")
                runs.pop(mode)
    base = baselines(ms)

    import numpy as np

    # vector_distance is the true cosine distance in every mode: compare with in-process embeddings,
    # for returned chunks whose text is their whole passage (kb and this script embed the same text).
    pid_index = {p["_id"]: i for i, p in enumerate(ms.passages)}
    qv = dict(zip([q["_id"] for q in ms.judged], ms.encode_queries([q["text"] for q in ms.judged])))
    distance_check = {}
    for mode in runs:
        diffs, missing = [], 0
        for qid, chunks in raw[mode].items():
            for c in chunks:
                if c["d"] is None:
                    missing += 1
                    continue
                i = pid_index.get(c["name"])
                if i is not None and c["text"] == ms.passages[i]["text"].strip():
                    diffs.append(abs(c["d"] - (1.0 - float(np.dot(qv[qid], ms.vectors[i])))))
        distance_check[mode] = {"compared": len(diffs), "max_abs_diff": max(diffs) if diffs else None,
                                "chunks_without_distance": missing}

    returned = {m: statistics.fmean(len(chunks) for chunks in raw[m].values()) if raw[m] else 0.0 for m in runs}
    table = {}
    per_query = {}
    methods = [(f"kb {m} (HTTP)", runs[m]) for m in MODES if m in runs] + [
        ("BM25 (bm25s, in-process)", base["bm25"]), ("exact dense (ST + numpy)", base["dense"]),
        (f"RRF(BM25, dense) k={RRF_K}", base["rrf"])]
    for label, run in methods:
        scores = [ndcg_recall(run.get(q["_id"], []), ms.qrels[q["_id"]]) for q in ms.judged]
        table[label] = {"ndcg@10": statistics.fmean(s[0] for s in scores),
                        "recall@10": statistics.fmean(s[1] for s in scores), "queries": len(scores)}
        per_query[label] = {q["_id"]: {"ndcg@10": s[0], "recall@10": s[1]} for q, s in zip(ms.judged, scores)}
    return {"indexing": ws["indexing"], "modes_run": list(runs), "modes_skipped": skipped, "mode_errors": errors,
            "queries_judged": len(ms.judged), "queries_total": len(ms.queries), "metrics": table,
            "distance_check": distance_check, "mean_chunks_returned": returned,
            "eval_latency_ms_p50": {m: 1000 * p(latencies[m], 50) for m in runs if latencies[m]},
            "per_query": per_query}


def print_msmarco(r: dict) -> None:
    print(f"\n== msmarco-5k: {r['queries_judged']} judged queries of {r['queries_total']}, top {TOP_K} ==")
    print("indexing: " + index_line(r["indexing"]))
    rows = [[label, f"{m['ndcg@10']:.3f}", f"{m['recall@10']:.3f}"] for label, m in r["metrics"].items()]
    print_table(["method", "nDCG@10", "Recall@10"], rows)
    for mode, why in r["modes_skipped"].items():
        print(f"kb {mode}: {why}")
    for mode, err in r["mode_errors"].items():
        print(f"kb {mode}: FAILED {err}")
    for mode, n in r.get("mean_chunks_returned", {}).items():
        if n < TOP_K:
            print(f"kb {mode}: WARNING only {n:.1f} chunks per query on average (asked for {TOP_K})"
                  + (": this mode returned nothing" if n == 0 else ""))
    for mode, c in r["distance_check"].items():
        worst = "-" if c["max_abs_diff"] is None else f"{c['max_abs_diff']:.2e}"
        print(f"vector_distance check, {mode}: {c['compared']} chunks compared with the in-process cosine distance, "
              f"max |diff| {worst}"
              + (f"; {c['chunks_without_distance']} chunks without vector_distance" if c["chunks_without_distance"] else ""))
    print("(reference figures measured earlier: dense 0.798, BM25 0.727, RRF 0.792; Recall@10 cannot exceed about 0.22)")


# ---- latency -----------------------------------------------------------------------------------------------


class QueryStream:
    """Query texts: warm (the fixed list, cycled) or cold (each text distinct: ' #<n>' appended)."""

    def __init__(self, queries: list[str], nonce: str):
        self.queries = queries
        self.nonce = nonce
        self.counter = itertools.count()
        self.lock = threading.Lock()

    def get(self, i: int, cold: bool) -> str:
        q = self.queries[i % len(self.queries)]
        if not cold:
            return q
        with self.lock:
            n = next(self.counter)
        return f"{q} #{self.nonce}{n}"


def timed_requests(args, url: str, key: str, stream: QueryStream, mode: str, cold: bool, n: int, clients: int) -> dict:
    records: list[dict] = []
    errors: Counter = Counter()
    samples: list[str] = []
    lock = threading.Lock()
    counter = itertools.count()
    barrier = threading.Barrier(clients + 1)

    def worker(offset: int) -> None:
        with client(url, key, timeout=args.request_timeout) as http:
            http.get("/health")  # open the connection before the clock starts
            barrier.wait()
            while True:
                i = next(counter)
                if i >= n:
                    return
                body = retrieve_body(args, stream.get(i + offset, cold), mode)
                started = time.perf_counter()
                try:
                    response = http.post(RETRIEVE, json=body)
                except httpx.HTTPError as exc:
                    with lock:
                        errors[type(exc).__name__] += 1
                        if len(samples) < 3:
                            samples.append(str(exc))
                    continue
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    with lock:
                        errors[str(response.status_code)] += 1
                        if len(samples) < 3:
                            samples.append(response.text[:300])
                    continue
                data = response.json()
                with lock:
                    records.append({"secs": elapsed, "timings": data.get("timings_ms"),
                                    "rag_latency_secs": data.get("rag_latency_secs"),
                                    "skipped": data.get("skipped") or [], "chunks": len(data.get("chunks", []))})

    threads = [threading.Thread(target=worker, args=(w * 7,), daemon=True) for w in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    lat = [1000 * r["secs"] for r in records]
    timings = [r["timings"] for r in records if r["timings"]]
    server_total = [t["total"] for t in timings if t.get("total") is not None] or \
        [1000 * r["rag_latency_secs"] for r in records if r["rag_latency_secs"] is not None]
    embed = [t["embed"] for t in timings if t.get("embed") is not None]
    stages = {s: p([t[s] for t in timings if t.get(s) is not None], 50) for s in ("embed", "dense", "lexical", "fuse", "context", "total")}
    skipped = Counter(s if isinstance(s, str) else json.dumps(s) for r in records for s in r["skipped"])
    return {
        "mode": mode, "cache": "cold" if cold else "warm", "clients": clients, "requests": n, "ok": len(records),
        "errors": dict(errors), "error_samples": samples, "wall_secs": wall, "per_sec": len(records) / wall if wall else None,
        "p50_ms": p(lat, 50), "p90_ms": p(lat, 90), "p99_ms": p(lat, 99), "max_ms": max(lat) if lat else None,
        "server_p50_ms": p(server_total, 50), "server_p99_ms": p(server_total, 99),
        "server_source": "timings_ms.total" if timings else "rag_latency_secs",
        "embed_p50_ms": p(embed, 50), "embed_p99_ms": p(embed, 99),
        "embed_share": (sum(embed) / sum(t["total"] for t in timings if t.get("embed") is not None and t.get("total"))
                        if embed and any(t.get("total") for t in timings) else None),
        "stage_p50_ms": stages if timings else None,
        "skipped": dict(skipped), "responses_with_skipped": sum(1 for r in records if r["skipped"]),
        "mean_chunks": statistics.fmean(r["chunks"] for r in records) if records else None,
    }


def latency_suite(args, url: str, key: str, queries: list[str], label: str, nonce: str) -> dict:
    modes, skipped = usable_modes(args, url, key)
    stream = QueryStream(queries, nonce)
    rows = []
    errors = {}
    for mode in modes:
        try:
            for cache in ("cold", "warm"):
                if cache == "warm":
                    # every query text asked once in this mode right before: cached (the server's query cache is
                    # an LRU of 1,024 texts, which the cold runs' distinct texts would have pushed them out of)
                    with client(url, key) as http:
                        for q in queries:
                            retrieve(http, retrieve_body(args, q, mode))
                for clients in (1, args.concurrency):
                    log(f"latency {label}: mode {mode}, {cache}, {clients} client(s), {args.latency_requests} requests")
                    row = timed_requests(args, url, key, stream, mode, cache == "cold", args.latency_requests, clients)
                    rows.append(row)
                    log(f"  p50 {ms(row['p50_ms'])} ms, p99 {ms(row['p99_ms'])} ms, {row['per_sec']:.1f}/s"
                        + (f", errors {row['errors']}" if row["errors"] else ""))
        except Exception as exc:  # noqa: BLE001
            errors[mode] = f"{type(exc).__name__}: {exc}"
            log(f"  mode {mode} failed: {errors[mode]}")
    # The part of latency that is query embedding, where the server does not report it: cold - warm p50.
    estimate = {}
    for mode in modes:
        for clients in (1, args.concurrency):
            c = next((r for r in rows if r["mode"] == mode and r["cache"] == "cold" and r["clients"] == clients), None)
            w = next((r for r in rows if r["mode"] == mode and r["cache"] == "warm" and r["clients"] == clients), None)
            if c and w and c["p50_ms"] is not None and w["p50_ms"] is not None:
                estimate[f"{mode}/{clients}"] = c["p50_ms"] - w["p50_ms"]
    return {"workspace": label, "rows": rows, "modes_skipped": skipped, "mode_errors": errors,
            "embed_estimate_cold_minus_warm_p50_ms": estimate}


def print_latency(r: dict, title: str) -> None:
    print(f"\n== {title} ==")
    rows = []
    for x in r["rows"]:
        rows.append([x["mode"], x["cache"], str(x["clients"]), f"{x['ok']}/{x['requests']}", ms(x["p50_ms"]), ms(x["p99_ms"]),
                     f"{x['per_sec']:.1f}" if x["per_sec"] else "-", ms(x["server_p50_ms"]), ms(x["embed_p50_ms"]),
                     f"{100 * x['embed_share']:.0f}%" if x["embed_share"] is not None else "-",
                     str(sum(x["errors"].values())) if x["errors"] else "0"])
    print_table(["mode", "cache", "clients", "ok", "p50 ms", "p99 ms", "req/s", "server p50", "embed p50", "embed share",
                 "errors"], rows)
    src = {x["server_source"] for x in r["rows"]}
    print(f"client-side latency over HTTP; 'server p50' from {', '.join(sorted(src)) or '-'}; 'embed' from "
          f"timings_ms.embed (- when the server does not report it).")
    if r["embed_estimate_cold_minus_warm_p50_ms"]:
        print("query embedding estimated as cold p50 - warm p50 (ms): "
              + ", ".join(f"{k} {v:.1f}" for k, v in r["embed_estimate_cold_minus_warm_p50_ms"].items()))
    for x in r["rows"]:
        if x["stage_p50_ms"]:
            print(f"  {x['mode']}/{x['cache']}/{x['clients']}: stage p50 ms "
                  + ", ".join(f"{k} {ms(v)}" for k, v in x["stage_p50_ms"].items()))
        if x["mean_chunks"] is not None and x["mean_chunks"] < 1:
            print(f"  {x['mode']}/{x['cache']}/{x['clients']}: WARNING {x['mean_chunks']:.2f} chunks per response on average")
        if x["responses_with_skipped"]:
            print(f"  {x['mode']}/{x['cache']}/{x['clients']}: {x['responses_with_skipped']} responses with skipped "
                  f"stages {x['skipped']}")
        for s in x["error_samples"]:
            print(f"  {x['mode']}/{x['cache']}/{x['clients']} error: {s}")
    for mode, why in r["modes_skipped"].items():
        print(f"{mode}: {why}")
    for mode, err in r["mode_errors"].items():
        print(f"{mode}: FAILED {err}")


def part_latency(args, target: Target, ms: Msmarco, state: dict) -> dict:
    ws = build_msmarco_workspace(args, target, ms, state)
    result = latency_suite(args, target.url, ws["key"], [q["text"] for q in ms.queries], "msmarco-5k",
                           f"{target.run_tag}m")
    result["chunks"] = ws["indexing"]["chunks"]
    return result


# ---- busy: latency while indexing -----------------------------------------------------------------------------


def part_busy(args, target: Target, msmarco: Msmarco, state: dict) -> dict:
    ws = build_msmarco_workspace(args, target, msmarco, state)
    key, queries = ws["key"], [q["text"] for q in msmarco.queries]
    stream = QueryStream(queries, f"{target.run_tag}b")
    idle = timed_requests(args, target.url, key, stream, "hybrid", True, 200, 1)
    path = args.corpus / args.busy_file
    latencies: list[float] = []
    embed: list[float] = []
    with client(target.url, key, timeout=args.request_timeout) as http:
        started = time.perf_counter()
        response = http.post("/v1/convai/knowledge-base/file", files={"file": (path.name, path.read_bytes())})
        response.raise_for_status()
        document_id = response.json()["id"]
        upload_secs = time.perf_counter() - started
        status, i, last_poll = "created", 0, 0.0
        while status not in ("succeeded", "failed") and time.perf_counter() - started < args.index_timeout:
            if time.perf_counter() - last_poll > 0.5:
                indexes = http.get(f"/v1/convai/knowledge-base/{document_id}/rag-index").json()["indexes"]
                status, last_poll = (indexes[0]["status"] if indexes else "created"), time.perf_counter()
                progress = indexes[0].get("progress_percentage") if indexes else None
            t0 = time.perf_counter()
            data = retrieve(http, retrieve_body(args, stream.get(i, True), "hybrid"))
            latencies.append(1000 * (time.perf_counter() - t0))
            if (data.get("timings_ms") or {}).get("embed") is not None:
                embed.append(data["timings_ms"]["embed"])
            i += 1
        indexing_secs = time.perf_counter() - started
        delete_documents(target.url, key, [document_id])
    log(f"busy: {len(latencies)} requests while indexing {path.name} ({status}, {indexing_secs:.0f} s): "
        f"p50 {ms(p(latencies, 50))} ms, p99 {ms(p(latencies, 99))} ms")
    return {
        "file": args.busy_file, "status": status, "upload_secs": upload_secs, "indexing_secs": indexing_secs,
        "last_progress": progress, "requests": len(latencies),
        "p50_ms": p(latencies, 50), "p99_ms": p(latencies, 99), "max_ms": max(latencies) if latencies else None,
        "embed_p50_ms": p(embed, 50), "embed_p99_ms": p(embed, 99),
        "idle_p50_ms": idle["p50_ms"], "idle_p99_ms": idle["p99_ms"], "idle_embed_p50_ms": idle["embed_p50_ms"],
    }


def print_busy(r: dict) -> None:
    print(f"\n== retrieval while {r['file']} is being indexed ({r['status']} after {r['indexing_secs']:.0f} s) ==")
    print_table(["server", "requests", "p50 ms", "p99 ms", "max ms", "embed p50 ms"], [
        ["idle", "200", ms(r["idle_p50_ms"]), ms(r["idle_p99_ms"]), "-", ms(r["idle_embed_p50_ms"])],
        ["indexing", str(r["requests"]), ms(r["p50_ms"]), ms(r["p99_ms"]), ms(r["max_ms"]), ms(r["embed_p50_ms"])],
    ])
    print("one client, cold hybrid queries back to back; target p99 <= 50 ms while indexing")


# ---- scale ---------------------------------------------------------------------------------------------------


SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def synthetic_documents(ms: Msmarco, n_chunks: int, sections: int, seed: int = 0) -> list[dict]:
    """Markdown documents of `sections` sections each (the last one fewer), `n_chunks` sections in all."""
    sentences = set()
    for passage in ms.passages:
        for s in SENTENCE_END.split(" ".join(passage["text"].split())):
            if 30 <= len(s) <= 300:
                sentences.add(s)
    pool = sorted(sentences)
    rng = random.Random(seed)
    docs = []
    for d in range(math.ceil(n_chunks / sections)):
        parts = []
        for i in range(min(sections, n_chunks - d * sections)):
            chosen = rng.sample(pool, rng.choice((1, 2, 3)))
            words = " ".join(chosen[0].split()[:5]).rstrip(".,;:!?")
            parts.append(f"# Topic {d}.{i}: {words}\n\n{' '.join(chosen)}")
        docs.append({"name": f"synthetic-{d:05d}.md", "text": "\n\n".join(parts) + "\n"})
    return docs


def part_scale(args, target: Target, ms: Msmarco, state: dict) -> dict:
    key, fresh = target.workspace(f"scale{args.scale}")
    if not fresh:
        ensure_empty(target.url, key)
    docs = synthetic_documents(ms, args.scale, args.scale_sections)
    log(f"scale: {len(docs)} Markdown documents, {args.scale} sections, "
        f"{sum(len(d['text']) for d in docs) / 1e6:.1f} M characters; uploading with {args.upload_clients} clients...")
    up = upload_all(target.url, key, docs, args.upload_clients, "scale")
    waited = wait_indexed(target.url, key, up["ids"], args.scale_timeout, "scale")
    report = indexing_report(up, waited, len(docs))
    log("scale indexed: " + index_line(report))
    result = {"scale_requested": args.scale, "sections_per_document": args.scale_sections, "indexing": report}
    if report["timed_out"]:
        result["note"] = "indexing did not finish within --scale-timeout: latency measured on the chunks indexed so far"
    result["latency"] = latency_suite(args, target.url, key, [q["text"] for q in ms.queries],
                                      f"scale-{report['chunks']}", f"{target.run_tag}s")
    if target.shared_key:
        delete_documents(target.url, key, up["ids"])
    return result


def print_scale(r: dict) -> None:
    print(f"\n== {r['indexing']['chunks']}-chunk workspace (--scale {r['scale_requested']}, "
          f"{r['sections_per_document']} sections per document) ==")
    print("build: " + index_line(r["indexing"]))
    if r.get("note"):
        print(r["note"])
    print_latency(r["latency"], f"latency on the {r['indexing']['chunks']}-chunk workspace")


# ---- multilingual --------------------------------------------------------------------------------------------


def load_sets(langs: list[str]) -> tuple[dict, dict]:
    manifest = json.loads((ML_DIR / "documents.json").read_text(encoding="utf-8"))
    sets = {}
    for lang in langs:
        if lang not in manifest:
            raise SystemExit(f"no language {lang!r} in {ML_DIR / 'documents.json'}")
        path = ML_DIR / f"{lang}.jsonl"
        sets[lang] = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    return manifest, sets


def check_sets(args) -> int:
    """Every quote is in its document's extracted text and inside at least one chunk, chunked as kb does."""
    import transformers
    from transformers import AutoTokenizer

    from ingest import chunk_document, parse
    from kb.settings import bundled_model_path

    transformers.logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(bundled_model_path())

    def count_tokens(text: str) -> int:
        return len(tok(text, add_special_tokens=True, truncation=False)["input_ids"])

    manifest, sets = load_sets(args.langs)
    bad = 0
    for lang, rows in sets.items():
        docs = {}
        for name in manifest[lang]["documents"]:
            parsed = parse((args.corpus / name).read_bytes(), Path(name).name)
            docs[name] = (parsed.text, [c.text for c in chunk_document(parsed, count_tokens=count_tokens, max_tokens=256,
                                                                        overlap_tokens=32)])
        questions = Counter()
        several = 0
        for r in rows:
            several += sum(r["quote"] in c for c in docs.get(r["document"], ("", []))[1]) > 1
            questions[r["question"]] += 1
            text, chunks = docs.get(r["document"], ("", []))
            where = "not a document of this language" if r["document"] not in docs else (
                "quote not in the extracted text" if r["quote"] not in text else (
                    "quote in no single chunk" if not any(r["quote"] in c for c in chunks) else None))
            if where:
                bad += 1
                print(f"{lang}: {where}: {r['quote']!r} ({r['question']})")
        dupes = [q for q, n in questions.items() if n > 1]
        if dupes:
            bad += len(dupes)
            print(f"{lang}: duplicate questions: {dupes}")
        print(f"{lang}: {len(rows)} questions, {len({r['quote'] for r in rows})} distinct quotes "
              f"({several} found in more than one chunk, e.g. in the overlap of neighbours), documents "
              + ", ".join(f"{n} ({len(docs[n][1])} chunks)" for n in docs))
    print("all quotes found" if not bad else f"{bad} problems")
    return 1 if bad else 0


def chunks_of(http: httpx.Client, document_id: str) -> list[str]:
    texts, cursor = [], None
    while True:
        params = {"page_size": 1000, **({"cursor": cursor} if cursor else {})}
        response = http.get(f"{KB}/{document_id}/chunks", params=params)
        response.raise_for_status()
        data = response.json()
        texts += [c.get("content") or c.get("text") or "" for c in data["chunks"]]
        cursor = data.get("next_cursor")
        if not cursor:
            return texts


def rank_metrics(ranks: list[int | None]) -> dict:
    n = len(ranks)
    return {"n": n, "hit@1": sum(1 for x in ranks if x == 1) / n, "hit@10": sum(1 for x in ranks if x) / n,
            "mrr@10": sum(1 / x for x in ranks if x) / n}


def evaluate_known_items(args, url: str, key: str, rows: list[dict], modes: list[str], label: str) -> tuple[dict, dict]:
    """({mode: metrics with per-question ranks}, {mode: error})."""
    out, errors = {}, {}
    with client(url, key) as http:
        for mode in modes:
            log(f"multilingual {label}: {len(rows)} questions, mode {mode}")
            ranks, counts = [], []
            try:
                for r in rows:
                    answer = retrieve(http, retrieve_body(args, r["question"], mode))
                    counts.append(len(answer["chunks"]))
                    rank = next((i for i, c in enumerate(answer["chunks"][:TOP_K], 1)
                                 if c["document_name"] == r["document"] and r["quote"] in c["text"]), None)
                    ranks.append(rank)
            except Exception as exc:  # noqa: BLE001 - report and go on with the other modes
                errors[mode] = f"{type(exc).__name__}: {exc}"
                log(f"  mode {mode} failed: {errors[mode]}")
                continue
            out[mode] = {**rank_metrics(ranks), "ranks": ranks, "mean_chunks_returned": statistics.fmean(counts)}
    return out, errors


def verdict(metrics: dict, measure: str = "mrr@10") -> str:
    if not {"hybrid", "dense", "lexical"} <= set(metrics):
        return "n/a"
    best = max(metrics["dense"][measure], metrics["lexical"][measure])
    return "yes" if metrics["hybrid"][measure] >= best - 1e-12 else "no"


def ml_workspace(args, target: Target, purpose: str, documents: list[str]) -> dict:
    key, fresh = target.workspace(purpose)
    if not fresh:
        ensure_empty(target.url, key)
    items = [{"name": name, "path": str(args.corpus / name)} for name in documents]
    up = upload_all(target.url, key, items, min(args.upload_clients, len(items)), purpose)
    waited = wait_indexed(target.url, key, up["ids"], args.index_timeout, purpose)
    report = indexing_report(up, waited, len(items))
    log(f"{purpose} indexed: " + index_line(report))
    chunk_texts = {}
    with client(target.url, key) as http:
        for name, document_id in zip(documents, up["ids"]):
            chunk_texts[name] = chunks_of(http, document_id) if document_id else []
    return {"key": key, "ids": up["ids"], "indexing": report, "chunks": chunk_texts}


def part_multilingual(args, target: Target, ms: Msmarco, state: dict) -> dict:
    manifest, sets = load_sets(args.langs)
    groups = [(lang, manifest[lang]["documents"], sets[lang]) for lang in args.langs]
    if args.ml_combined:
        all_docs = list(dict.fromkeys(d for lang in args.langs for d in manifest[lang]["documents"]))
        groups.append(("all", all_docs, [dict(r, lang=lang) for lang in args.langs for r in sets[lang]]))
    result = {"languages": {}, "combined": None}
    for lang, documents, rows in groups:
        purpose = f"ml-{lang}"
        log(f"multilingual {lang}: uploading {len(documents)} documents")
        ws = ml_workspace(args, target, purpose, documents)
        unanswerable = [r["question"] for r in rows if not any(r["quote"] in c for c in ws["chunks"].get(r["document"], []))]
        modes, skipped = usable_modes(args, target.url, ws["key"])
        entry = {"documents": {d: len(ws["chunks"][d]) for d in documents}, "indexing": ws["indexing"],
                 "questions": len(rows), "unanswerable": unanswerable, "modes_skipped": skipped, "mode_errors": {}}
        entry["metrics"], entry["mode_errors"] = evaluate_known_items(args, target.url, ws["key"], rows, modes, lang)
        entry["hybrid_ge_max_mrr"] = verdict(entry["metrics"], "mrr@10")
        entry["hybrid_ge_max_hit10"] = verdict(entry["metrics"], "hit@10")
        if lang == "all":
            by_lang = {}
            for code in args.langs:
                idx = [i for i, r in enumerate(rows) if r["lang"] == code]
                by_lang[code] = {}
                for mode, m in entry["metrics"].items():
                    by_lang[code][mode] = rank_metrics([m["ranks"][i] for i in idx])
                by_lang[code]["hybrid_ge_max_mrr"] = verdict(by_lang[code], "mrr@10")
                by_lang[code]["hybrid_ge_max_hit10"] = verdict(by_lang[code], "hit@10")
            entry["by_language"] = by_lang
            result["combined"] = entry
        else:
            result["languages"][lang] = entry
        if target.shared_key:
            delete_documents(target.url, ws["key"], ws["ids"])
    return result


def print_multilingual(r: dict, names: dict) -> None:
    print("\n== multilingual known-item sets (each language in its own workspace), top 10 ==")
    rows = []
    for lang, e in r["languages"].items():
        chunks = sum(e["documents"].values())
        first = True
        for mode in MODES:
            if mode not in e["metrics"]:
                continue
            m = e["metrics"][mode]
            rows.append([f"{names.get(lang, lang)} ({e['questions']} q, {chunks} chunks)" if first else "", mode,
                         f3(m["hit@1"]), f3(m["hit@10"]), f3(m["mrr@10"]),
                         f"{e['hybrid_ge_max_mrr']} / {e['hybrid_ge_max_hit10']}" if first else ""])
            first = False
    print_table(["language", "mode", "hit@1", "hit@10", "MRR@10", "hybrid >= max(dense, lexical): MRR@10 / hit@10"], rows)
    for lang, e in r["languages"].items():
        for mode, why in e["modes_skipped"].items():
            print(f"{lang} {mode}: {why}")
            break
        for mode, err in e["mode_errors"].items():
            print(f"{lang} {mode}: FAILED {err}")
        for mode, m in e["metrics"].items():
            if m.get("mean_chunks_returned", TOP_K) < 1:
                print(f"{lang} {mode}: WARNING fewer than 1 chunk per question on average ({m['mean_chunks_returned']:.2f})")
        if e["unanswerable"]:
            print(f"{lang}: {len(e['unanswerable'])} questions whose quote is in no chunk (counted as misses): "
                  f"{e['unanswerable'][:3]}")
    c = r.get("combined")
    if c:
        chunks = sum(c["documents"].values())
        print(f"\n== the same questions, all {len(c['documents'])} documents in one workspace ({chunks} chunks) ==")
        rows = []
        for code, by_mode in c["by_language"].items():
            first = True
            for mode in MODES:
                if mode not in by_mode:
                    continue
                m = by_mode[mode]
                rows.append([f"{names.get(code, code)} ({m['n']} q)" if first else "", mode, f3(m["hit@1"]),
                             f3(m["hit@10"]), f3(m["mrr@10"]),
                             f"{by_mode['hybrid_ge_max_mrr']} / {by_mode['hybrid_ge_max_hit10']}" if first else ""])
                first = False
        print_table(["language", "mode", "hit@1", "hit@10", "MRR@10", "hybrid >= max(dense, lexical): MRR@10 / hit@10"], rows)
        if c["unanswerable"]:
            print(f"{len(c['unanswerable'])} questions whose quote is in no chunk (counted as misses)")


# ---- backends ----------------------------------------------------------------------------------------------


def backend_available(backend: str) -> tuple[bool, str]:
    """Does this kb know KB_EMBED_BACKEND=backend? Asks `kb config` with it set."""
    out = subprocess.run(kb_command() + ["config"], cwd=REPO, env=server_env({"KB_EMBED_BACKEND": backend}),
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        return False, f"rejected by kb config: {(out.stderr or out.stdout).strip()[-300:]}"
    if "KB_EMBED_BACKEND" not in out.stdout:
        return False, "not available yet (kb config has no KB_EMBED_BACKEND setting)"
    line = next(line for line in out.stdout.split("\n") if line.startswith("KB_EMBED_BACKEND"))
    return backend in line, line.strip()


def part_backends(args, target: Target, ms: Msmarco, state: dict) -> dict:
    if not target.spawned:
        return {"error": "needs the spawned mode (no --url): each backend runs in a fresh server"}
    passages = ms.passages[: args.backend_passages] if args.backend_passages else ms.passages
    if len(passages) == len(ms.passages):
        ms.encode_passages(force_timing=True)  # no server is indexing now (the main one, if any, is idle)
        st_secs = ms.encode_secs
    else:
        model = ms.model()
        texts = [p["text"] for p in passages]
        model.encode(texts[:64], batch_size=32)  # warm-up
        started = time.perf_counter()
        model.encode(texts, batch_size=32)
        st_secs = time.perf_counter() - started
    st_rate = len(passages) / st_secs
    log(f"sentence-transformers in-process: {st_rate:.1f} passages/s on {len(passages)} passages")
    result = {"sentence_transformers": {"passages": len(passages), "secs": st_secs, "per_sec": st_rate,
                                        "loadavg": loadavg()}, "backends": {}}
    for backend in args.backends:
        ok, note = backend_available(backend)
        entry = {"available": ok, "note": note}
        result["backends"][backend] = entry
        if not ok and backend != "torch":
            log(f"backend {backend}: {note}")
            continue
        env = {"KB_EMBED_BACKEND": backend} if ok else {}
        items = [{"name": p["_id"], "text": p["text"]} for p in passages]
        try:
            entry.update(backend_concurrent(args, target, backend, env, items, st_rate))
            entry.update(backend_stored_first(args, target, backend, env, items, st_rate))
        except Exception as exc:  # noqa: BLE001
            entry["error"] = f"{type(exc).__name__}: {exc}"
            log(f"backend {backend} failed: {entry['error']}")
    return result


def backend_concurrent(args, target: Target, backend: str, env: dict[str, str], items: list[dict], st_rate: float) -> dict:
    """Upload every passage to a fresh server and wait for the indexes: uploads and indexing share the CPU."""
    server = SpawnedServer(target.root, f"backend-{backend}", env)
    try:
        key = server.create_workspace(f"bench-backend-{backend}")
        entry = {"loadavg_before": loadavg()}
        up = upload_all(server.url, key, items, args.upload_clients, f"backend {backend}")
        waited = wait_indexed(server.url, key, up["ids"], args.index_timeout, f"backend {backend}")
        report = indexing_report(up, waited, len(items))
        entry.update(loadavg_after=loadavg(), indexing=report, server_log=server.scan_log(),
                     ratio_to_sentence_transformers=report["chunks_per_sec"] / st_rate)
        log(f"backend {backend}: " + index_line(report))
        return entry
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(server.data_dir, ignore_errors=True)


def wait_last_indexed(url: str, key: str, document_id: str, timeout: float) -> float:
    """Poll one document's index every 0.1 s; the monotonic time it was first seen done."""
    deadline = time.monotonic() + timeout
    with client(url, key) as http:
        while time.monotonic() < deadline:
            indexes = http.get(f"{KB}/{document_id}/rag-index").json().get("indexes") or []
            if indexes and indexes[0]["status"] in TERMINAL:
                return time.monotonic()
            time.sleep(0.1)
    raise TimeoutError(f"the index of {document_id} was not done within {timeout:.0f} s")


def read_indexes_once(url: str, key: str, ids: list[str]) -> dict[str, dict]:
    """Every document's index status and chunk count, read once (`POST /rag-index`, 100 at a time)."""
    out: dict[str, dict] = {}
    with client(url, key) as http:
        model = detect_model(http, ids[0])
        for start in range(0, len(ids), 100):
            for d, data in read_index_batch(http, model, ids[start:start + 100]).items():
                out[d] = {"status": (data or {}).get("status"), "chunks": index_chunks(data or {})}
    return out


def backend_stored_first(args, target: Target, backend: str, env: dict[str, str], items: list[dict], st_rate: float) -> dict:
    """Indexing alone: the passages are uploaded to a server without indexing workers (`KB_WORKERS=0`:
    stored, their jobs queued), which is stopped; a server with the default workers is started on the
    same data dir and indexes them. Its rate counts from the moment it answers /health (its workers
    start with it), and, for reference, from the moment its process was spawned (model load included).

    Jobs run oldest first, so the script polls only the last document's index (every 0.1 s; polling
    5,000 statuses in rounds took a tenth of the server's CPU), then reads every index once: if any
    is not done yet, it waits for all and counts to the last one seen done."""
    data_dir = target.root / f"data-stored-{backend}"
    uploader = SpawnedServer(target.root, f"stored-{backend}-upload", {**env, "KB_WORKERS": "0"}, data_dir=data_dir)
    try:
        key = uploader.create_workspace(f"bench-stored-{backend}")
        up = upload_all(uploader.url, key, items, args.upload_clients, f"backend {backend} (no workers)")
    finally:
        uploader.stop()
    log(f"backend {backend}: {up['uploaded']} documents stored in {up['upload_secs']:.1f} s "
        f"({up['uploaded'] / max(up['upload_secs'], 1e-9):.1f}/s) by a server without workers")
    indexer = SpawnedServer(target.root, f"stored-{backend}-index", env, data_dir=data_dir)
    try:
        loadavg_before = loadavg()
        ids = [i for i in up["ids"] if i]
        done_at = wait_last_indexed(indexer.url, key, ids[-1], args.index_timeout)
        docs = read_indexes_once(indexer.url, key, ids)
        if any(d["status"] not in TERMINAL for d in docs.values()):  # not all done when the last one was
            waited = wait_indexed(indexer.url, key, ids, args.index_timeout, f"backend {backend} (stored first)", poll_secs=0.2)
            docs, done_at = waited["docs"], max(d["seen"] for d in waited["docs"].values())
        ok = [d for d in docs.values() if d["status"] == "succeeded"]
        chunks = sum(d["chunks"] for d in ok)
        secs = max(done_at - indexer.ready_at, 1e-9)
        result = {
            "chunks": chunks, "statuses": dict(Counter(d["status"] for d in docs.values())),
            "upload_only_secs": up["upload_secs"],
            "uploads_per_sec_without_indexing": up["uploaded"] / max(up["upload_secs"], 1e-9),
            "startup_secs": indexer.ready_at - indexer.spawned_at, "index_secs": secs,
            "chunks_per_sec": chunks / secs,
            "chunks_per_sec_from_spawn": chunks / max(done_at - indexer.spawned_at, 1e-9),
            "loadavg_before": loadavg_before, "loadavg_after": loadavg(), "server_log": indexer.scan_log(),
        }
        result["ratio_to_sentence_transformers"] = result["chunks_per_sec"] / st_rate
        log(f"backend {backend}: stored first, then {chunks} chunks indexed in {secs:.1f} s after /health "
            f"({result['chunks_per_sec']:.1f} chunks/s, {result['ratio_to_sentence_transformers']:.2f}x; "
            f"{result['chunks_per_sec_from_spawn']:.1f} chunks/s from the process start); statuses {result['statuses']}")
        return {"stored_first": result}
    finally:
        indexer.stop()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def print_backends(r: dict) -> None:
    print(f"\n== indexing throughput by embedding backend ({r.get('sentence_transformers', {}).get('passages', '?')} msmarco "
          f"passages as text documents, chunks/s from the first upload to the last index done) ==")
    if "error" in r:
        print(r["error"])
        return
    st = r["sentence_transformers"]
    rows = [["sentence-transformers in-process (encode, batch 32)", f"{st['per_sec']:.1f}", "1.00", "-", "-", ""]]
    for backend, e in r["backends"].items():
        note = "" if e["available"] else "(setting unknown: the server's only backend)"
        stored = e.get("stored_first")
        if stored:
            rows.append([f"kb, KB_EMBED_BACKEND={backend}: stored first, then indexed", f"{stored['chunks_per_sec']:.1f}",
                         f"{stored['ratio_to_sentence_transformers']:.2f}", f"{stored['uploads_per_sec_without_indexing']:.1f}",
                         f"{stored['chunks_per_sec_from_spawn']:.1f}", note])
        if "indexing" in e:
            i = e["indexing"]
            rows.append([f"kb, KB_EMBED_BACKEND={backend}: uploads and indexing at once", f"{i['chunks_per_sec']:.1f}",
                         f"{e['ratio_to_sentence_transformers']:.2f}", f"{i['uploads_per_sec']:.1f}", "-", note])
        if not stored and "indexing" not in e:
            rows.append([f"kb, KB_EMBED_BACKEND={backend}", "-", "-", "-", "-", e.get("error") or e["note"]])
    print_table(["backend", "chunks/s", "ratio", "uploads/s", "chunks/s from process start", "note"], rows)
    print("target: >= 2.5x plain sentence-transformers (indexing: stored first, then indexed); "
          "'uploads and indexing at once' counts from the first upload to the last index done")


# ---- main ------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default=",".join(DEFAULT_PARTS),
                    help=f"comma-separated parts: {', '.join(PARTS)}, or all (default: {','.join(DEFAULT_PARTS)})")
    ap.add_argument("--modes", default=",".join(MODES), help="search modes to ask (default: hybrid,dense,lexical)")
    ap.add_argument("--force-modes", action="store_true", help="send every mode even if the server seems not to know search_mode")
    ap.add_argument("--url", help="a running kb server (loopback only) instead of spawning one")
    ap.add_argument("--api-key", help="with --url: one workspace for every part (must be empty)")
    ap.add_argument("--data-dir", type=Path, help="with --url: that server's data dir, to create workspaces with `kb workspace create`")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--json", type=Path, help="write every figure here (rewritten after each part)")
    ap.add_argument("--upload-clients", type=int, default=4)
    ap.add_argument("--latency-requests", type=int, default=500, help="requests per mode x cache x concurrency (default 500)")
    ap.add_argument("--concurrency", type=int, default=8, help="concurrent clients of the concurrent latency runs")
    ap.add_argument("--request-timeout", type=float, default=60.0)
    ap.add_argument("--num-candidates", type=int, help="send num_candidates (default: the server's)")
    ap.add_argument("--budget-ms", type=float, help="send budget_ms in the latency runs (default: none)")
    ap.add_argument("--busy-file", default="epub/moby-dick.epub", help="busy part: the large document indexed meanwhile")
    ap.add_argument("--scale", type=int, default=100_000, help="chunks of the scale workspace (default 100000)")
    ap.add_argument("--scale-sections", type=int, default=100, help="sections (~chunks) per synthetic document")
    ap.add_argument("--scale-timeout", type=float, default=5400.0, help="max seconds to wait for the scale indexing")
    ap.add_argument("--index-timeout", type=float, default=1800.0, help="max seconds to wait for other indexing")
    ap.add_argument("--langs", default="ar,ja,de,zh,en", help="multilingual sets to run")
    ap.add_argument("--no-ml-combined", dest="ml_combined", action="store_false",
                    help="skip the run with every language's documents in one workspace")
    ap.add_argument("--backends", default="torch,onnx-int8", help="KB_EMBED_BACKEND values to compare")
    ap.add_argument("--backend-passages", type=int, default=0,
                    help="backends part: index only the first N msmarco passages (default: all 5,000)")
    ap.add_argument("--embed-cache", type=Path,
                    help="msmarco baseline: reuse (or store) the in-process passage embeddings in this .npz file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dirs and server logs")
    ap.add_argument("--check-sets", action="store_true", help="only check the multilingual sets' quotes against kb's chunks")
    args = ap.parse_args()
    args.parts = list(PARTS) if args.part == "all" else [x.strip() for x in args.part.split(",") if x.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.langs = [x.strip() for x in args.langs.split(",") if x.strip()]
    args.backends = [x.strip() for x in args.backends.split(",") if x.strip()]
    for part in args.parts:
        if part not in PARTS:
            ap.error(f"unknown part {part!r}; parts: {', '.join(PARTS)}")
    for mode in args.modes:
        if mode not in MODES:
            ap.error(f"unknown mode {mode!r}")
    if args.url and not (args.api_key or args.data_dir):
        ap.error("--url needs --api-key or --data-dir")
    if args.check_sets:
        return check_sets(args)

    ms = Msmarco(args.corpus, args.embed_cache)
    names = {}
    try:
        names = {k: v["language"] for k, v in json.loads((ML_DIR / "documents.json").read_text()).items()}
    except (OSError, ValueError, KeyError):
        pass
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "kb", "index", "api", "ingest"], cwd=REPO,
                                capture_output=True, text=True).stdout.strip())
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "git": git + (" (+ uncommitted changes in kb/index/api/ingest)" if dirty else ""),
        "kb_env": {k: v for k, v in os.environ.items() if k.startswith("KB_")},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "parts": {},
    }

    def save() -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    runners = {"msmarco": (part_msmarco, print_msmarco), "latency": (part_latency, lambda r: print_latency(
        r, f"latency over HTTP, msmarco-5k workspace ({r.get('chunks')} chunks)")),
        "busy": (part_busy, print_busy), "scale": (part_scale, print_scale), "multilingual": (part_multilingual, lambda r: print_multilingual(r, names)),
        "backends": (part_backends, print_backends)}
    print(f"kb retrieval benchmark — {results['machine']}, kb {results['git']}, parts {','.join(args.parts)}, "
          f"modes {','.join(args.modes)}" + (f", env {results['kb_env']}" if results["kb_env"] else ""))
    target = Target(args)
    state: dict = {}
    status = 0
    try:
        for part in PARTS:
            if part not in args.parts:
                continue
            run, show = runners[part]
            log(f"part {part}")
            started, load_before = time.monotonic(), loadavg()
            try:
                r = run(args, target, ms, state)
            except Exception as exc:  # noqa: BLE001 - one part failing does not lose the others
                import traceback

                traceback.print_exc()
                r = {"error": f"{type(exc).__name__}: {exc}"}
                status = 1
            r["secs"] = time.monotonic() - started
            r["loadavg_1m"] = {"before": load_before, "after": loadavg()}
            results["parts"][part] = r
            save()
            if "error" in r and part != "backends":
                print(f"\n== {part}: FAILED {r['error']} ==")
            else:
                show(r)
            print(f"({part}: {r['secs']:.0f} s, 1-min load average {load_before} before, {r['loadavg_1m']['after']} after)",
                  flush=True)
        if target.server:
            results["server_log"] = target.server.scan_log()
    finally:
        target.close()
    save()
    if args.json:
        print(f"JSON written to {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())

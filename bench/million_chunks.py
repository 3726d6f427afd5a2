"""A million chunks in one workspace (issue 16): build it through kb over HTTP, then measure it against the targets.

Usage (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/million_chunks.py [--chunks 1000000] [--sections 100]
        [--data-dir DIR | --reuse DIR] [--build-only] [--build-timeout 5400] [--requests 400]
        [--concurrency 8] [--recall-queries 500] [--json PATH]

1. Build (skipped with --reuse DIR): a spawned `kb serve` on DIR (SQLite, the default store kind unless
   KB_VECTOR_STORE says otherwise); `--chunks` synthetic sections recombined from msmarco sentences, as
   Markdown documents of `--sections` sections (bench/retrieval_parts/scale.py), uploaded with
   `--upload-clients` clients; the indexes waited for. Build time: first upload to the last index seen
   done. The build's figures go to DIR/build.json, so a later --reuse run reports them too.
2. Measure: `kb serve` again on DIR with no background workers (KB_WORKERS=0): the time of the first
   retrieve (loading the index files); disk of the data dir by part; VmRSS / VmHWM of the server
   (/proc/PID/status) after loading and after the latency runs; hybrid retrieve over HTTP, cold (every
   query text distinct), 1 and `--concurrency` clients (bench/retrieval_parts/latency.py), p50/p99.
3. Recall: in this process, the saved vector store of the workspace (the file the server loaded) and
   an exact IndexFlatIP over the same chunks' float32 embeddings (read from the SQLite database); `--recall-queries` queries
   (the 50 msmarco ones, then sentence openings: bench/store_choice.py) embedded with kb's query embedder; recall@10 of the store's search (its defaults, as the
   server searches) against exact search. The store's single-query latency on 1 thread is printed too.

Targets: p99 <= 30 ms over HTTP (hybrid, cold, 1 client), recall@10 >= 0.95, server VmHWM <= 3 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common import DEFAULT_CORPUS  # noqa: E402
from common.beir import Msmarco  # noqa: E402
from common.documents import index_line, indexing_report, upload_all, wait_indexed  # noqa: E402
from common.report import loadavg, log  # noqa: E402
from common.search import retrieve, retrieve_body  # noqa: E402
from common.server import SpawnedServer, client  # noqa: E402
from common.stats import pct  # noqa: E402
from retrieval_parts.latency import QueryStream, timed_requests  # noqa: E402
from retrieval_parts.scale import synthetic_documents  # noqa: E402
from store_choice import query_texts  # noqa: E402

SERVER_POOL = 100  # the retrieve API's default num_candidates: the dense side's k and efSearch
TARGET_P99_MS = 30.0
TARGET_RECALL = 0.95
TARGET_RSS_BYTES = 3 * 2**30
WORKSPACE = "million"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--sections", type=int, default=100, help="sections (chunks) per synthetic document")
    ap.add_argument("--data-dir", type=Path, help="build here (default: a temporary directory)")
    ap.add_argument("--reuse", type=Path, help="a data dir a previous run built: skip the build")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--build-timeout", type=float, default=5400.0, help="stop waiting for indexes after this (s)")
    ap.add_argument("--upload-clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=400, help="retrieve requests per latency run")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--request-timeout", type=float, default=60.0)
    ap.add_argument("--recall-queries", type=int, default=500)
    ap.add_argument("--json", type=Path)
    return ap.parse_args(argv)


# --- build -----------------------------------------------------------------------------------

def build(args, data_dir: Path, ms: Msmarco) -> dict:
    root = data_dir.parent
    server = SpawnedServer(root, "million-build", data_dir=data_dir)
    try:
        key = server.create_workspace(WORKSPACE)
        # the key first, so that a build stopped by hand can still be measured with --reuse
        (data_dir / "build.json").write_text(json.dumps({"chunks_requested": args.chunks, "sections": args.sections,
                                                         "api_key": key, "indexing": None}))
        docs = synthetic_documents(ms, args.chunks, args.sections)
        log(f"build: {len(docs)} documents, {args.chunks} sections, "
            f"{sum(len(d['text']) for d in docs) / 1e6:.1f} M characters, {args.upload_clients} upload clients")
        up = upload_all(server.url, key, docs, args.upload_clients, "million")
        waited = wait_indexed(server.url, key, up["ids"], args.build_timeout, "million", poll_secs=2.0)
        report = indexing_report(up, waited, len(docs))
        report["server_status_at_end"] = proc_status(server.process.pid)
        log("build: " + index_line(report))
    finally:
        server.stop()
    result = {"chunks_requested": args.chunks, "sections": args.sections, "api_key": key, "indexing": report,
              "loadavg_at_end": loadavg()}
    (data_dir / "build.json").write_text(json.dumps(result, indent=1))
    return result


# --- measures --------------------------------------------------------------------------------

def proc_status(pid: int) -> dict:
    """VmRSS and VmHWM of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().split("\n"):
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) * 1024
    return out


def disk_usage(data_dir: Path) -> dict:
    """Bytes under the data dir, by top-level entry (database, blobs, indexes, models ...)."""
    parts: dict[str, int] = {}
    for entry in data_dir.iterdir():
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        parts[entry.name] = sum(p.stat().st_size for p in files)
    parts["total"] = sum(parts.values())
    return parts


def find_index_file(data_dir: Path) -> Path:
    """The saved vector store of the workspace: the largest .faiss file under the data dir."""
    files = sorted(data_dir.rglob("*faiss*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    files = [f for f in files if f.is_file()]
    if not files:
        raise RuntimeError(f"no saved vector index under {data_dir}")
    return files[-1]


def latency(args, url: str, key: str, queries: list[str]) -> list[dict]:
    largs = SimpleNamespace(request_timeout=args.request_timeout, num_candidates=None, budget_ms=None, filters=None)
    stream = QueryStream(queries, f"{int(time.time()) % 100000:05d}m")
    rows = []
    for clients in (1, args.concurrency):
        log(f"latency: hybrid, cold, {clients} client(s), {args.requests} requests")
        row = timed_requests(largs, url, key, stream, "hybrid", True, args.requests, clients)
        log(f"  p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, {row['per_sec']:.1f}/s, stages {row['stage_p50_ms']}")
        rows.append(row)
    return rows


def stored_embeddings(data_dir: Path):
    """(chunk keys, float32 embeddings) of the largest workspace, from the SQLite database."""
    import sqlite3

    import numpy as np

    db = sqlite3.connect(f"file:{data_dir / 'kb.sqlite3'}?mode=ro", uri=True)
    (workspace,) = db.execute("SELECT workspace_id FROM chunks GROUP BY workspace_id ORDER BY count(*) DESC LIMIT 1").fetchone()
    rows = db.execute("SELECT key, embedding FROM chunks WHERE workspace_id = ? ORDER BY key", (workspace,)).fetchall()
    db.close()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    return ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)


def exact_scores_of(vectors, ids, found, q):
    """Exact inner products of `found` ids with the query, from the float embeddings."""
    import numpy as np

    rows = np.searchsorted(ids, found)
    return vectors[rows] @ q


def vectors_of(store, ids):
    import numpy as np

    return store.vectors_for(np.asarray(ids, dtype=np.int64)) if len(ids) else np.zeros((0, store.dimension), np.float32)


def recall(args, data_dir: Path, index_file: Path, queries: list[str]) -> dict:
    import faiss
    import numpy as np

    from index.embedders import load_embedder
    from index.stores import load_store
    from kb.settings import load_settings

    settings = load_settings()
    started = time.perf_counter()
    store = load_store(index_file, settings.index.vector_store,
                       **({"hnsw_threshold": settings.index.hnsw_threshold} if settings.index.vector_store == "auto" else {}))
    load_secs = time.perf_counter() - started
    ids, vectors = stored_embeddings(data_dir)  # the float32 embeddings, not the store's (maybe quantised) copies
    if len(ids) != len(store):
        log(f"recall: {len(ids)} stored embeddings, {len(store)} vectors in the store")
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    e = settings.embedding
    embedder = load_embedder(e.default_model, e.model_source(e.default_model), e.embed_backend,
                             onnx_cache_dir=e.model_cache_dir or data_dir / "models", query_threads=1, batch_threads=1)
    qv = np.vstack([embedder.embed_query(q) for q in queries]).astype(np.float32)
    faiss.omp_set_num_threads(2)
    exact_scores, exact_rows = exact.search(qv, 10)
    faiss.omp_set_num_threads(1)
    hits, tied, secs = 0, 0, []
    for i, q in enumerate(qv):
        t = time.perf_counter()
        found, _ = store.search(q, SERVER_POOL, num_candidates=SERVER_POOL)  # as the server's dense side asks
        secs.append(1000 * (time.perf_counter() - t))
        found = found[:10]
        hits += len(set(found.tolist()) & set(ids[exact_rows[i]].tolist()))
        # ties: synthetic chunks repeat sentences, so near-identical vectors share a rank
        tied += int(np.sum(exact_scores_of(vectors, ids, found, q) >= exact_scores[i, -1] - 1e-4))
    return {"store": type(store).__name__, "holds": getattr(store, "holds", None), "vectors": len(store),
            "index_file_bytes": index_file.stat().st_size, "load_secs": load_secs,
            "queries": len(qv), "recall_at_10": hits / (10 * len(qv)),
            "recall_at_10_ties": tied / (10 * len(qv)),
            "search_p50_ms": pct(secs, 50), "search_p99_ms": pct(secs, 99)}


def measure(args, data_dir: Path, ms: Msmarco, build_result: dict | None) -> dict:
    key = build_result["api_key"]
    queries = [q["text"] for q in ms.queries]
    result: dict = {"disk_bytes": disk_usage(data_dir),
                    # no files yet (a build server never searched): the first retrieve builds the indexes from the database
                    "index_files_before": any((data_dir / "indexes").rglob("*.faiss")) if (data_dir / "indexes").exists() else False}
    server = SpawnedServer(data_dir.parent, "million-measure", env_extra={"KB_WORKERS": "0"}, data_dir=data_dir)
    try:
        result["status_started"] = proc_status(server.process.pid)
        with client(server.url, key, timeout=3600) as http:  # the first retrieve may build the index
            started = time.perf_counter()
            retrieve(http, retrieve_body(SimpleNamespace(num_candidates=None, budget_ms=None), "warm up the index", "hybrid"))
            result["first_retrieve_secs"] = time.perf_counter() - started
        result["status_loaded"] = proc_status(server.process.pid)
        log(f"loaded in {result['first_retrieve_secs']:.1f} s; {result['status_loaded']}")
        result["latency"] = latency(args, server.url, key, queries)
        result["status_after_latency"] = proc_status(server.process.pid)
    finally:
        server.stop()
    result["disk_bytes_after"] = disk_usage(data_dir)
    result["recall"] = recall(args, data_dir, find_index_file(data_dir), query_texts(args.corpus, args.recall_queries))
    return result


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def print_report(r: dict) -> list[tuple[str, bool]]:
    b, m = r["build"], r["measure"]
    ix = b["indexing"]
    print(f"\n== {ix['chunks']} chunks in one workspace ({b['chunks_requested']} requested, {b['sections']} sections per document) ==")
    print("build: " + index_line(ix))
    disk = m["disk_bytes"]
    print("disk: " + ", ".join(f"{k} {gib(v)}" for k, v in disk.items()))
    how = "loading the saved index files" if m.get("index_files_before") else "building the indexes from the stored embeddings"
    print(f"first retrieve ({how}) {m['first_retrieve_secs']:.1f} s")
    for when in ("status_loaded", "status_after_latency"):
        print(f"server {when}: VmRSS {gib(m[when]['VmRSS'])}, VmHWM {gib(m[when]['VmHWM'])}")
    checks = []
    for row in m["latency"]:
        print(f"hybrid cold {row['clients']} client(s): p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
              f"{row['per_sec']:.1f} req/s, server stages p50 {row['stage_p50_ms']}, errors {row['errors']}")
    one = m["latency"][0]
    rc = m["recall"]
    print(f"dense store {rc['store']} ({rc['holds']}), {rc['vectors']} vectors: recall@10 {rc['recall_at_10']:.4f} "
          f"vs exact over {rc['queries']} queries ({rc['recall_at_10_ties']:.4f} counting ties within 1e-4); single-query search p50 {rc['search_p50_ms']:.2f} ms, "
          f"p99 {rc['search_p99_ms']:.2f} ms (1 thread, in process)")
    hwm = max(m["status_loaded"]["VmHWM"], m["status_after_latency"]["VmHWM"])
    checks.append((f"p99 hybrid cold 1 client {one['p99_ms']:.1f} ms <= {TARGET_P99_MS:.0f} ms", one["p99_ms"] <= TARGET_P99_MS))
    checks.append((f"recall@10 {rc['recall_at_10']:.4f} >= {TARGET_RECALL}", rc["recall_at_10"] >= TARGET_RECALL))
    checks.append((f"server VmHWM (serving) {gib(hwm)} <= {gib(TARGET_RSS_BYTES)}", hwm <= TARGET_RSS_BYTES))
    if "server_status_at_end" in ix:
        build_hwm = ix["server_status_at_end"]["VmHWM"]
        checks.append((f"server VmHWM (while building) {gib(build_hwm)} <= {gib(TARGET_RSS_BYTES)}", build_hwm <= TARGET_RSS_BYTES))
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return checks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ms = Msmarco(args.corpus)
    if args.reuse:
        data_dir = args.reuse
        build_result = json.loads((data_dir / "build.json").read_text())
    else:
        data_dir = args.data_dir or Path(__import__("tempfile").mkdtemp(prefix="kb-million-")) / "data"
        if data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        build_result = build(args, data_dir, ms)
    if args.build_only:
        return 0
    result = {"build": build_result, "measure": measure(args, data_dir, ms, build_result), "loadavg": loadavg()}
    checks = print_report(result)
    result["checks"] = [{"check": t, "pass": ok} for t, ok in checks]
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

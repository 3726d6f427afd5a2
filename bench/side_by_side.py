"""Side by side in one run: the in-process sentence-transformers + FAISS pipeline and kb over HTTP, with the
targets of issue 15 (ratios measured in the same run) printed as PASS/FAIL.

Usage (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/side_by_side.py [--requests 400] [--rounds 3] [--concurrency 8]
        [--upload-clients 4] [--scale 100000] [--compare LABEL=PATH ...] [--fresh-docs 200 --fresh-rate 20]
        [--skip-upload-timing] [--today-rps 82] [--json PATH] [--keep]

What runs, in this order:

1. In process, before any server exists: plain sentence-transformers (the bundled all-MiniLM-L6-v2,
   `model.encode(passages, batch_size=32)`) encodes the 5,000 msmarco-5k passages, timed (the indexing
   baseline, passages/s); the vectors are normalised and put in a FAISS IndexFlatIP.
2. kb: a spawned `kb serve` (this checkout's code: PYTHONPATH is set to it) on a temporary data dir;
   the 5,000 passages are uploaded as text documents with `--upload-clients` clients, and the indexes
   waited for (bench/common/documents.py): chunks/s from the first upload to the last index seen done,
   against the in-process passages/s. Each `--compare LABEL=PATH` (another kb checkout, e.g. a `git
   archive` of the commit before a change) gets its own server and upload, so two versions of kb are
   measured in the same run, interleaved.
3. Latency, `--rounds` rounds; in each, for 1 and `--concurrency` clients: the in-process pipeline
   (encode the query with normalize_embeddings=True, then IndexFlatIP.search top 10; one thread per
   client) and every kb (`POST /rag/retrieve`, hybrid, top 10, cold: every query text distinct, so the
   server's query-embedding cache never hits; bench/retrieval_parts/latency.py). Each figure is the
   median over the rounds of that round's p50 / p99 / requests/s; the server's stage timings
   (`timings_ms`) likewise.
4. `--fresh-docs N` (default 200): into a second workspace, N new documents uploaded one at a time at
   `--fresh-rate` per second (below the indexing rate); for each, the time from the upload's
   acknowledgement until its index is seen succeeded (polled every 0.05 s): "searchable after".
5. `--scale N`: a workspace of N synthetic chunks per kb (bench/retrieval_parts/scale.py), and the same
   latency rounds against an in-process IndexFlatIP of N vectors (the 5,000 passage vectors, repeated
   with small noise and normalised: a flat search's cost depends only on the count and dimension).

Targets (issue 15): 1 client p50 <= 0.6x and p99 <= 0.8x in-process; 8 clients req/s >= 3x today's
(`--today-rps`, default 82: the issue's figure), p99 <= 5x the 1-client p99, no server stage more than
2x from 1 to 8 clients; at --scale the same limits relaxed by 1.3x; uploads and indexing at once
>= 2.5x in-process encoding and >= 150 uploads/s; searchable within 2 s at p50.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common import DEFAULT_CORPUS, REPO  # noqa: E402
from common.beir import Msmarco  # noqa: E402
from common.documents import KB, TERMINAL, index_line, indexing_report, read_index_batch, upload_all, wait_indexed  # noqa: E402
from common.report import loadavg, log, ms, print_table  # noqa: E402
from common.results import run_info, write_json  # noqa: E402
from common.search import TOP_K  # noqa: E402
from common.server import SpawnedServer, client  # noqa: E402
from common.stats import pct  # noqa: E402
from retrieval_parts.latency import QueryStream, timed_requests  # noqa: E402
from retrieval_parts.scale import synthetic_documents  # noqa: E402

STAGES = ("embed", "dense", "lexical", "fuse", "total")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--requests", type=int, default=400, help="requests per pipeline x concurrency x round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--upload-clients", type=int, default=4)
    ap.add_argument("--index-timeout", type=float, default=1800.0)
    ap.add_argument("--request-timeout", type=float, default=60.0)
    ap.add_argument("--scale", type=int, default=0, help="also measure at this many synthetic chunks (e.g. 100000)")
    ap.add_argument("--scale-sections", type=int, default=100)
    ap.add_argument("--scale-timeout", type=float, default=5400.0)
    ap.add_argument("--compare", action="append", default=[], metavar="LABEL=PATH",
                    help="another kb checkout to serve and measure in the same run (repeatable)")
    ap.add_argument("--fresh-docs", type=int, default=200, help="documents of the searchable-after run (0: skip)")
    ap.add_argument("--fresh-rate", type=float, default=20.0, help="uploads/s of the searchable-after run")
    ap.add_argument("--today-rps", type=float, default=82.0, help="today's 8-client requests/s (the issue's figure)")
    ap.add_argument("--skip-upload-timing", action="store_true",
                    help="skip the timed in-process encoding (the upload ratio is then not printed)")
    ap.add_argument("--from-data", type=Path, metavar="DIR",
                    help="a data dir with the passages indexed (made by --save-data): each kb serves a copy of it, "
                         "and the upload run is skipped (retrieval-only comparisons)")
    ap.add_argument("--save-data", type=Path, metavar="DIR",
                    help="after the upload run, copy the first kb's data dir here (with bench-key.txt) for --from-data")
    ap.add_argument("--embed-cache", type=Path, metavar="FILE.npz",
                    help="reuse (or store) the in-process passage embeddings (not when the encoding is timed)")
    ap.add_argument("--passages", type=int, default=0, help="only the first N passages (a quick check)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.num_candidates = args.budget_ms = args.filters = None  # what retrieve_body reads
    args.mode = "hybrid"
    return args


# ---------------------------------------------------------------- in process


class InProcess:
    """sentence-transformers + FAISS IndexFlatIP, in this process."""

    def __init__(self, ms: Msmarco, vectors):
        import faiss
        import numpy as np

        self.model = ms.model()
        self.dim = vectors.shape[1]
        self.index = faiss.IndexFlatIP(self.dim)
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.model.encode(["warm up"], normalize_embeddings=True)

    def query(self, text: str):
        v = self.model.encode([text], normalize_embeddings=True, convert_to_numpy=True)
        return self.index.search(v, TOP_K)

    def timed(self, stream: QueryStream, n: int, clients: int) -> dict:
        lat: list[float] = []
        lock = threading.Lock()
        counter = itertools.count()
        barrier = threading.Barrier(clients + 1)

        def worker(offset: int) -> None:
            barrier.wait()
            while True:
                i = next(counter)
                if i >= n:
                    return
                text = stream.get(i + offset, True)
                started = time.perf_counter()
                self.query(text)
                elapsed = time.perf_counter() - started
                with lock:
                    lat.append(1000 * elapsed)

        threads = [threading.Thread(target=worker, args=(w * 7,), daemon=True) for w in range(clients)]
        for t in threads:
            t.start()
        barrier.wait()
        started = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        return {"clients": clients, "ok": len(lat), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
                "per_sec": len(lat) / wall}


def scaled_vectors(vectors, n: int):
    """`n` unit vectors: the passage vectors repeated with small noise (seed 0)."""
    import numpy as np

    rng = np.random.default_rng(0)
    reps = -(-n // len(vectors))
    out = np.tile(vectors, (reps, 1))[:n]
    out = out + rng.normal(0, 0.02, out.shape).astype(np.float32)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- kb


class Kb:
    """One kb checkout served by its own `kb serve` (on a copy of `data`, when given)."""

    def __init__(self, root: Path, label: str, code: Path, data: Path | None = None):
        self.label = label
        self.code = code
        self.keys: dict[str, str] = {}
        data_dir = None
        if data is not None:
            data_dir = root / f"data-{label}"
            shutil.copytree(data, data_dir)
            self.keys["msmarco"] = (data / "bench-key.txt").read_text().strip()
        self.server = SpawnedServer(root, label, {"PYTHONPATH": str(code)}, data_dir=data_dir)

    def workspace(self, name: str) -> str:
        if name not in self.keys:
            self.keys[name] = self.server.create_workspace(f"bench-{name}-{self.label}")
        return self.keys[name]


def upload_and_index(args, kb: Kb, ms: Msmarco) -> dict:
    key = kb.workspace("msmarco")
    items = [{"name": p["_id"], "text": p["text"]} for p in ms.passages]
    log(f"{kb.label}: uploading {len(items)} passages with {args.upload_clients} clients...")
    up = upload_all(kb.server.url, key, items, args.upload_clients, f"{kb.label} msmarco")
    waited = wait_indexed(kb.server.url, key, up["ids"], args.index_timeout, f"{kb.label} msmarco")
    report = indexing_report(up, waited, len(items))
    log(f"{kb.label}: " + index_line(report))
    return report


def save_data(kb: Kb, dest: Path) -> None:
    """Copy the server's data dir while it is stopped, with the msmarco workspace's key; then restart it."""
    kb.server.stop()
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(kb.server.data_dir, dest)
    (dest / "bench-key.txt").write_text(kb.keys["msmarco"] + "\n")
    kb.server = SpawnedServer(kb.server.log_path.parent, kb.label + "-2", {"PYTHONPATH": str(kb.code)},
                              data_dir=kb.server.data_dir)
    log(f"data dir saved to {dest}")


def searchable_after(args, kb: Kb, ms: Msmarco) -> dict:
    """Paced single uploads into a fresh workspace; for each, ack -> index seen succeeded."""
    key = kb.workspace("fresh")
    n = args.fresh_docs
    texts = [f"{p['text']} (fresh copy {i} of {kb.label})" for i, p in enumerate(ms.passages[:n])]
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def poller() -> None:
        with client(kb.server.url, key) as http:
            model = None
            while not stop.is_set():
                with lock:
                    pending = [d for d in acked if d not in seen]
                if pending and model is None:
                    indexes = http.get(f"{KB}/{pending[0]}/rag-index").json().get("indexes") or []
                    model = indexes[0]["model"] if indexes else None
                if pending and model:
                    for start in range(0, len(pending), 100):
                        for d, data in read_index_batch(http, model, pending[start:start + 100]).items():
                            if data and data["status"] in TERMINAL:
                                with lock:
                                    seen.setdefault(d, time.monotonic())
                time.sleep(0.05)

    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    started = time.monotonic()
    with client(kb.server.url, key) as http:
        for i, text in enumerate(texts):
            due = started + i / args.fresh_rate
            time.sleep(max(0.0, due - time.monotonic()))
            response = http.post(f"{KB}/text", json={"text": text, "name": f"fresh-{i}"})
            response.raise_for_status()
            with lock:
                acked[response.json()["id"]] = time.monotonic()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(seen) < len(acked):
        time.sleep(0.1)
    stop.set()
    thread.join(5)
    delays = [seen[d] - acked[d] for d in acked if d in seen]
    return {"documents": n, "rate": args.fresh_rate, "seen": len(delays),
            "p50_secs": pct(delays, 50), "p90_secs": pct(delays, 90), "max_secs": max(delays) if delays else None}


# ---------------------------------------------------------------- latency rounds


def latency_rounds(args, inproc: InProcess, kbs: list[Kb], ws: str, queries: list[str], tag: str) -> dict:
    """{pipeline label: {clients: [per-round figures]}}, interleaved: each round runs every pipeline at
    1 client, then every pipeline at N clients (the order of the pipelines rotating between rounds)."""
    stream = QueryStream(queries, tag)
    labels = ["in-process"] + [k.label for k in kbs]
    out: dict[str, dict[int, list[dict]]] = {label: {1: [], args.concurrency: []} for label in labels}
    for r in range(args.rounds):
        order = labels[r % len(labels):] + labels[:r % len(labels)]
        for clients in (1, args.concurrency):
            for label in order:
                if label == "in-process":
                    row = inproc.timed(stream, args.requests, clients)
                else:
                    kb = next(k for k in kbs if k.label == label)
                    row = timed_requests(args, kb.server.url, kb.workspace(ws), stream, "hybrid", True,
                                         args.requests, clients)
                    if row["errors"]:
                        log(f"  {label}: errors {row['errors']} {row['error_samples'][:1]}")
                out[label][clients].append(row)
                log(f"round {r + 1}/{args.rounds} {ws} {label} x{clients}: p50 {ms(row['p50_ms'])} ms, "
                    f"p99 {ms(row['p99_ms'])} ms, {row['per_sec']:.1f}/s")
    return out


def med(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def stage_med(rows: list[dict], stage: str) -> float | None:
    values = [r["stage_p50_ms"][stage] for r in rows if r.get("stage_p50_ms") and r["stage_p50_ms"].get(stage) is not None]
    return statistics.median(values) if values else None


def summarise(args, rounds: dict) -> dict:
    out = {}
    for label, by_clients in rounds.items():
        out[label] = {}
        for clients, rows in by_clients.items():
            s = {"p50_ms": med(rows, "p50_ms"), "p99_ms": med(rows, "p99_ms"), "per_sec": med(rows, "per_sec"),
                 "rounds": [{k: r.get(k) for k in ("p50_ms", "p99_ms", "per_sec")} for r in rows]}
            if label != "in-process":
                s["stages_p50_ms"] = {st: stage_med(rows, st) for st in STAGES}
            out[label][clients] = s
    return out


# ---------------------------------------------------------------- printing


def verdict(value: float | None, limit: float, at_least: bool = False) -> str:
    if value is None:
        return "n/a"
    ok = value >= limit if at_least else value <= limit
    return "PASS" if ok else "FAIL"


def print_latency(args, summary: dict, title: str, slack: float = 1.0) -> list[list[str]]:
    n = args.concurrency
    print(f"\n== {title}: hybrid, cold (distinct query texts), top {TOP_K}; median over {args.rounds} rounds of "
          f"{args.requests} requests ==")
    rows = []
    for label, by in summary.items():
        for clients in (1, n):
            s = by[clients]
            rows.append([label, str(clients), ms(s["p50_ms"]), ms(s["p99_ms"]), f"{s['per_sec']:.1f}"])
    print_table(["pipeline", "clients", "p50 ms", "p99 ms", "req/s"], rows)
    base = summary["in-process"]
    for label, by in summary.items():
        if label == "in-process":
            continue
        st1, stn = by[1]["stages_p50_ms"], by[n]["stages_p50_ms"]
        print(f"\n{label}: server stage p50 ms (timings_ms)")
        print_table(["stage", "1 client", f"{n} clients", "growth"],
                    [[st, ms(st1[st]), ms(stn[st]),
                      f"{stn[st] / st1[st]:.2f}x" if st1[st] and stn[st] is not None else "-"] for st in STAGES])
    checks = []
    for label, by in summary.items():
        if label == "in-process":
            continue
        one, many = by[1], by[n]

        def check(name, value, limit, at_least=False, unit="x"):
            checks.append([label, name, f"{value:.2f}{unit}" if value is not None else "-",
                           f"{'>=' if at_least else '<='} {limit:.2f}{unit}", verdict(value, limit, at_least)])

        check("1 client p50 / in-process p50", one["p50_ms"] / base[1]["p50_ms"], 0.6 * slack)
        check("1 client p99 / in-process p99", one["p99_ms"] / base[1]["p99_ms"], 0.8 * slack)
        check(f"{n} clients req/s / today's {args.today_rps:g}/s", many["per_sec"] / args.today_rps, 3.0 / slack, True)
        check(f"{n} clients p99 / 1 client p99", many["p99_ms"] / one["p99_ms"], 5.0 * slack)
        growth = {st: many["stages_p50_ms"][st] / one["stages_p50_ms"][st]
                  for st in STAGES if one["stages_p50_ms"][st] and many["stages_p50_ms"][st] is not None}
        worst = max(growth, key=growth.get) if growth else None
        check(f"worst stage growth 1 -> {n} clients ({worst})", growth.get(worst), 2.0 * slack)
        checks.append([label, f"(info) {n} clients req/s / 1 client req/s", f"{many['per_sec'] / one['per_sec']:.2f}x", "", ""])
        checks.append([label, f"(info) {n} clients req/s / in-process {n} threads",
                       f"{many['per_sec'] / base[n]['per_sec']:.2f}x", "", ""])
    return checks


def main() -> int:
    args = parse_args()
    info = run_info(args)
    print(f"side-by-side benchmark — {info['machine']}, kb {info['git']}, load average {loadavg()}", flush=True)
    ms_ = Msmarco(args.corpus, args.embed_cache)
    if args.passages:
        ms_.passages = ms_.passages[:args.passages]
    results: dict = {**info, "kb": {}}
    root = Path(tempfile.mkdtemp(prefix="kb-side-by-side-"))
    kbs: list[Kb] = []
    try:
        # 1. in-process: the indexing baseline, timed before any server exists, and the FAISS index
        vectors = ms_.encode_passages(force_timing=not (args.skip_upload_timing or args.from_data))
        st_rate = len(ms_.passages) / ms_.encode_secs if ms_.encode_secs else None
        results["in_process_encode_per_sec"] = st_rate
        inproc = InProcess(ms_, vectors)

        # 2. kb servers, uploads and indexing at once
        codes = [("kb", REPO)] + [(c.split("=", 1)[0], Path(c.split("=", 1)[1]).resolve()) for c in args.compare]
        for label, code in codes:
            kb = Kb(root, label, code, args.from_data)
            kbs.append(kb)
            results["kb"][label] = {"code": str(code)}
            if not args.from_data:
                results["kb"][label]["indexing"] = upload_and_index(args, kb, ms_)
            if args.save_data and label == "kb":
                save_data(kb, args.save_data)
            write_json(args.json, results)

        # 3. latency, interleaved
        queries = [q["text"] for q in ms_.queries]
        rounds = latency_rounds(args, inproc, kbs, "msmarco", queries, f"{int(time.time()) % 100000:05d}m")
        results["latency_5k"] = summarise(args, rounds)
        write_json(args.json, results)

        # 4. searchable after upload
        if args.fresh_docs:
            for kb in kbs:
                log(f"{kb.label}: searchable-after run, {args.fresh_docs} documents at {args.fresh_rate:g}/s")
                results["kb"][kb.label]["searchable"] = searchable_after(args, kb, ms_)
            write_json(args.json, results)

        # 5. scale
        if args.scale:
            for kb in kbs:
                key = kb.workspace(f"scale{args.scale}")
                docs = synthetic_documents(ms_, args.scale, args.scale_sections)
                log(f"{kb.label}: scale, {len(docs)} documents of {args.scale_sections} sections...")
                up = upload_all(kb.server.url, key, docs, args.upload_clients, f"{kb.label} scale")
                waited = wait_indexed(kb.server.url, key, up["ids"], args.scale_timeout, f"{kb.label} scale")
                results["kb"][kb.label]["scale_indexing"] = indexing_report(up, waited, len(docs))
                log(f"{kb.label} scale: " + index_line(results["kb"][kb.label]["scale_indexing"]))
                kb.keys["scale"] = key
            big = InProcess.__new__(InProcess)
            import faiss

            big.model, big.dim = inproc.model, inproc.dim
            big.index = faiss.IndexFlatIP(inproc.dim)
            big.index.add(scaled_vectors(vectors, args.scale))
            rounds = latency_rounds(args, big, kbs, "scale", queries, f"{int(time.time()) % 100000:05d}s")
            results["latency_scale"] = summarise(args, rounds)
            write_json(args.json, results)
        for kb in kbs:
            results["kb"][kb.label]["server_log"] = kb.server.scan_log()
    finally:
        for kb in kbs:
            kb.server.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log(f"kept {root}")

    # ---- report
    checks = print_latency(args, results["latency_5k"], f"{len(ms_.passages)} msmarco passages")
    if "latency_scale" in results:
        checks += [[f"{c[0]} @{args.scale}"] + c[1:]
                   for c in print_latency(args, results["latency_scale"], f"{args.scale} synthetic chunks", slack=1.3)]
    print(f"\n== uploads and indexing at once: {len(ms_.passages)} text documents, {args.upload_clients} clients ==")
    rows = [["sentence-transformers in process (encode, batch 32)", f"{st_rate:.1f}" if st_rate else "-", "-", "1.00"]]
    for label, r in results["kb"].items():
        if "indexing" not in r:
            continue
        i = r["indexing"]
        rows.append([f"{label}: first upload -> last index done", f"{i['chunks_per_sec']:.1f}", f"{i['uploads_per_sec']:.1f}",
                     f"{i['chunks_per_sec'] / st_rate:.2f}" if st_rate else "-"])
        if st_rate:
            checks.append([label, "indexing chunks/s / in-process passages/s", f"{i['chunks_per_sec'] / st_rate:.2f}x",
                           ">= 2.50x", verdict(i["chunks_per_sec"] / st_rate, 2.5, True)])
        checks.append([label, "uploads/s (4 clients)", f"{i['uploads_per_sec']:.1f}", ">= 150", verdict(i["uploads_per_sec"], 150, True)])
        if "searchable" in r:
            s = r["searchable"]
            checks.append([label, f"searchable after ack, p50 ({s['seen']}/{s['documents']} at {s['rate']:g}/s)",
                           f"{s['p50_secs']:.2f} s" if s["p50_secs"] is not None else "-", "<= 2.00 s",
                           verdict(s["p50_secs"], 2.0)])
    print_table(["pipeline", "chunks/s", "uploads/s", "ratio"], rows)
    for label, r in results["kb"].items():
        if "indexing" in r:
            print(f"{label}: " + index_line(r["indexing"]))
        if "searchable" in r:
            s = r["searchable"]
            print(f"{label}: searchable after its upload is acknowledged ({s['documents']} documents at {s['rate']:g}/s): "
                  f"p50 {s['p50_secs']:.2f} s, p90 {s['p90_secs']:.2f} s, max {s['max_secs']:.2f} s")
        if r.get("server_log", {}).get("tracebacks"):
            print(f"{label}: WARNING {r['server_log']['tracebacks']} tracebacks in the server log")
    print("\n== targets of issue 15 ==")
    print_table(["kb", "figure", "value", "target", ""], checks)
    results["checks"] = checks
    print(f"(load average {loadavg()} at the end)")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

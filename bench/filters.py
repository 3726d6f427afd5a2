"""Filter latency: hybrid retrieval over HTTP with no filter, a 10 % and a 1 % attribute filter, at 5,000
chunks (the msmarco passages) and at `--scale` chunks (synthetic Markdown documents, as the scale part of
bench/retrieval.py builds them).

Usage (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/filters.py [--scale 100000 | --scale 0] [--requests 300] [--json PATH]

Every document gets the attribute `shard` = its number modulo 100, so `{"type": "eq", "key": "shard",
"value": 7}` selects 1 % of the documents (and of the chunks) and `{"type": "lt", "key": "shard", "value":
10}` 10 %. One client sends `--requests` cold hybrid retrieve calls (every query text distinct, so the
query-embedding cache never hits; top 10, no distance cut) per filter. The script checks that every chunk a
filtered call returns belongs to a matching document, and that a 1 % call still returns 10 chunks: the
filter applies inside the search, not to the top candidates after it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common import DEFAULT_CORPUS  # noqa: E402
from common.beir import Msmarco  # noqa: E402
from common.documents import upload_all, wait_indexed  # noqa: E402
from common.report import loadavg, log, print_table  # noqa: E402
from common.results import write_json  # noqa: E402
from common.search import retrieve, retrieve_body  # noqa: E402
from common.server import Target, client  # noqa: E402
from retrieval_parts.latency import QueryStream, timed_requests  # noqa: E402
from retrieval_parts.scale import synthetic_documents  # noqa: E402

SHARDS = 100
FILTERS = {
    "none": None,
    "10 %": {"type": "lt", "key": "shard", "value": 10},
    "1 %": {"type": "eq", "key": "shard", "value": 7},
}


def with_shards(docs: list[dict]) -> list[dict]:
    return [{**doc, "attributes": {"shard": i % SHARDS}} for i, doc in enumerate(docs)]


def check_filtered(args, url: str, key: str, queries: list[str], shard_of: dict[str, int]) -> dict:
    """Whether filtered answers hold only matching documents and a 1 % filter still fills the top 10."""
    wrong, short = 0, 0
    with client(url, key) as http:
        for query in queries[:20]:
            for label, condition in FILTERS.items():
                if condition is None:
                    continue
                args.filters = condition
                chunks = retrieve(http, retrieve_body(args, query, "hybrid"))["chunks"]
                allowed = (lambda s: s == 7) if label == "1 %" else (lambda s: s < 10)
                wrong += sum(1 for c in chunks if not allowed(shard_of[c["document_id"]]))
                short += len(chunks) < 10
    args.filters = None
    return {"chunks_outside_the_filter": wrong, "answers_under_10_chunks": short}


def measure(args, target: Target, label: str, docs: list[dict], queries: list[str]) -> dict:
    key, _ = target.workspace(label)
    log(f"{label}: uploading {len(docs)} documents...")
    up = upload_all(target.url, key, with_shards(docs), args.upload_clients, label)
    waited = wait_indexed(target.url, key, up["ids"], args.index_timeout, label)
    shard_of = {doc_id: i % SHARDS for i, doc_id in enumerate(up["ids"])}
    chunks = sum(s["chunks"] for s in waited["docs"].values())
    result = {"documents": len(docs), "chunks": chunks, "rows": {}, "load_before": loadavg()}
    result["check"] = check_filtered(args, target.url, key, queries, shard_of)
    stream = QueryStream(queries, f"{target.run_tag}{label}")
    timed_requests(args, target.url, key, stream, "hybrid", True, 30, 1)  # warm-up
    for name, condition in FILTERS.items():
        args.filters = condition
        log(f"{label}: filter {name}, {args.requests} cold hybrid calls")
        result["rows"][name] = timed_requests(args, target.url, key, stream, "hybrid", True, args.requests, 1)
    args.filters = None
    result["load_after"] = loadavg()
    return result


def show(results: dict) -> None:
    rows = []
    for label, r in results.items():
        for name, row in r["rows"].items():
            stages = row.get("stage_p50_ms") or {}
            rows.append([label, f"{r.get('chunks') or '-'}", name, f"{row['p50_ms']:.1f}", f"{row['p99_ms']:.1f}",
                         f"{row['server_p50_ms']:.1f}", f"{(stages.get('filter') or 0):.1f}" if "filter" in stages else "-",
                         f"{row['mean_chunks']:.1f}"])
        print(f"{label}: check {r['check']}; 1-min load {r['load_before']} before, {r['load_after']} after")
    print_table(["workspace", "chunks", "filter", "p50 ms", "p99 ms", "server p50", "filter p50", "chunks/answer"], rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=100_000, help="chunks of the large workspace (0: skip it)")
    ap.add_argument("--scale-sections", type=int, default=100)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--upload-clients", type=int, default=4)
    ap.add_argument("--index-timeout", type=float, default=5400.0)
    ap.add_argument("--request-timeout", type=float, default=60.0)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.url = args.api_key = args.data_dir = None
    args.num_candidates = args.budget_ms = args.filters = None
    ms = Msmarco(args.corpus)
    queries = [q["text"] for q in ms.queries]
    target = Target(args)
    results: dict = {}
    try:
        passages = [{"name": p["_id"], "text": p["text"]} for p in ms.passages]
        results["msmarco-5k"] = measure(args, target, "filters5k", passages, queries)
        if args.scale:
            docs = synthetic_documents(ms, args.scale, args.scale_sections)
            results[f"synthetic-{args.scale}"] = measure(args, target, f"filters{args.scale}", docs, queries)
    finally:
        target.close()
        if args.json:
            write_json(args.json, results)
    show(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""kb's retrieval quality on every evaluation set, per search mode, over HTTP.

Run (from the repository root; the machine is shared, so nice it):

    HF_HUB_OFFLINE=1 nice -n 15 .venv/bin/python bench/evalsets.py [--sets msmarco,entities-dev,...]
        [--modes hybrid,dense,lexical] [--title-in-text] [--embed-context] [--backend onnx-int8|torch]
        [--json bench/results/evalsets.json]

For each corpus, a kb (bench/kbharness.py: a real KnowledgeBase behind uvicorn on loopback, default
settings unless a flag says otherwise) gets a workspace; every document is uploaded over HTTP (a text
document named by its title, or by its id when it has none; the multilingual sets' files through
POST /file) and indexed by kb's own worker. Each query is asked in each mode through
POST /rag/retrieve with `max_vector_distance` 2.0 (no cut) and `max_retrieved_rag_chunks_count` 10,
and scored (bench/evaldata.py): nDCG@10, recall@10 and MRR@10; BEIR sets over the documents of the
10 chunks (first chunk of each), the multilingual sets over the chunks themselves.

Sets: msmarco (../shared/corpus/retrieval/msmarco-5k, 43 judged queries), entities-dev, entities-test
(held out: never tune on it), entities-known, support6 (bench/data/), ml-ar, ml-de, ml-en, ml-ja, ml-zh
(bench/data/multilingual, one workspace per language). `--title-in-text` uploads titled documents with
their title as the first line of the text; `--embed-context` sets KB_EMBED_CONTEXT (the title embedded in
front of each chunk, not stored).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaldata import SET_NAMES, corpus_key, load, score  # noqa: E402
from kbharness import Server, log  # noqa: E402

MODES = ("hybrid", "dense", "lexical")
METRICS = ("ndcg", "recall", "mrr")


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def run(sets: list[str], modes: list[str], server: Server, title_in_text: bool) -> dict:
    """{set: {"queries": n, "modes": {mode: {metric: mean}}, "per_query": {mode: [...]}}}."""
    groups: dict[str, list] = defaultdict(list)
    for name in sets:
        groups[corpus_key(name, title_in_text)].append(load(name, title_in_text))
    results: dict[str, dict] = {}
    for key, evalsets in groups.items():
        workspace = server.workspace(key)
        workspace.upload(evalsets[0].documents)
        stored = [c for doc in evalsets[0].documents for c in workspace.chunks(doc.name)] if evalsets[0].unit == "chunk" else []
        for evalset in evalsets:
            per_query: dict[str, list[dict]] = {}
            for mode in modes:
                rows = []
                for query in evalset.queries:
                    chunks = workspace.retrieve(query.text, mode)
                    rows.append({"id": query.id, "kind": query.kind, **score(evalset, query, chunks, stored),
                                 "top": [c.document_name for c in chunks[:3]]})
                per_query[mode] = rows
            results[evalset.name] = {
                "queries": len(evalset.queries),
                "chunks": len(stored) or None,
                "modes": {m: {k: mean([r[k] for r in rows]) for k in METRICS} for m, rows in per_query.items()},
                "per_query": per_query,
            }
            log(f"{evalset.name}: " + "; ".join(f"{m} nDCG@10 {v['ndcg']:.3f}" for m, v in results[evalset.name]["modes"].items()))
    return results


def print_table(results: dict, modes: list[str]) -> None:
    headers = ["set", "queries"] + [f"{m} {k}@10" for m in modes for k in ("nDCG", "R", "MRR")]
    if "hybrid" in modes and len(modes) > 1:
        headers.append("hybrid - best single (nDCG)")
    print("| " + " | ".join(headers) + " |")
    print("|" + " --- |" * len(headers))
    for name, r in results.items():
        cells = [name, str(r["queries"])] + [f"{r['modes'][m][k]:.3f}" for m in modes for k in METRICS]
        if "hybrid" in modes and len(modes) > 1:
            best = max(r["modes"][m]["ndcg"] for m in modes if m != "hybrid")
            cells.append(f"{r['modes']['hybrid']['ndcg'] - best:+.3f}")
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SET_NAMES))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--title-in-text", action="store_true", help="titled documents: the title as the text's first line")
    parser.add_argument("--embed-context", action="store_true", help="KB_EMBED_CONTEXT: embed the title in front of each chunk")
    parser.add_argument("--backend", default=None, help="KB_EMBED_BACKEND (default: kb's default, onnx-int8)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure (per query too) here")
    args = parser.parse_args()
    sets, modes = args.sets.split(","), args.modes.split(",")
    overrides = {k: v for k, v in {"embed_context": args.embed_context or None, "embed_backend": args.backend}.items() if v}
    started, load_before = time.monotonic(), os.getloadavg()[0]
    server = Server("evalsets", **overrides)
    try:
        results = run(sets, modes, server, args.title_in_text)
    finally:
        server.stop()
    meta = {"sets": sets, "modes": modes, "title_in_text": args.title_in_text, "overrides": overrides,
            "seconds": round(time.monotonic() - started), "load_before": load_before, "load_after": os.getloadavg()[0]}
    print(f"\n{meta}\n")
    print_table(results, modes)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()

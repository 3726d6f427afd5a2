"""Part scale: a large workspace of synthetic Markdown documents built over HTTP, then the latency suite on it."""

from __future__ import annotations

import math
import random
import re

from common.beir import Msmarco
from common.documents import delete_documents, ensure_empty, index_line, indexing_report, upload_all, wait_indexed
from common.report import log
from common.server import Target
from retrieval_parts.latency import latency_suite, print_latency


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

"""Speed of lexical search (index.lexical) at 100,000 chunks.

Chunks are made from the 5,000 msmarco-5k passages: each chunk joins `--passages` random
passages (3 by default: about 170 words, the size of a 256-token chunk), so the vocabulary
and the term frequencies are those of real text. Chunks are grouped into documents of
`--chunks-per-doc` consecutive ids.

    .venv/bin/python bench/lexical_speed.py [--chunks 100000] [--passages 3] [--queries 500]

Prints analysis and build times, the time to add and to remove one document, query latency
(p50 / p99) over the msmarco queries (repeated to `--queries`), with and without an
`allowed_ids` filter, memory, and save / load times.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index.lexical import BM25Index, analyze, analyze_query  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "retrieval" / "msmarco-5k"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def percentiles(samples: list[tuple[int, int]]) -> str:
    """Wall-clock p50/p99/max, and the same for this thread's CPU time (which leaves out the
    time spent waiting for a CPU on a busy machine)."""
    wall, cpu = (np.array(column) / 1e6 for column in zip(*samples))
    return (f"p50 {np.percentile(wall, 50):.3f} ms  p99 {np.percentile(wall, 99):.3f} ms  max {wall.max():.3f} ms"
            f"  | CPU p50 {np.percentile(cpu, 50):.3f} ms  p99 {np.percentile(cpu, 99):.3f} ms")


def timed(function, *args) -> tuple[object, tuple[int, int]]:
    start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
    result = function(*args)
    return result, (time.perf_counter_ns() - start, time.thread_time_ns() - start_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--passages", type=int, default=3, help="passages joined into one chunk")
    parser.add_argument("--chunks-per-doc", type=int, default=50)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    passages = [p["text"] for p in read_jsonl(CORPUS / "corpus.jsonl")]
    queries = [q["text"] for q in read_jsonl(CORPUS / "queries.jsonl")]
    texts = [" ".join(rng.choices(passages, k=args.passages)) for _ in range(args.chunks + 20 * args.chunks_per_doc)]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {args.chunks:,} chunks of "
          f"{args.passages} passages (~{np.mean([len(t.split()) for t in texts[:1000]]):.0f} words)")

    token_lists, (wall, cpu) = timed(lambda: [analyze(text, "english") for text in texts])
    print(f"analyze: {wall / 1e9:.1f} s (CPU {cpu / 1e9:.1f} s) for {len(texts):,} chunks, "
          f"{cpu / 1e3 / len(texts):.0f} µs CPU per chunk")
    extra = token_lists[args.chunks :]
    token_lists = token_lists[: args.chunks]
    print(f"terms per chunk {np.mean([len(t) for t in token_lists]):.0f} "
          f"(distinct {np.mean([len(set(t)) for t in token_lists]):.0f})")

    rss_before = rss_mb()
    index = BM25Index()
    _, (wall, cpu) = timed(index.add, np.arange(args.chunks), token_lists, "english")
    print(f"build (one add of all chunks): {wall / 1e9:.2f} s (CPU {cpu / 1e9:.2f} s); "
          f"{index.vocabulary_size:,} terms, memory {index.memory_bytes() / 1e6:.0f} MB "
          f"(process RSS +{rss_mb() - rss_before:.0f} MB)")

    per_doc = args.chunks_per_doc
    grown = BM25Index()
    times = []
    for first in range(0, args.chunks, per_doc):
        _, ns = timed(grown.add, np.arange(first, first + per_doc), token_lists[first : first + per_doc], "english")
        times.append(ns)
    wall, cpu = (sum(column) / 1e9 for column in zip(*times))
    print(f"build one document ({per_doc} chunks) at a time: {wall:.2f} s (CPU {cpu:.2f} s); "
          f"add {percentiles(times)}; memory {grown.memory_bytes() / 1e6:.0f} MB")
    del grown

    adds, removes = [], []
    for n in range(20):
        ids = np.arange(10**7 + n * per_doc, 10**7 + (n + 1) * per_doc)
        _, ns = timed(index.add, ids, extra[n * per_doc : (n + 1) * per_doc], "english")
        adds.append(ns)
    for n in range(20):
        _, ns = timed(index.remove, range(10**7 + n * per_doc, 10**7 + (n + 1) * per_doc))
        removes.append(ns)
    print(f"add one document ({per_doc} chunks) to {len(index):,}: {percentiles(adds)}")
    print(f"remove one document: {percentiles(removes)}")

    query_texts = [queries[i % len(queries)] for i in range(args.queries)]
    rng.shuffle(query_texts)
    analysed = [analyze_query(text, index.languages) for text in query_texts]
    index.search(analysed[0], 10)  # norms cached after the changes above
    documents = [np.arange(d * per_doc, (d + 1) * per_doc) for d in rng.sample(range(args.chunks // per_doc), 50)]
    tenth = np.sort(np.array(rng.sample(range(args.chunks), args.chunks // 10)))
    runs = {
        "k=10, no filter": lambda q, i: index.search(q, 10),
        "k=100, no filter": lambda q, i: index.search(q, 100),
        f"k=10, allowed_ids = one document ({per_doc} chunks)": lambda q, i: index.search(q, 10, documents[i % 50]),
        f"k=10, allowed_ids = 10% of chunks ({len(tenth):,} ids)": lambda q, i: index.search(q, 10, tenth),
    }
    postings = [sum(index.postings(t) for t in q) for q in analysed]
    print(f"queries: {len(analysed)} ({len(queries)} msmarco queries repeated), "
          f"{np.mean([len(q) for q in analysed]):.1f} terms, {np.mean(postings):,.0f} postings on average "
          f"(max {max(postings):,})")
    for label, run in runs.items():
        times = []
        for i, query in enumerate(analysed):
            _, ns = timed(run, query, i)
            times.append(ns)
        print(f"search {label}: {percentiles(times)}")
    times = []
    for i, text in enumerate(query_texts):
        _, ns = timed(lambda: index.search(analyze_query(text, index.languages), 10))
        times.append(ns)
    print(f"analyze_query + search k=10: {percentiles(times)}")

    start = time.perf_counter()
    data = index.to_bytes()
    saved = time.perf_counter() - start
    start = time.perf_counter()
    loaded = BM25Index.from_bytes(data)
    print(f"to_bytes {saved:.2f} s ({len(data) / 1e6:.0f} MB), from_bytes {time.perf_counter() - start:.2f} s, "
          f"{len(loaded):,} chunks")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")


if __name__ == "__main__":
    main()

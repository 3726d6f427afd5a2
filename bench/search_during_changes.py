"""Search latency while a large batch of chunks goes into a 100,000-vector HNSW index.

Usage (from the repository root; needs bench/results/hnsw_embeddings.npz from bench/hnsw_recall.py):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/search_during_changes.py [--base 93600] [--batch 6400]

kb publishes a batch of indexed documents with `LoadedIndex.change` (kb/vectors.py). An HNSW graph
must not be searched while it changes, so a change holds the index's write lock; inserting
thousands of vectors at once would hold every search of the workspace for seconds. This script
builds a TieredStore (in its HNSW form) of `--base` vectors, then applies a change of `--batch`
new vectors the way kb does, once all at once and once in kb's slices, while another thread
searches back to back (top 100, as kb's default candidate pool) under the read lock. It prints,
for each, how long the change took and the searches' latency percentiles.

Vectors: the 20,008 real all-MiniLM-L6-v2 passage embeddings of the cache, and synthetic ones
made from them as bench/hnsw_recall.py makes them (normalise(v + a (u - w)), a in [0.2, 0.5]).
FAISS runs single-threaded, as in kb.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from index.stores import TieredStore, set_search_threads  # noqa: E402
from kb.indexes import ChunkVectors, LexicalIndex, LoadedIndex  # noqa: E402

CACHE = REPO / "bench" / "results" / "hnsw_embeddings.npz"


def vectors(count: int, seed: int = 0) -> np.ndarray:
    real = np.load(CACHE)["passages"].astype(np.float32)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(real), size=(count, 3))
    a = rng.uniform(0.2, 0.5, size=(count, 1)).astype(np.float32)
    out = real[picks[:, 0]] + a * (real[picks[:, 1]] - real[picks[:, 2]])
    out[: min(count, len(real))] = real[: min(count, len(real))]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def run(loaded: LoadedIndex, batch: ChunkVectors, queries: np.ndarray, slice_size: int) -> dict:
    done = threading.Event()
    latencies: list[float] = []

    def search() -> None:
        i = 0
        while not done.is_set():
            started = time.perf_counter()
            with loaded.lock.reading():
                loaded.store.search(queries[i % len(queries)], 100)
            latencies.append(1000 * (time.perf_counter() - started))
            i += 1

    searcher = threading.Thread(target=search)
    searcher.start()
    time.sleep(0.2)
    started = time.perf_counter()
    loaded.change(loaded.generation + 1, add=batch, slice_size=slice_size)
    took = time.perf_counter() - started
    done.set()
    searcher.join()
    return {"change_s": took, "searches": len(latencies), "p50": statistics.median(latencies),
            "p99": percentile(latencies, 99), "max": max(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, default=93_600)
    parser.add_argument("--batch", type=int, default=6_400, help="vectors per change (kb: up to 64 documents)")
    args = parser.parse_args()
    set_search_threads(1)
    data = vectors(args.base + 2 * args.batch)
    store = TieredStore(data.shape[1])
    lexical = LexicalIndex()
    started = time.perf_counter()
    for start in range(0, args.base, 4096):
        keys = np.arange(start, min(start + 4096, args.base), dtype=np.int64)
        store.add(keys, data[keys])
        lexical.add(keys, [""] * len(keys), ["english"] * len(keys))
    print(f"built {store.holds} store of {len(store)} vectors in {time.perf_counter() - started:.0f} s", flush=True)
    loaded = LoadedIndex(store, 0, lexical)
    queries = data[np.random.default_rng(1).integers(0, args.base, 200)]
    rows = []
    for n, (label, slice_size) in enumerate((("all at once", args.batch), ("kb's slices of 16", 16))):
        keys = np.arange(args.base + n * args.batch, args.base + (n + 1) * args.batch, dtype=np.int64)
        batch = ChunkVectors(keys, data[keys], [""] * len(keys), ["english"] * len(keys))
        row = run(loaded, batch, queries, slice_size)
        rows.append((label, row))
        print(f"{label}: change {row['change_s']:.1f} s, {row['searches']} searches meanwhile, "
              f"p50 {row['p50']:.2f} ms, p99 {row['p99']:.2f} ms, max {row['max']:.0f} ms", flush=True)
    print("\n| change of %d vectors into %d | change s | searches meanwhile | p50 ms | p99 ms | max ms |" % (args.batch, args.base))
    print("| --- | --- | --- | --- | --- | --- |")
    for label, row in rows:
        print(f"| {label} | {row['change_s']:.1f} | {row['searches']} | {row['p50']:.2f} | {row['p99']:.2f} | {row['max']:.0f} |")


if __name__ == "__main__":
    main()

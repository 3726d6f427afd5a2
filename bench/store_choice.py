"""Which FAISS index for a million chunks: HNSW (flat or SQ8 storage) and IVF (flat or SQ8) on real chunk embeddings.

Usage (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/store_choice.py --data-dir DIR [--size 200000] [--queries 500]
        [--kinds hnsw,hnsw-sq8,ivf,ivf-sq8] [--json PATH]

Vectors: the first `--size` stored chunk embeddings of the largest workspace in a kb data dir (SQLite,
e.g. the one bench/million_chunks.py builds), read from the database in key order; with `--extend N`,
synthetic vectors made from them up to N (bench/hnsw_recall.py's method). Queries: the 50
msmarco-5k queries, then sentence openings (6 to 10 words of msmarco sentences, seeded) up to
`--queries`, embedded with kb's query embedder (the data dir's ONNX export).

For each kind: build time (2 threads), memory (the serialised index), and for each search setting
(efSearch for HNSW, nprobe for IVF) single-query latency on 1 OpenMP thread (p50 / p99) and recall@10
against exact search (IndexFlatIP over the same float vectors). Synthetic chunks recombine a pool of
sentences, so exact duplicates exist: recall counts a result as found when its exact inner product
reaches the 10th exact one (ties are not misses); `id recall` counts ids only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from common import DEFAULT_CORPUS  # noqa: E402
from common.beir import load_msmarco  # noqa: E402
from common.stats import pct  # noqa: E402
from retrieval_parts.scale import SENTENCE_END  # noqa: E402

K = 10
SETTINGS = {"hnsw": [32, 64, 96, 128, 192], "hnsw-sq8": [64, 96, 128, 192, 256],
            "ivf": [8, 16, 32, 64, 128], "ivf-sq8": [8, 16, 32, 64, 128]}


def read_vectors(data_dir: Path, size: int) -> np.ndarray:
    db = sqlite3.connect(f"file:{data_dir / 'kb.sqlite3'}?mode=ro", uri=True)
    (workspace,) = db.execute("SELECT workspace_id FROM chunks GROUP BY workspace_id ORDER BY count(*) DESC LIMIT 1").fetchone()
    rows = db.execute("SELECT embedding FROM chunks WHERE workspace_id = ? ORDER BY key LIMIT ?", (workspace, size))
    blob = b"".join(r[0] for r in rows)
    db.close()
    return np.frombuffer(blob, dtype=np.float32).reshape(-1, 384).copy()


def extend(real: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`real` plus synthetic vectors up to `size`, as bench/hnsw_recall.py makes them: a real vector
    moved towards the difference of two others, v + a (u - w), a uniform in [0.2, 0.5], normalised."""
    if size <= len(real):
        return real[:size]
    rng = np.random.default_rng(seed)
    out = [real]
    for start in range(len(real), size, 100_000):
        m = min(100_000, size - start)
        v, u, w = (real[rng.integers(0, len(real), m)] for _ in range(3))
        x = v + rng.uniform(0.2, 0.5, (m, 1)).astype(np.float32) * (u - w)
        out.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    return np.vstack(out).astype(np.float32)


def query_texts(corpus: Path, n: int, seed: int = 1) -> list[str]:
    passages, queries, _ = load_msmarco(corpus)
    texts = [q["text"] for q in queries]
    pool = sorted({s for p in passages for s in SENTENCE_END.split(" ".join(p["text"].split())) if len(s.split()) >= 10})
    rng = random.Random(seed)
    while len(texts) < n:
        words = rng.choice(pool).split()
        texts.append(" ".join(words[: rng.randint(6, 10)]).rstrip(".,;:!?"))
    return texts[:n]


def embed_queries(data_dir: Path, texts: list[str]) -> np.ndarray:
    from index.embedders import load_embedder
    from kb.settings import load_settings

    e = load_settings().embedding
    embedder = load_embedder(e.default_model, e.model_source(e.default_model), e.embed_backend,
                             onnx_cache_dir=data_dir / "models", query_threads=1, batch_threads=1)
    return np.vstack([embedder.embed_query(t) for t in texts]).astype(np.float32)


def build(kind: str, vectors: np.ndarray) -> faiss.Index:
    d, n = vectors.shape[1], len(vectors)
    nlist = int(4 * np.sqrt(n))
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    elif kind == "hnsw-sq8":
        index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, 32, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivf":
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivf-sq8":
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
    else:
        raise ValueError(kind)
    if kind.startswith("hnsw"):
        index.hnsw.efConstruction = 200
    if not index.is_trained:
        rng = np.random.default_rng(0)
        index.train(vectors[rng.choice(n, min(n, max(50 * nlist, 100_000)), replace=False)])
    for start in range(0, n, 50_000):
        index.add(vectors[start:start + 50_000])
    return index


def set_search(index: faiss.Index, kind: str, value: int) -> None:
    if kind.startswith("hnsw"):
        index.hnsw.efSearch = value
    else:
        index.nprobe = value


def measure(index: faiss.Index, kind: str, queries: np.ndarray, vectors: np.ndarray, truth_rows: np.ndarray,
            kth: np.ndarray) -> list[dict]:
    faiss.omp_set_num_threads(1)
    rows = []
    for value in SETTINGS[kind]:
        set_search(index, kind, value)
        secs, found = [], []
        for q in queries:
            t = time.perf_counter()
            _, labels = index.search(q[None, :], K)
            secs.append(1000 * (time.perf_counter() - t))
            found.append(labels[0])
        found = np.array(found)
        scores = np.einsum("qd,qkd->qk", queries, vectors[np.maximum(found, 0)])
        ok = (found >= 0) & (scores >= kth[:, None] - 1e-5)
        id_hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth_rows))
        rows.append({"setting": value, "recall": float(ok.sum() / found.size), "id_recall": id_hits / found.size,
                     "p50_ms": pct(secs, 50), "p99_ms": pct(secs, 99)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--size", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--extend", type=int, default=0, help="add synthetic vectors (from the real ones) up to this many")
    ap.add_argument("--kinds", default="hnsw,hnsw-sq8,ivf,ivf-sq8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    vectors = read_vectors(args.data_dir, args.size)
    real = len(vectors)
    if args.extend:
        vectors = extend(vectors, args.extend)
    queries = embed_queries(args.data_dir, query_texts(args.corpus, args.queries))
    print(f"{len(vectors)} vectors ({real} stored chunk vectors), {len(queries)} queries; load avg {os.getloadavg()[0]:.1f}", flush=True)
    faiss.omp_set_num_threads(args.threads)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    scores, truth_rows = exact.search(queries, K)
    kth = scores[:, -1]
    result = {"vectors": len(vectors), "real_vectors": real, "queries": len(queries), "kinds": {}}
    for kind in args.kinds.split(","):
        faiss.omp_set_num_threads(args.threads)
        started = time.perf_counter()
        index = build(kind, vectors)
        build_secs = time.perf_counter() - started
        memory = faiss.serialize_index(index).nbytes
        rows = measure(index, kind, queries, vectors, truth_rows, kth)
        result["kinds"][kind] = {"build_secs": build_secs, "bytes": memory, "bytes_per_vector": memory / len(vectors),
                                 "searches": rows}
        print(f"\n{kind}: build {build_secs:.0f} s ({args.threads} threads), {memory / 2**20:.0f} MiB "
              f"({memory / len(vectors):.0f} B/vector); load avg {os.getloadavg()[0]:.1f}", flush=True)
        print("  setting  recall@10  id recall  p50 ms  p99 ms")
        for r in rows:
            print(f"  {r['setting']:7d}  {r['recall']:.4f}     {r['id_recall']:.4f}     {r['p50_ms']:.2f}    {r['p99_ms']:.2f}",
                  flush=True)
        del index
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

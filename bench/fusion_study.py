"""Fusion levers for entity queries, measured on every set: titles as a lexical field, titles on the dense side,
a query-type signal, other anchors. Public functions only: `index.fusion`, `index.lexical` and kb's HTTP API.

Run (from the repository root; nice it):

    HF_HUB_OFFLINE=1 nice -n 15 .venv/bin/python bench/fusion_study.py [--sets ...] [--json bench/results/fusion_study.json]

How a variant is scored. A kb (bench/kbharness.py, default settings) indexes every set over HTTP. For each
workspace the study reads every chunk back (GET /{id}/chunks) and rebuilds kb's lexical side in process
with `index.lexical` (each document's language from `detect_language` of its text, chunk terms from
`analyze`, `BM25Index` with kb's parameters), plus a second BM25 index over each chunk's *title field*:
its document's name and its heading path. For each query it asks kb over HTTP for the dense ranking (top
1,000, each chunk's true cosine distance), for its lexical top 100 (which carry their true distances too),
and for the other chunks a variant needs through a dense search restricted to their documents; it takes the lexical candidates from the replica; the candidates (top 100 of each side, as
kb's retriever takes) are then ranked by `index.fusion` exactly as kb's hybrid mode does, or by a
variant. The unmodified variant ("kb") is checked against kb's own hybrid answers over HTTP (share of
queries whose top 10 is identical).

A second kb with `KB_EMBED_CONTEXT=true` (the title and heading path embedded in front of each chunk)
gives the dense side of the "+ctx" variants.

Variants (`VARIANTS`): `kb` (today); `title xW` (lexical score = BM25(text) + W x BM25(title field), in
hybrid and in the lexical candidate search; coordination counts terms found in either); `title-in-text`
(the title field's words added to each chunk's text terms); `short-query S` (a query-type signal: for
queries of 1-4 words that do not start with a question word, in a language the model knows, the dense
weight is at least S); anchors `a<no>-<clear>`; `no-coord`.
Scores: nDCG@10 for the BEIR sets, MRR@10 for the multilingual ones. Choose on entities-dev only;
entities-test is held out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from evaldata import Chunk, EvalSet, Query, corpus_key, load, score  # noqa: E402
from index import fusion  # noqa: E402
from index.lexical import BM25Index, analyze, analyze_query, detect_language  # noqa: E402
from kbharness import Server, Workspace, log  # noqa: E402

POOL = 100  # candidates per side (kb's SearchOptions.num_candidates)
TOP = 10
MODEL_LANGUAGES = {"english"}  # all-MiniLM-L6-v2 (kb/lexical.py MODEL_LANGUAGES)
QUESTION_WORDS = {"what", "how", "why", "when", "who", "whom", "whose", "where", "which", "is", "are", "was", "were",
                  "do", "does", "did", "can", "could", "should", "would", "will", "define", "definition"}
SETS = ("entities-dev", "entities-test", "entities-known", "msmarco", "support6",
        "ml-ar", "ml-de", "ml-en", "ml-ja", "ml-zh")


# ---- kb's lexical side, rebuilt from the workspace's chunks ----------------------------------------------------


class Replica:
    """One workspace's chunks, a BM25 index over their text and one over their title field."""

    def __init__(self, workspace: Workspace, evalset: EvalSet):
        self.chunks: list[Chunk] = []
        self.language: list[str] = []
        for doc in evalset.documents:
            pieces = workspace.chunks(doc.name)
            language = detect_language("\n".join(c.text for c in pieces))
            self.chunks += pieces
            self.language += [language] * len(pieces)
        self.key = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        keys = np.arange(len(self.chunks), dtype=np.int64)
        text_terms = [analyze(c.text, lang) for c, lang in zip(self.chunks, self.language)]
        title_terms = [analyze(" ".join([c.document_name, *c.heading_path]), lang)
                       for c, lang in zip(self.chunks, self.language)]
        self.text = BM25Index()
        self.text.add(keys, text_terms, self.language)
        self.title = BM25Index()
        self.title.add(keys, title_terms, self.language)
        self.text_title = BM25Index()
        self.text_title.add(keys, [t + u for t, u in zip(text_terms, title_terms)], self.language)

    def covers(self, query: str) -> bool:
        """kb's `LexicalIndex.model_covers` for all-MiniLM-L6-v2."""
        return detect_language(query) in MODEL_LANGUAGES and all(lang in MODEL_LANGUAGES for lang in self.text.languages[:1])


@dataclass
class QueryData:
    """Everything a variant needs for one query: dense similarities of every candidate, lexical terms."""

    terms: list[str]
    dense_keys: np.ndarray  # dense top POOL, best first
    similarity: dict[int, float]  # key -> cosine similarity (dense top 1,000 and every lexical candidate)
    covers: bool
    hybrid_http: list[str]  # kb's own hybrid top 10 (chunk ids)


def query_data(workspace: Workspace, replica: Replica, query: Query) -> QueryData:
    dense = workspace.retrieve(query.text, "dense", count=1000)
    similarity = {replica.key[c.chunk_id]: 1.0 - c.vector_distance for c in dense}
    for c in workspace.retrieve(query.text, "lexical", count=POOL):  # kb's lexical candidates, true distances
        similarity.setdefault(replica.key[c.chunk_id], 1.0 - c.vector_distance)
    terms = analyze_query(query.text, replica.text.languages)
    wanted: set[int] = set()
    for index in (replica.text, replica.text_title):
        keys, _ = index.search(terms, POOL)
        wanted |= set(keys.tolist())
    keys, _ = replica.title.search(terms, POOL)
    wanted |= set(keys.tolist())
    missing = sorted(k for k in wanted if k not in similarity)
    if missing:
        names = sorted({replica.chunks[k].document_name for k in missing})
        for c in workspace.retrieve(query.text, "dense", count=1000, document_names=names):
            similarity.setdefault(replica.key[c.chunk_id], 1.0 - c.vector_distance)
    floor = min(similarity.values(), default=0.0)
    for k in missing:
        similarity.setdefault(k, floor)  # farther than the dense top 1,000 (rare; counted in the report)
    hybrid = workspace.retrieve(query.text, "hybrid", count=TOP)
    return QueryData(terms, np.array([replica.key[c.chunk_id] for c in dense[:POOL]], dtype=np.int64), similarity,
                     replica.covers(query.text), [c.chunk_id for c in hybrid])


# ---- variants ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    title_weight: float = 0.0  # BM25(title field) added with this weight
    title_in_text: bool = False
    short_query: float | None = None  # for name-like queries: dense weight at least this
    constants: fusion.FusionConstants = fusion.DEFAULTS
    coordinate: bool = True
    dense_side: str = "plain"  # "plain" or "ctx" (the KB_EMBED_CONTEXT server)


def short_query_like(query: str) -> bool:
    words = query.replace("?", " ? ").split()
    return 1 <= len(words) <= 4 and "?" not in words and words[0].lower() not in QUESTION_WORDS


def lexical_scores(variant: Variant, replica: Replica, terms: list[str], keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(BM25 score, distinct query terms matched) of each key under the variant."""
    def scores(index: BM25Index) -> np.ndarray:
        found, values = index.search(terms, len(keys), allowed_ids=keys)
        by_key = dict(zip(found.tolist(), values.tolist()))
        return np.array([by_key.get(int(k), 0.0) for k in keys], dtype=np.float64)

    if variant.title_in_text:
        return scores(replica.text_title), replica.text_title.matched_terms(terms, keys)
    lexical = scores(replica.text)
    matched = replica.text.matched_terms(terms, keys)
    if variant.title_weight:
        lexical = lexical + variant.title_weight * scores(replica.title)
        matched = replica.text_title.matched_terms(terms, keys)
    return lexical, matched


def lexical_candidates(variant: Variant, replica: Replica, terms: list[str]) -> np.ndarray:
    if variant.title_in_text:
        return replica.text_title.search(terms, POOL)[0]
    if not variant.title_weight:
        return replica.text.search(terms, POOL)[0]
    union = np.union1d(replica.text.search(terms, POOL)[0], replica.title.search(terms, POOL)[0])
    if union.size == 0:
        return union
    lexical, _ = lexical_scores(variant, replica, terms, union)
    order = np.argsort(-lexical, kind="stable")
    return union[order][lexical[order] > 0][:POOL]


def rank(variant: Variant, mode: str, replica: Replica, data: QueryData, query: str) -> list[int]:
    """Keys best first, as kb's Retriever._rank does (candidates: the union of both sides' top POOL)."""
    lexical_keys = lexical_candidates(variant, replica, data.terms) if mode != "dense" else np.zeros(0, np.int64)
    dense_keys = data.dense_keys if mode != "lexical" else np.zeros(0, np.int64)
    keys = np.unique(np.concatenate([dense_keys, lexical_keys]))
    if keys.size == 0:
        return []
    similarity = np.array([data.similarity[int(k)] for k in keys])
    if mode == "dense":
        order = np.argsort(-similarity, kind="stable")
        return keys[order].tolist()
    lexical, matched = lexical_scores(variant, replica, data.terms, keys)
    if mode == "lexical":
        return keys[np.argsort(-lexical, kind="stable")].tolist()
    weights = fusion.adaptive_weights(similarity, lexical, dense_knows_language=data.covers, constants=variant.constants)
    if variant.short_query is not None and data.covers and weights.lexical > 0 and short_query_like(query):
        dense = max(weights.dense, variant.short_query)
        weights = replace(weights, dense=dense, lexical=1.0 - dense)
    if not variant.coordinate:
        weights = replace(weights, coordinate=False)
    fused = fusion.fuse(similarity, lexical, weights, matched if weights.coordinate else None)
    return keys[np.argsort(-fused, kind="stable")].tolist()


def variants() -> list[Variant]:
    out = [Variant("kb")]
    out += [Variant(f"title x{w:g}", title_weight=w) for w in (0.5, 1.0, 2.0)]
    out += [Variant("title-in-text", title_in_text=True)]
    out += [Variant(f"short-query {s:g}", short_query=s) for s in (0.5, 0.7)]
    out += [Variant("title x1 + short-query 0.5", title_weight=1.0, short_query=0.5),
            Variant("title x0.5 + short-query 0.5", title_weight=0.5, short_query=0.5)]
    for no, clear in ((0.3, 0.9), (0.4, 0.8), (0.4, 0.7), (0.3, 0.7), (0.5, 0.9)):
        out.append(Variant(f"anchors {no:g}-{clear:g}", constants=fusion.FusionConstants(no, clear)))
    out += [Variant("title x1 + anchors 0.3-0.8", title_weight=1.0, constants=fusion.FusionConstants(0.3, 0.8))]
    out += [Variant("no-coord", coordinate=False)]
    out += [Variant("+ctx", dense_side="ctx"), Variant("+ctx title x1", dense_side="ctx", title_weight=1.0)]
    return out


# ---- running ---------------------------------------------------------------------------------------------------


def evaluate(evalset: EvalSet, replica: Replica, data: list[QueryData], chosen: list[Variant], modes=("hybrid",)) -> dict:
    """{variant: {mode: {"ndcg", "mrr", per_query}}}."""
    stored = replica.chunks if evalset.unit == "chunk" else []
    out: dict[str, dict] = {}
    for variant in chosen:
        out[variant.name] = {}
        for mode in modes:
            rows = []
            for query, qd in zip(evalset.queries, data):
                ranked = [replica.chunks[k] for k in rank(variant, mode, replica, qd, query.text)[:TOP]]
                rows.append(score(evalset, query, ranked, stored))
            out[variant.name][mode] = {m: float(np.mean([r[m] for r in rows])) for m in ("ndcg", "mrr", "recall")}
            out[variant.name][mode]["per_query"] = [round(r["ndcg"] if evalset.unit == "document" else r["mrr"], 4) for r in rows]
    return out


def agreement(replica: Replica, evalset: EvalSet, data: list[QueryData]) -> float:
    """Share of queries whose top 10 under the 'kb' variant equals kb's own hybrid answer over HTTP."""
    kb = Variant("kb")
    same = [[replica.chunks[k].chunk_id for k in rank(kb, "hybrid", replica, qd, q.text)[:TOP]] == qd.hybrid_http
            for q, qd in zip(evalset.queries, data)]
    return sum(same) / len(same) if same else float("nan")


def run_server(label: str, sets: list[str], chosen: list[Variant], **overrides) -> dict:
    server = Server(label, **overrides)
    results = {}
    try:
        groups: dict[str, list[EvalSet]] = {}
        for name in sets:
            groups.setdefault(corpus_key(name), []).append(load(name))
        for key, evalsets in groups.items():
            workspace = server.workspace(key)
            workspace.upload(evalsets[0].documents)
            replica = Replica(workspace, evalsets[0])
            for evalset in evalsets:
                started = time.monotonic()
                data = [query_data(workspace, replica, q) for q in evalset.queries]
                results[evalset.name] = {
                    "agreement": agreement(replica, evalset, data),
                    "variants": evaluate(evalset, replica, data, chosen, ("hybrid", "dense", "lexical") if label == "plain" else ("hybrid",)),
                    "primary": "ndcg" if evalset.unit == "document" else "mrr",
                    "queries": len(evalset.queries),
                    "kinds": [q.kind for q in evalset.queries],
                }
                log(f"{label} {evalset.name}: {len(data)} queries in {time.monotonic() - started:.0f} s, "
                    f"agreement with kb's hybrid {results[evalset.name]['agreement']:.3f}")
    finally:
        server.stop()
    return results


def merge(plain: dict, ctx: dict) -> dict:
    """One table: the '+ctx' variants come from the KB_EMBED_CONTEXT server (its 'kb' ranking, and with title x1)."""
    for name, r in plain.items():
        if name in ctx:
            r["variants"]["+ctx"] = ctx[name]["variants"]["kb"]
            r["variants"]["+ctx title x1"] = ctx[name]["variants"]["title x1"]
            r["ctx_agreement"] = ctx[name]["agreement"]
    return plain


def print_tables(results: dict, chosen: list[Variant]) -> None:
    sets = list(results)
    print("| variant | " + " | ".join(f"{s} ({results[s]['primary']}@10)" for s in sets) + " |")
    print("|" + " --- |" * (len(sets) + 1))
    for mode in ("dense", "lexical"):
        print(f"| kb {mode} | " + " | ".join(f"{results[s]['variants']['kb'][mode][results[s]['primary']]:.3f}" for s in sets) + " |")
    for v in chosen:
        cells = []
        for s in sets:
            r = results[s]["variants"].get(v.name)
            cells.append(f"{r['hybrid'][results[s]['primary']]:.3f}" if r else "-")
        print(f"| {v.name} | " + " | ".join(cells) + " |")
    print("\nAgreement of the 'kb' variant with kb's hybrid top 10 over HTTP: "
          + ", ".join(f"{s} {results[s]['agreement']:.3f}" for s in sets))


def print_kinds(results: dict, names: list[str]) -> None:
    """Entity sets by query kind (nDCG@10), and each variant's wins / losses against kb's hybrid per query."""
    for s in ("entities-dev", "entities-test"):
        if s not in results:
            continue
        kinds = results[s]["kinds"]
        order = list(dict.fromkeys(kinds))
        print(f"\n{s} by query kind (nDCG@10; W/L against kb hybrid over all queries):\n")
        print("| variant | " + " | ".join(f"{k} ({kinds.count(k)})" for k in order) + " | W/L |")
        print("|" + " --- |" * (len(order) + 2))
        base = results[s]["variants"]["kb"]["hybrid"]["per_query"]
        rows = [("kb dense", results[s]["variants"]["kb"]["dense"]["per_query"]),
                ("kb lexical", results[s]["variants"]["kb"]["lexical"]["per_query"])]
        rows += [(n, results[s]["variants"][n]["hybrid"]["per_query"]) for n in names if n in results[s]["variants"]]
        for name, per_query in rows:
            cells = [f"{np.mean([v for v, k in zip(per_query, kinds) if k == kind]):.3f}" for kind in order]
            wins = sum(v > b + 1e-9 for v, b in zip(per_query, base))
            losses = sum(v < b - 1e-9 for v, b in zip(per_query, base))
            print(f"| {name} | " + " | ".join(cells) + f" | {wins}/{losses} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--no-ctx", action="store_true", help="skip the KB_EMBED_CONTEXT server")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--from-json", type=Path, default=None, help="print the tables of an earlier run")
    args = parser.parse_args()
    sets = args.sets.split(",")
    chosen = variants()
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        print_tables(results, [v for v in chosen if any(v.name in r["variants"] for r in results.values())])
        print_kinds(results, [v.name for v in chosen])
        return
    started, load_before = time.monotonic(), os.getloadavg()[0]
    plain_variants = [v for v in chosen if v.dense_side == "plain"]
    results = run_server("plain", sets, plain_variants)
    if not args.no_ctx:
        ctx = run_server("ctx", sets, [Variant("kb"), Variant("title x1", title_weight=1.0)], embed_context=True)
        results = merge(results, ctx)
    else:
        chosen = plain_variants
    print(f"\n{{'seconds': {round(time.monotonic() - started)}, 'load_before': {load_before:.1f}, 'load_after': {os.getloadavg()[0]:.1f}}}\n")
    print_tables(results, chosen)
    print_kinds(results, [v.name for v in chosen])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Retrieval quality measures: nDCG and recall against graded judgements, known-item ranks."""

from __future__ import annotations

import math

from .search import TOP_K


def ndcg_recall(ranked: list[str], grades: dict[str, int], k: int = TOP_K) -> tuple[float, float]:
    ranked = ranked[:k]
    dcg = sum(grades.get(pid, 0) / math.log2(rank + 2) for rank, pid in enumerate(ranked))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    relevant = {pid for pid, g in grades.items() if g > 0}
    recall = len(relevant & set(ranked)) / len(relevant) if relevant else 0.0
    return (dcg / idcg if idcg else 0.0), recall


def dedupe(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def rank_metrics(ranks: list[int | None]) -> dict:
    n = len(ranks)
    return {"n": n, "hit@1": sum(1 for x in ranks if x == 1) / n, "hit@10": sum(1 for x in ranks if x) / n,
            "mrr@10": sum(1 / x for x in ranks if x) / n}


def verdict(metrics: dict, measure: str = "mrr@10") -> str:
    if not {"hybrid", "dense", "lexical"} <= set(metrics):
        return "n/a"
    best = max(metrics["dense"][measure], metrics["lexical"][measure])
    return "yes" if metrics["hybrid"][measure] >= best - 1e-12 else "no"

"""Ranking metrics over the first `k` items: nDCG with linear gains (as trec_eval and BEIR), recall of the
judged items (gain > 0), reciprocal rank of the first judged item. Shared with the benchmarks (bench/evaldata.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def ndcg(gains: Sequence[float], ideal: Sequence[float], k: int = 10) -> float:
    def dcg(values: Sequence[float]) -> float:
        return sum(g / math.log2(i + 2) for i, g in enumerate(values[:k]))

    best = dcg(sorted(ideal, reverse=True))
    return dcg(gains) / best if best > 0 else 0.0


def recall(gains: Sequence[float], ideal: Sequence[float], k: int = 10) -> float:
    judged = sum(1 for g in ideal if g > 0)
    return sum(1 for g in gains[:k] if g > 0) / judged if judged else 0.0


def reciprocal_rank(gains: Sequence[float], k: int = 10) -> float:
    return next((1.0 / (i + 1) for i, g in enumerate(gains[:k]) if g > 0), 0.0)

"""Percentiles of measured latencies."""

from __future__ import annotations

import math


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def pct(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile `q` of unsorted `values`; None when there are none."""
    return percentile(sorted(values), q) if values else None

"""Ranking one query's candidates in a search mode: best first, each with its true cosine distance.

Pure functions on arrays, no I/O. A caller (kb's retrieval) searches each side for candidate keys,
then gathers, for the keys `candidate_keys` returns, each one's cosine similarity to the query
(from the stored vectors) and, outside dense mode, its BM25 score, and calls `rank`. In hybrid
mode the two are fused with adaptive weights (index/fusion.py); the matched-term counts that
coordination uses are needed only when `needs_matched_terms` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fusion import DEFAULTS, FusionConstants, adaptive_weights, coordinates, fuse

MODES = ("hybrid", "dense", "lexical")


@dataclass(frozen=True)
class Ranking:
    keys: np.ndarray  # candidate keys, best first
    distances: np.ndarray  # the true cosine distance of each (1 - similarity, never below 0)

    def pairs(self) -> list[tuple[int, float]]:
        """[(key, distance)], best first."""
        return list(zip(self.keys.tolist(), self.distances.tolist()))


def candidate_keys(mode: str, dense_keys: np.ndarray, lexical_keys: np.ndarray) -> np.ndarray:
    """The keys to rank: each side's own in dense and lexical mode, their union (sorted) in hybrid."""
    if mode == "hybrid":
        return np.unique(np.concatenate([dense_keys, lexical_keys]))
    _check_mode(mode)
    return dense_keys if mode == "dense" else lexical_keys


def needs_matched_terms(mode: str, lexical: np.ndarray | None, dense_knows_language: bool = True) -> bool:
    """Whether `rank` uses matched-term counts for these candidates (hybrid mode, with coordination)."""
    return mode == "hybrid" and lexical is not None and coordinates(lexical, dense_knows_language=dense_knows_language)


def rank(
    mode: str,
    keys: np.ndarray,
    similarity: np.ndarray,
    lexical: np.ndarray | None = None,
    matched: np.ndarray | None = None,
    *,
    dense_knows_language: bool = True,
    constants: FusionConstants = DEFAULTS,
    short_query: bool = False,
) -> Ranking:
    """`keys` best first in `mode`, with their cosine distances.

    `similarity` (cosine, aligned with `keys`) is needed in every mode, `lexical` (BM25 scores,
    0 where no query term occurs) in lexical and hybrid mode. In hybrid mode `dense_knows_language`
    says whether the embedding model knows the query's language (else lexical ranks and dense only
    breaks ties), `matched` holds each candidate's count of distinct query terms (None: plain BM25,
    no coordination), `constants` are the fusion anchors (the model's) and `short_query` says the query
    is a few keywords (`fusion.is_short_query`). Ties keep the order of `keys`.
    """
    _check_mode(mode)
    if mode == "dense":
        scores = similarity
    elif lexical is None:
        raise ValueError(f"{mode} ranking needs the candidates' lexical scores")
    elif mode == "lexical":
        scores = lexical
    else:
        weights = adaptive_weights(similarity, lexical, dense_knows_language=dense_knows_language, constants=constants,
                                   short_query=short_query)
        scores = fuse(similarity, lexical, weights, matched if weights.coordinate else None)
    order = np.argsort(-scores, kind="stable")
    distance = 1.0 - similarity[order]
    return Ranking(np.asarray(keys)[order], np.where(distance > 0.0, distance, 0.0))


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}; modes: {', '.join(MODES)}")

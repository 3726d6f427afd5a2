"""How retrieval limits cut a ranked candidate list; pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RetrievalLimits:
    """A request's limits. `max_vector_distance` None: the served model's calibrated default
    (`index.calibration`), which the caller fills in before `apply_limits`."""

    max_vector_distance: float | None = None
    max_documents_length: int = 50_000
    max_retrieved_rag_chunks_count: int = 20


@dataclass(frozen=True)
class Candidate:
    chunk_key: int
    vector_distance: float
    text_length: int
    spared: bool = False  # kept whatever its distance (a complete lexical match; a language the model does not know)


@dataclass(frozen=True)
class DistanceCut:
    """What `max_vector_distance` removed: how many of the ranked candidates and the nearest of them."""

    max_vector_distance: float
    removed: int = 0
    nearest_removed_distance: float | None = None


@dataclass(frozen=True)
class Limited:
    kept: list[Candidate]
    cut: DistanceCut


def apply_limits(candidates: Sequence[Candidate], limits: RetrievalLimits) -> Limited:
    """Keep what an agent runtime may put in its prompt, from candidates in rank order.

    Take the first `max_retrieved_rag_chunks_count` candidates, drop those farther than
    `max_vector_distance` (unless spared), then keep candidates in rank order while their total text
    length stays within `max_documents_length` (stopping at the first that would overflow). The
    distance cut is reported (`DistanceCut`), so an empty answer can say why.
    """
    threshold = limits.max_vector_distance
    if threshold is None:
        raise ValueError("max_vector_distance must be resolved (the model's default) before apply_limits")
    ranked = list(candidates)[: limits.max_retrieved_rag_chunks_count]
    kept: list[Candidate] = []
    removed: list[float] = []
    total = 0
    for candidate in ranked:
        if candidate.vector_distance > threshold and not candidate.spared:
            removed.append(candidate.vector_distance)
            continue
        if total + candidate.text_length > limits.max_documents_length:
            break
        kept.append(candidate)
        total += candidate.text_length
    nearest = round(max(0.0, min(removed)), 6) if removed else None
    return Limited(kept, DistanceCut(threshold, len(removed), nearest))

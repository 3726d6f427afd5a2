"""How retrieval limits cut a ranked candidate list; pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RetrievalLimits:
    max_vector_distance: float = 0.6
    max_documents_length: int = 50_000
    max_retrieved_rag_chunks_count: int = 20


@dataclass(frozen=True)
class Candidate:
    chunk_key: int
    vector_distance: float
    text_length: int


def apply_limits(candidates: Sequence[Candidate], limits: RetrievalLimits) -> list[Candidate]:
    """Keep what an agent runtime may put in its prompt, from candidates in rank order.

    Take the first `max_retrieved_rag_chunks_count` candidates, drop those farther than
    `max_vector_distance`, then keep candidates in rank order while their total text length
    stays within `max_documents_length` (stopping at the first that would overflow).
    """
    ranked = list(candidates)[: limits.max_retrieved_rag_chunks_count]
    kept: list[Candidate] = []
    total = 0
    for candidate in ranked:
        if candidate.vector_distance > limits.max_vector_distance:
            continue
        if total + candidate.text_length > limits.max_documents_length:
            break
        kept.append(candidate)
        total += candidate.text_length
    return kept

"""Running questions against a search and scoring it: per mode nDCG@10, recall@k, MRR@k and the share
answered at a distance cut, plus the cut this workspace's answers suggest.

Each question is asked once per mode with no distance cut (`depth` chunks, best first); the scores
judge that ranking. "Answered" is what a default retrieval would hand an agent: an answering chunk
among the first `count` (the API's default `max_retrieved_rag_chunks_count`, 20) within `cut`.

**The suggested `max_vector_distance`** follows bench/calibrate.py: among the questions whose answer
the uncut ranking of the suggestion mode (hybrid) delivers in its first `count` chunks, the
distance of the nearest answering chunk; the suggestion is the smallest cut, in steps of 0.01, that
keeps at least `keep` (95 %) of those answers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .metrics import ndcg, recall, reciprocal_rank
from .questions import Question

INF = float("inf")
NDCG_AT = 10


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk, as the judge needs it."""

    document_id: str
    document_name: str
    text: str
    distance: float


# (query, mode, depth) -> up to `depth` chunks, best first, with no distance cut
Search = Callable[[str, str, int], Sequence[Hit]]


@dataclass(frozen=True)
class QuestionScore:
    id: str
    mode: str
    ndcg: float
    recall: float
    mrr: float
    answer_distance: float  # the nearest answering chunk among the first `count` (inf: none)
    nearest: float  # the nearest chunk among the first `count` (inf: none)
    answerable: bool


@dataclass(frozen=True)
class ModeScores:
    mode: str
    questions: int  # answerable ones
    ndcg: float
    recall: float
    mrr: float
    answered: float  # share of answerable questions answered at the cut
    absent_emptied: float | None  # share of questions without answer whose response is empty at the cut


@dataclass
class EvalReport:
    k: int
    cut: float
    count: int
    modes: dict[str, ModeScores]
    suggestion_mode: str
    keep: float
    suggested_cut: float | None  # None: the suggestion mode delivered no answer
    at_suggested: ModeScores | None
    scores: list[QuestionScore] = field(default_factory=list)


def fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def judge(question: Question, hits: Sequence[Hit], count: int) -> tuple[list[float], list[float], float]:
    """(gains of the ranked items, the ideal gains, the nearest answering distance among the first `count`)."""
    documents = set(question.expected_documents)

    def in_documents(hit: Hit) -> bool:
        return hit.document_id in documents or hit.document_name in documents

    gains: list[float] = []
    answer = INF
    if question.expected_passages:  # chunks are judged: each passage found once
        wanted = [fold(p) for p in question.expected_passages]
        found: set[int] = set()
        for rank, hit in enumerate(hits):
            text = fold(hit.text)
            matches = [i for i, p in enumerate(wanted) if p in text] if not documents or in_documents(hit) else []
            new = [i for i in matches if i not in found]
            if new:
                found.add(new[0])
            gains.append(1.0 if new else 0.0)
            if matches and rank < count:
                answer = min(answer, hit.distance)
        return gains, [1.0] * len(wanted), answer
    seen: set[str] = set()  # documents are judged: each document's first chunk
    for rank, hit in enumerate(hits):
        relevant = in_documents(hit)
        if relevant and rank < count:
            answer = min(answer, hit.distance)
        if hit.document_id in seen:
            continue
        seen.add(hit.document_id)
        gains.append(1.0 if relevant else 0.0)
    return gains, [1.0] * len(documents), answer


def score(question: Question, mode: str, hits: Sequence[Hit], k: int, count: int) -> QuestionScore:
    nearest = min((h.distance for h in hits[:count]), default=INF)
    if not question.answerable:
        return QuestionScore(question.id, mode, 0.0, 0.0, 0.0, INF, nearest, False)
    gains, ideal, answer = judge(question, hits, count)
    return QuestionScore(question.id, mode, ndcg(gains, ideal, NDCG_AT), recall(gains, ideal, k),
                         reciprocal_rank(gains, k), answer, nearest, True)


def share(values: Sequence[bool]) -> float:
    return sum(values) / len(values) if values else math.nan


def summarise(mode: str, scores: Sequence[QuestionScore], cut: float) -> ModeScores:
    answerable = [s for s in scores if s.answerable]
    absent = [s for s in scores if not s.answerable]
    mean = lambda values: sum(values) / len(values) if values else math.nan  # noqa: E731
    return ModeScores(
        mode, len(answerable), mean([s.ndcg for s in answerable]), mean([s.recall for s in answerable]),
        mean([s.mrr for s in answerable]), share([s.answer_distance <= cut for s in answerable]),
        share([s.nearest > cut for s in absent]) if absent else None,
    )


def suggest_cut(answer_distances: Sequence[float], keep: float = 0.95) -> float | None:
    """The smallest cut (0.01 steps, 0–2) keeping `keep` of the delivered answers (finite distances)."""
    delivered = [d for d in answer_distances if d != INF]
    if not delivered:
        return None
    for step in range(0, 201):
        cut = step / 100
        if sum(d <= cut + 1e-9 for d in delivered) / len(delivered) >= keep:
            return cut
    return 2.0


def evaluate(
    search: Search, questions: Sequence[Question], modes: Sequence[str], *, k: int = 10, cut: float, count: int = 20,
    keep: float = 0.95, suggestion_mode: str = "hybrid", on_progress: Callable[[], None] | None = None,
) -> EvalReport:
    """Ask every question in every mode once (uncut) and score the rankings."""
    depth = max(k, NDCG_AT, count)
    scores: list[QuestionScore] = []
    for mode in modes:
        for question in questions:
            scores.append(score(question, mode, list(search(question.query, mode, depth)), k, count))
            if on_progress:
                on_progress()
    by_mode = {mode: summarise(mode, [s for s in scores if s.mode == mode], cut) for mode in modes}
    suggestion = suggestion_mode if suggestion_mode in modes else modes[0]
    mine = [s for s in scores if s.mode == suggestion]
    suggested = suggest_cut([s.answer_distance for s in mine if s.answerable], keep)
    at_suggested = summarise(suggestion, mine, suggested) if suggested is not None else None
    return EvalReport(k, cut, count, by_mode, suggestion, keep, suggested, at_suggested, scores)

"""Running questions against a search and scoring it: per mode nDCG@10, recall@k, MRR@10, the share
answered at the defaults and its latency, plus the `max_vector_distance` this workspace's answers suggest.

Each question is asked twice per mode (`Search`): once with no distance cut (`depth` chunks, best
first), whose ranking the scores judge, and once as an agent asks by default (the model's default
cut, or the one given; `count` chunks), which gives "answered" (at least one chunk came back),
"delivered" (an answering chunk is among them), "absent emptied" (a question without an expected
answer got nothing) and the latency.

**The suggested `max_vector_distance`** follows bench/calibrate.py: among the answerable questions
whose answer the uncut ranking of the suggestion mode (hybrid) delivers in its first `count`
chunks, take the distance of the nearest answering chunk; the suggestion is the smallest cut, in
steps of 0.01, that keeps at least `keep` (95 %) of those answers. How it treats the rest (the
non-answering chunks of those rankings, and the nearest chunk of each question without an answer)
is reported beside it, at the suggestion and at the current cut (`CutEffect`).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from .metrics import ndcg, recall, reciprocal_rank
from .questions import Question

INF = float("inf")
NDCG_AT = 10
MRR_AT = 10
# A passage longer than a chunk (or split by a chunk boundary) is found when a chunk holds a
# contiguous run of at least half of it, and at least this many characters.
MIN_OVERLAP_CHARS = 40


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk, as the judge needs it."""

    document_id: str
    document_name: str
    text: str
    distance: float


@dataclass(frozen=True)
class Asked:
    """One question asked in one mode."""

    ranked: Sequence[Hit]  # up to `depth` chunks, best first, with no distance cut
    served: Sequence[Hit]  # what a retrieval at the defaults (cut, count) returned
    latency_ms: float  # of that retrieval


# (query, mode, depth) -> the question asked both ways
Search = Callable[[str, str, int], Asked]


@dataclass(frozen=True)
class QuestionScore:
    id: str
    mode: str
    answerable: bool
    ndcg: float
    recall: float
    mrr: float
    answered: bool  # the retrieval at the defaults returned at least one chunk
    delivered: bool  # ...and an answering chunk among them
    answer_distance: float  # the nearest answering chunk among the uncut first `count` (inf: none)
    nearest: float  # the nearest chunk among the uncut first `count` (inf: none)
    other_distances: tuple[float, ...]  # the non-answering chunks among the uncut first `count`
    latency_ms: float
    top: tuple[str, ...] = ()  # the documents of the first three chunks (uncut)


@dataclass(frozen=True)
class ModeScores:
    mode: str
    questions: int  # answerable ones
    ndcg: float
    recall: float
    mrr: float
    answered: float  # share of answerable questions with at least one chunk at the defaults
    delivered: float  # share of answerable questions with an answering chunk at the defaults
    absent_emptied: float | None  # share of questions without an answer that got nothing (None: there are none)
    latency_p50_ms: float  # of the retrievals at the defaults, every question


@dataclass(frozen=True)
class CutEffect:
    """What a distance cut does to the suggestion mode's uncut rankings (first `count` chunks)."""

    cut: float
    answers_kept: float | None  # share of the delivered answers within the cut (None: no answer delivered)
    others_removed: float | None  # share of the non-answering chunks beyond it (None: there are none)
    answered: float  # share of answerable questions with a chunk within it
    absent_emptied: float | None  # share of questions without an answer with no chunk within it


@dataclass
class EvalReport:
    k: int
    cut: float  # the cut of the retrievals at the defaults
    count: int
    modes: dict[str, ModeScores]
    suggestion_mode: str
    keep: float
    suggested_cut: float | None  # None: the suggestion mode delivered no answer
    at_cut: CutEffect
    at_suggested: CutEffect | None
    delivered_answers: int  # answers the suggestion is derived from
    scores: list[QuestionScore] = field(default_factory=list)


def fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def passage_in(passage: str, chunk: str) -> bool:
    """Whether a chunk holds a passage (both folded): contains it, or holds a contiguous run of at least
    half of it and MIN_OVERLAP_CHARS characters (a passage split by a chunk boundary, or longer than a chunk)."""
    if passage in chunk:
        return True
    need = max(MIN_OVERLAP_CHARS, math.ceil(len(passage) / 2))
    if len(passage) < need or len(chunk) < need:
        return False
    matcher = SequenceMatcher(None, passage, chunk, autojunk=False)
    return matcher.find_longest_match(0, len(passage), 0, len(chunk)).size >= need


class Judge:
    """Which retrieved chunks answer a question (see kb/evaluation/questions.py)."""

    def __init__(self, question: Question):
        self.documents = set(question.expected_documents)
        self.passages = [fold(p) for p in question.expected_passages]

    def in_documents(self, hit: Hit) -> bool:
        return hit.document_id in self.documents or hit.document_name in self.documents

    def passages_in(self, hit: Hit) -> list[int]:
        if self.documents and not self.in_documents(hit):
            return []
        text = fold(hit.text)
        return [i for i, p in enumerate(self.passages) if passage_in(p, text)]

    def answers(self, hit: Hit) -> bool:
        return bool(self.passages_in(hit)) if self.passages else self.in_documents(hit)

    def gains(self, hits: Sequence[Hit]) -> tuple[list[float], list[float]]:
        """(gains of the ranked items, the ideal gains): with passages, chunks are judged and each passage
        is found once; with documents only, documents are (each document's first chunk)."""
        gains: list[float] = []
        if self.passages:
            found: set[int] = set()
            for hit in hits:
                new = [i for i in self.passages_in(hit) if i not in found]
                if new:
                    found.add(new[0])
                gains.append(1.0 if new else 0.0)
            return gains, [1.0] * len(self.passages)
        seen: set[str] = set()
        for hit in hits:
            if hit.document_id in seen:
                continue
            seen.add(hit.document_id)
            gains.append(1.0 if self.in_documents(hit) else 0.0)
        return gains, [1.0] * len(self.documents)


def score(question: Question, mode: str, asked: Asked, k: int, count: int) -> QuestionScore:
    ranked = list(asked.ranked)
    first = ranked[:count]
    nearest = min((h.distance for h in first), default=INF)
    top = tuple(dict.fromkeys(h.document_name for h in ranked[:3]))
    if not question.answerable:
        return QuestionScore(question.id, mode, False, 0.0, 0.0, 0.0, bool(asked.served), False, INF, nearest,
                             tuple(h.distance for h in first), asked.latency_ms, top)
    judge = Judge(question)
    gains, ideal = judge.gains(ranked)
    answering = [judge.answers(h) for h in first]
    answer = min((h.distance for h, yes in zip(first, answering) if yes), default=INF)
    others = tuple(h.distance for h, yes in zip(first, answering) if not yes)
    return QuestionScore(question.id, mode, True, ndcg(gains, ideal, NDCG_AT), recall(gains, ideal, k),
                         reciprocal_rank(gains, MRR_AT), bool(asked.served), any(judge.answers(h) for h in asked.served),
                         answer, nearest, others, asked.latency_ms, top)


def share(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def summarise(mode: str, scores: Sequence[QuestionScore]) -> ModeScores:
    answerable = [s for s in scores if s.answerable]
    absent = [s for s in scores if not s.answerable]
    return ModeScores(
        mode, len(answerable), mean([s.ndcg for s in answerable]), mean([s.recall for s in answerable]),
        mean([s.mrr for s in answerable]), share([s.answered for s in answerable]) or 0.0,
        share([s.delivered for s in answerable]) or 0.0, share([not s.answered for s in absent]),
        statistics.median([s.latency_ms for s in scores]) if scores else math.nan,
    )


def effect(scores: Sequence[QuestionScore], cut: float) -> CutEffect:
    answerable = [s for s in scores if s.answerable]
    delivered = [s.answer_distance for s in answerable if s.answer_distance != INF]
    others = [d for s in answerable for d in s.other_distances]
    within = cut + 1e-9
    return CutEffect(cut, share([d <= within for d in delivered]), share([d > within for d in others]),
                     share([s.nearest <= within for s in answerable]) or 0.0,
                     share([s.nearest > within for s in scores if not s.answerable]))


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
    """Ask every question in every mode (uncut, and at the defaults) and score the answers."""
    depth = max(k, NDCG_AT, MRR_AT, count)
    scores: list[QuestionScore] = []
    for question in questions:
        for mode in modes:
            scores.append(score(question, mode, search(question.query, mode, depth), k, count))
        if on_progress:
            on_progress()
    by_mode = {mode: summarise(mode, [s for s in scores if s.mode == mode]) for mode in modes}
    suggestion = suggestion_mode if suggestion_mode in modes else modes[0]
    mine = [s for s in scores if s.mode == suggestion]
    distances = [s.answer_distance for s in mine if s.answerable]
    suggested = suggest_cut(distances, keep)
    return EvalReport(k, cut, count, by_mode, suggestion, keep, suggested, effect(mine, cut),
                      effect(mine, suggested) if suggested is not None else None,
                      sum(d != INF for d in distances), scores)

"""Fusing dense and lexical rankings, adaptively. Pure functions, no I/O.

Both sides score the same candidates: the union of what each side found, each with its true cosine
similarity and its BM25 score. Each side's scores are min-max normalised and then mixed with a
per-query dense weight.

- **The dense weight follows how well the model matched the query.** `confidence` takes the best
  candidate's cosine similarity and places it between two anchors on the model's cosine scale: at
  or below `no_match_cosine`, the model found nothing close in meaning (the query is a text
  fragment, an identifier, jargon it does not know), so lexical search ranks alone; at or above
  `clear_match_cosine`, it found a paraphrase, so dense search ranks alone; in between, the weight
  rises linearly.
- **Where the model does not know the language, dense similarity is noise**, so the dense weight is
  0: hybrid ranks exactly as lexical search does. Dense similarity still breaks exact ties and
  orders the candidates that lexical search did not find.
- **Complete lexical matches come first (coordination).** When the model knows the language, each
  candidate's BM25 score is multiplied by how many distinct query terms it contains, so a chunk
  holding every word of the query outranks one that repeats a few of them. Dense similarity
  already rewards paraphrases that lack the query's words, so lexical search can insist on
  complete matches. Where lexical search ranks alone (a language the model does not know), the
  BM25 order is kept as it is, because partial matches are its only recall for paraphrased
  questions.
- If no candidate contains a query term, lexical search has nothing to say: dense ranks alone.
- **Short keyword queries lean on dense search (the short-query signal).** For 1-4 words that do not
  begin with a question word ("film directors", "Apollo 11 crew"), in a language the model knows, the
  dense weight is at least `SHORT_QUERY_DENSE_WEIGHT`: the model's best cosine for two words is only
  moderate, yet it ranks the members of a kind of thing better than BM25 does, whose category words
  are rare in the members' texts and common in namesakes (BENCHMARKS.md "Fusion study").

The two constants (`FusionConstants`) are on all-MiniLM-L6-v2's cosine scale. Its best match for a
natural question is usually at 0.6–0.9 (the median on msmarco is 0.81). For a text fragment or a
term it does not know, its best match is usually at 0.3–0.45. The anchors were read off
per-query results on msmarco and the English sets of bench/fusion.py, then checked on a held-out
sample. Every set still passes with either anchor moved by 0.05 or lowered by 0.1 (the script's
sensitivity grid). A model with another cosine scale needs its own anchors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Dense similarity breaks exact ties (lexical scores equal to within this share of their range).
TIE_BREAK = 1e-6


@dataclass(frozen=True)
class FusionConstants:
    # Best cosine at or below which the model has found nothing close to the query: dense weight 0.
    no_match_cosine: float = 0.4
    # Best cosine at or above which the model has found a paraphrase: dense weight 1.
    clear_match_cosine: float = 0.9


DEFAULTS = FusionConstants()

# The short-query signal: the dense weight of a short keyword query is at least this.
SHORT_QUERY_DENSE_WEIGHT = 0.5
SHORT_QUERY_MAX_WORDS = 4
# English question openers (the languages all-MiniLM-L6-v2 knows); a query starting with one is a question.
QUESTION_WORDS = frozenset({
    "what", "how", "why", "when", "who", "whom", "whose", "where", "which", "is", "are", "was", "were",
    "do", "does", "did", "can", "could", "should", "would", "will", "define", "definition",
})


@dataclass(frozen=True)
class FusionWeights:
    dense: float
    lexical: float
    coordinate: bool = False  # multiply BM25 by the number of distinct query terms matched


def normalise(scores: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] over the candidates (all zeros when the scores are all equal)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return scores
    low, high = float(scores.min()), float(scores.max())
    if high - low < 1e-12:
        return np.zeros_like(scores)
    return (scores - low) / (high - low)


def confidence(dense_similarity: np.ndarray, constants: FusionConstants = DEFAULTS) -> float:
    """How well the model matched the query, in [0, 1]: its best cosine similarity placed between
    `no_match_cosine` (0) and `clear_match_cosine` (1)."""
    if dense_similarity.size == 0:
        return 0.0
    span = constants.clear_match_cosine - constants.no_match_cosine
    return float(np.clip((float(dense_similarity.max()) - constants.no_match_cosine) / span, 0.0, 1.0))


def lexical_matches(lexical_score: np.ndarray) -> bool:
    """Whether any candidate contains a query term (has a BM25 score above 0)."""
    return bool(lexical_score.size) and float(lexical_score.max()) > 0


def coordinates(lexical_score: np.ndarray, *, dense_knows_language: bool = True) -> bool:
    """Whether `adaptive_weights` asks for coordination (BM25 times matched query terms) for these
    candidates, so a caller counts matched terms only when they are used."""
    return dense_knows_language and lexical_matches(lexical_score)


def is_short_query(query: str) -> bool:
    """Whether `query` is a few keywords rather than a question: 1-4 words, no question mark, not
    starting with a question word."""
    words = query.replace("?", " ? ").split()
    return 1 <= len(words) <= SHORT_QUERY_MAX_WORDS and "?" not in words and words[0].lower() not in QUESTION_WORDS


def adaptive_weights(
    dense_similarity: np.ndarray,
    lexical_score: np.ndarray,
    *,
    dense_knows_language: bool = True,
    constants: FusionConstants = DEFAULTS,
    short_query: bool = False,
) -> FusionWeights:
    """The weight of each side for this query (they sum to 1). `short_query`: the query is a few
    keywords (`is_short_query`), so dense search gets at least `SHORT_QUERY_DENSE_WEIGHT`."""
    if not lexical_matches(lexical_score):
        return FusionWeights(1.0, 0.0)  # no word of the query occurs: lexical has nothing to say
    if not dense_knows_language:
        return FusionWeights(0.0, 1.0)  # dense similarity is noise: lexical ranks, dense breaks ties
    dense = confidence(dense_similarity, constants)
    if short_query:
        dense = max(dense, SHORT_QUERY_DENSE_WEIGHT)
    return FusionWeights(dense, 1.0 - dense, coordinate=True)


def fuse(
    dense_similarity: np.ndarray,
    lexical_score: np.ndarray,
    weights: FusionWeights,
    matched: np.ndarray | None = None,
) -> np.ndarray:
    """One score per candidate: the weighted sum of the two normalised scores.

    `matched` holds how many distinct query terms each candidate contains (as
    `BM25Index.matched_terms` counts them); with it, and `weights.coordinate`, the lexical side is
    BM25 times that count (coordination). Without it, plain BM25 is used.
    """
    lexical = np.asarray(lexical_score, dtype=np.float64)
    if weights.coordinate and matched is not None:
        lexical = lexical * np.asarray(matched, dtype=np.float64)
    dense = normalise(dense_similarity)
    return weights.dense * dense + weights.lexical * normalise(lexical) + TIE_BREAK * dense

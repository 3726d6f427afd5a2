"""Pure unit tests of index/fusion.py: weights, confidence, coordination, and the rankings they give."""

from __future__ import annotations

import numpy as np
import pytest

from index.fusion import (
    DEFAULTS,
    FusionConstants,
    FusionWeights,
    adaptive_weights,
    confidence,
    fuse,
    normalise,
)


def matched_terms(term_scores: list[np.ndarray], size: int) -> np.ndarray:
    """How many query terms each candidate contains, from per-term scores (as BM25Index.matched_terms counts)."""
    return np.sum([np.asarray(t) > 0 for t in term_scores], axis=0, dtype=np.float64) if term_scores else np.zeros(size)


def ranking(similarity, lexical, *, covers=True, term_scores=None) -> list[int]:
    """Candidate indexes best first, as kb/retrieval.py ranks hybrid results."""
    similarity, lexical = np.asarray(similarity, float), np.asarray(lexical, float)
    weights = adaptive_weights(similarity, lexical, dense_knows_language=covers)
    matched = matched_terms([np.asarray(t, float) for t in term_scores], len(lexical)) if term_scores is not None else None
    return np.argsort(-fuse(similarity, lexical, weights, matched), kind="stable").tolist()


def test_normalise_is_min_max_and_flat_scores_give_zeros():
    assert normalise(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert normalise(np.array([0.7, 0.7])).tolist() == [0.0, 0.0]
    assert normalise(np.array([])).size == 0


def test_confidence_places_the_best_cosine_between_the_anchors():
    c = FusionConstants(no_match_cosine=0.4, clear_match_cosine=0.9)
    assert confidence(np.array([0.1, 0.35]), c) == 0.0  # nothing close: dense has no say
    assert confidence(np.array([0.2, 0.95]), c) == 1.0  # a paraphrase: dense alone
    assert confidence(np.array([0.3, 0.65]), c) == pytest.approx(0.5)
    assert confidence(np.array([]), c) == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_weights_lie_in_0_1_and_sum_to_1(seed):
    rng = np.random.default_rng(seed)
    similarity = rng.uniform(-0.2, 1.0, 50)
    lexical = np.where(rng.random(50) < 0.5, rng.exponential(5.0, 50), 0.0)
    for covers in (True, False):
        w = adaptive_weights(similarity, lexical, dense_knows_language=covers)
        assert 0.0 <= w.dense <= 1.0 and 0.0 <= w.lexical <= 1.0
        assert w.dense + w.lexical == pytest.approx(1.0)


def test_no_lexical_match_gives_dense_alone():
    similarity = np.array([0.2, 0.6, 0.4])
    lexical = np.zeros(3)
    assert adaptive_weights(similarity, lexical) == FusionWeights(1.0, 0.0)
    assert ranking(similarity, lexical) == [1, 2, 0]


def test_a_language_the_model_does_not_know_keeps_the_lexical_order():
    # Dense similarities are noise here; lexical ranks, dense only breaks ties and orders what lexical missed.
    similarity = np.array([0.9, 0.1, 0.5, 0.3, 0.8])
    lexical = np.array([1.0, 9.0, 4.0, 4.0, 0.0])
    weights = adaptive_weights(similarity, lexical, dense_knows_language=False)
    assert weights.dense == 0.0 and not weights.coordinate
    # Coordination is not applied either: the BM25 order stands, even given per-term scores.
    terms = [[1.0, 0.0, 4.0, 0.0, 0.0], [0.0, 9.0, 0.0, 4.0, 0.0]]
    assert ranking(similarity, lexical, covers=False, term_scores=terms) == [1, 2, 3, 0, 4]


def test_a_verbatim_query_the_model_cannot_place_makes_lexical_lead():
    # A text fragment: its best cosine (0.38) is below the no-match anchor, so the candidate that holds every
    # query term (2) comes first although dense prefers 0 and lexical scores 2 only a little above 1.
    similarity = np.array([0.38, 0.30, 0.17, 0.25])
    lexical = np.array([6.0, 13.9, 14.0, 9.0])
    assert adaptive_weights(similarity, lexical).dense == 0.0
    assert ranking(similarity, lexical)[0] == 2


def test_coordination_puts_complete_matches_before_partial_ones():
    # Candidate 0 repeats two of the three query terms (higher BM25); candidate 1 contains all three.
    similarity = np.array([0.45, 0.42, 0.20])
    lexical = np.array([14.0, 12.0, 3.0])
    terms = [[7.0, 4.0, 0.0], [7.0, 4.0, 3.0], [0.0, 4.0, 0.0]]
    assert matched_terms([np.asarray(t) for t in terms], 3).tolist() == [2.0, 3.0, 1.0]
    assert ranking(similarity, lexical, term_scores=terms)[0] == 1
    assert ranking(similarity, lexical)[0] == 0  # without per-term scores: plain BM25


def test_a_confident_dense_match_outranks_a_lexical_near_tie():
    # A natural question the model matches well (best cosine 0.85): its pick (1) wins over lexical's
    # slightly better keyword match (0).
    similarity = np.array([0.55, 0.85, 0.60])
    lexical = np.array([10.0, 9.5, 2.0])
    weights = adaptive_weights(similarity, lexical)
    assert weights.dense > 0.8
    assert ranking(similarity, lexical)[0] == 1


def test_a_clear_paraphrase_lets_dense_rank_alone_and_lexical_break_ties_no_more():
    similarity = np.array([0.95, 0.50, 0.94])
    lexical = np.array([1.0, 30.0, 2.0])
    assert adaptive_weights(similarity, lexical) == FusionWeights(1.0, 0.0, coordinate=True)
    assert ranking(similarity, lexical) == [0, 2, 1]


def test_flat_dense_scores_hand_the_order_to_lexical():
    # All candidates equally similar: normalised dense scores are all 0, whatever the weight.
    similarity = np.full(4, 0.7)
    lexical = np.array([2.0, 8.0, 5.0, 0.0])
    assert ranking(similarity, lexical) == [1, 2, 0, 3]


def test_the_dense_weight_rises_with_the_best_cosine():
    lexical = np.array([5.0, 3.0, 1.0])
    weights = [adaptive_weights(np.array([0.1, best, 0.2]), lexical).dense for best in (0.3, 0.5, 0.7, 0.9)]
    assert weights == sorted(weights) and weights[0] == 0.0 and weights[-1] == 1.0
    assert DEFAULTS.no_match_cosine < DEFAULTS.clear_match_cosine


def test_short_queries_are_a_few_words_that_are_not_a_question():
    from index.fusion import is_short_query

    assert is_short_query("film directors") and is_short_query("Apollo 11 crew") and is_short_query("ayn rand")
    assert not is_short_query("what is limescale")  # a question word first
    assert not is_short_query("limescale in kettles?")  # a question mark
    assert not is_short_query("how satellites stay up")
    assert not is_short_query("five words is too many")
    assert not is_short_query("   ")


def test_the_short_query_signal_gives_dense_search_at_least_half_the_say():
    from index.fusion import SHORT_QUERY_DENSE_WEIGHT

    lexical = np.array([3.0, 1.0, 0.0])
    weak = np.array([0.45, 0.42, 0.41])  # confidence 0.1
    plain = adaptive_weights(weak, lexical)
    short = adaptive_weights(weak, lexical, short_query=True)
    assert plain.dense == pytest.approx(0.1) and short.dense == SHORT_QUERY_DENSE_WEIGHT == 0.5
    assert short.lexical == pytest.approx(0.5) and short.coordinate
    strong = np.array([0.85, 0.5, 0.4])  # confidence 0.9: already above the floor
    assert adaptive_weights(strong, lexical, short_query=True).dense == pytest.approx(0.9)
    # not where the model does not know the language, nor where no query word occurs
    assert adaptive_weights(weak, lexical, dense_knows_language=False, short_query=True).dense == 0.0
    assert adaptive_weights(weak, np.zeros(3), short_query=True).dense == 1.0

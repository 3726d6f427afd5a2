"""`BM25Index.scores_of` (the candidates' scores, aligned) gives exactly the scores `search` gives them,
and `term_presence` the same matrix as a per-id lookup; through adds, removes (tombstones) and ids
that are not indexed."""

from __future__ import annotations

import random

import numpy as np
import pytest

from index.lexical import BM25Index

WORDS = [f"w{i}" for i in range(40)]


def _index(seed: int, n: int = 600, removed: int = 0) -> BM25Index:
    rng = random.Random(seed)
    index = BM25Index()
    ids = rng.sample(range(10 * n), n)
    docs = [[rng.choice(WORDS[: rng.randint(3, 40)]) for _ in range(rng.randint(1, 30))] for _ in ids]
    index.add(np.array(ids, dtype=np.int64), docs, "english")
    if removed:
        index.remove(rng.sample(ids, removed))  # leaves tombstones (below the compaction share)
    return index


def _by_search(index: BM25Index, terms: list[str], keys: np.ndarray) -> np.ndarray:
    found, scores = index.search(terms, len(keys), allowed_ids=keys)
    by_key = dict(zip(found.tolist(), scores.tolist()))
    return np.array([by_key.get(int(k), 0.0) for k in keys], dtype=np.float64)


@pytest.mark.parametrize("removed", [0, 50])
@pytest.mark.parametrize("count", [1, 30, 200, 2000])
def test_scores_of_equals_the_search_scores(removed, count):
    index = _index(1, removed=removed)
    rng = random.Random(count)
    known = index.ids().tolist()
    for _ in range(20):
        terms = rng.sample(WORDS, rng.randint(1, 5)) + ["not-a-word"]
        keys = np.array(rng.sample(known, min(count, len(known))) + [10**9, -5], dtype=np.int64)
        rng.shuffle(keys)
        assert np.array_equal(index.scores_of(terms, keys), _by_search(index, terms, keys))


def test_term_presence_matches_a_per_id_lookup():
    index = _index(2, removed=40)
    rng = random.Random(0)
    keys = np.array(rng.sample(index.ids().tolist(), 100) + [10**9], dtype=np.int64)
    terms = ["w1", "w7", "w1", "nope", "w30"]
    presence = index.term_presence(terms, keys)
    distinct = list(dict.fromkeys(terms))
    for row, key in enumerate(keys.tolist()):
        for column, term in enumerate(distinct):
            alone = index.search([term], 1, allowed_ids=np.array([key], dtype=np.int64))[0]
            assert presence[row, column] == (alone.size == 1), (key, term)


def test_scores_of_on_an_empty_index_and_no_keys():
    assert BM25Index().scores_of(["w1"], np.array([1, 2], dtype=np.int64)).tolist() == [0.0, 0.0]
    assert _index(3).scores_of(["w1"], np.zeros(0, dtype=np.int64)).size == 0

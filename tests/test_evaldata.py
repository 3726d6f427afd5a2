"""The benchmark evaluation sets (bench/data) load whole and consistent, and their metrics are right."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import evaldata  # noqa: E402
from evaldata import Chunk, EvalSet, Query  # noqa: E402


def test_qrels_are_read_with_and_without_a_header(tmp_path: Path) -> None:
    with_header = tmp_path / "a.tsv"
    with_header.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n")
    without = tmp_path / "b.tsv"
    without.write_text("q1\td1\t2\nq2\td3\t1\n")
    assert evaldata.read_qrels(with_header) == {"q1": {"d1": 2, "d2": 0}}
    assert evaldata.read_qrels(without) == {"q1": {"d1": 2}, "q2": {"d3": 1}}


def test_msmarco_keeps_every_judgement() -> None:
    msmarco = evaldata.load("msmarco")
    assert len(msmarco.documents) == 5000
    assert len(msmarco.queries) == 43  # 7 of the 50 queries have no judgement
    assert len(msmarco.absent) == 30
    assert all(doc.name and doc.text for doc in msmarco.documents)


@pytest.mark.parametrize("name, queries", [("entities-dev", 82), ("entities-test", 82), ("entities-known", 55)])
def test_entity_sets_judge_documents_of_their_corpus(name: str, queries: int) -> None:
    evalset = evaldata.load(name)
    names = {doc.name for doc in evalset.documents}
    assert len(evalset.documents) == len(names) == 315
    assert len(evalset.queries) == queries and len(evalset.absent) == 30
    for query in evalset.queries:
        assert query.gains and set(query.gains) <= names, query.id
        assert max(query.gains.values()) == 2.0, query.id  # every query has its own abstract


def test_entity_splits_share_no_query() -> None:
    texts = {n: {q.text for q in evaldata.load(n).queries} for n in ("entities-dev", "entities-test", "entities-known")}
    assert not texts["entities-dev"] & texts["entities-test"]
    assert not texts["entities-known"] & (texts["entities-dev"] | texts["entities-test"])


def test_known_item_quotes_are_in_their_abstract() -> None:
    evalset = evaldata.load("entities-known")
    text = {doc.name: doc.text.lower() for doc in evalset.documents}
    quotes = [q for q in evalset.queries if q.kind == "quote"]
    assert len(quotes) == 31
    for query in quotes:
        (name,) = query.gains
        assert query.text.lower() in text[name], query.id


def test_titles_can_lead_the_text() -> None:
    plain = {d.name: d.text for d in evaldata.load("support6").documents}
    titled = {d.name: d.text for d in evaldata.load("support6", title_in_text=True).documents}
    assert titled["Sourdough starter guide"] == "Sourdough starter guide\n\n" + plain["Sourdough starter guide"]
    assert evaldata.corpus_key("entities-dev", True) == evaldata.corpus_key("entities-known", True) == "entities+title"


def test_support_set_is_the_issue_case() -> None:
    support = evaldata.load("support6")
    assert len(support.documents) == 6 and len(support.queries) == 6 and len(support.absent) == 8
    asked = {q.text for q in support.queries}
    assert "what do new engineers do during their first week" in asked
    assert "what does the liquid on top of my bread starter mean" in asked


@pytest.mark.parametrize("language", evaldata.LANGUAGES)
def test_multilingual_sets_use_the_shared_files(language: str) -> None:
    evalset = evaldata.load(f"ml-{language}")
    assert evalset.unit == "chunk" and evalset.documents and evalset.queries
    assert all(doc.path.is_file() for doc in evalset.documents)
    assert len(evalset.absent) == 6


def test_metrics_of_a_ranked_list() -> None:
    evalset = EvalSet("t", [], [], [])
    query = Query("q", "x", {"a": 2.0, "b": 1.0})
    chunks = [Chunk("1", "c", ""), Chunk("2", "a", ""), Chunk("3", "a", ""), Chunk("4", "b", "")]
    got = evaldata.score(evalset, query, chunks)
    # documents in rank order: c (0), a (2), b (1); the second chunk of a is dropped
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert got["ndcg"] == pytest.approx(dcg / ideal)
    assert got["recall"] == 1.0 and got["mrr"] == 0.5
    assert evaldata.score(evalset, query, [])["ndcg"] == 0.0


def test_quote_sets_judge_chunks() -> None:
    evalset = EvalSet("t", [], [], [], unit="chunk")
    query = Query("q", "x", document="doc", quote="needle")
    stored = [Chunk("1", "doc", "a needle here"), Chunk("2", "doc", "nothing"), Chunk("3", "doc", "needle again")]
    got = evaldata.score(evalset, query, [stored[1], stored[2], Chunk("9", "other", "needle")], stored)
    assert got["mrr"] == 0.5 and got["recall"] == 0.5

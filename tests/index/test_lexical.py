"""Lexical search on real text: the analyzer's languages, BM25 against a brute-force
reference through adds, removes and reloads, and retrieval quality on msmarco-5k."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from index.lexical import BM25Index, analyze, analyze_query, detect_language
from ingest import parse

# ---- the corpus -----------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    # U+0085 occurs inside passages: split on "\n" only, never splitlines()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


@pytest.fixture(scope="module")
def msmarco(corpus: Path) -> dict:
    root = corpus / "retrieval" / "msmarco-5k"
    passages = read_jsonl(root / "corpus.jsonl")
    queries = {q["_id"]: q["text"] for q in read_jsonl(root / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    for line in (root / "qrels" / "test.tsv").read_text(encoding="utf-8").split("\n"):  # no header row
        if line.strip():
            query_id, passage_id, grade = line.split("\t")
            qrels.setdefault(query_id, {})[passage_id] = int(grade)
    assert len(passages) == 5000 and len(queries) == 50 and len(qrels) == 43
    tokens = [analyze(f"{p.get('title', '')} {p['text']}", "english") for p in passages]
    return {"passages": passages, "queries": queries, "qrels": qrels, "tokens": tokens}


@pytest.fixture(scope="module")
def documents(corpus: Path) -> dict[str, str]:
    names = {"german": "pdf/GeoTopo-komprimiert.pdf", "arabic": "epub/regime-anticancer-arabic.epub",
             "japanese": "epub/jlreq-in-japanese.epub", "english": "html/dw.com.colonial.html"}
    return {key: parse((corpus / name).read_bytes(), filename=Path(name).name).text for key, name in names.items()}


# ---- analyzer -----------------------------------------------------------------------------


def test_english_stems_and_drops_stopwords() -> None:
    assert analyze("running runs run", "english") == ["run", "run", "run"]
    assert analyze("The cats and the dogs were playing", "english") == ["cat", "dog", "play"]
    # apostrophes split words; the fragments are stopwords
    assert analyze("the children's toys don't break", "english") == ["children", "toy", "break"]


def test_german_french_spanish() -> None:
    # Snowball German folds umlauts and strips the -er / -es endings: Häuser, Hauses, Haus meet
    assert analyze("Häuser Hauses Haus", "german") == ["haus"] * 3
    assert analyze("der die das und Straße STRASSE", "german") == ["strass", "strass"]
    assert analyze("les maisons et la maison", "french") == ["maison", "maison"]
    assert analyze("las casas y la casa", "spanish") == ["cas", "cas"]


def test_arabic_normalisation() -> None:
    same = [
        ("الْمَدْرَسَةُ", "المدرسه"),  # harakat; teh marbuta ة → heh ه
        ("أحمد", "احمد"), ("إسلام", "اسلام"), ("آمال", "امال"),  # alef forms
        ("مستشفى", "مستشفي"),  # alef maqsura ى → yeh ي
        ("كتـــاب", "كتاب"),  # tatweel
    ]
    for written, plain in same:
        assert analyze(written, "arabic") == analyze(plain, "arabic") != [], written
    assert analyze("ذهب الطالب إلى المدرسة", "arabic") == analyze("ذهب الطالب الى المدرسه", "arabic")
    assert "الى" not in analyze("ذهب إلى", "arabic")  # a stopword


def test_cjk_bigrams() -> None:
    assert analyze("東京タワー") == ["東京", "京タ", "タワ", "ワー"]
    assert analyze("我爱北京") == ["我爱", "爱北", "北京"]
    assert analyze("한국어 텍스트") == ["한국", "국어", "텍스", "스트"]
    assert analyze("中") == ["中"]  # a single character stays a unigram
    # Latin words inside CJK text go through the English pipeline
    assert sorted(analyze("Pythonで書かれたプログラム", "cjk")) == sorted(
        ["python", "で書", "書か", "かれ", "れた", "たプ", "プロ", "ログ", "グラ", "ラム"])


def test_nfkc_and_casefold() -> None:
    assert analyze("ＰＹＴＨＯＮ Ｐｒｏｇｒａｍｍｉｎｇ", "english") == analyze("python programming", "english")
    assert analyze("ﬁles", "english") == analyze("files", "english")
    assert analyze("ﾀﾜｰ") == analyze("タワー")  # half-width katakana
    assert analyze("Straße", "german") == analyze("STRASSE", "german")


def test_other_scripts_keep_whole_words() -> None:
    # combining vowel signs stay inside the word; underscores separate words
    assert analyze("हिन्दी भाषा", "other") == ["हिन्दी", "भाषा"]
    assert analyze("snake_case_name", "english") == ["snake", "case", "name"]


def test_query_uses_every_workspace_language() -> None:
    german_only = analyze_query("Häuser", ["german"])
    assert german_only == ["haus"]
    mixed = analyze_query("die Häuser running", ["english", "german"])
    assert {"haus", "run", "die"} <= set(mixed)  # "die" is a German stopword, not an English one
    assert len(mixed) == len(set(mixed))
    # Latin words of a non-Latin workspace were stemmed as English
    assert analyze_query("running", ["arabic"]) == ["run"]
    assert analyze_query("running") == ["run"]
    assert analyze_query("السَّرَطان", ["english"]) == analyze("السرطان", "arabic")
    with pytest.raises(ValueError):
        analyze_query("x", ["klingon"])


def test_detect_language_on_real_documents(documents: dict[str, str]) -> None:
    assert detect_language(documents["german"]) == "german"
    assert detect_language(documents["arabic"]) == "arabic"
    assert detect_language(documents["japanese"]) == "cjk"
    assert detect_language(documents["english"]) == "english"
    assert detect_language("Le renard brun saute par-dessus le chien paresseux et il dort dans la maison") == "french"
    assert detect_language("El zorro marrón salta sobre el perro y se duerme en la casa") == "spanish"
    assert detect_language("Москва — столица России") == "russian"
    assert detect_language("") == "english"


def test_german_query_finds_german_chunks_in_mixed_workspace(documents: dict[str, str]) -> None:
    index = BM25Index()
    chunks: list[tuple[str, str]] = []
    for key, text in documents.items():
        language = detect_language(text)
        paragraphs = [p for p in text.split("\n\n") if p.strip()]
        for start in range(0, len(paragraphs), 4):
            chunk = "\n\n".join(paragraphs[start : start + 4])
            chunks.append((key, chunk))
            index.add([len(chunks) - 1], [analyze(chunk, language)], language)
    assert set(index.languages) == {"german", "arabic", "cjk", "english"}

    def best(query: str) -> tuple[str, str]:
        ids, _ = index.search(analyze_query(query, index.languages), 1)
        return chunks[int(ids[0])]

    key, chunk = best("Überlagerungen der Fundamentalgruppe")
    assert key == "german" and "Überlagerung" in chunk
    key, chunk = best("Berlin colonial past")
    assert key == "english" and "colonial" in chunk
    key, chunk = best("السَّرَطان")  # with diacritics; the book writes it without
    assert key == "arabic" and "السرطان" in chunk
    key, chunk = best("縦組")
    assert key == "japanese" and "縦組" in chunk


# ---- BM25 against a brute-force reference ------------------------------------------------


class Reference:
    """BM25 (Lucene idf) computed from scratch over a {id: tokens} snapshot, in float64."""

    def __init__(self, docs: dict[int, list[str]], k1: float = 1.2, b: float = 0.75):
        self.n = len(docs)
        self.avgdl = sum(len(tokens) for tokens in docs.values()) / self.n
        self.df = Counter(term for tokens in docs.values() for term in set(tokens))
        self.tf = {doc_id: Counter(tokens) for doc_id, tokens in docs.items()}
        self.length = {doc_id: len(tokens) for doc_id, tokens in docs.items()}
        self.k1, self.b = k1, b

    def scores(self, query: list[str]) -> dict[int, float]:
        k1, b = self.k1, self.b
        idf = {t: math.log(1 + (self.n - self.df[t] + 0.5) / (self.df[t] + 0.5)) for t in set(query) if self.df[t]}
        scores = {}
        for doc_id, tf in self.tf.items():
            norm = k1 * (1 - b + b * self.length[doc_id] / self.avgdl)
            score = sum(idf[t] * tf[t] * (k1 + 1) / (tf[t] + norm) for t in idf if t in tf)
            if score > 0:
                scores[doc_id] = score
        return scores


def assert_matches_reference(index: BM25Index, docs: dict[int, list[str]], queries: list[list[str]],
                             allowed: np.ndarray | None = None) -> None:
    assert len(index) == len(docs)
    reference = Reference(docs)
    permitted = None if allowed is None else set(allowed.tolist())
    for query in queries:
        expected = reference.scores(query)
        if permitted is not None:
            expected = {i: s for i, s in expected.items() if i in permitted}
        ids, scores = index.search(query, len(docs) + 10, allowed)
        assert list(scores) == sorted(scores, reverse=True)
        got = dict(zip(ids.tolist(), scores.tolist()))
        assert len(got) == len(ids) and got.keys() == expected.keys(), query
        for doc_id, score in expected.items():
            assert got[doc_id] == pytest.approx(score, rel=1e-5), (query, doc_id)
        # top 10: the same scores as the reference's ten best (ids may differ only in ties)
        top_ids, top_scores = index.search(query, 10, allowed)
        best = sorted(expected.values(), reverse=True)[:10]
        assert np.allclose(top_scores, best, rtol=1e-5)
        assert all(expected[i] == pytest.approx(s, rel=1e-5) for i, s in zip(top_ids.tolist(), top_scores.tolist()))


@pytest.fixture(scope="module")
def sample(msmarco: dict) -> dict:
    """400 real passages (ids 0..399) and queries: the 50 msmarco ones plus words of passages."""
    rng = random.Random(7)
    docs = {i: msmarco["tokens"][i] for i in range(400)}
    queries = [analyze_query(text, ["english"]) for text in msmarco["queries"].values()]
    for i in rng.sample(range(400), 25):
        if docs[i]:
            queries.append(rng.sample(docs[i], min(3, len(docs[i]))))
    queries.append(["zzzz-not-a-term"])
    return {"docs": docs, "queries": [q for q in queries if q]}


def test_bm25_through_adds_removes_and_reloads(sample: dict) -> None:
    all_docs, queries = sample["docs"], sample["queries"]
    rng = random.Random(11)
    index = BM25Index()
    docs: dict[int, list[str]] = {}
    # one document at a time, as a workspace grows
    for doc_id in range(200):
        index.add([doc_id], [all_docs[doc_id]], "english")
        docs[doc_id] = all_docs[doc_id]
        if doc_id in (0, 9, 99):
            assert_matches_reference(index, docs, queries)
    # then a batch
    batch = list(range(200, 400))
    index.add(batch, [all_docs[i] for i in batch], "english")
    docs.update({i: all_docs[i] for i in batch})
    assert_matches_reference(index, docs, queries)

    removed = rng.sample(sorted(docs), 60)
    assert index.remove(removed + [10_000]) == 60
    assert index.remove(removed) == 0
    for doc_id in removed:
        del docs[doc_id]
    assert_matches_reference(index, docs, queries)
    for query in queries:
        assert not set(index.search(query, 1000)[0].tolist()) & set(removed)
        assert not set(index.search(query, 1000, np.array(removed))[0].tolist())

    # re-add some removed ids, and replace some present ones with other passages' text
    readded = removed[:20]
    index.add(readded, [all_docs[i] for i in readded])
    docs.update({i: all_docs[i] for i in readded})
    replaced = sorted(docs)[:10]
    index.add(replaced, [all_docs[399 - i] for i in replaced])
    docs.update({i: all_docs[399 - i] for i in replaced})
    assert_matches_reference(index, docs, queries)

    # past a quarter of deletions the index compacts; nothing changes for searches
    many = rng.sample(sorted(docs), 150)
    index.remove(many)
    for doc_id in many:
        del docs[doc_id]
    assert index._n_slots == len(docs)  # compacted: no tombstones left
    assert_matches_reference(index, docs, queries)
    assert sorted(index.ids().tolist()) == sorted(docs)

    restored = BM25Index.from_bytes(index.to_bytes())
    assert_matches_reference(restored, docs, queries)
    restored.add([5000, 5001], [all_docs[1], all_docs[2]])
    docs.update({5000: all_docs[1], 5001: all_docs[2]})
    assert_matches_reference(restored, docs, queries)


def test_allowed_ids_filter(sample: dict) -> None:
    docs, queries = sample["docs"], sample["queries"]
    index = BM25Index()
    index.add(list(docs), list(docs.values()), "english")
    index.remove([3, 4])
    live = {i: t for i, t in docs.items() if i not in (3, 4)}
    one_document = np.arange(0, 8)  # a document's chunks (two of them deleted): scored directly
    half = np.arange(0, 400, 2)  # many ids: scored through the postings
    huge = np.arange(-5000, 5000)  # more ids than the index holds, most unknown
    for allowed in (one_document, half, huge, np.array([3]), np.array([], dtype=np.int64)):
        assert_matches_reference(index, live, queries, allowed)
        for query in queries:
            assert set(index.search(query, 50, allowed)[0].tolist()) <= set(allowed.tolist()) - {3, 4}


def test_matched_terms_counts_distinct_query_terms(sample: dict) -> None:
    docs, queries = sample["docs"], sample["queries"]
    index = BM25Index()
    index.add(list(docs), list(docs.values()), "english")
    index.remove([3, 4])
    ids = np.array([0, 1, 2, 3, 4, 5, 99_999] + list(range(10, 60)))
    for query in queries[:20]:
        expected = [len({t for t in query if t in docs[i]}) if i in docs and i not in (3, 4) else 0 for i in ids.tolist()]
        assert index.matched_terms(query, ids).tolist() == expected


def test_serialisation_round_trip(sample: dict, tmp_path: Path) -> None:
    docs, queries = sample["docs"], sample["queries"]
    index = BM25Index(k1=1.2, b=0.75)
    index.add(list(docs), list(docs.values()), ["english"] * 300 + ["german"] * 100)
    index.remove(range(0, 50))  # tombstones and garbage are not written
    path = tmp_path / "ws" / "bm25.bin"
    index.save(path)
    loaded = BM25Index.load(path)
    assert len(loaded) == len(index) == 350
    assert loaded.language_counts == index.language_counts == {"english": 250, "german": 100}
    assert loaded.languages == ["english", "german"]
    for query in queries:
        for allowed in (None, np.arange(40, 60)):
            got, want = loaded.search(query, 20, allowed), index.search(query, 20, allowed)
            assert np.array_equal(got[0], want[0]) and np.allclose(got[1], want[1], rtol=1e-6)
    assert BM25Index.from_bytes(BM25Index().to_bytes()).search(["run"], 5)[0].size == 0
    with pytest.raises(ValueError):
        BM25Index.from_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError):
        BM25Index.from_bytes(b"not an index")


def test_edges() -> None:
    index = BM25Index()
    assert len(index) == 0 and index.search(["a"], 5)[0].size == 0
    index.add([7, 8, 9], [["a", "b"], [], ["a", "a", "c"]])
    assert len(index) == 3 and 8 in index and 10 not in index
    assert index.search([], 5)[0].size == 0
    assert index.search(["a"], 0)[0].size == 0
    assert index.search(["unknown"], 5)[0].size == 0
    ids, scores = index.search(["a", "a", "c"], 5)  # repeated query terms count once
    assert ids.tolist() == [9, 7] and scores.dtype == np.float32
    with pytest.raises(ValueError):
        index.add([1, 1], [["a"], ["b"]])
    with pytest.raises(ValueError):
        index.add([1, 2], [["a"]])
    index.remove([7, 8, 9])
    assert len(index) == 0 and index.search(["a"], 5)[0].size == 0
    index.add([1], [["a"]])
    assert index.search(["a"], 5)[0].tolist() == [1]


# ---- retrieval quality ----------------------------------------------------------------------


def ndcg_at_10(ranked: list[str], grades: dict[str, int]) -> float:
    """nDCG@10 with linear gains, as pytrec_eval (BEIR) computes it."""
    dcg = sum(grades.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:10]))
    ideal = sorted(grades.values(), reverse=True)[:10]
    return dcg / sum(grade / math.log2(rank + 2) for rank, grade in enumerate(ideal))


def test_msmarco_ndcg(msmarco: dict) -> None:
    passages = msmarco["passages"]
    index = BM25Index()
    index.add(range(len(passages)), msmarco["tokens"], "english")
    scores = []
    for query_id, grades in msmarco["qrels"].items():  # the 7 queries without judgements left out
        ids, _ = index.search(analyze_query(msmarco["queries"][query_id], index.languages), 10)
        scores.append(ndcg_at_10([passages[i]["_id"] for i in ids], grades))
    assert len(scores) == 43
    # the corpus README: BM25 with English stemming and stopwords scores 0.727
    assert 0.715 <= float(np.mean(scores)) <= 0.745

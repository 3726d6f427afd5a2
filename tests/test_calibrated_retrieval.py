"""Retrieval right at its defaults (issue 14), over real HTTP with the real model: calibrated distances per
model, the cut rules, the empty-result explanation, e5 distances mapped, the title field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import add_text, invoke_cli, make_kb, retrieve
from index.calibration import CALIBRATIONS, E5_SCALE, MINILM, map_distance
from index.fusion import is_short_query
from index.ranking import rank
from kb.indexes import LexicalIndex
from kb.indexes.lexical import title_text

KB = "/v1/convai/knowledge-base"
MODEL = "all-MiniLM-L6-v2"
SUPPORT6 = Path(__file__).resolve().parents[1] / "bench" / "data" / "support6"

# The issue's two pages, written so that their questions' answers sit beyond 0.6, as in the issue (the
# pages of bench/data/support6 put them nearer): a page about many things that answers in one sentence.
ONBOARDING = (
    "Payroll, badges and laptops\n\nHR sets up payroll on day one. Security prints badges at reception. IT hands "
    "out laptops with disk encryption on. New engineers get GitHub, Jira and PagerDuty accounts in their first week; "
    "the facilities team assigns desks and lockers."
)
SOURDOUGH = (
    "Sourdough workshop handout\n\nTimings for Saturday: mix at 9, fold at 9:30, 10 and 10:30, shape at 1, bake on "
    "Sunday morning. Oven: 250 C with the lid on for 20 minutes, 230 C with the lid off for 25. Scoring: one confident "
    "cut at 30 degrees. Storage: a linen bag, never the fridge. Your jar of starter: the liquid on top means it is "
    "hungry. Bread freezes well sliced."
)
ISSUE_QUESTIONS = {
    "onboarding": "what do new engineers do during their first week",
    "sourdough": "what does the liquid on top of my bread starter mean",
}


def _support6() -> tuple[dict[str, tuple[str, str]], dict[str, str], list[str]]:
    pages = {}
    for line in (SUPPORT6 / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        pages[row["_id"]] = (row["title"], row["text"])
    pages["onboarding"] = ("Engineering onboarding checklist", ONBOARDING)
    pages["sourdough"] = ("Sourdough starter guide", SOURDOUGH)
    qrels = dict(line.split("\t")[:2] for line in (SUPPORT6 / "qrels" / "test.tsv").read_text().splitlines()[1:])
    questions = {qrels[row["_id"]]: row["text"] for row in map(json.loads, (SUPPORT6 / "queries.jsonl").read_text().splitlines())}
    absent = [json.loads(line)["text"] for line in (SUPPORT6 / "absent.jsonl").read_text().splitlines()]
    return pages, questions, absent


PAGES, QUESTIONS, ABSENT = _support6()


@pytest.fixture
def support6(client) -> dict[str, str]:
    return {page: add_text(client, text, title) for page, (title, text) in PAGES.items()}


def test_six_support_questions_find_their_page_with_the_defaults(client, support6):
    assert QUESTIONS["onboarding"] == ISSUE_QUESTIONS["onboarding"] and QUESTIONS["sourdough"] == ISSUE_QUESTIONS["sourdough"]
    for page, question in QUESTIONS.items():
        answer = retrieve(client, question)
        assert answer["chunks"], (page, answer["distance_cut"])
        assert answer["chunks"][0]["document_id"] == support6[page], page
        assert answer["max_vector_distance"] == MINILM.default_distance("onnx-int8") == 0.6
    # The issue's two answers are beyond 0.6: a plain cut would empty these responses (and does in
    # dense mode); they are complete lexical matches (every query term in the text), which the cut spares.
    for page in ISSUE_QUESTIONS:
        uncut = retrieve(client, QUESTIONS[page], search_mode="dense", max_vector_distance=2)["chunks"][0]
        assert uncut["document_id"] == support6[page] and uncut["vector_distance"] > 0.6, page
        assert retrieve(client, QUESTIONS[page], search_mode="dense")["chunks"] == []


def test_absent_topics_get_nothing_and_the_response_says_why(client, support6, kb):
    for question in ABSENT:
        answer = retrieve(client, question)
        assert answer["chunks"] == [], question
        cut = answer["distance_cut"]
        assert cut["max_vector_distance"] == 0.6 and cut["removed"] >= 1
        nearest = retrieve(client, question, max_vector_distance=2)["chunks"]
        assert cut["nearest_removed_distance"] == pytest.approx(min(c["vector_distance"] for c in nearest), abs=1e-6)
        assert cut["nearest_removed_distance"] > 0.6
    # a cut that removes nothing says nothing
    assert retrieve(client, QUESTIONS["kettle-care"], max_vector_distance=2)["distance_cut"] is None
    # `kb query` (another process would do the same) says why it printed nothing
    question = ABSENT[0]
    nearest = retrieve(client, question)["distance_cut"]["nearest_removed_distance"]
    result = invoke_cli(["query", "--workspace", "tests", question, "--data-dir", str(kb.settings.storage.data_dir)],
                        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "no chunk within max_vector_distance 0.6" in result.output and f"{nearest:.3f}" in result.output


def test_an_explicit_distance_wins(client, support6):
    question = QUESTIONS["kettle-care"]
    everything = retrieve(client, question, max_vector_distance=2.0, search_mode="dense")
    assert {c["document_id"] for c in everything["chunks"]} == set(support6.values())
    assert everything["max_vector_distance"] == 2.0
    first = everything["chunks"][0]["vector_distance"]
    tight = retrieve(client, question, max_vector_distance=first + 1e-5, search_mode="dense")
    assert [c["chunk_id"] for c in tight["chunks"]] == [everything["chunks"][0]["chunk_id"]]
    assert tight["distance_cut"]["removed"] == len(everything["chunks"]) - 1
    # null is the default, as absent
    assert retrieve(client, question, max_vector_distance=None)["max_vector_distance"] == 0.6
    # out of range: a 422 naming the field
    bad = client.post(f"{KB}/rag/retrieve", json={"query": question, "max_vector_distance": 3})
    assert bad.status_code == 422 and "max_vector_distance" in bad.text


def test_a_distance_given_for_an_e5_model_is_mapped_onto_the_served_models_scale(client, support6, api_key, server):
    assert map_distance(0.0, E5_SCALE, MINILM, "onnx-int8") == 0.0
    assert map_distance(0.125, E5_SCALE, MINILM, "onnx-int8") == pytest.approx(0.35)
    assert map_distance(0.25, E5_SCALE, MINILM, "onnx-int8") == 0.6
    assert map_distance(0.6, E5_SCALE, MINILM, "torch") == 0.59
    # Continuous and never decreasing: no jump just below the unrelated level (0.24 gave 0.67, 0.25 gave 0.60).
    grid = [i / 1000 for i in range(0, 1001)]
    mapped = [map_distance(d, E5_SCALE, MINILM, "onnx-int8") for d in grid]
    assert all(b >= a for a, b in zip(mapped, mapped[1:]))
    assert max(b - a for a, b in zip(mapped, mapped[1:])) < 0.01
    assert map_distance(0.24, E5_SCALE, MINILM, "onnx-int8") == 0.6
    question = QUESTIONS["refund-policy"]
    for model in ("e5_mistral_7b_instruct", "multilingual_e5_large_instruct"):
        for given, applied in ((0.6, 0.6), (1.5, 0.6), (0.1, 0.28), (0.0, 0.0), (None, 0.6)):
            answer = retrieve(client, question, embedding_model=model, max_vector_distance=given)
            assert answer["max_vector_distance"] == pytest.approx(applied), (model, given)
            assert answer["served_model"] == MODEL
            assert all(c["vector_distance"] <= applied for c in answer["chunks"] if applied >= 0.6)
    # the served model's own name: the value as given
    assert retrieve(client, question, embedding_model=MODEL, max_vector_distance=0.1)["max_vector_distance"] == 0.1
    # an agent naming an e5 model gets the same mapping; one naming none, its values as given
    agents = []
    for rag in ({"embedding_model": "e5_mistral_7b_instruct", "max_vector_distance": 0.1}, {"max_vector_distance": 0.1}, {}):
        config = {"agent": {"prompt": {"knowledge_base": [{"type": "text", "name": "refunds", "id": support6["refund-policy"]}],
                                       "rag": {"enabled": True, **rag}}}}
        response = client.post("/v1/convai/agents/create", json={"conversation_config": config})
        assert response.status_code == 200, response.text
        agents.append(response.json()["agent_id"])
    applied = [client.post(f"/v1/convai/agents/{a}/rag/retrieve", json={"query": question}).json()["max_vector_distance"]
               for a in agents]
    assert applied == [pytest.approx(0.28), 0.1, 0.6]
    read_back = client.get(f"/v1/convai/agents/{agents[2]}").json()["conversation_config"]["agent"]["prompt"]["rag"]
    assert read_back["max_vector_distance"] == 0.6


def test_an_agent_says_why_its_answer_is_empty(client, support6):
    config = {"agent": {"prompt": {"knowledge_base": [{"type": "text", "name": p, "id": i} for p, i in support6.items()],
                                   "rag": {"enabled": True}}}}
    agent_id = client.post("/v1/convai/agents/create", json={"conversation_config": config}).json()["agent_id"]
    answer = client.post(f"/v1/convai/agents/{agent_id}/rag/retrieve", json={"query": ABSENT[1]}).json()
    assert answer["chunks"] == [] and answer["distance_cut"]["removed"] >= 1
    assert answer["distance_cut"]["nearest_removed_distance"] > answer["max_vector_distance"] == 0.6
    found = client.post(f"/v1/convai/agents/{agent_id}/rag/retrieve", json={"query": QUESTIONS["volcano"]}).json()
    assert found["chunks"][0]["document_id"] == support6["volcano"]


def test_the_openapi_document_states_the_default():
    from api.schemas import RetrieveRequest, RetrieveResponse

    description = RetrieveRequest.model_json_schema()["properties"]["max_vector_distance"]["description"]
    assert "calibrated default" in description and "e5" in description
    assert "distance_cut" in RetrieveResponse.model_json_schema()["properties"]


# --- the title field --------------------------------------------------------------------------------------------

# Neighbours whose texts talk of Azerbaijan's foreign relations; the page about them says little of it in its text.
COUNTRIES = {
    "Armenia": "Armenia is a country in the South Caucasus. Its foreign relations with Azerbaijan have been tense since "
               "the war over Nagorno-Karabakh; the foreign ministers of Armenia and Azerbaijan met in 2021 to discuss relations.",
    "Georgia": "Georgia borders Azerbaijan to the south-east. Georgia's foreign relations with Azerbaijan rest on the "
               "Baku-Tbilisi-Ceyhan pipeline; relations with Russia have been strained since 2008.",
    "Turkey": "Turkey is Azerbaijan's closest ally: in foreign relations the two speak of one nation, two states. Turkey's "
              "relations with Armenia have no diplomatic ties.",
    "Foreign relations of Azerbaijan": "Azerbaijan's diplomacy: it is a member of the United Nations, the OSCE, the "
                                       "Council of Europe and the Non-Aligned Movement, keeps embassies in more than "
                                       "ninety countries and signs partnership treaties with its neighbours.",
}


def test_the_title_field_ranks_the_page_a_facet_query_names(client, kb, api_key):
    ids = {name: add_text(client, text, name) for name, text in COUNTRIES.items()}
    page = ids["Foreign relations of Azerbaijan"]
    query = "Azerbaijan foreign relations"
    workspace = kb.workspaces.authenticate(api_key)
    loaded = kb.vectors.get_loaded(workspace.id, MODEL, 384)
    lexical = loaded.lexical
    terms = lexical.query_terms(query)
    keys = np.sort(lexical.index.ids())
    with kb.db.read() as tx:
        document_of = {k: h.chunk.document_id for k, h in kb.retrieval.chunks.hits(tx, workspace.id, keys.tolist()).items()}
    # BM25 over the text alone prefers a neighbour; with the title field, the page comes first.
    text_only = keys[np.argsort(-_text_scores(lexical, terms, keys), kind="stable")]
    assert document_of[int(text_only[0])] != page
    assert retrieve(client, query, search_mode="lexical", max_vector_distance=2)["chunks"][0]["document_id"] == page
    # In hybrid ranking (real vectors, kb's fusion), the title field moves the page up.
    similarity = loaded.store.vectors_for(keys) @ kb.retrieval.embed_query(MODEL, query)

    def position(lexical_scores: np.ndarray, matched: np.ndarray) -> int:
        ranked = rank("hybrid", keys, similarity, lexical_scores, matched, short_query=is_short_query(query)).keys
        return [document_of[int(k)] for k in ranked].index(page)

    without = position(_text_scores(lexical, terms, keys), lexical.index.matched_terms(terms, keys))
    with_titles = position(lexical.scores(terms, keys), lexical.matched_terms(terms, keys))
    assert with_titles < without
    hybrid = [c["document_id"] for c in retrieve(client, query, max_vector_distance=2)["chunks"]]
    assert hybrid.index(page) == with_titles


def _text_scores(lexical: LexicalIndex, terms: list[str], keys: np.ndarray) -> np.ndarray:
    found, scores = lexical.index.search(terms, len(keys), allowed_ids=keys)
    by_key = dict(zip(found.tolist(), scores.tolist()))
    return np.array([by_key.get(int(k), 0.0) for k in keys])


def test_the_title_field_is_saved_and_rebuilt_with_the_index(client, kb, api_key, tmp_path):
    ids = {name: add_text(client, text, name) for name, text in COUNTRIES.items()}
    workspace = kb.workspaces.authenticate(api_key)
    query = "Azerbaijan foreign relations"
    before = retrieve(client, query, search_mode="lexical", max_vector_distance=2)["chunks"]
    loaded = kb.vectors.get_loaded(workspace.id, MODEL, 384)
    assert len(loaded.lexical.titles) == len(loaded.lexical.index) == len(COUNTRIES)
    kb.vectors.flush()
    generation = loaded.generation

    # Another process loads the saved files: the title field is in them.
    other = make_kb(kb.settings.storage.data_dir)
    try:
        reloaded = other.vectors.get_loaded(workspace.id, MODEL, 384)
        assert reloaded is not loaded and reloaded.generation == generation
        assert len(reloaded.lexical.titles) == len(COUNTRIES)
        terms = reloaded.lexical.query_terms(query)
        assert reloaded.lexical.search(terms, 10).tolist() == loaded.lexical.search(terms, 10).tolist()
        # A rebuild from the stored chunks (kb reindex) makes the same title field.
        other.vectors.rebuild(workspace.id, MODEL, 384)
        rebuilt = other.vectors.get_loaded(workspace.id, MODEL, 384)
        assert rebuilt.lexical.search(terms, 10).tolist() == loaded.lexical.search(terms, 10).tolist()
        # An index file of an older kb (text BM25 only) is rebuilt with its title field.
        current = rebuilt.generation
        other.vectors.files.write(workspace.id, MODEL, current, "bm25", rebuilt.lexical.index.to_bytes())
        other.vectors.forget_workspace(workspace.id)
        again = other.vectors.get_loaded(workspace.id, MODEL, 384)
        assert len(again.lexical.titles) == len(COUNTRIES)
        assert again.lexical.search(terms, 10).tolist() == loaded.lexical.search(terms, 10).tolist()
    finally:
        other.close()
    after = retrieve(client, query, search_mode="lexical", max_vector_distance=2)["chunks"]
    assert [c["chunk_id"] for c in after] == [c["chunk_id"] for c in before]
    assert after[0]["document_id"] == ids["Foreign relations of Azerbaijan"]


def test_complete_lexical_matches_and_the_rare_single_term_rule():
    index = LexicalIndex()
    texts = ["the kettle has limescale", "limescale on the element", "the refund window"] + [f"filler text {i}" for i in range(200)]
    keys = np.arange(len(texts), dtype=np.int64)
    from kb.indexes import chunk_terms

    index.add(keys, chunk_terms(texts, "english"), ["english"] * len(texts),
              [title_text("doc", []) for _ in texts])
    both = index.complete_matches(index.query_terms("kettle limescale"), keys[:3])
    assert both.tolist() == [True, False, False]
    # one term: complete only where the term is rare (<= 1 % of 203 chunks: at most 2)
    assert index.complete_matches(index.query_terms("limescale"), keys[:3]).tolist() == [True, True, False]
    assert not index.complete_matches(index.query_terms("filler"), keys[3:6]).any()
    assert not index.complete_matches([], keys[:3]).any()


def test_calibrations_are_recorded_per_model():
    minilm = CALIBRATIONS[MODEL]
    assert (minilm.default_distance("onnx-int8"), minilm.default_distance("torch")) == (0.6, 0.59)
    assert (minilm.fusion.no_match_cosine, minilm.fusion.clear_match_cosine) == (0.4, 0.9)
    assert minilm.languages == frozenset({"english"})

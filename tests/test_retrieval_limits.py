"""The three retrieval limits, over HTTP, on real embeddings: the same meaning in every search mode."""

from __future__ import annotations

import pytest

from helpers import add_text, retrieve

FACTS = [
    ("mars", "Mars is the fourth planet from the Sun and has two small moons, Phobos and Deimos."),
    ("jupiter", "Jupiter is the largest planet in the Solar System and has a great red storm."),
    ("saturn", "Saturn is a gas giant planet famous for its bright rings of ice and rock."),
    ("venus", "Venus is the hottest planet, with a thick atmosphere of carbon dioxide."),
    ("pasta", "Boil the pasta in salted water for nine minutes, then drain and add the sauce."),
]


MODES = ["hybrid", "dense", "lexical"]


@pytest.fixture
def planets(client):
    return {name: add_text(client, text, name) for name, text in FACTS}


def ids(chunks: list[dict]) -> list[str]:
    return [c["chunk_id"] for c in chunks]


@pytest.mark.parametrize("mode", MODES)
def test_max_retrieved_rag_chunks_count_caps_the_ranking(client, planets, mode):
    everything = retrieve(client, "the planet Saturn and other planets", max_vector_distance=2.0, search_mode=mode)["chunks"]
    assert len(everything) >= 3
    if mode != "lexical":  # the pasta text shares no word with the query
        assert len(everything) == len(FACTS)
    if mode == "dense":
        distances = [c["vector_distance"] for c in everything]
        assert distances == sorted(distances)
    two = retrieve(client, "the planet Saturn and other planets", max_vector_distance=2.0,
                   max_retrieved_rag_chunks_count=2, search_mode=mode)
    assert ids(two["chunks"]) == ids(everything[:2])
    assert two["search_mode"] == mode


@pytest.mark.parametrize("mode", MODES)
def test_max_vector_distance_drops_far_chunks(client, planets, mode):
    everything = retrieve(client, "which planet has rings", max_vector_distance=2.0, search_mode=mode)["chunks"]
    distances = sorted(c["vector_distance"] for c in everything)
    cut = (distances[0] + distances[1]) / 2
    near = retrieve(client, "which planet has rings", max_vector_distance=cut, search_mode=mode)["chunks"]
    assert ids(near) == [c["chunk_id"] for c in everything if c["vector_distance"] <= cut]
    assert len(near) == 1 and near[0]["document_id"] == planets["saturn"]
    nothing = retrieve(client, "which planet has rings", max_vector_distance=0.0, search_mode=mode)
    if mode == "dense":
        assert nothing["chunks"] == []
    else:  # the Saturn text holds every query term ("planet", "rings"): a complete lexical match is never cut
        assert [c["document_id"] for c in nothing["chunks"]] == [planets["saturn"]]
    assert nothing["distance_cut"]["removed"] >= 1 and nothing["max_vector_distance"] == 0.0
    assert retrieve(client, "a world with a ring", max_vector_distance=0.0, search_mode=mode)["chunks"] == []


@pytest.mark.parametrize("mode", MODES)
def test_max_documents_length_keeps_a_prefix_within_the_budget(client, planets, mode):
    everything = retrieve(client, "planets", max_vector_distance=2.0, search_mode=mode)["chunks"]
    assert len(everything) >= 3
    budget = len(everything[0]["text"]) + len(everything[1]["text"]) + len(everything[2]["text"]) // 2
    limited = retrieve(client, "planets", max_vector_distance=2.0, max_documents_length=budget, search_mode=mode)["chunks"]
    assert ids(limited) == ids(everything[:2])
    assert sum(len(c["text"]) for c in limited) <= budget
    assert retrieve(client, "planets", max_documents_length=1, max_vector_distance=2.0, search_mode=mode)["chunks"] == []


def test_limits_are_validated(client, planets):
    url = "/v1/convai/knowledge-base/rag/retrieve"
    assert client.post(url, json={"query": "x", "max_retrieved_rag_chunks_count": 0}).status_code == 422
    assert client.post(url, json={"query": "x", "max_vector_distance": -1}).status_code == 422
    assert client.post(url, json={"query": ""}).status_code == 422
    assert client.post(url, json={}).status_code == 422
    blank = client.post(url, json={"query": "   "})
    assert blank.status_code == 400 and "empty" in blank.json()["detail"]["message"]


def test_defaults_are_documented_and_applied(client, planets):
    result = retrieve(client, "Phobos and Deimos")
    assert result["chunks"][0]["document_id"] == planets["mars"]
    assert len(result["chunks"]) <= 20
    assert all(c["vector_distance"] <= 0.6 for c in result["chunks"])

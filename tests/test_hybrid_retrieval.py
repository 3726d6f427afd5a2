"""Hybrid retrieval over HTTP: modes, true distances for lexical hits, deletes, timings, budget, context."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import add_text, retrieve, wait_indexed

KB = "/v1/convai/knowledge-base"

NOTES = {
    "pump": "The Zorblax 3000 pump needs its gasket replaced every 400 operating hours to avoid leaks.",
    "boiler": "A condensing boiler recovers heat from flue gases, which makes it more efficient than older models.",
    "valve": "Close the isolation valve before draining the heating circuit, then open the drain cock slowly.",
}


@pytest.fixture
def notes(client):
    return {name: add_text(client, text, name) for name, text in NOTES.items()}


def test_each_mode_finds_what_it_should(client, notes):
    # A made-up product name: only lexical matching can know it.
    lexical = retrieve(client, "Zorblax", search_mode="lexical", max_vector_distance=2)
    assert lexical["chunks"][0]["document_id"] == notes["pump"]
    assert [c["document_id"] for c in lexical["chunks"]] == [notes["pump"]]  # no other text has the word
    hybrid = retrieve(client, "Zorblax", max_vector_distance=2)
    assert hybrid["search_mode"] == "hybrid" and hybrid["chunks"][0]["document_id"] == notes["pump"]
    # A paraphrase with no shared content word: dense finds it, hybrid keeps it on top.
    paraphrase = "which heater reuses warmth from exhaust"
    assert retrieve(client, paraphrase, search_mode="dense", max_vector_distance=2)["chunks"][0]["document_id"] == notes["boiler"]
    assert retrieve(client, paraphrase, max_vector_distance=2)["chunks"][0]["document_id"] == notes["boiler"]


def test_lexical_hits_carry_their_true_vector_distance(client, notes, kb):
    hit = retrieve(client, "gasket replaced", search_mode="lexical", max_vector_distance=2)["chunks"][0]
    embedder = kb.models.get("all-MiniLM-L6-v2")
    query, chunk = embedder.embed_query("gasket replaced"), embedder.embed_documents([hit["text"]])[0]
    assert hit["vector_distance"] == pytest.approx(1 - float(np.dot(query, chunk)), abs=1e-4)
    # ...and max_vector_distance filters lexical hits on it, unless they hold every query term.
    assert retrieve(client, "gasket leaks", search_mode="lexical",
                    max_vector_distance=0.0)["chunks"][0]["document_id"] == notes["pump"]
    partial = retrieve(client, "gasket seals", search_mode="lexical", max_vector_distance=2)["chunks"][0]
    assert retrieve(client, "gasket seals", search_mode="lexical",
                    max_vector_distance=partial["vector_distance"] - 0.01)["chunks"] == []


def test_deleted_documents_leave_both_indexes(client, notes, kb, api_key):
    client.delete(f"{KB}/{notes['pump']}").raise_for_status()
    for mode in ("lexical", "dense", "hybrid"):
        hits = retrieve(client, "Zorblax pump gasket", search_mode=mode, max_vector_distance=2)["chunks"]
        assert notes["pump"] not in {h["document_id"] for h in hits}, mode
    workspace = kb.workspaces.authenticate(api_key)
    loaded = kb.vectors.get_loaded(workspace.id, "all-MiniLM-L6-v2", 384)
    assert len(loaded.store) == len(loaded.lexical.index) == 2


def test_responses_report_timings(client, notes):
    result = retrieve(client, "drain the heating circuit")
    timings = result["timings_ms"]
    assert set(timings) >= {"embed", "dense", "lexical", "fuse", "total"}
    assert all(v >= 0 for v in timings.values())
    assert timings["total"] >= timings["dense"] + timings["lexical"]
    assert result["skipped"] == []


def test_a_tight_budget_skips_optional_steps_and_says_so(client, notes):
    roomy = retrieve(client, "isolation valve", context_chunks=1, num_candidates=500, budget_ms=10_000)
    assert roomy["skipped"] == []
    tight = retrieve(client, "isolation valve", context_chunks=1, num_candidates=500, budget_ms=0.001)
    assert set(tight["skipped"]) == {"large_candidate_pool", "context_chunks"}
    assert tight["chunks"][0]["document_id"] == notes["valve"]  # still answers


def test_context_chunks_merge_neighbours_within_the_length_limit(client):
    sections = [f"# Step {i}\n\nStep {i} of the procedure: " + ("turn the dial slowly and wait. " * 8) +
                f"Marker{i} ends here." for i in range(5)]
    document_id = add_text(client, "\n\n".join(sections), "procedure.md")
    chunks = client.get(f"{KB}/{document_id}/chunks", params={"page_size": 100}).json()["chunks"]
    assert len(chunks) == 5
    plain = retrieve(client, "Marker2", search_mode="lexical", max_retrieved_rag_chunks_count=1, max_vector_distance=2)
    hit = plain["chunks"][0]
    assert "Marker2" in hit["text"] and "Marker1" not in hit["text"]

    wide = retrieve(client, "Marker2", search_mode="lexical", max_retrieved_rag_chunks_count=1,
                    max_vector_distance=2, context_chunks=1)["chunks"][0]
    assert all(f"Marker{i}" in wide["text"] for i in (1, 2, 3)) and "Marker0" not in wide["text"]
    content = client.get(f"{KB}/{document_id}/content").text
    assert content[wide["start"]:wide["end"]].replace("\n\n", " ") .split() == wide["text"].replace("\n\n", " ").split()

    budget = len(hit["text"]) + len(chunks[1]["content"]) + 10  # room for one neighbour only
    narrow = retrieve(client, "Marker2", search_mode="lexical", max_retrieved_rag_chunks_count=1,
                      max_vector_distance=2, context_chunks=1, max_documents_length=budget)["chunks"][0]
    assert len(narrow["text"]) <= budget and "Marker2" in narrow["text"]
    assert ("Marker1" in narrow["text"]) != ("Marker3" in narrow["text"])


def test_a_foreign_language_query_leans_on_lexical(client):
    arabic = "تساعد الألياف الغذائية الموجودة في الخضروات على تنظيم مستوى السكر في الدم"
    other = "يعد المشي اليومي لمدة نصف ساعة مفيدا لصحة القلب والأوعية الدموية"
    ids = [add_text(client, arabic * 2, "fibre"), add_text(client, other * 2, "walking")]
    for doc in ids:
        assert wait_indexed(client, doc)["status"] == "succeeded"
    query = "الألياف والسكر في الدم"
    assert retrieve(client, query, search_mode="lexical", max_vector_distance=2)["chunks"][0]["document_id"] == ids[0]
    assert retrieve(client, query, max_vector_distance=2)["chunks"][0]["document_id"] == ids[0]

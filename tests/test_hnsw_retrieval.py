"""A workspace past the HNSW threshold answers like exact search, filters inside the graph, honours deletes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import CORPUS, LiveServer, add_text, make_kb, retrieve

MODEL = "all-MiniLM-L6-v2"
MSMARCO = CORPUS / "retrieval" / "msmarco-5k"


def passages(count: int) -> list[str]:
    with open(MSMARCO / "corpus.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(count), handle)]
    return [row["text"].replace("\n", " ") for row in rows]


def queries(count: int) -> list[str]:
    with open(MSMARCO / "queries.jsonl", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for _, line in zip(range(count), handle)]


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[dict[str, tuple]]:
    """The same two documents (about 330 chunks) in an exact workspace and in one past the threshold."""
    texts = passages(160)
    halves = ("\n\n".join(texts[:80]), "\n\n".join(texts[80:]))
    running = {}
    for kind, options in {"flat": {"vector_store": "flat"}, "hnsw": {"vector_store": "auto", "hnsw_threshold": 40}}.items():
        kb = make_kb(Path(tmp_path_factory.mktemp(kind)) / "data", chunk_tokens=48, chunk_overlap_tokens=0, **options)
        workspace, key = kb.workspaces.create(kind)
        server = LiveServer(kb).start()
        client = server.client(key)
        ids = [add_text(client, text, f"half {n}") for n, text in enumerate(halves)]
        running[kind] = (kb, workspace, client, ids)
    yield running
    for kb, _, client, _ in running.values():
        client.close()
        kb.close()


def ranked(client, query: str, **params) -> list[tuple[str, str]]:
    hits = retrieve(client, query, search_mode="dense", max_vector_distance=2, max_retrieved_rag_chunks_count=10,
                    max_documents_length=1_000_000, **params)["chunks"]
    return [(hit["document_id"], hit["text"]) for hit in hits]


def test_the_large_workspace_is_searched_with_hnsw(servers):
    kb, workspace, _, _ = servers["hnsw"]
    store = kb.vectors.get_loaded(workspace.id, MODEL, 384).store
    assert store.holds == "hnsw" and len(store) >= 100
    kb, workspace, _, _ = servers["flat"]
    assert type(kb.vectors.get_loaded(workspace.id, MODEL, 384).store).__name__ == "FlatStore"


def test_hnsw_returns_the_same_top_results_as_exact_search(servers):
    _, _, flat, flat_ids = servers["flat"]
    _, _, hnsw, hnsw_ids = servers["hnsw"]
    same_document = dict(zip(flat_ids, hnsw_ids))
    for query in queries(12):
        exact = [(same_document[doc], text) for doc, text in ranked(flat, query)]
        assert ranked(hnsw, query) == exact, query


def test_document_filter_inside_the_graph(servers):
    _, _, flat, flat_ids = servers["flat"]
    _, _, hnsw, hnsw_ids = servers["hnsw"]
    for query in queries(4):
        hits = ranked(hnsw, query, document_ids=[hnsw_ids[1]])
        assert hits and {doc for doc, _ in hits} == {hnsw_ids[1]}
        assert [text for _, text in hits] == [text for _, text in ranked(flat, query, document_ids=[flat_ids[1]])]


def test_deleted_chunks_never_come_back(servers):
    kb, workspace, hnsw, ids = servers["hnsw"]
    before = {doc for query in queries(6) for doc, _ in ranked(hnsw, query)}
    assert ids[0] in before
    stored = len(kb.vectors.get_loaded(workspace.id, MODEL, 384).store)
    hnsw.delete(f"/v1/convai/knowledge-base/{ids[0]}").raise_for_status()
    for query in queries(6):
        assert {doc for doc, _ in ranked(hnsw, query)} <= {ids[1]}
    store = kb.vectors.get_loaded(workspace.id, MODEL, 384).store
    assert store.holds == "hnsw" and 0 < len(store) < stored

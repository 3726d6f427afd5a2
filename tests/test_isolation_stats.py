"""No signal across tenants (issue 11): workspace B's full-text search and retrieval answers, scores
included, are the same whether or not workspace A holds documents with the same words.

BM25 (full-text search and the lexical side of retrieval) scores with corpus statistics; they must
be B's own. Measured through the HTTP API of a real server: B's answers before A adds documents,
while A holds them, and after A deleted them.
"""

from __future__ import annotations

import pytest

from helpers import add_text, retrieve
from kb.storage import Database
from kb.storage.migrate import migrate
from kb.storage.sqlite.fulltext import Fts5FullText, table_name

KB = "/v1/convai/knowledge-base"

B_NOTES = {
    "pump": "The Zorblax pump needs its gasket replaced every 400 operating hours to avoid leaks in the circuit.",
    "boiler": "A condensing boiler recovers heat from flue gases; the Zorblax valve keeps the pressure steady.",
    "garden": "Tomatoes need six hours of sun, regular watering and a stake to climb as they grow.",
}
# Documents of B without the query words: they make those words rare in B, so their BM25 weight
# (which FTS5 floors at almost 0 for words in half the documents or more) is well above 0.
FILLER = [
    "The library opens at nine and closes at five on weekdays.",
    "Bring a passport and two photographs to renew an identity card.",
    "The choir rehearses on Thursday evenings in the parish hall.",
    "Our bakery sells rye bread, croissants and apple tarts.",
    "Trains to the coast leave every hour from platform four.",
]
# A's documents share B's words (and add more of them), so global statistics would move B's scores.
A_NOTES = [
    f"Zorblax pump {i}: the gasket and the valve of the Zorblax boiler were replaced; tomatoes and sun. "
    "Zorblax Zorblax gasket pump leaks." * (1 + i % 3)
    for i in range(10)
]
QUERIES = ["Zorblax gasket", "pump leaks", "tomatoes sun watering", "valve pressure boiler"]
MODES = ("hybrid", "dense", "lexical")


def _b_answers(client, agent_id: str) -> dict:
    """Everything B can observe: search hits with scores, retrieval chunks with distances, every mode."""
    answers: dict = {}
    for query in QUERIES:
        response = client.get(f"{KB}/search", params={"query": query})
        assert response.status_code == 200, response.text
        answers[("search", query)] = [(r["document"]["id"], r["score"]) for r in response.json()["results"]]
        for mode in MODES:
            found = retrieve(client, query, search_mode=mode, max_vector_distance=2)["chunks"]
            answers[(mode, query)] = [(c["chunk_id"], c["vector_distance"]) for c in found]
        response = client.post(f"/v1/convai/agents/{agent_id}/rag/retrieve", json={"query": query})
        assert response.status_code == 200, response.text
        answers[("agent", query)] = [(c["chunk_id"], c["vector_distance"]) for c in response.json()["chunks"]]
    return answers


@pytest.fixture
def workspace_a(server, kb):
    with server.client(kb.workspaces.create("tenant A")[1]) as http:
        yield http


def test_b_sees_the_same_answers_and_scores_whatever_a_holds(client, workspace_a):
    b_ids = {name: add_text(client, text, name) for name, text in B_NOTES.items()}
    for i, text in enumerate(FILLER):
        add_text(client, text, f"filler {i}")
    agent = client.post("/v1/convai/agents/create", json={"conversation_config": {"agent": {"prompt": {
        "knowledge_base": [{"type": "text", "name": n, "id": i} for n, i in b_ids.items()],
        "rag": {"enabled": True, "max_vector_distance": 2.0}}}}})
    assert agent.status_code == 200, agent.text
    agent_id = agent.json()["agent_id"]

    quiet = _b_answers(client, agent_id)
    assert all(quiet[("search", q)] for q in QUERIES) and all(quiet[("lexical", q)] for q in QUERIES)
    assert quiet[("search", "Zorblax gasket")][0][0] == b_ids["pump"]
    assert all(score > 0.1 for q in QUERIES for _, score in quiet[("search", q)])  # weights that can move

    a_ids = [add_text(workspace_a, text, f"a{i}") for i, text in enumerate(A_NOTES)]
    # A's own search sees its documents and only those: the words are there to be counted.
    a_hits = workspace_a.get(f"{KB}/search", params={"query": "Zorblax gasket", "page_size": 100}).json()["results"]
    assert {r["document"]["id"] for r in a_hits} == set(a_ids)
    assert _b_answers(client, agent_id) == quiet

    for document_id in a_ids:
        assert workspace_a.delete(f"{KB}/{document_id}").status_code == 200
    assert workspace_a.get(f"{KB}/search", params={"query": "Zorblax"}).json()["results"] == []
    assert _b_answers(client, agent_id) == quiet


def test_a_query_of_one_workspace_is_not_a_cache_hit_for_another(kb, client, workspace_a):
    """The query-embedding cache is per workspace: a hit shows in `timings_ms.embed` (near 0), so a
    shared cache would tell B that A asked the same question recently."""
    add_text(client, B_NOTES["pump"], "pump")
    add_text(workspace_a, A_NOTES[0], "a0")
    question = "how often does the Zorblax gasket need replacing"

    def scopes() -> set[str]:
        return {scope for scope, _model, text in list(kb.retrieval.cache._items) if text == question}

    retrieve(workspace_a, question)
    assert len(scopes()) == 1
    retrieve(workspace_a, question)
    assert len(scopes()) == 1  # A's repeat is A's hit
    retrieve(client, question)
    assert len(scopes()) == 2  # B embedded it anew, under its own key


def _fts_rows(url: str, revision: str | None, rows: list[tuple[str, str, str]]) -> Database:
    """A database at `revision` (None: the newest) holding full-text rows (workspace, document, text)."""
    db = Database(url)
    migrate(db, revision or "head")
    with db.write() as tx:
        for workspace_id, document_id, content in rows:
            if revision is None:
                Fts5FullText().add(tx, workspace_id, document_id, content)
            else:  # revision 0003's single table
                tx.exec_driver_sql("INSERT INTO document_text (content, document_id, workspace_id) VALUES (?, ?, ?)",
                                   (content, document_id, workspace_id))
    return db


def _search(db: Database, workspace_id: str, terms: list[str]) -> list[tuple[str, float, str]]:
    with db.read() as tx:
        return Fts5FullText().search(tx, workspace_id, terms, limit=100)


def test_revision_0005_moves_each_workspace_text_to_its_own_table(tmp_path):
    b_rows = [("ws_b", f"b{i}", text) for i, text in enumerate([*B_NOTES.values(), *FILLER])]
    a_rows = [("ws_a", f"a{i}", text) for i, text in enumerate(A_NOTES)]
    upgraded = _fts_rows(f"sqlite:///{tmp_path / 'old.sqlite3'}", "0003_rag_index_names", a_rows + b_rows)
    with upgraded.read() as tx:
        assert tx.exec_driver_sql("SELECT count(*) FROM document_text").scalar() == len(a_rows + b_rows)
    migrate(upgraded)
    alone = _fts_rows(f"sqlite:///{tmp_path / 'b_alone.sqlite3'}", None, b_rows)
    for query in QUERIES:
        terms = query.lower().split()
        assert _search(upgraded, "ws_b", terms) == _search(alone, "ws_b", terms) != []
    assert {d for d, _, _ in _search(upgraded, "ws_a", ["zorblax"])} == {d for _, d, _ in a_rows}
    assert _search(upgraded, "ws_nobody", ["zorblax"]) == []
    with upgraded.read() as tx:
        tables = {row[0] for row in tx.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "document_text" not in tables and {table_name("ws_a"), table_name("ws_b")} <= tables

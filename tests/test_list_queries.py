"""List pages cost a constant number of SQL statements, whatever the page size (no N+1)."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from helpers import LiveServer, make_kb

KB = "/v1/convai/knowledge-base"
TEXT = "Notes about pumps, valves and gaskets of the {n}th machine in the workshop."


@contextmanager
def counting(kb):
    """Statements sent to the database by any of the knowledge base's engines."""
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            statements.append(statement)

    engines = {id(e): e for e in (kb.db.reader, kb.db.writer)}.values()
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)


def test_document_list_and_search_pages_cost_the_same_queries_at_30_and_100_items(tmp_path):
    kb = make_kb(tmp_path / "data", workers=0)
    workspace, key = kb.workspaces.create("pages")
    outer = kb.folders.create(workspace, "outer")
    inner = kb.folders.create(workspace, "inner", outer.id)
    docs = [kb.documents.add_text(workspace, TEXT.format(n=n), f"note {n}", [None, outer.id, inner.id][n % 3])
            for n in range(110)]
    kb.folders.create(workspace, "empty", inner.id)
    kb.agents.create(workspace, {"name": "helper", "conversation_config": {"agent": {"prompt": {"knowledge_base": [
        {"type": "text", "name": d.name, "id": d.id} for d in docs[::7]
    ]}}}})
    server = LiveServer(kb).start()
    try:
        counts = {}
        with server.client(key) as client:
            client.get(KB, params={"page_size": 1})  # authentication and first-use paths warmed up
            for page_size in (30, 100):
                with counting(kb) as statements:
                    listed = client.get(KB, params={"page_size": page_size, "folders_first": True})
                    found = client.get(f"{KB}/search", params={"query": "gaskets", "page_size": page_size})
                assert listed.status_code == 200 and found.status_code == 200
                assert len(listed.json()["documents"]) == page_size and len(found.json()["results"]) == page_size
                counts[page_size] = len(statements)
            page = client.get(KB, params={"page_size": 100, "folders_first": True}).json()["documents"]
    finally:
        server.stop()
    assert counts[30] == counts[100], counts
    folders = {d["name"]: d for d in page if d["type"] == "folder"}
    assert (folders["outer"]["children_count"], folders["outer"]["document_count"]) == (38, 73)
    assert [s["name"] for s in folders["empty"]["folder_path"]] == ["outer", "inner"]
    used = [d for d in page if d["dependent_agents"]]
    assert used and all(d["dependent_agents"][0]["name"] == "helper" for d in used)

"""Scoped retrieval reads its allowed chunk keys in one SQL statement, from indexes, and an agent's
knowledge base is searched as a folder scope without expanding its folders into document ids; the
documents allowed are exactly those of the old resolution (`Agents._resolve`)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import event, insert

from helpers import ON_POSTGRES, make_kb
from kb.errors import NotFound
from kb.records import DocumentScope, Selection
from kb.services.agent_config import parse_locators
from kb.storage.schema import chunks, documents, rag_indexes


@pytest.fixture
def tree(tmp_path):
    """A workspace: folder/sub/deep with documents at each level, documents at the root, an empty
    folder; another workspace with documents. Rows are inserted directly (one chunk each, no model run)."""
    kb = make_kb(tmp_path / "data", workers=0)
    ws, _ = kb.workspaces.create("scoped")
    other, _ = kb.workspaces.create("other")
    folder = kb.folders.create(ws, "folder")
    sub = kb.folders.create(ws, "sub", folder.id)
    deep = kb.folders.create(ws, "deep", sub.id)
    empty = kb.folders.create(ws, "empty", folder.id)
    model = kb.models.resolve(ws.default_model).served
    now = time.time()
    keys: dict[str, list[int]] = {}
    places = {"f": folder.id, "s": sub.id, "d": deep.id, "r": None}

    def add(workspace_id: str, doc_id: str, parent: str | None, models: tuple[str, ...] = (model,)) -> None:
        with kb.db.write() as tx:
            tx.execute(insert(documents).values(
                id=doc_id, workspace_id=workspace_id, name=f"name {doc_id}", type="text", format="txt",
                parent_folder_id=parent, size_bytes=10, char_count=10, content_hash="h", metadata_json="{}",
                created_at=now, updated_at=now))
            for m in models:
                tx.execute(insert(rag_indexes).values(id=f"ix-{doc_id}-{m}", workspace_id=workspace_id, document_id=doc_id,
                                                      model=m, status="succeeded", created_at=now, updated_at=now,
                                                      requested_names=[]))
                for n in range(2):
                    key = tx.execute(insert(chunks).values(
                        id=f"c-{doc_id}-{m}-{n}", workspace_id=workspace_id, document_id=doc_id,
                        rag_index_id=f"ix-{doc_id}-{m}", model=m, ordinal=n, text="t", start=0, end=1, token_count=1,
                        text_hash=f"{doc_id}{n}", embedding=b"\0" * 16)).inserted_primary_key[0]
                    if m == model:
                        keys.setdefault(doc_id, []).append(key)

    for prefix, parent in places.items():
        for n in range(3):
            add(ws.id, f"{prefix}{n}", parent, (model, "other-model"))
    for n in range(3):
        add(other.id, f"o{n}", None)
    yield kb, ws, other, model, keys, {"folder": folder, "sub": sub, "deep": deep, "empty": empty}
    kb.close()


def statements_of(kb, run):
    """(result, [(statement, its query plan)]) of the SELECTs `run` sends. The plans are SQLite's: on
    PostgreSQL (whose planner reads tables this small whole, whatever the indexes) they are left
    empty, and the statements and their results are checked without them."""
    seen: list[tuple[str, str]] = []

    def explain(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            if ON_POSTGRES:
                seen.append((statement, ""))
                return
            rows = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            seen.append((statement, " | ".join(str(r[-1]) for r in rows)))

    event.listen(kb.db.reader, "before_cursor_execute", explain)
    try:
        result = run()
    finally:
        event.remove(kb.db.reader, "before_cursor_execute", explain)
    return result, seen


def below(keys, *prefixes):
    return sorted(k for doc_id, ks in keys.items() if doc_id[0] in prefixes for k in ks)


def test_folder_scope_is_one_statement_read_from_indexes(tree):
    kb, ws, other, model, keys, folders = tree
    allowed, seen = statements_of(kb, lambda: kb.retrieval._allowed_keys(ws.id, model, None, None, [folders["folder"].id]))
    assert sorted(allowed.tolist()) == below(keys, "f", "s", "d")
    assert len(seen) == 2, seen  # the folders checked (types_of), then the keys
    check, plan = seen[0][1], seen[1][1]
    if not ON_POSTGRES:
        assert "USING INDEX sqlite_autoindex_documents_1 (id=?)" in check, check  # by id, not the workspace's entries
        assert "COVERING INDEX ix_chunks_document_model (document_id=? AND model=?)" in plan, plan
        assert "ix_documents_workspace_parent (workspace_id=? AND parent_folder_id=?)" in plan, plan
        assert "SCAN documents" not in plan and "SCAN chunks" not in plan and "ix_chunks_workspace_model" not in plan, plan

    sub = kb.retrieval._allowed_keys(ws.id, model, None, None, [folders["sub"].id, folders["empty"].id])
    assert sorted(sub.tolist()) == below(keys, "s", "d")
    with pytest.raises(NotFound):  # another workspace's rows are never a scope
        kb.retrieval._allowed_keys(other.id, model, None, None, [folders["folder"].id])
    both = kb.retrieval._allowed_keys(ws.id, model, ["f0", "s1", "r2", folders["deep"].id], None, [folders["sub"].id])
    assert sorted(both.tolist()) == sorted(keys["s1"])


def test_document_ids_scope_looks_documents_up_by_id(tree):
    kb, ws, other, model, keys, folders = tree
    allowed, seen = statements_of(kb, lambda: kb.retrieval._allowed_keys(ws.id, model, ["r1", "f2"], None, None))
    assert sorted(allowed.tolist()) == sorted(keys["r1"] + keys["f2"])
    assert len(seen) == 2, seen
    for _, plan in seen if not ON_POSTGRES else ():
        assert "sqlite_autoindex_documents_1 (id=?)" in plan and "(workspace_id=?)" not in plan, plan
    with kb.db.read() as tx:  # ids of another workspace select nothing, whatever the caller passes
        assert kb.storage.chunks.keys_in_scope(tx, ws.id, model, DocumentScope((Selection(("o0", "o1")),))) == []
        assert kb.storage.chunks.keys_in_scope(tx, other.id, model, DocumentScope((Selection((), (folders["folder"].id,)),))) == []


LOCATORS = {
    "folder": [("folder", "folder", "auto")],
    "prompt inside, after": [("folder", "folder", "auto"), ("f1", "text", "prompt"), ("sub", "folder", "prompt")],
    "prompt inside, before": [("s1", "text", "prompt"), ("folder", "folder", "auto"), ("d0", "text", "prompt")],
    "prompt folder first": [("sub", "folder", "prompt"), ("folder", "folder", "auto"), ("r0", "text", "auto")],
    "auto deep after prompt": [("r1", "text", "prompt"), ("deep", "folder", "auto"), ("sub", "folder", "prompt")],
    "documents only": [("r0", "text", "auto"), ("f1", "text", "auto"), ("r1", "text", "prompt"), ("gone", "text", "auto")],
    "folder type naming a document": [("r2", "folder", "auto"), ("empty", "folder", "auto")],
    "prompt only": [("sub", "folder", "prompt")],
    "nothing left": [("gone", "text", "auto"), ("empty", "folder", "auto")],
}


@pytest.mark.parametrize("name", list(LOCATORS))
def test_agent_scope_is_what_resolve_gives(tree, name):
    kb, ws, other, model, keys, folders = tree
    config = {"agent": {"prompt": {"knowledge_base": [
        {"id": folders[i].id if i in folders else i, "type": t, "name": i, "usage_mode": m} for i, t, m in LOCATORS[name]]}}}
    locators = parse_locators(config)
    with kb.db.read() as tx:
        resolved = kb.agents._resolve(tx, ws.id, locators)
    def scope():
        with kb.db.read() as tx:
            return kb.agents._retrieval_scope(tx, ws.id, locators)

    (prompt, auto, excluded), seen = statements_of(kb, scope)
    assert prompt == {d: n for d, (n, mode) in resolved.items() if mode == "prompt"}
    assert list(prompt) == [d for d, (_, mode) in resolved.items() if mode == "prompt"]  # the same order
    auto_ids = [d for d, (_, mode) in resolved.items() if mode == "auto"]
    if not auto_ids:
        assert auto is None
        return
    allowed = kb.retrieval._allowed_keys(ws.id, model, None, None, None, auto, excluded)
    assert sorted(allowed.tolist()) == sorted(k for d in auto_ids for k in keys[d])
    if all(mode == "auto" for _, _, mode in LOCATORS[name]):
        assert len(seen) == 1, seen  # whether any document is left: the folders are never expanded


def test_agent_scope_and_retrieval_read_no_document_list(tree):
    """An agent whose knowledge base is a folder: two statements a turn, whatever the folder holds."""
    kb, ws, other, model, keys, folders = tree
    locators = parse_locators({"agent": {"prompt": {"knowledge_base": [
        {"id": folders["folder"].id, "type": "folder", "name": "folder"}]}}})

    def turn():
        with kb.db.read() as tx:
            _, auto, excluded = kb.agents._retrieval_scope(tx, ws.id, locators)
        return kb.retrieval._allowed_keys(ws.id, model, None, None, None, auto, excluded)

    allowed, seen = statements_of(kb, turn)
    assert sorted(allowed.tolist()) == below(keys, "f", "s", "d")
    assert len(seen) == 2, seen
    if not ON_POSTGRES:
        assert "COVERING INDEX ix_chunks_document_model" in seen[1][1], seen[1][1]

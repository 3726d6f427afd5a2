"""Workspace limits with the real tier table (kb/tiers.toml): every edge, tier changes, races, reuse."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import LiveServer, cli_env, make_kb, needs_sqlite, wait_indexed
from kb.cli import main
from kb.settings import DEFAULT_TIERS_FILE

KB = "/v1/convai/knowledge-base"


def sized_text(size: int, topic: str = "lighthouses") -> str:
    """Readable ASCII text of exactly `size` bytes."""
    sentence = f"This passage about {topic} is here to fill space with real words. "
    return (sentence * (size // len(sentence) + 1))[:size]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple]:
    kb = make_kb(tmp_path / "data", tiers_file=DEFAULT_TIERS_FILE,
                 models={"all-MiniLM-L6-v2": "bundled", "minilm-copy": "bundled"})
    server = LiveServer(kb).start()
    yield kb, server
    server.stop()


def workspace_client(kb, server, **limits):
    workspace, key = kb.workspaces.create("quota", **limits)
    return workspace, server.client(key)


def add(client, text: str, name: str) -> str:
    response = client.post(f"{KB}/text", json={"text": text, "name": name})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def index_status(client, document_id: str, model: str | None = None) -> dict:
    return wait_indexed(client, document_id, model=model)


def overview(client) -> dict:
    return client.get(f"{KB}/rag-index").json()


def test_free_tier_defaults_come_from_the_tier_file(live):
    kb, server = live
    _, client = workspace_client(kb, server)
    with client:
        assert overview(client) == {"total_used_bytes": 0, "total_max_bytes": 1_000_000, "models": []}


def test_rag_limit_exactly_at_and_one_byte_over(live):
    kb, server = live
    _, client = workspace_client(kb, server, rag_max_bytes=3000)
    with client:
        first = add(client, sized_text(1500, "tides"), "first")
        second = add(client, sized_text(1500, "comets"), "second")  # exactly at the limit
        assert index_status(client, first)["status"] == "succeeded"
        assert index_status(client, second)["status"] == "succeeded"
        assert overview(client)["total_used_bytes"] == 3000

        third = add(client, sized_text(600, "volcanoes"), "third")
        refused = index_status(client, third)
        assert refused["status"] == "rag_limit_exceeded"
        assert "3,600" in refused["error"] and "3,000" in refused["error"]
        assert overview(client)["total_used_bytes"] == 3000  # nothing partially indexed or counted
        assert client.get(f"{KB}/{third}/chunks").json()["chunks"] == []
        hits = client.post(f"{KB}/rag/retrieve", json={"query": "volcanoes", "max_vector_distance": 2}).json()["chunks"]
        assert third not in {h["document_id"] for h in hits}
        # The document itself is kept and readable (prompt use).
        assert "volcanoes" in client.get(f"{KB}/{third}/content").text


def test_one_byte_over_is_refused(live):
    kb, server = live
    _, client = workspace_client(kb, server, rag_max_bytes=3000)
    with client:
        assert index_status(client, add(client, sized_text(1500), "a"))["status"] == "succeeded"
        assert index_status(client, add(client, sized_text(1501), "b"))["status"] == "rag_limit_exceeded"


def test_deleting_frees_usage_at_once_and_a_refused_index_can_be_requested_again(live):
    kb, server = live
    _, client = workspace_client(kb, server, rag_max_bytes=2000)
    with client:
        kept = add(client, sized_text(1200, "tides"), "kept")
        waiting = add(client, sized_text(1000, "comets"), "waiting")
        assert index_status(client, waiting)["status"] == "rag_limit_exceeded"

        [index] = client.get(f"{KB}/{kept}/rag-index").json()["indexes"]
        assert client.delete(f"{KB}/{kept}/rag-index/{index['id']}").status_code == 200
        assert overview(client)["total_used_bytes"] == 0

        again = client.post(f"{KB}/{waiting}/rag-index", json={"model": "all-MiniLM-L6-v2"})
        assert again.json()["status"] in ("created", "processing", "succeeded")
        assert index_status(client, waiting)["status"] == "succeeded"
        assert overview(client)["total_used_bytes"] == 1000
        client.delete(f"{KB}/{waiting}")
        assert overview(client) == {"total_used_bytes": 0, "total_max_bytes": 2000, "models": []}


def test_small_documents_are_not_rag_indexed_but_stay_usable(live):
    kb, server = live
    _, client = workspace_client(kb, server)
    with client:
        small = add(client, sized_text(499), "small")
        enough = add(client, sized_text(500), "enough")
        too_small = index_status(client, small)
        assert too_small["status"] == "document_too_small" and "500" in too_small["error"]
        assert index_status(client, enough)["status"] == "succeeded"
        assert len(client.get(f"{KB}/{small}/content").text) == 499
        assert overview(client)["total_used_bytes"] == 500


def test_a_document_indexed_with_two_models_counts_twice(live):
    kb, server = live
    _, client = workspace_client(kb, server)
    with client:
        doc = add(client, sized_text(800), "twice")
        assert index_status(client, doc)["status"] == "succeeded"
        client.post(f"{KB}/{doc}/rag-index", json={"model": "minilm-copy"})
        assert index_status(client, doc, model="minilm-copy")["status"] == "succeeded"
        assert overview(client)["total_used_bytes"] == 1600
        assert sorted((m["model"], m["used_bytes"]) for m in overview(client)["models"]) == [
            ("all-MiniLM-L6-v2", 800), ("minilm-copy", 800)]


def test_storage_limits_refuse_uploads_and_say_which_limit(live):
    kb, server = live
    _, client = workspace_client(kb, server, kb_max_chars=1000, kb_max_bytes=5000)
    with client:
        add(client, sized_text(800), "first")
        refused = client.post(f"{KB}/text", json={"text": sized_text(300), "name": "second"})
        assert refused.status_code == 413
        message = refused.json()["detail"]["message"]
        assert "character limit" in message and "1,000" in message and "800" in message
        files = client.post(f"{KB}/file", files={"file": ("big.txt", b"x " * 3000, "text/plain")})
        assert files.status_code == 413 and "storage limit" in files.json()["detail"]["message"]
        assert [d["name"] for d in client.get(KB).json()["documents"]] == ["first"]


def test_concurrent_uploads_racing_for_the_last_bytes_never_both_succeed(live):
    kb, server = live
    for attempt in range(4):
        _, client = workspace_client(kb, server, kb_max_bytes=10_000)
        statuses: list[int] = []
        barrier = threading.Barrier(2)

        def upload(i: int) -> None:
            with server.client(client.headers["xi-api-key"]) as own:
                barrier.wait()
                statuses.append(own.post(f"{KB}/text", json={"text": sized_text(6000), "name": f"racer {i}"}).status_code)

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert sorted(statuses) == [200, 413], (attempt, statuses)
        with client:
            assert len(client.get(KB).json()["documents"]) == 1


def test_concurrent_indexes_racing_for_the_rag_limit(live):
    kb, server = live
    _, client = workspace_client(kb, server, rag_max_bytes=10_000)
    barrier = threading.Barrier(3)
    ids: list[str] = []

    def upload(i: int) -> None:
        with server.client(client.headers["xi-api-key"]) as own:
            barrier.wait()
            ids.append(add(own, sized_text(4000, f"topic {i}"), f"racer {i}"))

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    with client:
        statuses = sorted(index_status(client, d)["status"] for d in ids)
        assert statuses == ["rag_limit_exceeded", "succeeded", "succeeded"]
        assert overview(client)["total_used_bytes"] == 8000


def test_tier_change_moves_the_limit(live, corpus):
    kb, server = live
    workspace, client = workspace_client(kb, server)
    geotopo = (corpus / "pdf" / "GeoTopo-komprimiert.pdf").read_bytes()  # 1.8 MB: over free (1 MB)
    with client:
        doc = client.post(f"{KB}/file", files={"file": ("GeoTopo.pdf", geotopo, "application/pdf")}).json()["id"]
        assert index_status(client, doc)["status"] == "rag_limit_exceeded"

        runner = CliRunner()
        data_dir = str(kb.settings.storage.data_dir)
        shown = json.loads(runner.invoke(main, ["workspace", "show", workspace.id, "--data-dir", data_dir],
                                         env=cli_env(kb, KB_TIERS_FILE=str(DEFAULT_TIERS_FILE))).stdout)
        assert shown["tier"] == "free" and shown["limits"]["rag_max_bytes"] == 1_000_000
        assert shown["usage"]["kb_bytes"] == len(geotopo) and shown["usage"]["rag_bytes"] == 0

        result = runner.invoke(main, ["workspace", "set", workspace.id, "--tier", "starter", "--data-dir", data_dir],
                               env=cli_env(kb, KB_TIERS_FILE=str(DEFAULT_TIERS_FILE)))
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["limits"]["rag_max_bytes"] == 2_000_000
        assert overview(client)["total_max_bytes"] == 2_000_000

        again = client.post(f"{KB}/{doc}/rag-index", json={"model": "all-MiniLM-L6-v2"}).json()
        assert again["status"] == "created"
        assert overview(client)["total_used_bytes"] == len(geotopo)  # reserved from the start

        override = runner.invoke(main, ["workspace", "set", workspace.id, "--rag-max-bytes", "5000000",
                                        "--min-rag-document-bytes", "0", "--data-dir", data_dir],
                                 env=cli_env(kb, KB_TIERS_FILE=str(DEFAULT_TIERS_FILE)))
        limits = json.loads(override.stdout)["limits"]
        assert (limits["rag_max_bytes"], limits["min_rag_document_bytes"]) == (5_000_000, 0)


def test_identical_bytes_and_unchanged_text_reuse_embeddings(live):
    kb, server = live
    _, client = workspace_client(kb, server)
    sections = [f"# Part {i}\n\n" + sized_text(1100, topic) for i, topic in
                enumerate(["glaciers", "deserts", "coral reefs", "rainforests"])]
    text = "\n\n".join(sections)
    with client:
        first = add(client, text, "guide.md")
        original = index_status(client, first)
        assert original["chunks_embedded"] >= 4 and original["chunks_reused"] == 0

        copy = add(client, text, "copy of guide.md")  # identical bytes: nothing embedded
        duplicate = index_status(client, copy)
        assert duplicate["chunks_embedded"] == 0 and duplicate["chunks_reused"] == original["chunks_embedded"]

        sections[2] = "# Part 2\n\n" + sized_text(1100, "volcanic islands")
        edited = client.patch(f"{KB}/{first}", json={"content": "\n\n".join(sections)})
        assert edited.status_code == 200
        changed = index_status(client, first)
        assert changed["status"] == "succeeded"
        assert 1 <= changed["chunks_embedded"] < original["chunks_embedded"] / 2
        assert changed["chunks_embedded"] + changed["chunks_reused"] >= 4

        same = client.patch(f"{KB}/{first}", json={"content": "\n\n".join(sections)})  # unchanged
        assert same.status_code == 200
        assert client.get(f"{KB}/{first}/rag-index").json()["indexes"][0] == changed


@needs_sqlite("reads SQLite's EXPLAIN QUERY PLAN (PostgreSQL's planner reads tables this small whole, whatever the indexes)")
def test_storage_sums_read_covering_indexes_only(tmp_path):
    """Every upload sums the workspace's usage: SQLite reads index entries only, never the table
    rows (whose metadata and text columns make them large)."""
    from sqlalchemy import event


    kb = make_kb(tmp_path / "data")
    try:
        workspace, _ = kb.workspaces.create("plans")
        kb.documents.add_text(workspace, sized_text(300), "one")
        with kb.db.read() as conn:
            plans: list[str] = []

            def explain(conn_, cursor, statement, parameters, context, executemany):
                if statement.lstrip().upper().startswith("SELECT") and "EXPLAIN" not in statement:
                    rows = cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
                    plans.append(" | ".join(str(r[-1]) for r in rows))

            event.listen(conn, "before_cursor_execute", explain)
            try:
                assert kb.quotas.usage(conn, workspace.id).documents == 1
            finally:
                event.remove(conn, "before_cursor_execute", explain)
    finally:
        kb.close()
    assert len(plans) == 3, plans
    assert "COVERING INDEX ix_documents_workspace_usage" in plans[0], plans[0]
    assert "COVERING INDEX ix_agents_workspace_usage" in plans[1], plans[1]
    assert "COVERING INDEX ix_rag_indexes_workspace_model" in plans[2], plans[2]

"""One schema with migrations: a data directory written by the code before migrations existed is
upgraded in place and serves the same documents, chunks, agents and retrievals; the migrations
produce exactly `kb/storage/schema.py`; concurrent starts migrate once.

The previous code is the real one: `git archive` of main before this change, run with this venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from index.retrieval import RetrievalLimits

from helpers import CORPUS, MODEL_CACHE, PERMISSIVE_TIERS, REPO, database_url, make_kb, needs_sqlite
from kb.storage import Database, open_database
from kb.storage.migrate import current_revision, head_revision, migrate
from kb.storage.schema import metadata

BEFORE_MIGRATIONS = "d56a340"  # main just before migrations existed
PDF = CORPUS / "pdf" / "google-doc-document.pdf"
QUERIES = ["Errors should never pass silently", "when does the shop open on saturday", "lava and ash"]

# Runs in the previous code's tree: fills a data dir and prints what it serves, as JSON.
OLD_WRITER = r"""
import json, sys
from pathlib import Path
from kb.config import load_settings
from kb.service import KnowledgeBase
from index.retrieval import RetrievalLimits

wide = RetrievalLimits(max_vector_distance=2.0)
data_dir, tiers, models, pdf = (Path(a) for a in sys.argv[1:5])
queries = json.loads(sys.argv[5])
kb = KnowledgeBase(load_settings(environ={}, data_dir=data_dir, tiers_file=tiers, model_cache_dir=models))
ws, key = kb.create_workspace("before")
outer = kb.create_folder(ws, "Shop")
inner = kb.create_folder(ws, "Hours", outer.id)
hours = kb.add_text(ws, "Our shop in Lyon is open Monday to Friday from 9am to 6pm, and on Saturday mornings until noon. " * 4, "Lyon hours", inner.id)
volcano = kb.add_text(ws, "A volcano erupts when magma rises through the crust and escapes as lava and ash. " * 6, "volcano")
zen = kb.add_file(ws, pdf.read_bytes(), pdf.name, "application/pdf")
agent = kb.agents.create(ws, {"name": "Shop assistant", "conversation_config": {"agent": {"prompt": {
    "prompt": "Help", "knowledge_base": [{"type": "folder", "name": "Shop", "id": outer.id, "usage_mode": "auto"},
                                         {"type": "file", "name": "Zen", "id": zen.id, "usage_mode": "prompt"}],
    "rag": {"enabled": True}}}}})
while kb.run_queued_jobs():
    pass
kb.vectors.flush()
from sqlalchemy import select
from kb.db import chunks
with kb.db.read() as conn:
    stored = [list(r) for r in conn.execute(select(chunks.c.id, chunks.c.document_id, chunks.c.text, chunks.c.start,
                                                   chunks.c.end).order_by(chunks.c.key))]
out = {
    "api_key": key, "workspace_id": ws.id, "agent_id": agent.id,
    "documents": sorted([d.id, d.name, d.type, d.parent_folder_id] for d in kb.list_documents(ws).documents),
    "chunks": stored,
    "retrievals": {q: [[c.chunk_id, c.vector_distance] for c in kb.retrieve(ws, q, limits=wide).chunks] for q in queries},
    "search": [[d.id, h.score] for d, h in kb.search(ws, "shop lava")[0]],
    "agent_chunks": [[c.chunk_id, c.vector_distance] for c in kb.agents.retrieve(ws, agent.id, queries[1]).chunks],
    "indexes": {d: [i.status for i in kb.list_rag_indexes(ws, d)] for d in (hours.id, volcano.id, zen.id)},
}
kb.close()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def old_tree(tmp_path_factory) -> Path:
    """The code as it was before migrations existed."""
    tree = tmp_path_factory.mktemp("before-migrations")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_MIGRATIONS], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def run_old(old_tree: Path, code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=old_tree, env=_env(old_tree), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _env(tree: Path) -> dict:
    import os

    return {**os.environ, "PYTHONPATH": str(tree)}


@needs_sqlite("the code before migrations knew SQLite only; its data dir is a SQLite file")
def test_data_dir_of_the_previous_code_is_upgraded_in_place_and_serves_the_same(old_tree, tmp_path):
    data_dir = tmp_path / "data"
    before = json.loads(run_old(old_tree, OLD_WRITER, str(data_dir), str(PERMISSIVE_TIERS), str(MODEL_CACHE), str(PDF),
                                json.dumps(QUERIES)).splitlines()[-1])
    assert all(statuses == ["succeeded"] for statuses in before["indexes"].values()), before["indexes"]
    assert all(before["retrievals"].values()) and before["agent_chunks"] and before["search"]
    assert current_revision(Database(f"sqlite:///{data_dir / 'kb.sqlite3'}")) is None  # no alembic_version yet

    kb = make_kb(data_dir)
    try:
        assert current_revision(kb.db) == head_revision()
        ws = kb.workspaces.authenticate(before["api_key"])
        docs = sorted([d.id, d.name, d.type, d.parent_folder_id] for d in kb.documents.list(ws).documents)
        assert docs == before["documents"]
        after_chunks = [
            [c.id, c.document_id, c.text, c.start, c.end]
            for doc_id in sorted({c[1] for c in before["chunks"]})
            for c in kb.chunks.page(ws, doc_id, None, page_size=1000)[0]
        ]
        assert sorted(after_chunks) == sorted(before["chunks"])
        for query, expected in before["retrievals"].items():
            found = kb.retrieval.retrieve(ws, query, limits=RetrievalLimits(max_vector_distance=2.0)).chunks
            assert [[c.chunk_id, c.vector_distance] for c in found] == expected
        assert [[d.id, h.score] for d, h in kb.search.search(ws, "shop lava")[0]] == before["search"]
        agent_chunks = kb.agents.retrieve(ws, before["agent_id"], QUERIES[1]).chunks
        assert [[c.chunk_id, c.vector_distance] for c in agent_chunks] == before["agent_chunks"]

        # ...and it keeps working as a current data dir: a new document is queued, indexed and found.
        added = kb.documents.add_text(ws, "The violin has four strings tuned in fifths and is played with a bow. " * 8, "violin")
        assert kb.run_queued_jobs() == 1
        assert kb.rag_indexes.list(ws, added.id)[0].status == "succeeded"
        assert kb.retrieval.retrieve(ws, "strings and a bow").chunks[0].document_id == added.id
    finally:
        kb.close()


OLD_SCHEMA = r"""
import sys
from kb.db import Database
import kb.agents
from kb.fulltext import FullTextIndex
db = Database(sys.argv[1])
kb.agents.metadata.create_all(db.writer)
FullTextIndex(db)
db.dispose()
"""


def _schema(url: str) -> dict[str, str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE '%alembic_version%'").fetchall()
    engine.dispose()
    return {name: " ".join((sql or "").split()) for name, sql in rows}


@needs_sqlite("revision 0001 is compared with the SQLite schema the code before migrations wrote")
def test_revision_0001_is_exactly_the_schema_of_the_previous_code(old_tree, tmp_path):
    old_url, new_url = f"sqlite:///{tmp_path / 'old.sqlite3'}", f"sqlite:///{tmp_path / 'new.sqlite3'}"
    run_old(old_tree, OLD_SCHEMA, old_url)
    migrate(Database(new_url), "0001")
    assert _schema(new_url) == _schema(old_url)


def test_migrations_produce_the_schema_module(tmp_path):
    db = open_database(database_url(tmp_path))
    with db.read() as conn:
        def ignored(name: str) -> bool:
            return name == "alembic_version" or db.dialect.is_internal(name)

        context = MigrationContext.configure(
            conn, opts={"include_object": lambda obj, name, kind, *_: not (kind == "table" and ignored(name))}
        )
        assert compare_metadata(context, metadata) == []
        tables = set(inspect(conn).get_table_names())
        assert {t for t in tables if not ignored(t)} == set(metadata.tables)
        assert "document_text" not in tables  # revision 0005: one full-text table per workspace


STARTER = r"""
import sys
from kb.storage import open_database
from kb.storage.migrate import current_revision
print(current_revision(open_database(sys.argv[1])))
"""


def test_processes_starting_at_once_migrate_once(tmp_path):
    url = database_url(tmp_path)  # PostgreSQL: the advisory migration lock
    starters = [subprocess.Popen([sys.executable, "-c", STARTER, url], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in starters]
    assert [p.returncode for p in starters] == [0] * 4, [err for _, err in outputs]
    assert {out.strip() for out, _ in outputs} == {head_revision()}

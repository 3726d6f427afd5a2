"""Full-text search per workspace: SQLite's one FTS5 table `document_text` becomes one table per
workspace (`workspace_text_<digest>`), so BM25 statistics never mix tenants (issue 11).

Every row moves to its workspace's table; the old table is dropped. The table naming is frozen
here on purpose (it must stay what `kb/storage/sqlite/fulltext.py` computes).

Revision ID: 0005_fulltext_per_workspace
Revises: 0003_rag_index_names
Create Date: 2026-12-03
"""

from __future__ import annotations

import hashlib

from alembic import op

revision = "0005_fulltext_per_workspace"
down_revision = "0003_rag_index_names"
branch_labels = None
depends_on = None

OLD = "document_text"
PREFIX = "workspace_text_"
TOKENIZER = "unicode61 remove_diacritics 2"


def _table(workspace_id: str) -> str:
    return PREFIX + hashlib.blake2b(workspace_id.encode(), digest_size=16).hexdigest()


def _tables(bind) -> set[str]:
    return {row[0] for row in bind.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or OLD not in _tables(bind):
        return
    workspaces = [row[0] for row in bind.exec_driver_sql(f"SELECT DISTINCT workspace_id FROM {OLD}")]
    for workspace_id in workspaces:
        table = _table(workspace_id)
        bind.exec_driver_sql(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5(content, document_id UNINDEXED, tokenize = '{TOKENIZER}')"
        )
        bind.exec_driver_sql(
            f"INSERT INTO {table} (content, document_id) SELECT content, document_id FROM {OLD} WHERE workspace_id = ?",
            (workspace_id,),
        )
    bind.exec_driver_sql(f"DROP TABLE {OLD}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    bind.exec_driver_sql(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {OLD} USING fts5("
        f"content, document_id UNINDEXED, workspace_id UNINDEXED, tokenize = '{TOKENIZER}')"
    )
    for (workspace_id,) in bind.exec_driver_sql("SELECT id FROM workspaces").fetchall():
        table = _table(workspace_id)
        if table in _tables(bind):
            bind.exec_driver_sql(
                f"INSERT INTO {OLD} (content, document_id, workspace_id) SELECT content, document_id, ? FROM {table}",
                (workspace_id,),
            )
            bind.exec_driver_sql(f"DROP TABLE {table}")

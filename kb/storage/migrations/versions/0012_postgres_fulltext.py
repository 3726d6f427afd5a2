"""PostgreSQL's full-text table: documents' words as `tsvector` segments with a GIN index
(`kb/storage/postgres/fulltext.py`). SQLite keeps its FTS5 table per workspace: nothing to do there.

Revision ID: 0012_postgres_fulltext
Revises: 0011_chunks_document_model
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0012_postgres_fulltext"
down_revision = "0011_chunks_document_model"
branch_labels = None
depends_on = None

TABLE = "fulltext_segments"  # frozen here: kb.storage.postgres.fulltext.TABLE


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE TABLE {TABLE} ("
        "workspace_id VARCHAR NOT NULL, document_id VARCHAR NOT NULL, segment INTEGER NOT NULL, "
        "tsv TSVECTOR NOT NULL, length INTEGER NOT NULL, document_length INTEGER NOT NULL, "
        "content TEXT NOT NULL, PRIMARY KEY (workspace_id, document_id, segment))"
    )
    op.execute(f"CREATE INDEX ix_{TABLE}_tsv ON {TABLE} USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP TABLE {TABLE}")

"""The chunk keys of scoped documents read from an index alone: `ix_chunks_document` becomes
(document_id, model) (the key is the rowid), so a folder-scoped search reads no chunk rows.

Revision ID: 0011_chunks_document_model
Revises: 0010_fair_jobs
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0011_chunks_document_model"
down_revision = "0010_fair_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_chunks_document_model", "chunks", ["document_id", "model"])
    op.drop_index("ix_chunks_document", table_name="chunks")


def downgrade() -> None:
    op.create_index("ix_chunks_document", "chunks", ["document_id"])
    op.drop_index("ix_chunks_document_model", table_name="chunks")

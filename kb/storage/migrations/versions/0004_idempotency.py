"""Idempotency keys of uploads; agents' stored size (agents count against the storage limit).

Revision ID: 0004_idempotency
Revises: 0008_gaps
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_idempotency"
down_revision = "0008_gaps"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("workspace_id", sa.String(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("document_id", sa.String(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])
    op.add_column("agents", sa.Column("size_bytes", sa.Integer(), nullable=False, server_default="0"))
    # agents stored before: their size, as kb measures it (the JSON of the body, name and tags)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("UPDATE agents SET size_bytes = length(CAST(body AS BLOB)) + length(CAST(name AS BLOB)) "
                   "+ length(CAST(tags AS BLOB))")
    else:  # PostgreSQL: octet_length of the text (a new database has no agents yet)
        op.execute("UPDATE agents SET size_bytes = octet_length(CAST(body AS TEXT)) + octet_length(name) "
                   "+ octet_length(CAST(tags AS TEXT))")


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("size_bytes")
    op.drop_index("ix_idempotency_keys_created", "idempotency_keys")
    op.drop_table("idempotency_keys")

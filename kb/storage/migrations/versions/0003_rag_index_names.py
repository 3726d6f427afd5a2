"""RAG indexes: the other model names clients asked for an index by (`requested_names`).

Revision ID: 0003_rag_index_names
Revises: 0002
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_rag_index_names"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rag_indexes", sa.Column("requested_names", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("rag_indexes") as batch:
        batch.drop_column("requested_names")

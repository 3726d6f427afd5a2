"""A covering index for the agents' share of a workspace's storage, summed on every upload.

Revision ID: 0009_agents_usage_index
Revises: 0004_idempotency (the newest: it was merged after 0008)
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0009_agents_usage_index"
down_revision = "0004_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_agents_workspace_usage", "agents", ["workspace_id", "size_bytes"])


def downgrade() -> None:
    op.drop_index("ix_agents_workspace_usage", table_name="agents")

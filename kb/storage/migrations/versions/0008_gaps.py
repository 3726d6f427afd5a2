"""The knowledge-gap log: groups of unanswered queries, their events, and each workspace's switch.

Revision ID: 0008_gaps
Revises: 0007_attributes
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_gaps"
down_revision = "0007_attributes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "knowledge_gaps",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("workspace_id", sa.String(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("normalized", sa.String(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary()),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_knowledge_gaps_workspace_normalized", "knowledge_gaps", ["workspace_id", "normalized"])
    op.create_index("ix_knowledge_gaps_workspace_created", "knowledge_gaps", ["workspace_id", "created_at"])
    op.create_table(
        "gap_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("gap_id", sa.String(), sa.ForeignKey("knowledge_gaps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("workspace_id", sa.String(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.String()),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("best_distance", sa.Float()),
        sa.Column("returned", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_gap_events_workspace_created", "gap_events", ["workspace_id", "created_at"])
    op.create_index("ix_gap_events_gap", "gap_events", ["gap_id", "created_at"])
    op.create_table(
        "gap_settings",
        sa.Column("workspace_id", sa.String(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gap_settings")
    op.drop_index("ix_gap_events_gap", table_name="gap_events")
    op.drop_index("ix_gap_events_workspace_created", table_name="gap_events")
    op.drop_table("gap_events")
    op.drop_index("ix_knowledge_gaps_workspace_created", table_name="knowledge_gaps")
    op.drop_index("ix_knowledge_gaps_workspace_normalized", table_name="knowledge_gaps")
    op.drop_table("knowledge_gaps")

"""Jobs know their tenant and take turns: `tenant` (the workspace) and `fair_at` (the claim order).

Revision ID: 0010_fair_jobs
Revises: 0009_agents_usage_index
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_fair_jobs"
down_revision = "0009_agents_usage_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("tenant", sa.String()))
        batch.add_column(sa.Column("fair_at", sa.Float()))
    op.execute("UPDATE jobs SET fair_at = created_at")  # pending jobs keep their order
    op.create_index("ix_jobs_claim_order", "jobs", ["status", "fair_at", "id"])
    op.create_index("ix_jobs_tenant", "jobs", ["tenant", "status", "fair_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant", table_name="jobs")
    op.drop_index("ix_jobs_claim_order", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("fair_at")
        batch.drop_column("tenant")

"""Jobs: delayed (`run_at`), cancellable (`cancel_requested_at`), by subject; periodic `schedules`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("run_at", sa.Float()))
    op.add_column("jobs", sa.Column("cancel_requested_at", sa.Float()))
    op.add_column("jobs", sa.Column("subject", sa.String()))
    op.create_index("ix_jobs_subject", "jobs", ["subject"])
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("interval_secs", sa.Float(), nullable=False),
        sa.Column("next_run_at", sa.Float(), nullable=False),
        sa.Column("last_job_id", sa.Integer()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_schedules_next_run", "schedules", ["next_run_at"])


def downgrade() -> None:
    op.drop_index("ix_schedules_next_run", table_name="schedules")
    op.drop_table("schedules")
    op.drop_index("ix_jobs_subject", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("subject")
        batch.drop_column("cancel_requested_at")
        batch.drop_column("run_at")

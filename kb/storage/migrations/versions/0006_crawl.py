"""Crawl jobs (`crawl_jobs`) and auto-sync of URL documents and folders (`auto_sync`).

Revision ID: 0006_crawl
Revises: 0005_fulltext_per_workspace
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_crawl"
down_revision = "0005_fulltext_per_workspace"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crawl_jobs",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("workspace_id", sa.String(), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seed_url", sa.String(), nullable=False),
        sa.Column("type", sa.String()),
        sa.Column("pattern", sa.String()),
        sa.Column("exclude_patterns", sa.JSON(), nullable=False),
        sa.Column("sitemap_urls", sa.JSON(), nullable=False),
        sa.Column("max_pages", sa.Integer(), nullable=False),
        sa.Column("root_folder_id", sa.String(), nullable=False),
        sa.Column("enable_auto_sync", sa.Boolean(), nullable=False),
        sa.Column("auto_remove", sa.Boolean(), nullable=False),
        sa.Column("auto_discover", sa.Boolean(), nullable=False),
        sa.Column("minimum_frequency_days", sa.Integer()),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("pages_identified", sa.Integer(), nullable=False),
        sa.Column("pages_scraped", sa.Integer(), nullable=False),
        sa.Column("pages_skipped", sa.Integer(), nullable=False),
        sa.Column("pages_failed", sa.Integer(), nullable=False),
        sa.Column("frontier", sa.Text()),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_crawl_jobs_workspace_created", "crawl_jobs", ["workspace_id", "created_at"])
    op.create_table(
        "auto_sync",
        sa.Column("document_id", sa.String(), sa.ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("workspace_id", sa.String(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("auto_remove", sa.Boolean(), nullable=False),
        sa.Column("minimum_frequency_days", sa.Integer(), nullable=False),
        sa.Column("consec_failures", sa.Integer(), nullable=False),
        sa.Column("next_refresh_by", sa.Float()),
        sa.Column("crawl_id", sa.String()),
        sa.Column("etag", sa.String()),
        sa.Column("last_modified", sa.String()),
        sa.Column("text_hash", sa.String()),
        sa.Column("refresh_status", sa.String()),
        sa.Column("enqueued_at", sa.Float()),
        sa.Column("started_at", sa.Float()),
        sa.Column("completed_at", sa.Float()),
        sa.Column("last_synced_at", sa.Float()),
        sa.Column("error_message", sa.Text()),
    )
    op.create_index("ix_auto_sync_due", "auto_sync", ["enabled", "next_refresh_by"])
    op.create_index("ix_auto_sync_workspace_crawl", "auto_sync", ["workspace_id", "crawl_id"])


def downgrade() -> None:
    op.drop_index("ix_auto_sync_workspace_crawl", table_name="auto_sync")
    op.drop_index("ix_auto_sync_due", table_name="auto_sync")
    op.drop_table("auto_sync")
    op.drop_index("ix_crawl_jobs_workspace_created", table_name="crawl_jobs")
    op.drop_table("crawl_jobs")

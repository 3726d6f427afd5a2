"""The schema as kb wrote it before migrations existed (main at d56a340).

Tables and indexes that are missing are created, those that exist are left as they are: a data
directory written before migrations existed is recognised at this revision and upgraded from it.
The table definitions are frozen here on purpose (later changes go in later revisions).

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Column, Float, ForeignKey, Index, Integer, LargeBinary, String, Table, Text, UniqueConstraint

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> sa.MetaData:
    meta = sa.MetaData()
    Table(
        "workspaces", meta,
        Column("id", String, primary_key=True),
        Column("name", String, nullable=False),
        Column("tier", String, nullable=False),
        Column("default_model", String, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("rag_max_bytes", Integer),
        Column("kb_max_bytes", Integer),
        Column("kb_max_chars", Integer),
        Column("min_rag_document_bytes", Integer),
    )
    Table(
        "api_keys", meta,
        Column("key_hash", String, primary_key=True),
        Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, index=True),
        Column("created_at", Float, nullable=False),
    )
    Table(
        "documents", meta,
        Column("id", String, primary_key=True),
        Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        Column("name", String, nullable=False),
        Column("type", String, nullable=False),
        Column("format", String, nullable=False),
        Column("parent_folder_id", String),
        Column("filename", String),
        Column("url", String),
        Column("content_type", String),
        Column("size_bytes", Integer, nullable=False),
        Column("char_count", Integer, nullable=False),
        Column("content_hash", String, nullable=False),
        Column("metadata_json", Text, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
        Index("ix_documents_workspace_created", "workspace_id", "created_at"),
        Index("ix_documents_workspace_name", "workspace_id", "name"),
        Index("ix_documents_workspace_parent", "workspace_id", "parent_folder_id"),
        Index("ix_documents_workspace_usage", "workspace_id", "type", "size_bytes", "char_count"),
    )
    Table(
        "rag_indexes", meta,
        Column("id", String, primary_key=True),
        Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        Column("document_id", String, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
        Column("model", String, nullable=False),
        Column("status", String, nullable=False),
        Column("progress_percentage", Float, nullable=False),
        Column("used_bytes", Integer, nullable=False),
        Column("error", Text),
        Column("chunks_embedded", Integer, nullable=False),
        Column("chunks_reused", Integer, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
        UniqueConstraint("document_id", "model", name="uq_rag_index_document_model"),
        Index("ix_rag_indexes_workspace_model", "workspace_id", "model", "status", "used_bytes"),
    )
    Table(
        "chunks", meta,
        Column("key", Integer, primary_key=True, autoincrement=True),
        Column("id", String, nullable=False, unique=True),
        Column("workspace_id", String, nullable=False),
        Column("document_id", String, ForeignKey("documents.id", ondelete="CASCADE"), nullable=False),
        Column("rag_index_id", String, ForeignKey("rag_indexes.id", ondelete="CASCADE"), nullable=False),
        Column("model", String, nullable=False),
        Column("ordinal", Integer, nullable=False),
        Column("text", Text, nullable=False),
        Column("start", Integer, nullable=False),
        Column("end", Integer, nullable=False),
        Column("heading_path", Text, nullable=False),
        Column("page_start", Integer),
        Column("page_end", Integer),
        Column("token_count", Integer, nullable=False),
        Column("text_hash", String, nullable=False),
        Column("language", String, nullable=False),
        Column("lexical_terms", Text, nullable=False),
        Column("embedding", LargeBinary, nullable=False),
        Index("ix_chunks_rag_index", "rag_index_id", "ordinal"),
        Index("ix_chunks_workspace_model", "workspace_id", "model"),
        Index("ix_chunks_document", "document_id"),
        Index("ix_chunks_text_hash", "workspace_id", "model", "text_hash"),
    )
    Table(
        "vector_generations", meta,
        Column("workspace_id", String, primary_key=True),
        Column("model", String, primary_key=True),
        Column("generation", Integer, nullable=False),
    )
    Table(
        "jobs", meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("kind", String, nullable=False),
        Column("payload", Text, nullable=False),
        Column("status", String, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("error", Text),
        Column("owner", String),
        Column("heartbeat_at", Float),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
        Index("ix_jobs_status", "status", "id"),
    )
    Table(
        "agents", meta,
        Column("id", String, primary_key=True),
        Column("workspace_id", String, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
        Column("name", String, nullable=False),
        Column("tags", sa.JSON, nullable=False),
        Column("body", sa.JSON, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
        Index("ix_agents_workspace_created", "workspace_id", "created_at"),
        Index("ix_agents_workspace_updated", "workspace_id", "updated_at"),
        Index("ix_agents_workspace_name", "workspace_id", "name"),
    )
    Table(
        "agent_documents", meta,
        Column("agent_id", String, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
        Column("document_id", String, primary_key=True),
        Column("workspace_id", String, nullable=False),
        Column("usage_mode", String, nullable=False),
        Column("name", String, nullable=False),
        Column("type", String, nullable=False),
        Index("ix_agent_documents_workspace_document", "workspace_id", "document_id"),
    )
    return meta


def upgrade() -> None:
    bind = op.get_bind()
    _tables().create_all(bind, checkfirst=True)
    if bind.dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS document_text USING fts5("
            "content, document_id UNINDEXED, workspace_id UNINDEXED, "
            "tokenize = 'unicode61 remove_diacritics 2')"
        )


def downgrade() -> None:
    raise NotImplementedError("kb does not downgrade below its first revision")

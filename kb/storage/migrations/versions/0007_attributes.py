"""Document attributes (`document_attributes`), with the automatic ones of existing documents.

Backfilled here from the database: `site` (the host of each URL document's URL) and `language`
(the language indexing detected, kept on its chunks). `page_count` lives in each document's files,
not in the database: `Attributes.backfill_page_counts` adds it when workers start (idempotent).

Revision ID: 0007_attributes
Revises: 0006_crawl
Create Date: 2026-12-03
"""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0007_attributes"
down_revision = "0006_crawl"
branch_labels = None
depends_on = None

LANGUAGE_CODES = {  # as kb.attributes.LANGUAGE_CODES when this revision was written
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it", "portuguese": "pt",
    "dutch": "nl", "swedish": "sv", "norwegian": "no", "danish": "da", "finnish": "fi", "russian": "ru",
    "greek": "el", "arabic": "ar",
}


def upgrade() -> None:
    table = op.create_table(
        "document_attributes",
        sa.Column("document_id", sa.String(), sa.ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("workspace_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("value_text", sa.String()),
        sa.Column("value_number", sa.Float()),
        sa.Column("automatic", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_document_attributes_text", "document_attributes", ["workspace_id", "key", "value_text"])
    op.create_index("ix_document_attributes_number", "document_attributes", ["workspace_id", "key", "value_number"])

    bind = op.get_bind()
    rows = []
    for doc_id, workspace_id, url in bind.execute(
        sa.text("SELECT id, workspace_id, url FROM documents WHERE type = 'url' AND url IS NOT NULL")
    ):
        host = (urlsplit(url).hostname or "").lower()
        if host:
            rows.append(dict(document_id=doc_id, key="site", workspace_id=workspace_id, kind="string",
                             value_text=host, value_number=None, automatic=True))
    for doc_id, workspace_id, language in bind.execute(sa.text(
        "SELECT document_id, workspace_id, MIN(language) FROM chunks GROUP BY document_id, workspace_id"
    )):
        rows.append(dict(document_id=doc_id, key="language", workspace_id=workspace_id, kind="string",
                         value_text=LANGUAGE_CODES.get(language, language), value_number=None, automatic=True))
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_index("ix_document_attributes_number", table_name="document_attributes")
    op.drop_index("ix_document_attributes_text", table_name="document_attributes")
    op.drop_table("document_attributes")

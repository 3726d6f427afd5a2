"""Full-text search with SQLite FTS5 and BM25 ranking: one FTS5 table per workspace.

BM25 scores depend on corpus statistics (how many documents hold a word, their average length,
how many documents there are). One table for every workspace would make a workspace's scores
move with another's documents, so each workspace has its own table, `workspace_text_<digest>`,
created with its first document (revision 0005 moved older data dirs' single table into these).
A workspace with no table has nothing to find.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import text

from ..interfaces import FullTextIndex, Tx

TABLE_PREFIX = "workspace_text_"
TOKENIZER = "unicode61 remove_diacritics 2"


def table_name(workspace_id: str) -> str:
    """The workspace's FTS5 table: a digest of its id, so any id gives a safe SQL name."""
    return TABLE_PREFIX + hashlib.blake2b(workspace_id.encode(), digest_size=16).hexdigest()


def create_table_sql(table: str) -> str:
    return f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5(content, document_id UNINDEXED, tokenize = '{TOKENIZER}')"


class Fts5FullText(FullTextIndex):
    def add(self, tx: Tx, workspace_id: str, document_id: str, content: str) -> None:
        table = table_name(workspace_id)
        tx.exec_driver_sql(create_table_sql(table))  # a no-op once the table exists
        tx.execute(text(f"INSERT INTO {table} (content, document_id) VALUES (:c, :d)"), {"c": content, "d": document_id})

    def replace(self, tx: Tx, workspace_id: str, document_id: str, content: str) -> None:
        # The delete reads the workspace's table (UNINDEXED columns): new documents use `add`.
        self.remove(tx, workspace_id, [document_id])
        self.add(tx, workspace_id, document_id, content)

    def remove(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> None:
        table = table_name(workspace_id)
        if not document_ids or not _exists(tx, table):
            return
        for document_id in document_ids:
            tx.execute(text(f"DELETE FROM {table} WHERE document_id = :d"), {"d": document_id})

    def search(
        self, tx: Tx, workspace_id: str, terms: Sequence[str], *, limit: int, offset: int = 0,
        document_ids: Sequence[str] | None = None,
    ) -> list[tuple[str, float, str]]:
        table = table_name(workspace_id)
        if not terms or (document_ids is not None and not document_ids) or not _exists(tx, table):
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        sql = (
            # the start of the text only: snippets look no further (kb.services.search.SNIPPET_SCAN_CHARS)
            f"SELECT document_id, bm25({table}) AS rank, substr(content, 1, 100000) AS content FROM {table} "
            f"WHERE {table} MATCH :match"
        )
        params: dict = {"match": match, "limit": limit, "offset": offset}
        if document_ids is not None:
            sql += " AND document_id IN (" + ",".join(f":id{i}" for i in range(len(document_ids))) + ")"
            params |= {f"id{i}": d for i, d in enumerate(document_ids)}
        sql += " ORDER BY rank LIMIT :limit OFFSET :offset"
        rows = tx.execute(text(sql), params).fetchall()
        return [(row.document_id, round(-float(row.rank), 6), row.content) for row in rows]


def _exists(tx: Tx, table: str) -> bool:
    return tx.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :n"), {"n": table}
    ).first() is not None

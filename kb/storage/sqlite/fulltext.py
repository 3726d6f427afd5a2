"""Full-text search with SQLite FTS5 and BM25 ranking, one row per document.

The `document_text` virtual table is created by the migrations (revision 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text

from ..interfaces import FullTextIndex, Tx


class Fts5FullText(FullTextIndex):
    def add(self, tx: Tx, workspace_id: str, document_id: str, content: str) -> None:
        tx.execute(
            text("INSERT INTO document_text (content, document_id, workspace_id) VALUES (:c, :d, :w)"),
            {"c": content, "d": document_id, "w": workspace_id},
        )

    def replace(self, tx: Tx, workspace_id: str, document_id: str, content: str) -> None:
        # The delete reads the whole table (UNINDEXED columns): new documents use `add`.
        self.remove(tx, workspace_id, [document_id])
        self.add(tx, workspace_id, document_id, content)

    def remove(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> None:
        for document_id in document_ids:
            tx.execute(
                text("DELETE FROM document_text WHERE document_id = :d AND workspace_id = :w"),
                {"d": document_id, "w": workspace_id},
            )

    def search(
        self, tx: Tx, workspace_id: str, terms: Sequence[str], *, limit: int, offset: int = 0,
        document_ids: Sequence[str] | None = None,
    ) -> list[tuple[str, float, str]]:
        if not terms or (document_ids is not None and not document_ids):
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        sql = (
            # the start of the text only: snippets look no further (kb.services.search.SNIPPET_SCAN_CHARS)
            "SELECT document_id, bm25(document_text) AS rank, substr(content, 1, 100000) AS content FROM document_text "
            "WHERE document_text MATCH :match AND workspace_id = :w"
        )
        params: dict = {"match": match, "w": workspace_id, "limit": limit, "offset": offset}
        if document_ids is not None:
            sql += " AND document_id IN (" + ",".join(f":id{i}" for i in range(len(document_ids))) + ")"
            params |= {f"id{i}": d for i, d in enumerate(document_ids)}
        sql += " ORDER BY rank LIMIT :limit OFFSET :offset"
        rows = tx.execute(text(sql), params).fetchall()
        return [(row.document_id, round(-float(row.rank), 6), row.content) for row in rows]

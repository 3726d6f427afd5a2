"""Full-text search over documents' extracted text (the knowledge-base `search` endpoint).

SQLite FTS5 with BM25 ranking, one row per document, written in the same transaction as the
document row. Snippets mark the words that matched, as the ElevenLabs API does with `is_hit`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from .db import Database

_WORD = re.compile(r"\w+", re.UNICODE)
SNIPPET_CHARS = 200


@dataclass(frozen=True)
class SearchHit:
    document_id: str
    score: float
    snippet: list[tuple[str, bool]]  # (text, is_hit) parts


def query_terms(query: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(unicodedata.normalize("NFKC", query))))


class FullTextIndex:
    def __init__(self, db: Database):
        self.db = db
        if not db.is_sqlite:
            raise NotImplementedError("full-text search is implemented for SQLite (FTS5) only")
        with db.write() as conn:
            conn.exec_driver_sql(
                "CREATE VIRTUAL TABLE IF NOT EXISTS document_text USING fts5("
                "content, document_id UNINDEXED, workspace_id UNINDEXED, "
                "tokenize = 'unicode61 remove_diacritics 2')"
            )

    @staticmethod
    def add(conn: Connection, workspace_id: str, document_id: str, content: str) -> None:
        """The text of a new document (`put` for one that may be indexed already)."""
        conn.execute(
            text("INSERT INTO document_text (content, document_id, workspace_id) VALUES (:c, :d, :w)"),
            {"c": content, "d": document_id, "w": workspace_id},
        )

    @staticmethod
    def put(conn: Connection, workspace_id: str, document_id: str, content: str) -> None:
        # The delete reads the whole table (UNINDEXED columns): new documents use `add`.
        FullTextIndex.remove(conn, workspace_id, document_id)
        FullTextIndex.add(conn, workspace_id, document_id, content)

    @staticmethod
    def remove(conn: Connection, workspace_id: str, document_id: str) -> None:
        conn.execute(
            text("DELETE FROM document_text WHERE document_id = :d AND workspace_id = :w"),
            {"d": document_id, "w": workspace_id},
        )

    def search(
        self, workspace_id: str, query: str, *, limit: int, offset: int = 0, document_ids: list[str] | None = None
    ) -> list[SearchHit]:
        """Documents matching any query word, best BM25 first; each with a snippet around its first hit."""
        terms = query_terms(query)
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        sql = (
            "SELECT document_id, bm25(document_text) AS rank, content FROM document_text "
            "WHERE document_text MATCH :match AND workspace_id = :w"
        )
        params: dict = {"match": match, "w": workspace_id, "limit": limit, "offset": offset}
        if document_ids is not None:
            if not document_ids:
                return []
            sql += " AND document_id IN (" + ",".join(f":id{i}" for i in range(len(document_ids))) + ")"
            params |= {f"id{i}": d for i, d in enumerate(document_ids)}
        sql += " ORDER BY rank LIMIT :limit OFFSET :offset"
        with self.db.read() as conn:
            rows = conn.execute(text(sql), params).fetchall()
        return [SearchHit(row.document_id, round(-float(row.rank), 6), snippet(row.content, terms)) for row in rows]


def snippet(content: str, terms: list[str], width: int = SNIPPET_CHARS) -> list[tuple[str, bool]]:
    """A window of `content` around the first matched word, split into (text, is_hit) parts."""
    wanted = {_fold(t) for t in terms}
    folded = [(m.start(), m.end()) for m in _WORD.finditer(content) if _fold(m.group()) in wanted]
    if not folded:
        return [(content[:width], False)]
    first = folded[0][0]
    start = max(0, first - width // 3)
    start = content.rfind(" ", 0, start) + 1 if start else 0
    end = min(len(content), start + width)
    if end < len(content):
        end = content.find(" ", end) if content.find(" ", end) != -1 else len(content)
    parts: list[tuple[str, bool]] = []
    cursor = start
    for hit_start, hit_end in folded:
        if hit_start < start or hit_end > end:
            continue
        if hit_start > cursor:
            parts.append((content[cursor:hit_start], False))
        parts.append((content[hit_start:hit_end], True))
        cursor = hit_end
    if cursor < end:
        parts.append((content[cursor:end], False))
    return parts


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))

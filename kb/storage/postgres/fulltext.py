"""Full-text search on PostgreSQL: a `tsvector` column with a GIN index, ranked by BM25 computed
from the workspace's own statistics.

`ts_rank` would ignore corpus statistics (so no tenant could move another's scores), but its
scores and order would differ from SQLite's. kb ranks with the same BM25 as SQLite FTS5 (k1 1.2,
b 0.75, FTS5's idf floor) instead, every statistic counted over the searched workspace's rows
only: document count, average length, and how many of its documents hold each word. Another
workspace's documents never enter a score.

Words are cut and folded in Python as SQLite's `unicode61 remove_diacritics 2` tokenizer does
(letters and digits, lower case, accents removed), and each document's `tsvector` is built from
them with positions, so PostgreSQL's own parser and dictionaries play no part. A `tsvector` keeps
at most 256 positions per word and positions up to 16,383, and is at most 1 MB: a document is
stored as segments of at most SEGMENT_TOKENS words, and a word's count in a segment stops at 256
(BM25 saturates long before). Only the first segment keeps text (the first SNIPPET_CHARS
characters, all that snippets read).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence

from sqlalchemy import text

from ..interfaces import FullTextIndex, Tx

TABLE = "fulltext_segments"
SEGMENT_TOKENS = 16_000  # positions above 16,383 would all be 16,383
SEGMENT_LEXEME_BYTES = 256_000  # the distinct words of a segment, well under a tsvector's 1 MB
MAX_POSITIONS = 256  # a tsvector keeps this many positions per word
MAX_LEXEME_BYTES = 2_000  # PostgreSQL refuses longer words (2,046 bytes)
SNIPPET_CHARS = 100_000  # kb.services.search.SNIPPET_SCAN_CHARS
K1, B = 1.2, 0.75  # FTS5's bm25() defaults

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def fold(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def tokens(content: str) -> list[str]:
    """The words of `content` as the index holds them."""
    return [t for t in _TOKEN.findall(fold(unicodedata.normalize("NFKC", content))) if len(t.encode()) <= MAX_LEXEME_BYTES]


def _quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def segments(words: list[str]) -> Iterator[tuple[str, int]]:
    """(tsvector literal, word count) of consecutive parts of `words`."""
    start = 0
    while start < len(words) or start == 0:
        positions: dict[str, list[int]] = {}
        size, end = 0, start
        while end < len(words) and end - start < SEGMENT_TOKENS:
            word = words[end]
            if word not in positions:
                if size + len(word.encode()) > SEGMENT_LEXEME_BYTES and positions:
                    break
                positions[word] = []
                size += len(word.encode()) + 8
            if len(positions[word]) < MAX_POSITIONS:
                positions[word].append(end - start + 1)
            end += 1
        literal = " ".join(f"{_quote(w)}:{','.join(map(str, p))}" for w, p in positions.items())
        yield literal, end - start
        if end >= len(words):
            return
        start = end


class TsvectorFullText(FullTextIndex):
    def add(self, tx: Tx, workspace_id: str, document_id: str, content: str) -> None:
        words = tokens(content)
        rows = [
            {"w": workspace_id, "d": document_id, "s": number, "tsv": literal, "len": count,
             "dl": len(words), "c": content[:SNIPPET_CHARS] if number == 0 else ""}
            for number, (literal, count) in enumerate(segments(words))
        ]
        tx.execute(text(
            f"INSERT INTO {TABLE} (workspace_id, document_id, segment, tsv, length, document_length, content) "
            "VALUES (:w, :d, :s, CAST(:tsv AS tsvector), :len, :dl, :c)"
        ), rows)

    def replace(self, tx: Tx, workspace_id: str, document_id: str, content: str) -> None:
        self.remove(tx, workspace_id, [document_id])
        self.add(tx, workspace_id, document_id, content)

    def remove(self, tx: Tx, workspace_id: str, document_ids: Sequence[str]) -> None:
        if document_ids:
            tx.execute(text(f"DELETE FROM {TABLE} WHERE workspace_id = :w AND document_id = ANY(:ids)"),
                       {"w": workspace_id, "ids": list(document_ids)})

    def search(
        self, tx: Tx, workspace_id: str, terms: Sequence[str], *, limit: int, offset: int = 0,
        document_ids: Sequence[str] | None = None,
    ) -> list[tuple[str, float, str]]:
        lexemes = list(dict.fromkeys(t for term in terms for t in tokens(term)))
        if not lexemes or (document_ids is not None and not document_ids):
            return []
        params: dict = {"w": workspace_id, "q": " | ".join(_quote(t) for t in lexemes), "terms": lexemes,
                        "limit": limit, "offset": offset, "k1": K1, "b": B}
        only = ""
        if document_ids is not None:
            only = "WHERE h.document_id = ANY(:ids)"
            params["ids"] = list(document_ids)
        # Every statistic over this workspace's rows only: `hits` (each document's count of each
        # word) for the words' document frequencies, `corpus` for the count and average length.
        sql = f"""
            WITH hits AS (
                SELECT t.document_id, u.lexeme, sum(cardinality(u.positions))::float8 AS tf,
                       max(t.document_length)::float8 AS dl
                FROM {TABLE} t
                -- only the query's words of each matching row (weight A on them, then only A kept)
                CROSS JOIN LATERAL unnest(ts_filter(setweight(t.tsv, 'A', CAST(:terms AS text[])), '{{a}}'))
                    AS u(lexeme, positions, weights)
                WHERE t.workspace_id = :w AND t.tsv @@ CAST(:q AS tsquery)
                GROUP BY t.document_id, u.lexeme
            ), df AS (
                SELECT lexeme, count(*)::float8 AS n FROM hits GROUP BY lexeme
            ), corpus AS (
                SELECT count(*)::float8 AS n, greatest(coalesce(avg(document_length), 0), 1e-9)::float8 AS avgdl
                FROM {TABLE} WHERE workspace_id = :w AND segment = 0
            ), scored AS (
                SELECT h.document_id,
                       sum(greatest(ln((c.n - df.n + 0.5) / (df.n + 0.5)), 1e-6)
                           * (h.tf * (:k1 + 1)) / (h.tf + :k1 * (1 - :b + :b * h.dl / c.avgdl))) AS score
                FROM hits h JOIN df ON df.lexeme = h.lexeme CROSS JOIN corpus c
                {only}
                GROUP BY h.document_id
                ORDER BY score DESC, h.document_id
                LIMIT :limit OFFSET :offset
            )
            SELECT s.document_id, s.score, t.content
            FROM scored s JOIN {TABLE} t ON t.workspace_id = :w AND t.document_id = s.document_id AND t.segment = 0
            ORDER BY s.score DESC, s.document_id
        """
        rows = tx.execute(text(sql), params).fetchall()
        return [(row.document_id, round(float(row.score), 6), row.content) for row in rows]

"""Full-text search over documents' extracted text (the knowledge-base `search` endpoint).

The dialect's `FullTextIndex` ranks documents (BM25); snippets mark the words that matched, as the
ElevenLabs API does with `is_hit`.
"""

from __future__ import annotations

import re
import unicodedata

from ..errors import InvalidRequest
from ..filters import Filter
from ..records import Document, SearchHit, Workspace
from ..storage import Database
from ..storage.interfaces import FullTextIndex
from ..storage.repositories import DocumentStore
from .attributes import Attributes
from .cursors import decode_cursor, encode_cursor
from .queries import checked_query

_WORD = re.compile(r"\w+", re.UNICODE)
SNIPPET_CHARS = 200
# Snippets are looked for in the first SNIPPET_SCAN_CHARS of a document only (its text is read only
# that far), so a search costs the same in a 50 MB document as in a short one; a document whose
# first match lies further shows its beginning, without marked words.
SNIPPET_SCAN_CHARS = 100_000


def query_terms(query: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(unicodedata.normalize("NFKC", query))))


class FullTextSearch:
    def __init__(self, db: Database, index: FullTextIndex, documents: DocumentStore, attributes: Attributes):
        self.db = db
        self.index = index
        self.documents = documents
        self.attributes = attributes

    def search(
        self, workspace: Workspace, query: str, *, page_size: int = 30, types: tuple[str, ...] = (),
        cursor: str | None = None, filters: Filter | None = None, folder_ids: list[str] | None = None,
    ) -> tuple[list[tuple[Document, SearchHit]], str | None]:
        """Full-text search over document contents: (document, hit) pairs, best first, and the next
        cursor; only documents of `types`, below `folder_ids` and passing `filters`, when given."""
        query = checked_query(query)
        if not 1 <= page_size <= 100:
            raise InvalidRequest("page_size must be between 1 and 100")
        offset = decode_cursor(cursor)
        terms = query_terms(query)
        with self.db.read() as tx:
            allowed = self.documents.ids_of_types(tx, workspace.id, types) if types else None
            allowed = self.attributes.allowed_documents(tx, workspace.id, filters, folder_ids, allowed)
            found = self.index.search(tx, workspace.id, terms, limit=page_size + 1, offset=offset, document_ids=allowed)
            page = found[:page_size]
            docs = {d.id: d for d in self.documents.get_many(tx, workspace.id, [doc_id for doc_id, _, _ in page])}
        results = [
            (docs[doc_id], SearchHit(doc_id, score, snippet(content, terms)))
            for doc_id, score, content in page
            if doc_id in docs
        ]
        return results, encode_cursor(offset + page_size) if len(found) > page_size else None


def snippet(content: str, terms: list[str], width: int = SNIPPET_CHARS) -> list[tuple[str, bool]]:
    """A window of `content` around the first matched word, split into (text, is_hit) parts."""
    content = content[:SNIPPET_SCAN_CHARS]
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

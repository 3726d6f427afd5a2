"""The BM25 side of a workspace's search, over the same chunks (and keys) as its FAISS index.

Two fields per chunk: its text (terms stored with the chunk) and its **title field**, the document's name
and the chunk's heading path, analysed in the document's language and held in a second BM25 index with the
same keys. A chunk's lexical score is BM25(text) + `TITLE_WEIGHT` x BM25(title field): on a query naming a
facet ("Azerbaijan foreign relations") the facet's words are in the title of the right page and in the text
of its neighbours (BENCHMARKS.md "Fusion study"). Both are derived data, rebuilt from the stored chunks.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from index.calibration import calibration_of
from index.lexical import BM25Index, analyze, analyze_query, detect_language

TITLE_WEIGHT = 0.5
# A single-term query is a complete match only where its term is this rare (share of the chunks).
RARE_TERM_SHARE = 0.01
FORMAT = "kb-lexical"
VERSION = 1


def document_language(text: str) -> str:
    return detect_language(text)


def chunk_terms(texts: Sequence[str], language: str) -> list[str]:
    """Analysed terms of each chunk, as stored (space-separated; terms never contain spaces)."""
    return [" ".join(analyze(text, language)) for text in texts]


def title_text(document_name: str, heading_path: Sequence[str]) -> str:
    """A chunk's title field before analysis: its document's name, then its headings."""
    return " ".join([document_name, *heading_path])


@dataclass
class LexicalIndex:
    index: BM25Index = field(default_factory=BM25Index)  # chunk texts
    titles: BM25Index = field(default_factory=BM25Index)  # title fields, same keys

    def add(self, keys: np.ndarray, stored_terms: Sequence[str], languages: Sequence[str],
            titles: Sequence[str] | None = None) -> None:
        """Add chunks: their stored text terms, their documents' languages and their title fields
        (`title_text`, analysed here in each chunk's language; None: empty titles)."""
        languages = list(languages)
        titles = [""] * len(languages) if titles is None else titles
        self.index.add(keys, [terms.split() for terms in stored_terms], languages)
        self.titles.add(keys, [analyze(title, language) for title, language in zip(titles, languages)], languages)

    def remove(self, keys) -> None:
        keys = list(keys)
        self.index.remove(keys)
        self.titles.remove(keys)

    def query_terms(self, query: str) -> list[str]:
        return analyze_query(query, self.index.languages)

    def search(self, terms: list[str], k: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """The `k` best keys by lexical score (text plus weighted title field), best first: the best
        of each field's top `k`, rescored on both."""
        text_keys, _ = self.index.search(terms, k, allowed)
        title_keys, _ = self.titles.search(terms, k, allowed)
        if title_keys.size == 0:
            return text_keys
        union = np.union1d(text_keys, title_keys)
        scores = self.scores(terms, union)
        order = np.argsort(-scores, kind="stable")
        return union[order][scores[order] > 0][:k]

    def scores(self, terms: list[str], keys: np.ndarray) -> np.ndarray:
        """The lexical score of each of `keys` (0 where no query term occurs), aligned with `keys`."""
        return _scores(self.index, terms, keys) + TITLE_WEIGHT * _scores(self.titles, terms, keys)

    def matched_terms(self, terms: list[str], keys: np.ndarray) -> np.ndarray:
        """How many distinct query terms each of `keys` contains in its text or title field."""
        return (self.index.term_presence(terms, keys) | self.titles.term_presence(terms, keys)).sum(axis=1, dtype=np.float64)

    def complete_matches(self, terms: list[str], keys: np.ndarray) -> np.ndarray:
        """Which of `keys` are complete lexical matches: their text holds every distinct query term, the
        query having at least two, or one found in at most `RARE_TERM_SHARE` of the chunks. A distance
        cut spares them (BENCHMARKS.md "Distance calibration")."""
        distinct = list(dict.fromkeys(terms))
        if not distinct:
            return np.zeros(len(keys), dtype=bool)
        if len(distinct) == 1 and self.index.document_frequency(distinct[0]) > max(1.0, RARE_TERM_SHARE * len(self.index)):
            return np.zeros(len(keys), dtype=bool)
        return self.index.term_presence(distinct, keys).all(axis=1)

    def model_covers(self, model: str, query: str) -> bool:
        """Whether the embedding model knows the query's language and the workspace's main one."""
        known = calibration_of(model).languages
        if known is None:
            return True
        corpus = self.index.languages[:1]
        return detect_language(query) in known and all(language in known for language in corpus)

    def memory_bytes(self) -> int:
        return self.index.memory_bytes() + self.titles.memory_bytes()

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        meta = json.dumps({"format": FORMAT, "version": VERSION}).encode()
        np.savez(buffer, meta=np.frombuffer(meta, dtype=np.uint8),
                 text=np.frombuffer(self.index.to_bytes(), dtype=np.uint8),
                 titles=np.frombuffer(self.titles.to_bytes(), dtype=np.uint8))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "LexicalIndex":
        """Load what `to_bytes` wrote; ValueError on anything else (a file of an older kb without the
        title field included: the caller rebuilds from the stored chunks)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                meta = json.loads(arrays["meta"].tobytes().decode())
                text, titles = arrays["text"].tobytes(), arrays["titles"].tobytes()
        except Exception as exc:
            raise ValueError(f"not a {FORMAT} file (an older kb's BM25 file has no title field): {exc}") from exc
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"not a version {VERSION} {FORMAT} file")
        index = cls(BM25Index.from_bytes(text), BM25Index.from_bytes(titles))
        if len(index.index) != len(index.titles):
            raise ValueError("the text and title fields hold different chunks")
        return index


def _scores(index: BM25Index, terms: list[str], keys: np.ndarray) -> np.ndarray:
    return index.scores_of(terms, keys)

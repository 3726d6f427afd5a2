"""The BM25 side of a workspace's search, over the same chunks (and keys) as its FAISS index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from index.lexical import BM25Index, analyze, analyze_query, detect_language

# Languages each embedding model was trained on; dense search is near random outside them, so
# hybrid search leans on BM25 there. Models not listed are taken to be multilingual.
MODEL_LANGUAGES: dict[str, frozenset[str]] = {
    "all-MiniLM-L6-v2": frozenset({"english"}),
}


def document_language(text: str) -> str:
    return detect_language(text)


def chunk_terms(texts: Sequence[str], language: str) -> list[str]:
    """Analysed terms of each chunk, as stored (space-separated; terms never contain spaces)."""
    return [" ".join(analyze(text, language)) for text in texts]


@dataclass
class LexicalIndex:
    index: BM25Index = field(default_factory=BM25Index)

    def add(self, keys: np.ndarray, stored_terms: Sequence[str], languages: Sequence[str]) -> None:
        self.index.add(keys, [terms.split() for terms in stored_terms], list(languages))

    def remove(self, keys) -> None:
        self.index.remove(keys)

    def query_terms(self, query: str) -> list[str]:
        return analyze_query(query, self.index.languages)

    def scores(self, terms: list[str], keys: np.ndarray) -> np.ndarray:
        """The BM25 score of each of `keys` (0 where no query term occurs), aligned with `keys`."""
        found, scores = self.index.search(terms, len(keys), allowed_ids=keys)
        by_key = dict(zip(found.tolist(), scores.tolist()))
        return np.array([by_key.get(int(k), 0.0) for k in keys], dtype=np.float64)

    def matched_terms(self, terms: list[str], keys: np.ndarray) -> np.ndarray:
        """How many distinct query terms each of `keys` contains, aligned with `keys`."""
        return self.index.matched_terms(terms, keys)

    def model_covers(self, model: str, query: str) -> bool:
        """Whether the embedding model knows the query's language and the workspace's main one."""
        known = MODEL_LANGUAGES.get(model)
        if known is None:
            return True
        corpus = self.index.languages[:1]
        return detect_language(query) in known and all(language in known for language in corpus)

    def memory_bytes(self) -> int:
        return self.index.memory_bytes()

    def to_bytes(self) -> bytes:
        return self.index.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "LexicalIndex":
        return cls(BM25Index.from_bytes(data))

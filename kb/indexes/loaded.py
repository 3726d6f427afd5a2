"""A workspace+model's loaded search indexes (vectors and BM25), and how a change goes into them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from index.locks import ReadWriteLock
from index.stores import VectorStore

from .lexical import LexicalIndex

log = logging.getLogger(__name__)


@dataclass
class LoadedIndex:
    """A workspace+model's vector store and BM25 index, over the same chunk keys, at one generation.

    FAISS and the BM25 arrays are not safe to search while they change: searches hold
    `lock.reading()`, changes `lock.writing()` (in slices, see `change`). Between slices a search
    may see part of a change (new vectors without their lexical entries yet); `generation`
    moves on when the whole change is in.
    """

    store: VectorStore
    generation: int
    lexical: LexicalIndex
    lock: ReadWriteLock = field(default_factory=ReadWriteLock)

    def memory_bytes(self) -> int:
        return self.store.memory_bytes() + self.lexical.memory_bytes()

    def change(
        self, generation: int, add: "ChunkVectors | None" = None, remove: list[int] | None = None, slice_size: int = 16
    ) -> None:
        """Apply a committed change, letting searches in between slices of it.

        An HNSW graph takes about a millisecond per vector inserted, and searches must not run
        while it changes: one batch of thousands of chunks at once would hold every search of
        the workspace for seconds. Vectors go in `slice_size` at a time instead, each slice
        under the write lock on its own. The lexical side is changed so that every key it holds
        is in the vector store at all times (removed from it first, added to it last), since
        searches read the vectors of lexical hits.
        """
        if remove:
            with self.lock.writing():
                self.lexical.remove(remove)
                self.store.remove(remove)
        if add is not None:
            for start in range(0, len(add.keys), slice_size):
                with self.lock.writing():
                    self.store.add(add.keys[start : start + slice_size], add.vectors[start : start + slice_size])
        with self.lock.writing():
            if add is not None:
                self.lexical.add(add.keys, add.terms, add.languages, add.titles)
            self.generation = generation

    def snapshot(self) -> tuple[int, bytes, bytes]:
        """(generation, vector file bytes, lexical file bytes), consistent with each other."""
        with self.lock.reading():
            return self.generation, self.store.to_bytes(), self.lexical.to_bytes()


@dataclass(frozen=True)
class ChunkVectors:
    """New chunks to add: keys, embeddings, stored lexical terms and languages, and title fields
    (`lexical.title_text`; None: empty)."""

    keys: np.ndarray
    vectors: np.ndarray
    terms: list[str]
    languages: list[str]
    titles: list[str] | None = None


def switch_store_if_due(store: VectorStore, lock: ReadWriteLock) -> None:
    """Move an "auto" store to exact or HNSW search when its size calls for it.

    The new store is built while searches go on against the current one (no change can come in
    between: callers hold the index's change lock, or no one else has the index yet); only the
    swap excludes searches.
    """
    if (target := store.pending_switch()) is not None:  # None unless the kind switches ("auto")
        log.info("vector store moves to %s search at %d vectors", type(target).__name__, len(target))
        with lock.writing():
            store.swap(target)

"""BM25 over an incremental inverted index held in numpy arrays.

Layout (arrays grow by doubling, so adding a document costs about its own size):

- documents live in *slots*, numbered in the order they were added: id, length in terms,
  alive flag, language;
- the *postings arena* holds each term's postings (slot, tf) in one contiguous block, slots
  ascending; a block that fills up moves to the end of the arena with half as much room
  again, leaving its old place as garbage.

`remove` only marks slots dead (tombstones); while any are dead, a query counts its terms'
live postings for their document frequencies. Once dead slots pass a quarter of all slots,
or garbage outgrows the blocks in use, everything is repacked in one linear pass: dead
postings dropped, slots renumbered, unused terms forgotten.

Scoring is Lucene's BM25: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), term weight
idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)), over the live documents.
A query is a set of terms (repeats count once). Scores are raw BM25, best first.

Searches may run concurrently with each other; changes (add, remove) must be serialised by
the caller and not overlap a search.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import filterfalse
from pathlib import Path

import numpy as np

from ..files import write_atomically

FORMAT = "kb-bm25"
VERSION = 1
_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_EMPTY_SCORES = np.zeros(0, dtype=np.float32)
_DEAD_FRACTION = 0.25  # compact once this share of slots is deleted
_DICT_LOOKUP_MAX = 1024  # allowed_ids up to this many are mapped to slots through the dict
_TF_MAX = np.iinfo(np.uint16).max  # term frequencies are stored as uint16 (higher ones clipped)


def _reserve(array: np.ndarray, size: int) -> np.ndarray:
    """`array` with room for at least `size` items (doubling), contents kept."""
    if len(array) >= size:
        return array
    grown = np.zeros(max(size, 2 * len(array), 16), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=out[1:])
    return out


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, start + length) for each pair, as int64 indexes."""
    lengths = lengths.astype(np.int64, copy=False)
    total = int(lengths.sum())
    if total == 0:
        return _EMPTY_IDS
    return np.repeat(starts.astype(np.int64) - _exclusive_cumsum(lengths), lengths) + np.arange(total, dtype=np.int64)


def _grow(needed: np.ndarray) -> np.ndarray:
    """Block capacity for `needed` postings: half as much again, so moves are rare."""
    return needed + (needed >> 1) + 1


class BM25Index:
    """BM25 search over documents (chunks) keyed by int64 ids, each a list of terms."""

    def __init__(self, k1: float = 1.2, b: float = 0.75):
        self.k1 = float(k1)
        self.b = float(b)
        self._load_state(_empty_state())

    # ---- size and contents -------------------------------------------------------------

    def __len__(self) -> int:
        return self._n_live

    def __contains__(self, doc_id: object) -> bool:
        return int(doc_id) in self._slot_of  # type: ignore[call-overload]

    def ids(self) -> np.ndarray:
        """Ids of the documents in the index, in the order they were added."""
        n = self._n_slots
        return self._s_id[:n][self._s_alive[:n]].copy()

    @property
    def vocabulary_size(self) -> int:
        """Distinct terms held (those of deleted documents until the next compaction)."""
        return int(np.count_nonzero(self._t_len[: len(self._terms)]))

    def postings(self, term: str) -> int:
        """Entries in `term`'s postings list: the documents holding it (0 for a term not indexed)."""
        term_id = self._vocab.get(term)
        return 0 if term_id is None else int(self._t_len[term_id])

    @property
    def language_counts(self) -> dict[str, int]:
        """How many documents of each language (as given to `add`) the index holds."""
        return {name: count for name, count in self._lang_counts.items() if count > 0}

    @property
    def languages(self) -> list[str]:
        """Languages of the documents held, most documents first: what `analyze_query` needs."""
        counts = self.language_counts
        return sorted(counts, key=lambda name: (-counts[name], name))

    def memory_bytes(self) -> int:
        """Approximate memory held: the arrays, plus the term and id dictionaries."""
        arrays = (self._t_start, self._t_len, self._t_cap, self._p_slot, self._p_tf,
                  self._s_id, self._s_len, self._s_alive, self._s_lang)
        dictionaries = 120 * len(self._terms) + sum(map(len, self._terms)) + 100 * len(self._slot_of)
        return int(sum(a.nbytes for a in arrays)) + dictionaries

    # ---- changes -----------------------------------------------------------------------

    def add(
        self,
        ids: Sequence[int] | np.ndarray,
        token_lists: Sequence[Sequence[str]],
        languages: str | Sequence[str | None] | None = None,
    ) -> None:
        """Add documents; an id already present is replaced. `languages`: one for all, one per
        document, or None (kept only for the `languages` bookkeeping)."""
        id_array = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(id_array) != len(token_lists):
            raise ValueError(f"{len(id_array)} ids for {len(token_lists)} token lists")
        if len(id_array) == 0:
            return
        if len(set(id_array.tolist())) != len(id_array):
            raise ValueError("the same id is given twice")
        if isinstance(languages, str) or languages is None:
            languages = [languages] * len(id_array)
        elif len(languages) != len(id_array):
            raise ValueError(f"{len(languages)} languages for {len(id_array)} documents")
        self.remove(i for i in id_array.tolist() if i in self._slot_of)

        vocab, terms = self._vocab, self._terms
        term_ids: list[int] = []
        frequencies: list[int] = []
        distinct = np.zeros(len(id_array), dtype=np.int64)
        lengths = np.zeros(len(id_array), dtype=np.int32)
        for n, tokens in enumerate(token_lists):
            counts = Counter(tokens)
            for term in filterfalse(vocab.__contains__, counts):
                vocab[term] = len(terms)
                terms.append(term)
            term_ids.extend(map(vocab.__getitem__, counts))
            frequencies.extend(counts.values())
            distinct[n] = len(counts)
            lengths[n] = len(tokens)

        first, end = self._n_slots, self._n_slots + len(id_array)
        self._s_id = _reserve(self._s_id, end)
        self._s_len = _reserve(self._s_len, end)
        self._s_alive = _reserve(self._s_alive, end)
        self._s_lang = _reserve(self._s_lang, end)
        self._s_id[first:end] = id_array
        self._s_len[first:end] = lengths
        self._s_alive[first:end] = True
        self._s_lang[first:end] = [self._language_code(language) for language in languages]

        n_terms = len(terms)
        self._t_start = _reserve(self._t_start, n_terms)
        self._t_len = _reserve(self._t_len, n_terms)
        self._t_cap = _reserve(self._t_cap, n_terms)
        tfs = np.minimum(np.array(frequencies, dtype=np.int64), _TF_MAX).astype(np.uint16)
        slots = np.repeat(np.arange(first, end, dtype=np.int32), distinct)
        self._append_postings(np.array(term_ids, dtype=np.int32), slots, tfs)

        self._slot_of.update(zip(id_array.tolist(), range(first, end)))
        self._n_slots = end
        self._n_live += len(id_array)
        self._total_len += int(lengths.sum())
        self._lang_counts.update(language for language in languages if language)
        self._changed()
        if self._p_garbage > self._p_used - self._p_garbage:
            self._load_state(self._compacted())

    def remove(self, ids: Iterable[int]) -> int:
        """Remove the ids present; return how many were removed."""
        slot_list = [self._slot_of.pop(i) for i in map(int, ids) if i in self._slot_of]
        if not slot_list:
            return 0
        slots = np.array(slot_list, dtype=np.int64)
        self._s_alive[slots] = False
        self._n_live -= len(slots)
        self._total_len -= int(self._s_len[slots].sum())
        for code in self._s_lang[slots].tolist():
            if code >= 0:
                self._lang_counts[self._lang_names[code]] -= 1
        self._changed()
        if self._n_slots - self._n_live > _DEAD_FRACTION * self._n_slots:
            self._load_state(self._compacted())
        return len(slots)

    def _language_code(self, language: str | None) -> int:
        if not language:
            return -1
        if language not in self._lang_names:
            self._lang_names.append(language)
        return self._lang_names.index(language)

    def _append_postings(self, term_ids: np.ndarray, slots: np.ndarray, tfs: np.ndarray) -> None:
        """Append postings (given in slot order) to their terms' blocks, moving full blocks."""
        if len(term_ids) == 0:
            return
        order = np.argsort(term_ids, kind="stable")  # stable: slots stay ascending per term
        term_ids, slots, tfs = term_ids[order], slots[order], tfs[order]
        firsts = np.flatnonzero(np.r_[True, term_ids[1:] != term_ids[:-1]])
        counts = np.diff(np.r_[firsts, len(term_ids)])
        terms = term_ids[firsts].astype(np.int64)
        held = self._t_len[terms]
        needed = held + counts
        full = needed > self._t_cap[terms]
        if full.any():
            moving, moving_held = terms[full], held[full]
            caps = _grow(needed[full])
            starts = self._p_used + _exclusive_cumsum(caps)
            end = self._p_used + int(caps.sum())
            self._p_slot = _reserve(self._p_slot, end)
            self._p_tf = _reserve(self._p_tf, end)
            source = _ranges(self._t_start[moving], moving_held)
            target = _ranges(starts, moving_held)
            self._p_slot[target] = self._p_slot[source]
            self._p_tf[target] = self._p_tf[source]
            self._p_garbage += int(self._t_cap[moving].sum())
            self._t_start[moving] = starts
            self._t_cap[moving] = caps
            self._p_used = end
        target = np.repeat(self._t_start[terms] + held - firsts, counts) + np.arange(len(term_ids))
        self._p_slot[target] = slots
        self._p_tf[target] = tfs
        self._t_len[terms] = needed

    def _changed(self) -> None:
        self._norm_cache = None
        self._sorted_ids = None

    # ---- search ------------------------------------------------------------------------

    def search(
        self, query_tokens: Sequence[str], k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, BM25 scores) of the `k` best documents matching any query term, best first
        (equal scores: smaller id first). With `allowed_ids`, only those documents compete."""
        if k <= 0 or self._n_live == 0:
            return _EMPTY_IDS, _EMPTY_SCORES
        blocks = self._weighted_blocks(query_tokens)
        if not blocks:
            return _EMPTY_IDS, _EMPTY_SCORES
        norms = self._norms()
        if allowed_ids is None:
            scores = self._accumulate(blocks, norms)
            slots = np.flatnonzero(scores)
            if self._n_live < self._n_slots:
                slots = slots[self._s_alive[slots]]
            scores = scores[slots]
        else:
            slots = self._slots_of(allowed_ids)
            if len(slots) == 0:
                return _EMPTY_IDS, _EMPTY_SCORES
            if 16 * len(slots) < sum(end - start for (start, end), _ in blocks):
                scores = self._score_slots(blocks, slots, norms)
            else:
                scores = self._accumulate(blocks, norms)[slots]
            hits = scores > 0
            slots, scores = slots[hits], scores[hits]
        return self._top(slots, scores, k)

    def _weighted_blocks(self, query_tokens: Sequence[str]) -> list[tuple[tuple[int, int], float]]:
        """((start, end) of its postings, IDF weight) of each distinct query term with live postings."""
        vocab = self._vocab
        terms = [vocab[t] for t in dict.fromkeys(query_tokens) if t in vocab]
        blocks = [(int(self._t_start[t]), int(self._t_start[t] + self._t_len[t])) for t in terms]
        if self._n_live == self._n_slots:
            df = np.array([end - start for start, end in blocks], dtype=np.float64)
        else:  # tombstones: count the live postings
            alive = self._s_alive
            df = np.array([np.count_nonzero(alive[self._p_slot[start:end]]) for start, end in blocks], dtype=np.float64)
        if not np.any(df):
            return []
        n = float(self._n_live)
        weights = (np.log1p((n - df + 0.5) / (df + 0.5)) * (self.k1 + 1.0)).tolist()
        return [(block, weight) for block, weight, f in zip(blocks, weights, df.tolist()) if f > 0]

    def matched_terms(self, query_tokens: Sequence[str], ids: np.ndarray) -> np.ndarray:
        """How many distinct query terms each of `ids` contains, aligned with `ids` (0: none, or
        not indexed). One pass over each term's postings; no scoring."""
        return self.term_presence(query_tokens, ids).sum(axis=1, dtype=np.float64)

    def term_presence(self, query_tokens: Sequence[str], ids: np.ndarray) -> np.ndarray:
        """Which distinct query terms (columns, in first-seen order) each of `ids` (rows) contains: a
        boolean matrix (all False for ids not indexed and terms not in the vocabulary)."""
        terms = list(dict.fromkeys(query_tokens))
        slots = self._aligned_slots(ids)
        presence = np.zeros((len(slots), len(terms)), dtype=bool)
        known = slots >= 0
        if not known.any():
            return presence
        present = np.zeros(self._n_slots, dtype=bool)
        for column, term in enumerate(terms):
            term_id = self._vocab.get(term)
            if term_id is None:
                continue
            start = int(self._t_start[term_id])
            present[:] = False
            present[self._p_slot[start : start + int(self._t_len[term_id])]] = True
            presence[known, column] = present[slots[known]]
        return presence

    def scores_of(self, query_tokens: Sequence[str], ids: np.ndarray) -> np.ndarray:
        """The BM25 score of each of `ids` (float64, aligned with `ids`; 0 where no query term occurs or
        the id is not indexed): the scores `search` gives them, computed for these ids only, without
        ranking them."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        out = np.zeros(len(ids), dtype=np.float64)
        if len(ids) == 0 or self._n_live == 0:
            return out
        blocks = self._weighted_blocks(query_tokens)
        if not blocks:
            return out
        slots = self._aligned_slots(ids)
        known = np.flatnonzero(slots >= 0)
        if known.size:
            out[known] = self._score_slots(blocks, slots[known], self._norms())
        return out

    def _aligned_slots(self, ids: np.ndarray) -> np.ndarray:
        """The slot of each of `ids` (aligned; -1 where the id is not a live document), vectorised."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        sorted_ids, sorted_slots = self._sorted_live()
        if len(sorted_ids) == 0 or len(ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        return np.where(sorted_ids[at] == ids, sorted_slots[at], -1).astype(np.int64)

    def _sorted_live(self) -> tuple[np.ndarray, np.ndarray]:
        """(live ids sorted, their slots), kept until the next change."""
        if self._sorted_ids is None:
            live = np.flatnonzero(self._s_alive[: self._n_slots])
            order = np.argsort(self._s_id[live], kind="stable")
            self._sorted_ids = (self._s_id[live][order], live[order])
        return self._sorted_ids

    def document_frequency(self, term: str) -> int:
        """How many live documents hold `term`."""
        term_id = self._vocab.get(term)
        if term_id is None:
            return 0
        start = int(self._t_start[term_id])
        postings = self._p_slot[start : start + int(self._t_len[term_id])]
        return len(postings) if self._n_live == self._n_slots else int(np.count_nonzero(self._s_alive[postings]))

    def _norms(self) -> np.ndarray:
        """k1 * (1 - b + b * dl / avgdl) per slot, kept until the next change."""
        if self._norm_cache is None:
            avgdl = self._total_len / self._n_live if self._total_len else 1.0
            lengths = self._s_len[: self._n_slots].astype(np.float64)
            self._norm_cache = (self.k1 * (1.0 - self.b + self.b * lengths / avgdl)).astype(np.float32)
        return self._norm_cache

    def _accumulate(self, blocks: list[tuple[tuple[int, int], float]], norms: np.ndarray) -> np.ndarray:
        """Scores of every slot: each term's postings added in (dead slots included)."""
        scores = np.zeros(self._n_slots, dtype=np.float32)
        for (start, end), weight in blocks:
            slots = self._p_slot[start:end]
            tfs = self._p_tf[start:end].astype(np.float32)
            scores[slots] += weight * tfs / (tfs + norms[slots])
        return scores

    def _score_slots(self, blocks: list[tuple[tuple[int, int], float]], slots: np.ndarray, norms: np.ndarray) -> np.ndarray:
        """Scores of a few (sorted) slots, looked up in each term's slot-sorted postings."""
        scores = np.zeros(len(slots), dtype=np.float32)
        slot_norms = norms[slots]
        for (start, end), weight in blocks:
            postings = self._p_slot[start:end]
            at = np.searchsorted(postings, slots)
            at[at == len(postings)] = 0
            found = np.flatnonzero(postings[at] == slots)
            tfs = self._p_tf[start + at[found]].astype(np.float32)
            scores[found] += weight * tfs / (tfs + slot_norms[found])
        return scores

    def _slots_of(self, ids: np.ndarray) -> np.ndarray:
        """Sorted distinct slots of the live documents among `ids`."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) <= _DICT_LOOKUP_MAX:
            get = self._slot_of.get
            return np.array(sorted({slot for slot in map(get, ids.tolist()) if slot is not None}), dtype=np.int64)
        sorted_ids, sorted_slots = self._sorted_live()
        if len(sorted_ids) == 0:
            return _EMPTY_IDS
        at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        chosen = np.zeros(self._n_slots, dtype=bool)
        chosen[sorted_slots[at[sorted_ids[at] == ids]]] = True
        return np.flatnonzero(chosen)

    def _top(self, slots: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if len(slots) > k:
            best = np.argpartition(-scores, k - 1)[:k]
            slots, scores = slots[best], scores[best]
        ids = self._s_id[slots]
        order = np.lexsort((ids, -scores))
        return ids[order], scores[order]

    # ---- state: compaction and serialisation -------------------------------------------

    def _compacted(self) -> dict:
        """The live contents only: dead postings dropped, slots renumbered, unused terms gone."""
        n, n_terms = self._n_slots, len(self._terms)
        alive = self._s_alive[:n]
        live = np.flatnonzero(alive)
        held = self._t_len[:n_terms]
        postings = _ranges(self._t_start[:n_terms], held)
        posting_slots = self._p_slot[postings]
        keep = alive[posting_slots]
        counts = np.bincount(np.repeat(np.arange(n_terms), held)[keep], minlength=n_terms)
        used = np.flatnonzero(counts)
        return {
            "ids": self._s_id[live],
            "lengths": self._s_len[live],
            "languages": self._s_lang[live],
            "posting_counts": counts[used],
            "posting_slots": (np.cumsum(alive, dtype=np.int32) - 1)[posting_slots[keep]],
            "posting_tfs": self._p_tf[postings[keep]],
            "terms": [self._terms[i] for i in used.tolist()],
            "language_names": list(self._lang_names),
        }

    def _load_state(self, state: dict) -> None:
        terms: list[str] = state["terms"]
        counts = np.asarray(state["posting_counts"], dtype=np.int64)
        ids = np.asarray(state["ids"], dtype=np.int64)
        lengths = np.asarray(state["lengths"], dtype=np.int32)
        posting_slots = np.asarray(state["posting_slots"], dtype=np.int32)
        if (len(counts) != len(terms) or len(lengths) != len(ids) or int(counts.sum()) != len(posting_slots)
                or len(state["posting_tfs"]) != len(posting_slots) or len(state["languages"]) != len(ids)
                or (len(posting_slots) and not 0 <= int(posting_slots.min()) <= int(posting_slots.max()) < len(ids))):
            raise ValueError("inconsistent BM25 index state")
        self._terms = terms
        self._vocab = {term: i for i, term in enumerate(terms)}
        # every block gets room to grow, so that the next additions move few of them
        caps = _grow(counts)
        self._t_start = _exclusive_cumsum(caps)
        self._t_len = counts.copy()
        self._t_cap = caps
        self._p_used = int(caps.sum())
        self._p_garbage = 0
        self._p_slot = np.zeros(self._p_used, dtype=np.int32)
        self._p_tf = np.zeros(self._p_used, dtype=np.uint16)
        placed = _ranges(self._t_start, counts)
        self._p_slot[placed] = posting_slots
        self._p_tf[placed] = state["posting_tfs"]
        self._n_slots = self._n_live = len(ids)
        self._s_id = ids
        self._s_len = lengths
        self._s_alive = np.ones(len(ids), dtype=bool)
        self._s_lang = np.asarray(state["languages"], dtype=np.int16)
        self._slot_of = dict(zip(ids.tolist(), range(len(ids))))
        if len(self._slot_of) != len(ids):
            raise ValueError("inconsistent BM25 index state: repeated ids")
        self._total_len = int(lengths.sum())
        self._lang_names = list(state["language_names"])
        codes = self._s_lang[self._s_lang >= 0]
        per_language = np.bincount(codes, minlength=len(self._lang_names)).tolist()
        self._lang_counts = Counter(dict(zip(self._lang_names, per_language)))
        self._changed()

    def to_bytes(self) -> bytes:
        state = self._compacted()
        meta = {"format": FORMAT, "version": VERSION, "k1": self.k1, "b": self.b,
                "terms": state.pop("terms"), "language_names": state.pop("language_names")}
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.frombuffer(json.dumps(meta, ensure_ascii=False).encode(), dtype=np.uint8), **state)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "BM25Index":
        """Load what `to_bytes` wrote; raises ValueError on anything else."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                state = {name: arrays[name] for name in arrays.files}
            meta = json.loads(state.pop("meta").tobytes().decode())
            if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                raise ValueError(f"not a version {VERSION} {FORMAT} file")
            index = cls(meta["k1"], meta["b"])
            index._load_state({**state, "terms": meta["terms"], "language_names": meta["language_names"]})
        except ValueError:
            raise
        except Exception as exc:  # truncated or foreign data: zipfile, numpy, json, key errors
            raise ValueError(f"not a BM25 index ({type(exc).__name__}: {exc})") from exc
        return index

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file in the same folder, fsync, then rename over `path`."""

        write_atomically(Path(path), self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> "BM25Index":
        return cls.from_bytes(Path(path).read_bytes())


def _empty_state() -> dict:
    return {"ids": _EMPTY_IDS, "lengths": np.zeros(0, dtype=np.int32), "languages": np.zeros(0, dtype=np.int16),
            "posting_counts": _EMPTY_IDS, "posting_slots": np.zeros(0, dtype=np.int32),
            "posting_tfs": np.zeros(0, dtype=np.uint16), "terms": [], "language_names": []}

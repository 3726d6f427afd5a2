"""Split a `ParsedDocument` into chunks that fit the embedding model.

Structure first: every heading starts a new chunk (a run of headings stays with the text
that follows it). Within a section, whole blocks are packed while they fit; a block too
large is cut into sentences, and a sentence too large into word windows (between
characters for scripts without spaces). Token counts come from the caller's
`count_tokens` (the model's tokenizer, special tokens included): each piece is counted
once, the chunk's count is their sum plus the special tokens, and each assembled chunk
is counted again to be safe. Every chunk is a contiguous slice of the document text
that starts and ends on non-whitespace.

Overlap repeats trailing sentences of the previous chunk (or, if its last sentence alone
is longer than the overlap, that sentence's last words), but only inside a section: a
chunk never reaches back across a heading.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from collections.abc import Callable
from dataclasses import dataclass

from .segment import iter_word_spans, sentence_spans, word_spans
from .types import Block, Chunk, ParsedDocument


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int
    tokens: int  # without the special tokens the tokenizer adds to every text
    block: int  # index into doc.blocks


# A span this many characters per token of budget is longer than any chunk: it is cut before it is
# counted (a token holds a few characters; counting a 50 MB paragraph whole would tokenise it whole).
CHARS_PER_TOKEN_CAP = 64
MEMO_SIZE = 50_000  # spans whose counts are remembered (counts are reused only near where they were made)


class _Counter:
    """`count_tokens` on spans of one text, memoised (boundedly), minus the special tokens."""

    def __init__(self, text: str, count_tokens: Callable[[str], int]) -> None:
        self.text = text
        self.count_tokens = count_tokens
        self.special = count_tokens("")
        self._memo: dict[tuple[int, int], int] = {}

    def __call__(self, start: int, end: int) -> int:
        key = (start, end)
        if key not in self._memo:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = self.count_tokens(self.text[start:end]) - self.special
        return self._memo[key]


def chunk_document(
    doc: ParsedDocument,
    *,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    overlap_tokens: int = 0,
) -> list[Chunk]:
    """Chunks of `doc` in order, each with `count_tokens(chunk.text) <= max_tokens`."""
    counter = _Counter(doc.text, count_tokens)
    budget = max_tokens - counter.special
    if budget < 1:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for text: count_tokens('') is already {counter.special}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap_tokens must be between 0 and max_tokens - 1, got {overlap_tokens}")
    chunker = _Chunker(doc, counter, budget, overlap_tokens)
    chunks: list[Chunk] = []
    for section in _sections(doc.blocks):
        chunks.extend(chunker.section(section))
    return chunks


def _sections(blocks: list[Block]) -> list[list[int]]:
    """Block indices grouped so that each heading (or run of headings) opens a group."""
    sections: list[list[int]] = []
    for index, block in enumerate(blocks):
        only_headings_so_far = bool(sections) and all(blocks[i].kind == "heading" for i in sections[-1])
        if not sections or (block.kind == "heading" and not only_headings_so_far):
            sections.append([index])
        else:
            sections[-1].append(index)
    return sections


class _Chunker:
    def __init__(self, doc: ParsedDocument, counter: _Counter, budget: int, overlap: int) -> None:
        self.doc = doc
        self.text = doc.text
        self.count = counter
        self.budget = budget
        self.overlap = overlap

    # -- cutting blocks into pieces that fit ------------------------------------------
    def _pieces(self, index: int) -> list[_Piece]:
        block = self.doc.blocks[index]
        if not self._too_long(block.start, block.end):
            tokens = self.count(block.start, block.end)
            if tokens <= self.budget:
                return [_Piece(block.start, block.end, tokens, index)]
        pieces: list[_Piece] = []
        for start, end in sentence_spans(self.text, block.start, block.end):
            tokens = None if self._too_long(start, end) else self.count(start, end)
            if tokens is not None and tokens <= self.budget:
                pieces.append(_Piece(start, end, tokens, index))
            else:
                pieces.extend(self._windows(start, end, index))
        return pieces

    def _too_long(self, start: int, end: int) -> bool:
        """Longer in characters than any chunk could be: not worth counting whole."""
        return end - start > self.budget * CHARS_PER_TOKEN_CAP

    def _windows(self, start: int, end: int, index: int) -> list[_Piece]:
        """Cut an over-long sentence between words, or between characters inside a word."""
        pieces: list[_Piece] = []
        # Words are read as they are needed, at most `budget` ahead: a sentence of millions of
        # words is never held as one list.
        upcoming = iter_word_spans(self.text, start, end)
        words: list[tuple[int, int]] = []
        while True:
            words.extend(islice(upcoming, self.budget - len(words)))
            if not words:
                return pieces
            # Each word costs at least one token, so no window holds more than `budget` words.
            fits = self._largest(1, len(words), lambda k: self.count(words[0][0], words[k - 1][1]))
            if fits:
                pieces.append(_Piece(words[0][0], words[fits - 1][1], self.count(words[0][0], words[fits - 1][1]), index))
                del words[:fits]
            else:  # a single word longer than the budget: cut it between characters
                pieces.extend(self._characters(*words[0], index))
                del words[0]

    def _characters(self, start: int, end: int, index: int) -> list[_Piece]:
        pieces = []
        while start < end:
            hi = min(end, start + 64 * self.budget)
            cut = self._largest(start + 1, hi, lambda c: self.count(start, c)) or start + 1
            pieces.append(_Piece(start, cut, self.count(start, cut), index))
            start = cut
        return pieces

    def _largest(self, lo: int, hi: int, cost: Callable[[int], int]) -> int:
        """Largest k in [lo, hi] with cost(k) <= budget (cost grows with k), or 0."""
        found = 0
        while lo <= hi:
            mid = (lo + hi) // 2
            if cost(mid) <= self.budget:
                found, lo = mid, mid + 1
            else:
                hi = mid - 1
        return found

    # -- packing pieces into chunks ---------------------------------------------------
    def section(self, indices: list[int]) -> list[Chunk]:
        queue = deque(piece for index in indices for piece in self._pieces(index))
        chunks: list[Chunk] = []
        lead: list[_Piece] = []  # overlap repeated from the previous chunk
        while queue:
            body = [queue.popleft()]
            total = sum(p.tokens for p in lead) + body[0].tokens
            while lead and total > self.budget:
                total -= lead.pop(0).tokens
            while queue and total + queue[0].tokens <= self.budget:
                total += queue[0].tokens
                body.append(queue.popleft())
            lead, body = self._fit(lead, body, queue)
            chunks.append(self._chunk(lead + body))
            lead = self._overlap(lead + body) if queue and self.overlap else []
        return chunks

    def _fit(self, lead: list[_Piece], body: list[_Piece], queue: deque) -> tuple[list[_Piece], list[_Piece]]:
        """Check the assembled text with the real tokenizer; shed overlap, then tail pieces."""
        while self.count((lead or body)[0].start, body[-1].end) > self.budget and (lead or len(body) > 1):
            if lead:
                lead = lead[1:]
            else:
                queue.appendleft(body.pop())
        return lead, body

    def _overlap(self, previous: list[_Piece]) -> list[_Piece]:
        """Trailing sentences of the previous chunk worth at most `overlap` tokens.

        When even its last sentence is too long, the last words of that sentence instead.
        """
        taken: list[_Piece] = []
        total = 0
        for piece in reversed(previous):
            for start, end in reversed(sentence_spans(self.text, piece.start, piece.end)):
                if start <= previous[0].start:
                    return taken  # never repeat the whole previous chunk
                tokens = self.count(start, end)
                if total + tokens > self.overlap:
                    return taken or self._tail_words(start, end, piece.block)
                taken.insert(0, _Piece(start, end, tokens, piece.block))
                total += tokens
        return taken

    def _tail_words(self, start: int, end: int, block: int) -> list[_Piece]:
        words = word_spans(self.text, start, end)
        lo = max(1, len(words) - self.overlap)  # a word is at least one token
        # Smallest i whose suffix words[i:] fits: the cost falls as i grows.
        best = None
        hi = len(words) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.count(words[mid][0], end) <= self.overlap:
                best, hi = mid, mid - 1
            else:
                lo = mid + 1
        if best is None:
            return []
        return [_Piece(words[best][0], end, self.count(words[best][0], end), block)]

    def _chunk(self, pieces: list[_Piece]) -> Chunk:
        start, end = pieces[0].start, pieces[-1].end
        blocks = self.doc.blocks[pieces[0].block : pieces[-1].block + 1]
        pages = [b.page for b in blocks if b.page is not None]
        return Chunk(
            text=self.text[start:end],
            start=start,
            end=end,
            token_count=self.count(start, end) + self.count.special,
            heading_path=self.doc.blocks[pieces[0].block].heading_path,
            page_start=min(pages) if pages else None,
            page_end=max(pages) if pages else None,
        )

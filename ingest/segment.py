"""Sentence and word boundaries, as spans into a string.

Deliberately simple regexes, good enough to choose chunk boundaries: a sentence ends at
. ! ? … (followed by whitespace and not by a lowercase letter, which skips most
abbreviations), at the Arabic ؟ and ۔, at the CJK 。！？ (no space needed), and at a line
break. Words are runs of non-whitespace; scripts written without spaces have none
inside a sentence, and are cut between characters by the chunker.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_BOUNDARY = re.compile(
    r"[.!?…؟۔]+[\"'”’»)\]]*[ \t]+(?![a-z])"  # Latin, Arabic, Urdu: punctuation then space
    r"|[。！？]+[」』）”’]*[ \t]*"  # CJK: no space after the full stop
    r"|\n\s*"  # every line break ends a segment (table rows, verse, lists)
)
_WORD = re.compile(r"\S+")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of the sentences in `text[start:end]`, without surrounding whitespace."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    position = start
    for match in _BOUNDARY.finditer(text, start, end):
        _add_stripped(text, position, match.end(), spans)
        position = match.end()
    _add_stripped(text, position, end, spans)
    return spans


def word_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return list(iter_word_spans(text, start, end))


def iter_word_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The spans of the words of `text[start:end]`, one at a time."""
    return (m.span() for m in _WORD.finditer(text, start, end))


def _add_stripped(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))

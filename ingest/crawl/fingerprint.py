"""Fingerprints of a page's extracted text, to skip pages already crawled under another URL.

`text_hash` (SHA-256 of the text with whitespace collapsed) finds exact copies.
`simhash` (trafilatura's 64-bit Charikar simhash of the text's words) finds near
copies: the same article with another date line or a different "related posts" box.
Only texts of `MIN_WORDS_FOR_SIMHASH` words or more are compared that way; short
texts differ in too few words for the hash to tell them apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

MIN_WORDS_FOR_SIMHASH = 100


def text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def simhash(text: str) -> int | None:
    """The text's simhash, or None if it is too short to compare reliably."""
    if len(text.split()) < MIN_WORDS_FOR_SIMHASH:
        return None
    from trafilatura.deduplication import Simhash

    return Simhash(text).hash


def nearest(value: int, known: Iterable[tuple[int, str]], max_bits: int) -> str | None:
    """The URL of a known simhash within `max_bits` differing bits of `value`, if any."""
    for other, url in known:
        if (value ^ other).bit_count() <= max_bits:
            return url
    return None

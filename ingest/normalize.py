"""Text clean-up shared by every converter.

Unicode NFC, Latin ligatures (U+FB00–FB06) unfolded so that "ﬁlled" matches "filled",
invisible characters dropped, runs of horizontal whitespace collapsed to one space,
empty lines removed. Non-Latin scripts pass through untouched (NFC only), and the
zero-width (non-)joiners that Arabic and Indic text need are kept.
"""

from __future__ import annotations

import re
import unicodedata

_LIGATURES = {chr(c): unicodedata.normalize("NFKC", chr(c)) for c in range(0xFB00, 0xFB07)}
# Soft hyphen, zero-width space, word joiner, BOM: invisible and never wanted in an index.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u2060\ufeff"), None)
# C0/C1 control characters except tab and newline (handled as whitespace below).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_HSPACE = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_ANY_SPACE = re.compile(r"\s+")


def _base(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    text = unicodedata.normalize("NFC", text.translate(_INVISIBLE))
    if any(ch in text for ch in _LIGATURES):
        text = "".join(_LIGATURES.get(ch, ch) for ch in text)
    return _CONTROL.sub(" ", text)


def clean_lines(text: str) -> str:
    """Normalise a block keeping its line breaks; blank lines and edge whitespace go."""
    lines = (_HSPACE.sub(" ", line).strip() for line in _base(text).split("\n"))
    return "\n".join(line for line in lines if line)


def clean_inline(text: str) -> str:
    """Normalise a block into a single line: every whitespace run becomes one space."""
    return _ANY_SPACE.sub(" ", _base(text)).strip()

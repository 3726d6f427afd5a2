"""Decide whether bytes are text and decode them.

Order: byte-order mark (UTF-8, UTF-16, UTF-32), BOM-less UTF-16 (every other byte NUL),
strict UTF-8, the charset the server declared, cp1252 when the result looks like a Western
language, then charset-normalizer's best guess. Anything with NUL bytes or many control
characters after decoding is binary, not text.
"""

from __future__ import annotations

import codecs
import re

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Control characters, except tab, line breaks, form feed and ESC (seen in real text files).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.I)
_SAMPLE = 65536


def charset_from_content_type(content_type: str | None) -> str | None:
    match = _CHARSET.search(content_type or "")
    if not match:
        return None
    try:
        return codecs.lookup(match.group(1)).name
    except LookupError:
        return None


def _bom(data: bytes) -> tuple[str, int] | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def _bomless_utf16(data: bytes) -> str | None:
    sample = data[:_SAMPLE]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def looks_binary(text: str) -> bool:
    """True when decoded text still carries NULs or more than 0.5% control characters."""
    sample = text[:_SAMPLE]
    if "\x00" in sample:
        return True
    return len(_CONTROL.findall(sample)) > max(1, len(sample) // 200)


def _looks_western(text: str) -> bool:
    """cp1252 decodes almost anything; accept it only if most letters are ASCII."""
    letters = [ch for ch in text[:_SAMPLE] if ch.isalpha()]
    if not letters:
        return True
    return sum(not ch.isascii() for ch in letters) <= 0.3 * len(letters)


def _try(data: bytes, encoding: str) -> str | None:
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    return None if looks_binary(text) else text


def decode_text(data: bytes, declared_charset: str | None = None) -> str | None:
    """Return the decoded text, or None when `data` is not text in any encoding we try."""
    bom = _bom(data)
    if bom:
        return _try(data[bom[1]:], bom[0])
    if b"\x00" in data[:_SAMPLE]:
        utf16 = _bomless_utf16(data)
        return _try(data, utf16) if utf16 else None
    text = _try(data, "utf-8")
    if text is not None:
        return text
    if declared_charset and declared_charset not in ("utf-8", "ascii"):
        text = _try(data, declared_charset)
        if text is not None:
            return text
    text = _try(data, "cp1252")
    if text is not None and _looks_western(text):
        return text
    return _guess(data) or text


def _guess(data: bytes) -> str | None:
    from charset_normalizer import from_bytes  # imported late: only legacy encodings need it

    best = from_bytes(data[: 4 * _SAMPLE], cp_exclusion=["utf_16", "utf_16_le", "utf_16_be", "utf_32", "utf_32_le", "utf_32_be"]).best()
    return _try(data, best.encoding) if best is not None else None

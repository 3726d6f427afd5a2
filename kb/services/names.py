"""Safe display names for documents, folders, agents and uploaded file names.

A name is shown in lists, logs and download headers, so it keeps every printable character of any
script (CJK, emoji with their joiners, accents) and loses what could change how other text reads:
control characters (NUL, DEL, C1, escape sequences) are dropped, tabs and line breaks become
spaces, bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069, and the marks
U+200E, U+200F, U+061C) are dropped so a name cannot reverse the text after it ("invoice‮fdp.exe").
A file name also loses any directory part a client put in front of it.
"""

from __future__ import annotations

import re
import unicodedata

NAME_CHARS = 255
_BIDI = {0x200E, 0x200F, 0x061C, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_SPACES = re.compile(r"\s+")


def display_name(name: str, limit: int = NAME_CHARS) -> str:
    """`name` safe to show and to put in a header (after `header_filename`): possibly empty."""
    kept = []
    for char in unicodedata.normalize("NFC", name):
        if char in "\t\n\r\v\f\x85\u2028\u2029":
            kept.append(" ")
        elif ord(char) in _BIDI or unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn"):
            continue
        else:
            kept.append(char)
    return _SPACES.sub(" ", "".join(kept)).strip()[:limit].strip()


def file_name(filename: str | None) -> str | None:
    """An uploaded file's name as stored: its last path part, made a display name (None if nothing is left)."""
    if filename is None:
        return None
    base = re.split(r"[\\/]", filename)[-1]
    safe = display_name(base)
    return safe if safe not in ("", ".", "..") else None


def ascii_name(name: str, default: str = "download") -> str:
    """An ASCII stand-in for `name` (accents dropped, other letters `_`), for the plain `filename=` of a header."""
    decomposed = unicodedata.normalize("NFKD", display_name(name))
    ascii_text = "".join(c if c.isascii() else ("" if unicodedata.combining(c) else "_") for c in decomposed)
    ascii_text = re.sub(r'["\\%;]', "_", ascii_text)
    stem, dot, extension = re.sub(r"_+", "_", ascii_text).strip().rpartition(".")
    if not dot:
        stem, extension = extension, ""
    if not any(c.isalnum() for c in stem):
        stem = default
    return stem + (f".{extension}" if extension else "")

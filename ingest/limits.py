"""Resource limits applied while parsing untrusted files."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParseLimits:
    """Upper bounds that turn hostile or runaway inputs into `DocumentTooLarge`.

    `max_zip_entries` and `max_unzipped_bytes` guard the ZIP containers (DOCX, EPUB)
    and are checked against the archive's directory before anything is decompressed.
    """

    max_pages: int = 2000
    max_zip_entries: int = 10_000
    max_unzipped_bytes: int = 500_000_000

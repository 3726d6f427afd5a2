"""Refuse ZIP containers (DOCX, EPUB) that would expand beyond `ParseLimits`.

Only the central directory is read. Python's `zipfile` never returns more bytes for an
entry than its declared size, so checking declared sizes also bounds what the DOCX and
EPUB libraries (both built on `zipfile`) can actually decompress.
"""

from __future__ import annotations

import io
import zipfile

from .errors import DocumentTooLarge
from .limits import ParseLimits


def check_zip(data: bytes, limits: ParseLimits, format_name: str) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = archive.infolist()
    if len(entries) > limits.max_zip_entries:
        raise DocumentTooLarge(
            f"this {format_name} contains {len(entries):,} files, more than the limit of {limits.max_zip_entries:,}; "
            "it may be a decompression bomb — check the file, or split the document"
        )
    total = sum(entry.file_size for entry in entries)
    if total > limits.max_unzipped_bytes:
        raise DocumentTooLarge(
            f"this {format_name} would expand to {total:,} bytes, more than the limit of {limits.max_unzipped_bytes:,}; "
            "it may be a decompression bomb — check the file, or split the document and compress its images"
        )

"""Decompression bombs and oversized inputs are refused before any work is done."""

from __future__ import annotations

import time
import zipfile
from io import BytesIO

import pytest
from ingest_testkit import read

from ingest import ParseLimits, parse
from ingest.errors import DocumentTooLarge


def with_zero_entry(base: bytes, name: str, megabytes: int) -> bytes:
    """A copy of a real DOCX/EPUB plus one entry of `megabytes` MiB of zeros (compresses ~200:1)."""
    out = BytesIO()
    source = zipfile.ZipFile(BytesIO(base))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target:
        for item in source.infolist():
            target.writestr(item, source.read(item.filename))
        with target.open(name, "w", force_zip64=True) as entry:
            block = bytes(1 << 20)
            for _ in range(megabytes):
                entry.write(block)
    return out.getvalue()


@pytest.fixture(scope="module")
def docx_bomb() -> bytes:
    return with_zero_entry(read("docx/par-known-paragraphs.docx"), "word/media/image1.bin", 600)


def test_docx_bomb_refused_with_default_limits_before_decompressing(docx_bomb: bytes) -> None:
    assert len(docx_bomb) < 5_000_000
    began = time.perf_counter()
    with pytest.raises(DocumentTooLarge) as caught:
        parse(docx_bomb, filename="bomb.docx")
    assert time.perf_counter() - began < 0.5, "the bomb was decompressed before being refused"
    assert "decompression bomb" in caught.value.message and "500,000,000" in caught.value.message


def test_epub_bomb_refused() -> None:
    bomb = with_zero_entry(read("epub/regime-anticancer-arabic.epub"), "EPUB/Content/zeros.bin", 20)
    with pytest.raises(DocumentTooLarge):
        parse(bomb, filename="bomb.epub", limits=ParseLimits(max_unzipped_bytes=10_000_000))
    assert parse(bomb, filename="fine.epub").format == "epub"  # under the default limit it is just a big book


def test_too_many_entries() -> None:
    with pytest.raises(DocumentTooLarge) as caught:
        parse(read("epub/moby-dick.epub"), limits=ParseLimits(max_zip_entries=100))
    assert "154 files" in caught.value.message


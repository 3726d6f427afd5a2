"""PDF conversion on the real corpus."""

from __future__ import annotations

import logging
import re
from io import BytesIO

import pytest
from ingest_testkit import read

from ingest import ParsedDocument, ParseLimits, parse
from ingest.errors import DocumentTooLarge


def pages_of(doc: ParsedDocument, phrase: str) -> set[int | None]:
    at = doc.text.find(phrase)
    assert at >= 0, f"{phrase!r} not found in the text"
    return {b.page for b in doc.blocks if b.start <= at < b.end}


def test_geotopo_pages_metadata_and_outline(parsed) -> None:
    doc = parsed["pdf/GeoTopo-komprimiert.pdf"]
    assert doc.format == "pdf" and doc.pages == 117
    assert doc.metadata["title"] == "Geometrie und Topologie"
    assert doc.metadata["author"] == "Martin Thoma"
    assert doc.text.startswith("Title: Geometrie und Topologie\nAuthor: Martin Thoma")
    assert doc.blocks[0].kind == "metadata"
    assert pages_of(doc, "Vorwort") == {2}
    assert pages_of(doc, "Ein topologischer Raum ist ein Paar (X, T)") == {6}
    # "Funda-" / "mentalgruppe" is split over two lines on page 52: de-hyphenated.
    assert pages_of(doc, "Diese Gruppe heißt Fundamentalgruppe von X im Basispunkt x.") == {52}
    assert pages_of(doc, "Zwischenwertsatz, 107") == {117}
    # Every body block has a page, and pages never go backwards.
    pages = [b.page for b in doc.blocks if b.kind != "metadata"]
    assert None not in pages and pages == sorted(pages)
    # Outline entries become headings with their nesting.
    block = next(b for b in doc.blocks if doc.text[b.start : b.end].startswith("Definition 1 Ein topologischer Raum ist ein Paar"))
    assert block.heading_path == ("1 Topologische Grundbegriffe", "1.1 Topologische Räume")
    headings = [b.heading_path for b in doc.blocks if b.kind == "heading"]
    assert ("3 Fundamentalgruppe und Überlagerungen", "3.2 Fundamentalgruppe") in headings
    # Running headers ("4 1.1. TOPOLOGISCHE RÄUME") are dropped; the ligature "ﬂ" is unfolded.
    assert "TOPOLOGISCHE RÄUME" not in doc.text
    assert "Auflage" in doc.text and "\ufb02" not in doc.text


def test_multicolumn_reads_column_by_column(parsed) -> None:
    text = parsed["pdf/multicolumn.pdf"].text
    # The first column ends with "Donec nonummy", the second starts with "pellentesque ante.":
    # this sentence only exists if the columns are read one after the other.
    assert "Vivamus viverra fermentum felis. Donec nonummy pellentesque ante. Phasellus adipiscing semper elit." in text
    assert "Nam arcu libero, nonummy eget, consectetuer id, vulputate a, magna." in text
    assert text.index("Duis eget orci sit amet orci dignissim rutrum.") < text.index("Nam dui ligula, fringilla a")


def test_small_pdfs_keep_their_sentences(parsed) -> None:
    assert "Although practicality beats purity." in parsed["pdf/google-doc-document.pdf"].text
    assert parsed["pdf/google-doc-document.pdf"].metadata["title"] == "PDF Example Document"
    assert "Stet clita kasd gubergren, no sea takimata sanctus est Lorem ipsum dolor sit amet." in parsed["pdf/minimal-document.pdf"].text
    assert "Is there a difference between this text and some nonsense like “Huardest gefburn”?" in parsed["pdf/pdflatex-4-pages.pdf"].text


def test_arabic_pdf_keeps_its_script(parsed) -> None:
    doc = parsed["pdf/habibi.pdf"]
    assert "حَبيبي" in doc.text and "habibi" in doc.text


def test_outline_headings_match_printed_section_titles(parsed) -> None:
    doc = parsed["pdf/pdflatex-outline.pdf"]
    headings = [(doc.text[b.start : b.end], b.page) for b in doc.blocks if b.kind == "heading"]
    assert headings[:3] == [("1 Foo", 2), ("2 Bar", 2), ("3 Baz", 2)]


def test_owner_password_only_pdf_opens() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(BytesIO(read("pdf/google-doc-document.pdf"))))
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-128")
    buffer = BytesIO()
    writer.write(buffer)
    assert PdfReader(BytesIO(buffer.getvalue())).is_encrypted
    doc = parse(buffer.getvalue(), filename="restricted.pdf")
    assert "Errors should never pass silently." in doc.text


def test_page_limit() -> None:
    with pytest.raises(DocumentTooLarge) as caught:
        parse(read("pdf/pdflatex-4-pages.pdf"), limits=ParseLimits(max_pages=3))
    assert "4 pages" in caught.value.message


def test_image_only_pdf_is_empty() -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    buffer = BytesIO()
    writer.write(buffer)
    with pytest.raises(Exception) as caught:
        parse(buffer.getvalue(), filename="scan.pdf")
    assert type(caught.value).__name__ == "EmptyDocument"
    assert "OCR" in caught.value.message


def test_pypdf_warnings_stay_out_of_the_logs(caplog) -> None:
    data = read("pdf/minimal-document.pdf")
    pointer = re.search(rb"startxref\s+(\d+)", data)
    assert pointer, "the sample PDF should end with a startxref pointer"
    # A wrong startxref pointer: pypdf recovers, and would log "incorrect startxref pointer".
    damaged = data[: pointer.start(1)] + str(int(pointer.group(1)) + 7).encode() + data[pointer.end(1) :]
    caplog.set_level("DEBUG")
    doc = parse(damaged, filename="damaged.pdf")
    assert "Lorem ipsum dolor sit amet" in doc.text
    assert not [r for r in caplog.records if r.name.startswith("pypdf") and r.levelno >= logging.WARNING]

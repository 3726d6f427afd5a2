"""Format detection looks at content; names and declared types only break ties."""

from __future__ import annotations

import os
import zipfile
from io import BytesIO

import pytest
from ingest_testkit import read

from ingest import SUPPORTED_FORMATS, detect_format, parse
from ingest.errors import CorruptDocument, EmptyDocument, UnsupportedFormat


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pdf/minimal-document.pdf", "pdf"),
        ("docx/par-known-paragraphs.docx", "docx"),
        ("epub/moby-dick.epub", "epub"),
        ("html/blog.python.org.html", "html"),
        ("html/dw.com.colonial.html", "html"),
    ],
)
def test_detects_corpus_files_without_any_hint(name: str, expected: str) -> None:
    assert detect_format(read(name)) == expected


@pytest.mark.parametrize(
    ("name", "wrong_name", "wrong_type"),
    [
        ("pdf/google-doc-document.pdf", "notes.txt", "text/plain"),
        ("docx/par-known-paragraphs.docx", "book.epub", "application/epub+zip"),
        ("epub/regime-anticancer-arabic.epub", "report.pdf", "application/pdf"),
        ("html/caktusgroup.com.django.html", "page.md", "text/markdown"),
    ],
)
def test_wrong_extension_and_content_type_still_parse_by_content(name: str, wrong_name: str, wrong_type: str) -> None:
    expected = detect_format(read(name))
    doc = parse(read(name), filename=wrong_name, content_type=wrong_type)
    assert doc.format == expected
    assert doc.text.strip()


def test_binary_junk_named_pdf_is_refused_with_a_clear_message() -> None:
    junk = os.urandom(4096)
    with pytest.raises((UnsupportedFormat, CorruptDocument)) as caught:
        parse(junk, filename="report.pdf", content_type="application/pdf")
    assert "supported formats are pdf, docx, epub, html, txt, markdown" in caught.value.message
    assert isinstance(caught.value, UnsupportedFormat) and caught.value.supported == list(SUPPORTED_FORMATS)


def test_truncated_pdf_is_corrupt_and_names_the_format() -> None:
    data = read("pdf/pdflatex-4-pages.pdf")
    with pytest.raises(CorruptDocument) as caught:
        parse(data[: len(data) // 3], filename="x.pdf")
    assert "PDF" in caught.value.message


def test_truncated_docx_is_corrupt() -> None:
    data = read("docx/par-known-paragraphs.docx")
    with pytest.raises(CorruptDocument) as caught:
        parse(data[: len(data) // 2], filename="x.docx")
    assert "DOCX" in caught.value.message


def test_other_zip_is_unsupported() -> None:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(UnsupportedFormat) as caught:
        detect_format(buffer.getvalue(), filename="data.zip")
    assert "Excel" in caught.value.message


def test_empty_bytes_are_an_empty_document() -> None:
    with pytest.raises(EmptyDocument):
        detect_format(b"")
    with pytest.raises(EmptyDocument):
        parse(b"", filename="empty.txt")


def test_whitespace_only_text_is_empty() -> None:
    with pytest.raises(EmptyDocument):
        parse(b"  \n\n \t \n", filename="blank.txt")


def test_utf16_with_bom_decodes() -> None:
    text = "Grüße aus München — 東京 and العربية.\n\nSecond paragraph."
    doc = parse(text.encode("utf-16"), filename="note.txt")
    assert doc.format == "txt"
    assert "Grüße aus München — 東京 and العربية." in doc.text
    assert "Second paragraph." in doc.text


def test_utf16_html_without_hint_is_html() -> None:
    page = "<!DOCTYPE html><html><head><title>T</title></head><body><p>Hello from UTF-16.</p></body></html>"
    assert detect_format(page.encode("utf-16")) == "html"


def test_cp1252_decodes() -> None:
    text = "Café crème brûlée — naïve “quotes” à la façon de l'été. Résumé: 5 €."
    doc = parse(text.encode("cp1252"), filename="legacy.txt")
    assert doc.text == text


def test_utf8_bom_is_dropped() -> None:
    doc = parse("\ufeffHello world.".encode("utf-8"), filename="bom.txt")
    assert doc.text == "Hello world."


def test_declared_charset_is_used_for_legacy_text() -> None:
    text = "Привет, как дела? Это проверка кодировки."
    doc = parse(text.encode("koi8-r"), content_type="text/plain; charset=koi8-r")
    assert doc.text == text


def test_markdown_by_extension_or_content_type() -> None:
    data = b"# Title\n\nBody text."
    assert detect_format(data, filename="README.md") == "markdown"
    assert detect_format(data, content_type="text/markdown; charset=utf-8") == "markdown"
    assert detect_format(data, filename="notes.txt") == "txt"


def test_binary_with_nul_bytes_is_not_text() -> None:
    with pytest.raises(UnsupportedFormat):
        detect_format(b"\x00\x01\x02\x03binary\x00\xff\xfe\x10" * 50, filename="data.txt")


def test_known_binary_types_get_advice() -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        detect_format(b"\x89PNG\r\n\x1a\n" + os.urandom(100), filename="scan.pdf")
    assert "OCR" in caught.value.message

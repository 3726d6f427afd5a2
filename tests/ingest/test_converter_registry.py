"""A format registered from outside ingest (here, in the test) is picked up everywhere a built-in one is."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
from ingest_testkit import read

import ingest
from ingest.builder import DocumentBuilder
from ingest.converters import Converter, Sample, preload_modules, register_converter, unregister_converter
from ingest.errors import CorruptDocument, UnsupportedFormat

BUILT_IN = ("pdf", "docx", "epub", "html", "txt", "markdown")


class CsvConverter(Converter):
    """Comma-separated values: a heading row, then one table block per row ("column: value" lines)."""

    name = "csv"
    label = "CSV"
    extensions = frozenset({".csv"})
    media_types = frozenset({"text/csv"})
    text_input = True
    modules = ("csv",)

    def sniff_text(self, sample: Sample, text: str) -> bool:
        return self.hinted(sample) and "," in text.split("\n", 1)[0]

    def convert(self, data: bytes, limits: ingest.ParseLimits, content_type: str | None = None) -> ingest.ParsedDocument:
        return self.convert_text(data.decode("utf-8"))

    def convert_text(self, text: str) -> ingest.ParsedDocument:
        rows = list(csv.reader(io.StringIO(text), strict=True))
        builder = DocumentBuilder(self.name)
        header, body = rows[0], rows[1:]
        builder.heading(" | ".join(header), 1)
        for row in body:
            builder.add("\n".join(f"{column}: {value}" for column, value in zip(header, row)), "table")
        return builder.build({}, empty_message="this CSV file has a header row and nothing else")


CSV = b"city,country,population\nLyon,France,522250\nKyoto,Japan,1464890\n"


@pytest.fixture
def csv_format() -> Iterator[None]:
    register_converter(CsvConverter)
    try:
        yield
    finally:
        unregister_converter("csv")


def test_registered_format_is_listed_and_preloaded(csv_format) -> None:
    assert ingest.SUPPORTED_FORMATS == (*BUILT_IN, "csv")
    assert "csv" in preload_modules()


def test_registered_format_is_detected_and_parsed(csv_format) -> None:
    assert ingest.detect_format(CSV, filename="cities.csv") == "csv"
    assert ingest.detect_format(CSV, content_type="text/csv; charset=utf-8") == "csv"
    doc = ingest.parse(CSV, filename="cities.csv")
    assert doc.format == "csv"
    assert [doc.text[b.start : b.end] for b in doc.blocks] == [
        "city | country | population",
        "city: Lyon\ncountry: France\npopulation: 522250",
        "city: Kyoto\ncountry: Japan\npopulation: 1464890",
    ]
    assert [b.kind for b in doc.blocks] == ["heading", "table", "table"]
    assert ingest.parse_text(CSV.decode(), "CSV").format == "csv"


def test_content_still_wins_over_the_new_formats_hints(csv_format) -> None:
    """Detection asks the built-in formats' magic first: a PDF named .csv is still a PDF."""
    assert ingest.detect_format(read("pdf/minimal-document.pdf"), filename="data.csv", content_type="text/csv") == "pdf"
    assert ingest.detect_format(b"just a sentence without commas", filename="notes.csv") == "txt"


def test_damaged_file_of_the_new_format_is_corrupt_and_named(csv_format) -> None:
    with pytest.raises(CorruptDocument) as caught:
        ingest.parse(b'city,country\n"Lyon,France\n', filename="broken.csv")
    assert "this CSV file could not be read" in caught.value.message


def test_error_messages_list_the_new_format(csv_format) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        ingest.parse(b"\x89PNG\r\n\x1a\n" + bytes(64), filename="scan.png")
    assert "supported formats are pdf, docx, epub, html, txt, markdown, csv" in caught.value.message
    assert caught.value.supported == [*BUILT_IN, "csv"]
    with pytest.raises(UnsupportedFormat) as caught:
        ingest.parse_text("a,b", "tsv")
    assert "Raw text can be html, txt, markdown or csv" in caught.value.message


def test_unregistered_format_is_gone() -> None:
    register_converter(CsvConverter)
    unregister_converter("csv")
    assert ingest.SUPPORTED_FORMATS == BUILT_IN
    assert ingest.detect_format(CSV, filename="cities.csv") == "txt"
    with pytest.raises(UnsupportedFormat):
        ingest.parse_text("a,b", "csv")

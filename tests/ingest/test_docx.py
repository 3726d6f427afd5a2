"""DOCX conversion: the corpus files, and a richer file written with python-docx."""

from __future__ import annotations

import re
import zipfile
from io import BytesIO

import docx
import pytest
from ingest_testkit import blocks
from docx.oxml import OxmlElement
from docx.oxml.ns import qn

from ingest import parse


def test_known_paragraphs_heading_and_author(parsed) -> None:
    doc = parsed["docx/par-known-paragraphs.docx"]
    assert blocks(doc) == [
        ("metadata", "Author: Steve Canny", ()),
        ("heading", "Heading Paragraph", ("Heading Paragraph",)),
        ("paragraph", "Normal paragraph", ("Heading Paragraph",)),
    ]
    assert doc.metadata == {"author": "Steve Canny"}


def test_table_cells_in_rows_merged_cells_once(parsed) -> None:
    doc = parsed["docx/tbl-cell-access.docx"]
    tables = [text for kind, text, _ in blocks(doc) if kind == "table"]
    assert tables[0] == "1 | 2 | 3\n4 | 5 | 6\n7 | 8 | 9"
    assert tables[1] == "1 | 2 | 3\n4 | 6\n7 | 8 | 9"  # "4" spans two columns


def test_numbered_list_item(parsed) -> None:
    doc = parsed["docx/num-having-numbering-part.docx"]
    assert ("list", "Paragraph having List Number style.", ()) in blocks(doc)


def test_styled_runs_keep_text(parsed) -> None:
    text = parsed["docx/txt-font-props.docx"].text
    assert "Paragraph in ‘Double Underlined’ style." in text
    assert "Text having some superscript and some subscript." in text


def _hyperlink(paragraph, text: str, url: str) -> None:
    rel = paragraph.part.relate_to(url, "http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink", is_external=True)
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), rel)
    run = OxmlElement("w:r")
    t = OxmlElement("w:t")
    t.text = text
    run.append(t)
    link.append(run)
    paragraph._p.append(link)


FOOTNOTES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<w:footnotes xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
    '<w:footnote w:id="1"><w:p><w:r><w:t>The footnote explains the source of the figures.</w:t></w:r></w:p></w:footnote>'
    "</w:footnotes>"
)


def _add_footnotes_part(data: bytes) -> bytes:
    """Add a footnotes part as Word writes it (python-docx cannot create one)."""
    source = zipfile.ZipFile(BytesIO(data))
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "[Content_Types].xml":
                content = content.replace(
                    b"</Types>",
                    b'<Override PartName="/word/footnotes.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"/></Types>',
                )
            elif item.filename == "word/_rels/document.xml.rels":
                content = content.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdFoot1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/footnotes" Target="footnotes.xml"/></Relationships>',
                )
            target.writestr(item, content)
        target.writestr("word/footnotes.xml", FOOTNOTES)
    return out.getvalue()


@pytest.fixture(scope="module")
def rich_docx() -> bytes:
    document = docx.Document()
    props = document.core_properties
    props.title, props.author, props.subject, props.comments = "Quarterly Report", "Ada Lovelace", "Finance", "Numbers for Q3."
    document.add_heading("Quarterly Report", level=0)
    document.add_paragraph("An opening paragraph before any section.")
    document.add_heading("Revenue", level=1)
    intro = document.add_paragraph("Revenue grew, see ")
    _hyperlink(intro, "the published accounts", "https://example.org/accounts")
    intro.add_run(" for details.")
    document.add_paragraph("First bullet point", style="List Bullet")
    document.add_paragraph("Second numbered step", style="List Number")
    document.add_heading("By region", level=2)
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate([("Region", "Q2", "Q3"), ("North", "10", "12"), ("South", "7", "9")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Outlook", level=1)
    document.add_paragraph("We expect steady growth.")
    section = document.sections[0]
    section.header.paragraphs[0].text = "CONFIDENTIAL HEADER"
    section.footer.paragraphs[0].text = "Page footer text"
    buffer = BytesIO()
    document.save(buffer)
    return _add_footnotes_part(buffer.getvalue())


def test_rich_docx_structure(rich_docx: bytes) -> None:
    doc = parse(rich_docx, filename="report.docx")
    assert doc.format == "docx"
    assert doc.metadata["title"] == "Quarterly Report" and doc.metadata["author"] == "Ada Lovelace"
    assert doc.text.startswith("Title: Quarterly Report\nAuthor: Ada Lovelace\nSubject: Finance\nDescription: Numbers for Q3.\n\n")
    got = blocks(doc)[1:]
    assert got[:9] == [
        ("heading", "Quarterly Report", ("Quarterly Report",)),
        ("paragraph", "An opening paragraph before any section.", ("Quarterly Report",)),
        ("heading", "Revenue", ("Quarterly Report", "Revenue")),
        ("paragraph", "Revenue grew, see the published accounts for details.", ("Quarterly Report", "Revenue")),
        ("list", "First bullet point", ("Quarterly Report", "Revenue")),
        ("list", "Second numbered step", ("Quarterly Report", "Revenue")),
        ("heading", "By region", ("Quarterly Report", "Revenue", "By region")),
        ("table", "Region | Q2 | Q3\nNorth | 10 | 12\nSouth | 7 | 9", ("Quarterly Report", "Revenue", "By region")),
        ("heading", "Outlook", ("Quarterly Report", "Outlook")),
    ]
    assert ("paragraph", "[1] The footnote explains the source of the figures.", ("Footnotes",)) in got
    assert "CONFIDENTIAL HEADER" not in doc.text and "Page footer text" not in doc.text
    assert not re.search(r"[ \t]{2,}", doc.text)

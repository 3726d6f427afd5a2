"""Plain text and Markdown."""

from __future__ import annotations

import pytest
from ingest_testkit import blocks

from ingest import parse, parse_text
from ingest.errors import EmptyDocument, UnsupportedFormat


def test_txt_paragraphs_split_on_blank_lines() -> None:
    doc = parse(b"First   paragraph,\r\nstill first.\r\n\r\n  \r\nSecond\tparagraph.\n", filename="a.txt")
    assert doc.format == "txt"
    assert blocks(doc) == [("paragraph", "First paragraph,\nstill first.", ()), ("paragraph", "Second paragraph.", ())]


def test_txt_keeps_hash_lines_as_text() -> None:
    doc = parse_text("# not a heading in plain text\n\nbody")
    assert [b.kind for b in doc.blocks] == ["paragraph", "paragraph"]


def test_markdown_headings_lists_code_and_front_matter() -> None:
    source = """---
title: Field Guide
author: Jane Doe
---
Intro paragraph.

# Birds #

Birds have feathers.
Most can fly.

## Owls

- Barn owl
- Snowy owl

```python
# a comment, not a heading
print("hoot")
```

Setext Title
============

Under the setext heading.

Sub Title
---------

| a | b |
|---|---|
| 1 | 2 |
"""
    doc = parse(source.encode(), filename="guide.md")
    assert doc.format == "markdown"
    assert doc.metadata == {"title": "Field Guide", "author": "Jane Doe"}
    assert blocks(doc) == [
        ("metadata", "Title: Field Guide\nAuthor: Jane Doe", ()),
        ("paragraph", "Intro paragraph.", ()),
        ("heading", "Birds", ("Birds",)),
        ("paragraph", "Birds have feathers.\nMost can fly.", ("Birds",)),
        ("heading", "Owls", ("Birds", "Owls")),
        ("list", "- Barn owl", ("Birds", "Owls")),
        ("list", "- Snowy owl", ("Birds", "Owls")),
        ("paragraph", '```python\n# a comment, not a heading\nprint("hoot")\n```', ("Birds", "Owls")),
        ("heading", "Setext Title", ("Setext Title",)),
        ("paragraph", "Under the setext heading.", ("Setext Title",)),
        ("heading", "Sub Title", ("Setext Title", "Sub Title")),
        ("table", "| a | b |\n|---|---|\n| 1 | 2 |", ("Setext Title", "Sub Title")),
    ]


def test_parse_text_markdown_and_errors() -> None:
    doc = parse_text("# Title\n\nText under it.", format="markdown")
    assert doc.blocks[1].heading_path == ("Title",)
    with pytest.raises(EmptyDocument):
        parse_text("   \n\n  ")
    with pytest.raises(UnsupportedFormat) as caught:
        parse_text("%PDF-1.4", format="pdf")
    assert "upload" in caught.value.message


def test_normalisation_nfc_and_scripts() -> None:
    decomposed = "Cafe\u0301 — 東京タワー — مرحبا بالعالم"
    doc = parse_text(decomposed)
    assert doc.text == "Café — 東京タワー — مرحبا بالعالم"

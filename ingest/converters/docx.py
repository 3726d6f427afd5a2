"""DOCX → text with python-docx: body paragraphs and tables in document order.

The body XML is walked directly (python-docx's `Paragraph.text` misses text inside
content controls, smart tags and tracked insertions). Headings come from the "Title" /
"Heading N" styles or an outline level; list items from numbering or "List …" styles.
Table rows become one line each, cells joined with " | ". Footnotes and endnotes are
appended at the end; headers and footers are left out since they repeat on every page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

from ..builder import DocumentBuilder
from ..limits import ParseLimits
from ..normalize import clean_inline
from ..types import ParsedDocument
from ..zipguard import check_zip
from .base import Converter, Sample
from .registry import register_converter

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_TEXT_TAGS = {_W + "t": None, _W + "tab": "\t", _W + "br": "\n", _W + "cr": "\n", _W + "noBreakHyphen": "-"}
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.I)
_NOTES = (
    ("http://schemas.openxmlformats.org/officeDocument/2006/relationships/footnotes", "footnote", "Footnotes"),
    ("http://schemas.openxmlformats.org/officeDocument/2006/relationships/endnotes", "endnote", "Endnotes"),
)


@register_converter
class DocxConverter(Converter):
    name = "docx"
    label = "DOCX"
    extensions = frozenset({".docx"})
    media_types = frozenset({"application/vnd.openxmlformats-officedocument.wordprocessingml.document"})
    container = "zip"
    modules = ("docx",)

    def sniff(self, sample: Sample) -> bool:
        return sample.is_zip and "word/document.xml" in sample.zip_names()

    def convert(self, data: bytes, limits: ParseLimits, content_type: str | None = None) -> ParsedDocument:
        return _convert(data, limits)


def _convert(data: bytes, limits: ParseLimits) -> ParsedDocument:
    import docx

    check_zip(data, limits, "DOCX")
    document = docx.Document(io.BytesIO(data))
    styles = _StyleInfo(document)
    builder = DocumentBuilder("docx")
    for element in _body_items(document.element.body):
        if element.tag == _W + "tbl":
            builder.add(_table_text(element), "table")
            continue
        text = _paragraph_text(element)
        level = styles.heading_level(element)
        if level is not None:
            builder.heading(text, level)
        else:
            builder.add(text, "list" if styles.is_list(element) else "paragraph")
    _add_notes(document, builder)
    props = document.core_properties
    metadata = {
        "title": props.title,
        "author": props.author,
        "subject": props.subject,
        "description": props.comments,
        "keywords": props.keywords,
        "language": props.language,
    }
    return builder.build(
        metadata,
        empty_message="no text could be extracted from this DOCX; its body has no text in paragraphs or tables "
        "(images, charts and text in headers are not read)",
    )


def _body_items(container) -> Iterator:
    """Paragraphs and tables in order, looking inside content controls and custom XML."""
    for child in container.iterchildren():
        if child.tag in (_W + "p", _W + "tbl"):
            yield child
        elif child.tag == _W + "sdt":
            content = child.find(_W + "sdtContent")
            if content is not None:
                yield from _body_items(content)
        elif child.tag == _W + "customXml":
            yield from _body_items(child)


def _paragraph_text(element) -> str:
    parts: list[str] = []

    def walk(node) -> None:
        for child in node.iterchildren():
            if child.tag == _MC_FALLBACK:  # the same content again, for old readers
                continue
            if child.tag == _W + "t":
                parts.append(_run_text(child))
                continue
            if child.tag in _TEXT_TAGS:
                parts.append(_TEXT_TAGS[child.tag] or child.text or "")
            walk(child)

    walk(element)
    return "".join(parts)


def _run_text(t) -> str:
    """A `w:t`'s text. An entity reference python-docx leaves unresolved (`&xxe;`, never expanded) is a
    child node: the text after it is that node's tail, kept (the reference itself is dropped)."""
    return (t.text or "") + "".join(node.tail or "" for node in t)


def _table_text(table) -> str:
    rows = []
    for row in table.iter(_W + "tr"):
        if row.getparent() is not table:
            continue  # rows of nested tables are read as their cell's text
        cells = [clean_inline(" ".join(_paragraph_text(p) for p in cell.iter(_W + "p"))) for cell in row.findall(_W + "tc")]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


class _StyleInfo:
    """Heading levels and list-ness of paragraph styles, following `basedOn` chains."""

    def __init__(self, document) -> None:
        self._by_id = {}
        for style in document.styles.element.iterchildren(_W + "style"):
            style_id = style.get(_W + "styleId")
            name = style.find(_W + "name")
            based = style.find(_W + "basedOn")
            ppr = style.find(_W + "pPr")
            self._by_id[style_id] = (
                name.get(_W + "val") if name is not None else "",
                based.get(_W + "val") if based is not None else None,
                ppr,
            )

    def _chain(self, style_id: str | None) -> Iterator[tuple[str, object]]:
        seen = set()
        while style_id and style_id in self._by_id and style_id not in seen:
            seen.add(style_id)
            name, based, ppr = self._by_id[style_id]
            yield name, ppr
            style_id = based

    @staticmethod
    def _style_id(paragraph) -> str | None:
        node = paragraph.find(f"{_W}pPr/{_W}pStyle")
        return node.get(_W + "val") if node is not None else None

    def heading_level(self, paragraph) -> int | None:
        own = paragraph.find(f"{_W}pPr/{_W}outlineLvl")
        if own is not None:
            return _outline_level(own)
        for name, ppr in self._chain(self._style_id(paragraph)):
            if name.lower() == "title":
                return 1
            match = _HEADING_STYLE.match(name)
            if match:
                return int(match.group(1)) + 1
            level = ppr.find(_W + "outlineLvl") if ppr is not None else None
            if level is not None:
                return _outline_level(level)
        return None

    def is_list(self, paragraph) -> bool:
        num = paragraph.find(f"{_W}pPr/{_W}numPr/{_W}numId")
        if num is not None:
            return num.get(_W + "val") != "0"
        for name, ppr in self._chain(self._style_id(paragraph)):
            if name.lower().startswith("list") or (ppr is not None and ppr.find(_W + "numPr") is not None):
                return True
        return False


def _outline_level(node) -> int | None:
    try:
        value = int(node.get(_W + "val"))
    except (TypeError, ValueError):
        return None
    return value + 2 if 0 <= value < 9 else None  # 9 means "body text"; level 1 is kept for Title


def _add_notes(document, builder: DocumentBuilder) -> None:
    from lxml import etree

    for reltype, tag, heading in _NOTES:
        for rel in document.part.rels.values():
            if rel.reltype != reltype or rel.is_external:
                continue
            root = etree.fromstring(rel.target_part.blob)
            notes = [
                (note.get(_W + "id"), " ".join(_paragraph_text(p) for p in note.iter(_W + "p")))
                for note in root.iterchildren(_W + tag)
                if note.get(_W + "type") in (None, "normal")
            ]
            notes = [(number, text) for number, text in notes if clean_inline(text)]
            if notes:
                builder.heading(heading, 1)
                for number, text in notes:
                    builder.add(f"[{number}] {text}")

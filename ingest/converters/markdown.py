"""Markdown → blocks, reading the Markdown itself (no rendering).

ATX (`# Title`) and setext (`Title` over `===`/`---`) headings become heading blocks
holding only the title: the `#` markers and underlines are dropped. Everything else
keeps its Markdown text (emphasis, links, list markers, table pipes); paragraphs split
on blank lines, each list item is its own block, fenced code stays one block with its
lines. A YAML front matter block supplies metadata and is not indexed as body text.
"""

from __future__ import annotations

import re

from ..builder import DocumentBuilder
from ..limits import ParseLimits
from ..types import ParsedDocument
from .base import Converter, Sample
from .registry import register_converter
from .text import EMPTY_TEXT, decode, unify_newlines

# The opening of an ATX heading; its title is cut out with string methods (`_atx_heading`): the one
# regular expression that did it all backtracked quadratically on long runs of blanks in a line.
_ATX_OPEN = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FRONT_FIELD = re.compile(r"^(title|author|description|date|subject|keywords|tags)[ \t]*:(.*)$", re.I | re.M)


@register_converter
class MarkdownConverter(Converter):
    name = "markdown"
    label = "Markdown"
    extensions = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"})
    media_types = frozenset({"text/markdown", "text/x-markdown"})
    text_input = True
    text_aliases = frozenset({"md"})

    def sniff_text(self, sample: Sample, text: str) -> bool:
        return self.hinted(sample)  # Markdown is plain text to the eye: only its name or type tells

    def convert(self, data: bytes, limits: ParseLimits, content_type: str | None = None) -> ParsedDocument:
        return self.convert_text(decode(data, content_type))

    def convert_text(self, text: str) -> ParsedDocument:
        return _convert_markdown(text)


def _convert_markdown(text: str) -> ParsedDocument:
    text = unify_newlines(text)
    metadata: dict[str, str | None] = {}
    front = _FRONT_MATTER.match(text)
    if front:
        for key, value in _FRONT_FIELD.findall(front.group(1)):
            if value.strip():
                metadata.setdefault(key.lower(), value.strip().strip("\"'"))
        text = text[front.end():]
    builder = DocumentBuilder("markdown")
    _MarkdownReader(builder).read(text.split("\n"))
    return builder.build(metadata, empty_message=EMPTY_TEXT)


class _MarkdownReader:
    def __init__(self, builder: DocumentBuilder) -> None:
        self.builder = builder
        self.lines: list[str] = []
        self.kind = "paragraph"
        self.fence: str | None = None

    def flush(self) -> None:
        if self.lines:
            self.builder.add("\n".join(self.lines), self.kind)
        self.lines, self.kind = [], "paragraph"

    def start(self, kind: str, line: str) -> None:
        self.flush()
        self.kind, self.lines = kind, [line]

    def read(self, lines: list[str]) -> None:
        for line in lines:
            self.line(line)
        self.flush()

    def line(self, line: str) -> None:
        if self.fence:
            self.lines.append(line)
            if line.strip().startswith(self.fence):
                self.fence = None
                self.flush()
            return
        fence = _FENCE.match(line)
        if fence:
            self.start("paragraph", line)
            self.fence = fence.group(1)
            return
        if not line.strip():
            self.flush()
            return
        atx = _atx_heading(line)
        if atx:
            self.flush()
            self.builder.heading(atx[1], atx[0])
            return
        setext = _SETEXT.match(line)
        if setext and self.lines and self.kind == "paragraph":
            title = " ".join(self.lines)
            self.lines = []
            self.builder.heading(title, 1 if setext.group(1)[0] == "=" else 2)
            return
        if _THEMATIC_BREAK.match(line):
            self.flush()
            return
        if _LIST_ITEM.match(line):
            self.start("list", line)
        elif _TABLE_ROW.match(line):
            if self.kind != "table":
                self.start("table", line)
            else:
                self.lines.append(line)
        else:
            if self.kind == "table":
                self.flush()
            self.lines.append(line)


def _atx_heading(line: str) -> tuple[int, str] | None:
    """(level, title) of an ATX heading line (`## Title ##`), in time linear in the line's length.

    The title is what follows the opening `#`s, without surrounding blanks and without a closing
    run of `#`s that is preceded by a blank (or is all there is)."""
    opening = _ATX_OPEN.match(line)
    if not opening:
        return None
    title = line[opening.end():].strip(" \t")
    unclosed = title.rstrip("#")
    if not unclosed:
        title = ""
    elif unclosed != title and unclosed[-1] in " \t":
        title = unclosed.rstrip(" \t")
    return len(opening.group(1)), title

"""Plain text → paragraphs split on blank lines; line breaks inside a paragraph are kept."""

from __future__ import annotations

import re

from ..builder import DocumentBuilder
from ..encoding import charset_from_content_type, decode_text
from ..limits import ParseLimits
from ..types import ParsedDocument
from .base import Converter
from .registry import register_converter, unsupported

PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\v\u00a0\u3000]*\n")
EMPTY_TEXT = "the text contains only whitespace; upload a file with some text in it"


def decode(data: bytes, content_type: str | None) -> str:
    """The text of a plain-text file (any encoding `ingest.encoding` recognises)."""
    text = decode_text(data, charset_from_content_type(content_type))
    if text is None:
        raise unsupported("this file is not text in any known encoding, and", "Check that you uploaded the right file.")
    return text


def unify_newlines(text: str) -> str:
    """CRLF and CR line ends as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


@register_converter
class TextConverter(Converter):
    name = "txt"
    label = "text"
    extensions = frozenset({".txt"})
    media_types = frozenset({"text/plain"})
    text_input = True
    text_aliases = frozenset({"text"})
    fallback = True  # text no other format claims is plain text

    def convert(self, data: bytes, limits: ParseLimits, content_type: str | None = None) -> ParsedDocument:
        return self.convert_text(decode(data, content_type))

    def convert_text(self, text: str) -> ParsedDocument:
        builder = DocumentBuilder("txt")
        for paragraph in PARAGRAPH_BREAK.split(unify_newlines(text)):
            builder.add(paragraph)
        return builder.build({}, empty_message=EMPTY_TEXT)

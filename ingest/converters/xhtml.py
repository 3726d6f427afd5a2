"""Decode and parse HTML/XHTML bytes into an lxml tree, tolerant of broken markup."""

from __future__ import annotations

import re

from ..encoding import charset_from_content_type, decode_text

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding=[\"']([\w.:-]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([\w.:-]+)", re.I)


def decode_markup(data: bytes, declared_charset: str | None = None) -> str:
    """Text of an HTML/XHTML file: BOM, UTF-8, the declared charset (HTTP header, XML
    declaration or <meta charset>), then the usual text sniffing."""
    if declared_charset is None:
        match = _XML_ENCODING.match(data[:200]) or _META_CHARSET.search(data[:4096])
        declared_charset = charset_from_content_type(f"charset={match.group(1).decode('ascii')}") if match else None
    text = decode_text(data, declared_charset)
    if text is None:
        text = data.decode("utf-8", errors="replace")
    return _XML_DECLARATION.sub("", text, count=1)


def parse_markup(text: str):
    """The document's root element (lxml.html), whatever the input looks like."""
    from lxml import etree, html

    try:
        return html.document_fromstring(_XML_DECLARATION.sub("", text, count=1))
    except etree.ParserError:  # nothing but whitespace or comments: an empty chapter is no error
        return html.document_fromstring("<html><body></body></html>")


def find_body(root):
    body = root.find(".//body")
    return body if body is not None else root

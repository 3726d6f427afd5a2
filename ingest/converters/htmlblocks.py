"""Walk an (X)HTML element tree and feed its blocks to a `DocumentBuilder`.

Shared by the HTML converter (on trafilatura's cleaned output) and the EPUB converter
(on each chapter). Block elements end the current paragraph; inline elements add to it;
`<br>` keeps a line break; headings, list items, tables and `<pre>` become their own
blocks. Navigation, scripts, forms and similar chrome are skipped.
"""

from __future__ import annotations

import re

from ..builder import DocumentBuilder
from ..normalize import clean_inline

SKIP = {
    "script", "style", "noscript", "template", "nav", "head", "title", "meta", "link", "button", "select",
    "option", "textarea", "input", "iframe", "object", "embed", "canvas", "svg", "math", "audio", "video",
    "source", "track", "map", "area", "dialog",
}
BLOCKS = {
    "html", "body", "main", "article", "section", "div", "p", "blockquote", "header", "footer", "aside",
    "address", "figure", "figcaption", "caption", "center", "details", "summary", "fieldset", "legend",
    "form", "dl", "dt", "dd", "ul", "ol", "menu", "hr", "hgroup", "frameset", "noframes",
}
HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SPACE = re.compile(r"\s+")


def local_name(element) -> str:
    tag = element.tag
    if not isinstance(tag, str):
        return ""  # comments and processing instructions
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def element_text(element) -> str:
    """All visible text of an element on one line, skipping `SKIP` subtrees."""
    parts: list[str] = []

    def walk(node) -> None:
        name = local_name(node)
        if not name or name in SKIP:
            return
        separate = name in BLOCKS or name in HEADINGS or name in ("br", "li", "td", "th", "tr")
        parts.append(" " if separate else "")
        parts.append(node.text or "")
        for child in node:
            walk(child)
            parts.append(child.tail or "")
        parts.append(" " if separate else "")

    walk(element)
    return clean_inline("".join(parts))


class HtmlBlockWriter:
    """Feeds the blocks of one tree to `builder`, in document order."""

    def __init__(self, builder: DocumentBuilder, verbatim: frozenset[str] = frozenset({"pre"})) -> None:
        self.builder = builder
        self.verbatim = verbatim  # elements whose line breaks are kept (code)
        self._buffer: list[str] = []
        self._kind = "paragraph"
        self.headings: list[str] = []  # titles of the headings written, in order

    def write(self, root) -> None:
        self._walk(root)
        self._flush()

    def _flush(self) -> None:
        text = "".join(self._buffer)
        self._buffer.clear()
        if text.strip():
            self.builder.add(text, self._kind)

    def _inline(self, text: str | None) -> None:
        if text:
            self._buffer.append(_SPACE.sub(" ", text))

    def _walk(self, node) -> None:
        name = local_name(node)
        if not name or name in SKIP:
            return
        if name in HEADINGS:
            self._flush()
            title = element_text(node)
            if title:
                self.builder.heading(title, HEADINGS[name])
                self.headings.append(title)
        elif name == "table":
            self._flush()
            self.builder.add(_table_text(node), "table")
        elif name in self.verbatim and local_name(node.getparent()) != "p" and not _has_blocks(node):
            self._flush()
            self.builder.add("".join(node.itertext()), "paragraph")
        elif name == "br":
            self._buffer.append("\n")
        elif name == "li":
            self._flush()
            outer, self._kind = self._kind, "list"
            self._children(node)
            self._flush()
            self._kind = outer
        elif name in BLOCKS:
            self._flush()
            self._children(node)
            self._flush()
        else:
            self._children(node)

    def _children(self, node) -> None:
        self._inline(node.text)
        for child in node:
            self._walk(child)
            self._inline(child.tail)


def _has_blocks(node) -> bool:
    return any(local_name(e) in BLOCKS or local_name(e) in HEADINGS for e in node.iterdescendants())


def _table_text(table) -> str:
    rows = []
    for row in table.iter():
        if local_name(row) != "tr" or _nearest_table(row) is not table:
            continue
        cells = [element_text(cell) for cell in row if local_name(cell) in ("td", "th")]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _nearest_table(node):
    node = node.getparent()
    while node is not None and local_name(node) != "table":
        node = node.getparent()
    return node

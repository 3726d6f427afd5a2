"""Assemble a `ParsedDocument` from blocks added in reading order.

Converters call `heading()` and `add()`; the builder keeps the heading stack, cleans
each block's text, joins blocks with a blank line and records their offsets, and puts
the metadata block at the top of the text.
"""

from __future__ import annotations

from .errors import EmptyDocument
from .normalize import clean_inline, clean_lines
from .types import Block, ParsedDocument

BLOCK_SEPARATOR = "\n\n"
# Metadata fields shown in the text (in this order) so that a search can find them.
METADATA_LABELS = (("title", "Title"), ("author", "Author"), ("subject", "Subject"), ("description", "Description"))


class DocumentBuilder:
    def __init__(self, format: str):
        self.format = format
        self._parts: list[tuple[str, str, tuple[str, ...], int | None]] = []
        self._stack: list[tuple[int, str]] = []

    @property
    def heading_path(self) -> tuple[str, ...]:
        return tuple(title for _, title in self._stack)

    def heading(self, title: str, level: int, page: int | None = None) -> None:
        """Open a section: `level` 1 is outermost; deeper or equal open levels are closed."""
        title = clean_inline(title)
        if not title:
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, title))
        self._parts.append((title, "heading", self.heading_path, page))

    def add(self, text: str, kind: str = "paragraph", page: int | None = None) -> None:
        """Add a body block; its line breaks are kept, blank lines and extra spaces dropped."""
        text = clean_lines(text)
        if text:
            self._parts.append((text, kind, self.heading_path, page))

    @property
    def has_text(self) -> bool:
        return bool(self._parts)

    def build(self, metadata: dict[str, str | None], *, empty_message: str, pages: int | None = None) -> ParsedDocument:
        """Return the document; raise `EmptyDocument(empty_message)` if no body text was added."""
        if not self._parts:
            raise EmptyDocument(empty_message)
        meta = {k: clean_inline(v) for k, v in metadata.items() if v and clean_inline(v)}
        header = "\n".join(f"{label}: {meta[key]}" for key, label in METADATA_LABELS if key in meta)
        parts = ([(header, "metadata", (), None)] if header else []) + self._parts
        chunks: list[str] = []
        blocks: list[Block] = []
        offset = 0
        for text, kind, path, page in parts:
            if chunks:
                chunks.append(BLOCK_SEPARATOR)
                offset += len(BLOCK_SEPARATOR)
            blocks.append(Block(offset, offset + len(text), kind, path, page))
            chunks.append(text)
            offset += len(text)
        return ParsedDocument("".join(chunks), blocks, self.format, meta, pages)

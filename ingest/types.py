"""The data every converter produces and the chunker consumes.

A converter turns bytes into one `ParsedDocument`: the document's clean text plus
`Block`s that point into that text with offsets, so that structure (headings, pages)
travels with the text without ever being copied into it twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Block:
    """A contiguous run of `ParsedDocument.text`: a heading, paragraph, list item or table.

    `text[start:end]` is the block's text. `heading_path` names the headings the block
    sits under, outermost first (a heading block's path ends with its own title).
    `page` is the 1-based page for paginated formats (PDF), else None.
    """

    start: int
    end: int
    kind: str = "paragraph"  # "heading" | "paragraph" | "list" | "table" | "metadata"
    heading_path: tuple[str, ...] = ()
    page: int | None = None


@dataclass
class ParsedDocument:
    """Clean text of one document, its structure as blocks, and its metadata."""

    text: str
    blocks: list[Block]
    format: str  # one of ingest.SUPPORTED_FORMATS
    metadata: dict[str, str] = field(default_factory=dict)  # title, author, description, ...
    pages: int | None = None

    @property
    def title(self) -> str | None:
        return self.metadata.get("title") or None


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough for the embedding model.

    `text == document.text[start:end]` always holds.
    """

    text: str
    start: int
    end: int
    token_count: int
    heading_path: tuple[str, ...] = ()
    page_start: int | None = None
    page_end: int | None = None


@dataclass(frozen=True)
class FetchedResource:
    """The body of a URL after redirects, with what the server said it was.

    `status` is the final HTTP status; `headers` the final response's headers, names in
    lower case. The body is empty unless the status is 2xx.
    """

    data: bytes
    final_url: str
    content_type: str | None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)

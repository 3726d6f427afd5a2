"""Turn documents (PDF, DOCX, EPUB, HTML, text, Markdown) into clean text and chunks.

A library: no web framework, storage or index here. The public API is below; the
errors it raises are in `ingest.errors`, the data types in `ingest.types`; the formats are
converters registered in `ingest.converters`.
"""

from __future__ import annotations

from .chunking import chunk_document
from .converters import SUPPORTED_FORMATS
from .detect import detect_format
from .fetch import fetch_response, fetch_url
from .limits import ParseLimits
from .parse import parse, parse_text
from .types import Block, Chunk, FetchedResource, ParsedDocument

__all__ = [
    "SUPPORTED_FORMATS",
    "Block",
    "Chunk",
    "FetchedResource",
    "ParseLimits",
    "ParsedDocument",
    "chunk_document",
    "detect_format",
    "fetch_response",
    "fetch_url",
    "parse",
    "parse_text",
]

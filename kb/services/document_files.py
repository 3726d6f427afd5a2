"""The files kept for each document: its original bytes, its extracted text and that text's structure.

Indexing re-reads the text and structure later; the original is what a signed link downloads.
"""

from __future__ import annotations

import hashlib
import json

from ingest import ParsedDocument
from ingest.types import Block

from ..storage.interfaces import BlobStore

ORIGINAL = "original"
TEXT = "text.txt"
STRUCTURE = "structure.json"


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_parsed(blobs: BlobStore, workspace_id: str, document_id: str, original: bytes | None,
                 parsed: ParsedDocument) -> None:
    """The document's files; `original` None keeps the original there is."""
    structure = {
        "format": parsed.format,
        "metadata": parsed.metadata,
        "pages": parsed.pages,
        "blocks": [[b.start, b.end, b.kind, list(b.heading_path), b.page] for b in parsed.blocks],
    }
    files = {
        TEXT: parsed.text.encode("utf-8"),
        STRUCTURE: json.dumps(structure, ensure_ascii=False).encode("utf-8"),
    }
    if original is not None:
        files[ORIGINAL] = original
    blobs.put_many(workspace_id, document_id, files)


def load_parsed(blobs: BlobStore, workspace_id: str, document_id: str) -> ParsedDocument:
    text = blobs.get(workspace_id, document_id, TEXT).decode("utf-8")
    structure = json.loads(blobs.get(workspace_id, document_id, STRUCTURE))
    blocks = [Block(start, end, kind, tuple(path), page) for start, end, kind, path, page in structure["blocks"]]
    return ParsedDocument(text, blocks, structure["format"], structure["metadata"], structure["pages"])


def load_text(blobs: BlobStore, workspace_id: str, document_id: str) -> str:
    return blobs.get(workspace_id, document_id, TEXT).decode("utf-8")


def load_original(blobs: BlobStore, workspace_id: str, document_id: str) -> bytes:
    return blobs.get(workspace_id, document_id, ORIGINAL)

"""Corpus locations and small helpers shared by the ingest tests (fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from ingest import ParsedDocument

REPO = Path(__file__).resolve().parents[2]
CORPUS = (REPO / ".." / "shared" / "corpus").resolve()

# Corpus files that must not parse: the error they raise and words its message must hold.
UNPARSEABLE = {
    "pdf/libreoffice-writer-password.pdf": ("EncryptedDocument", "PDF is password-protected"),
    "docx/blk-containing-table.docx": ("EmptyDocument", "no text could be extracted from this DOCX"),  # empty cells
    "docx/tbl-having-tables.docx": ("EmptyDocument", "no text could be extracted from this DOCX"),  # three empty tables
    "docx/shp-inline-shape-access.docx": ("EmptyDocument", "no text could be extracted from this DOCX"),  # images, a chart
}


def corpus_path(relative: str) -> Path:
    path = CORPUS / relative
    assert path.is_file(), f"corpus file {path} is missing: the shared corpus must be at {CORPUS}"
    return path


def read(relative: str) -> bytes:
    return corpus_path(relative).read_bytes()


def documents() -> list[str]:
    """Every document in the corpus (not the retrieval set), as paths relative to it."""
    assert CORPUS.is_dir(), f"the shared corpus is missing at {CORPUS}; these tests need it"
    found = sorted(
        str(p.relative_to(CORPUS)) for sub in ("pdf", "docx", "epub", "html") for p in (CORPUS / sub).iterdir() if p.is_file()
    )
    assert len(found) >= 25, f"expected the full corpus at {CORPUS}, found only {found}"
    return found


def blocks(doc: ParsedDocument) -> list[tuple[str, str, tuple[str, ...]]]:
    """(kind, text, heading_path) of each block: easy to compare with an expected list."""
    return [(b.kind, doc.text[b.start : b.end], b.heading_path) for b in doc.blocks]


def parseable() -> list[str]:
    return [name for name in documents() if name not in UNPARSEABLE]

"""The public surface other packages code against."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from ingest_testkit import REPO, UNPARSEABLE, read

import ingest
from ingest.errors import IngestError


def test_public_api() -> None:
    assert ingest.SUPPORTED_FORMATS == ("pdf", "docx", "epub", "html", "txt", "markdown")
    for name in ("detect_format", "parse", "parse_text", "fetch_url", "chunk_document", "ParseLimits"):
        assert name in ingest.__all__ and callable(getattr(ingest, name))
    assert list(inspect.signature(ingest.parse).parameters) == ["data", "filename", "content_type", "limits"]
    assert inspect.signature(ingest.fetch_url).parameters["max_redirects"].default == 5
    limits = ingest.ParseLimits()
    assert (limits.max_pages, limits.max_zip_entries, limits.max_unzipped_bytes) == (2000, 10_000, 500_000_000)


def test_ingest_imports_nothing_from_the_service() -> None:
    for path in (REPO / "ingest").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                assert name.split(".")[0] not in {"kb", "index", "api", "fastapi", "sqlalchemy"}, f"{path.relative_to(REPO)} imports {name}"


@pytest.mark.parametrize(("name", "expected"), sorted(UNPARSEABLE.items()))
def test_corpus_files_that_cannot_be_indexed_say_why(name: str, expected: tuple[str, str]) -> None:
    error, words = expected
    with pytest.raises(IngestError) as caught:
        ingest.parse(read(name), filename=Path(name).name)
    assert type(caught.value).__name__ == error
    assert words in caught.value.message

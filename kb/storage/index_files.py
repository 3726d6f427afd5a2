"""Search-index files in a local directory: `root/<workspace>/<model>.g<generation>.<kind>`.

The generation in the name tells any process whether a file reflects the current vectors.
"""

from __future__ import annotations

import re
from pathlib import Path

from index.files import write_atomically

from .interfaces import IndexFileStore

KINDS = ("faiss", "bm25")  # the vectors, the lexical index


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model)


class LocalIndexFiles(IndexFileStore):
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, workspace_id: str, model: str, generation: int, kind: str) -> Path:
        return self.root / workspace_id / f"{_slug(model)}.g{generation}.{kind}"

    def write(self, workspace_id: str, model: str, generation: int, kind: str, data: bytes) -> None:
        write_atomically(self.path(workspace_id, model, generation, kind), data)

    def read(self, workspace_id: str, model: str, generation: int, kind: str) -> bytes | None:
        try:
            return self.path(workspace_id, model, generation, kind).read_bytes()
        except FileNotFoundError:
            return None

    def remove_older(self, workspace_id: str, model: str, generation: int) -> None:
        for old in (self.root / workspace_id).glob(f"{_slug(model)}.g*.*"):
            stem, _, kind = old.name.rpartition(".")
            old_generation = stem.rsplit(".g", 1)[-1]
            if kind in KINDS and old_generation.isdigit() and int(old_generation) < generation:
                old.unlink(missing_ok=True)

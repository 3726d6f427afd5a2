"""Search-index files in a local directory: `root/<workspace>/<model>.g<generation>.<kind>`.

The generation in the name tells any process whether a file reflects the current vectors. Files
are written atomically (a temporary file renamed over the name), so a reader sees a whole file or
none; on a filesystem shared between hosts that needs atomic rename within a directory and
close-to-open consistency (NFS has both). File times are compared with this host's clock.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from index.files import write_atomically

from .interfaces import IndexFileStore

KINDS = ("faiss", "bm25")  # the vectors, the lexical index
TEMP_GRACE_SECS = 3600.0  # a writer's temporary file this old belongs to a writer that died mid-write


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

    def generations(self, workspace_id: str, model: str) -> dict[int, float]:
        files, _ = self._scan(workspace_id, model)
        return _complete(files)

    def remove_superseded(self, workspace_id: str, model: str, grace_secs: float, now: float | None = None) -> list[int]:
        now = time.time() if now is None else now
        files, temporaries = self._scan(workspace_id, model)
        complete = _complete(files)
        removed = []
        for generation, kinds in sorted(files.items()):
            superseded = [written for later, written in complete.items() if later > generation]
            if superseded and now - min(superseded) >= grace_secs:
                for path, _ in kinds.values():
                    path.unlink(missing_ok=True)
                removed.append(generation)
        for path, written in temporaries:
            if now - written >= TEMP_GRACE_SECS:
                path.unlink(missing_ok=True)
        return removed

    def _scan(self, workspace_id: str, model: str) -> tuple[dict[int, dict[str, tuple[Path, float]]], list[tuple[Path, float]]]:
        """({generation: {kind: (path, mtime)}}, [(temporary file, mtime)]) of the model's files."""
        prefix = f"{_slug(model)}.g"
        files: dict[int, dict[str, tuple[Path, float]]] = {}
        temporaries: list[tuple[Path, float]] = []
        try:
            entries = list(os.scandir(self.root / workspace_id))
        except FileNotFoundError:
            return files, temporaries
        for entry in entries:
            name = entry.name
            temporary = name.startswith("." + prefix) and name.endswith(".tmp")
            generation, _, kind = name[len(prefix):].partition(".")
            if not temporary and not (name.startswith(prefix) and generation.isdigit() and kind in KINDS):
                continue
            try:
                written = entry.stat().st_mtime
            except FileNotFoundError:  # removed meanwhile
                continue
            if temporary:
                temporaries.append((Path(entry.path), written))
            else:
                files.setdefault(int(generation), {})[kind] = (Path(entry.path), written)
        return files, temporaries


def _complete(files: dict[int, dict[str, tuple[Path, float]]]) -> dict[int, float]:
    return {generation: max(written for _, written in kinds.values())
            for generation, kinds in files.items() if set(kinds) >= set(KINDS)}

"""Where figures go besides stdout: a JSON file of every figure, headed by what was measured where."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

from . import REPO


def run_info(args) -> dict:
    """The machine, the git commit (and whether kb's code had uncommitted changes), KB_* settings, the arguments."""
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "kb", "index", "api", "ingest"], cwd=REPO,
                                capture_output=True, text=True).stdout.strip())
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "git": git + (" (+ uncommitted changes in kb/index/api/ingest)" if dirty else ""),
        "kb_env": {k: v for k, v in os.environ.items() if k.startswith("KB_")},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }


def write_json(path: Path | None, results: dict) -> None:
    """Rewrite `path` with `results` (nothing without a path)."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

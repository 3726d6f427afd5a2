"""The parse sandbox: a child parses and answers, and does not re-run the parent's main module (for `kb serve`
that module is the `kb` script, which imports the whole server once per child)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from kb.services.sandbox import parse_text_isolated

REPO = Path(__file__).resolve().parent.parent


def test_a_child_parses_text_and_answers():
    parsed = parse_text_isolated("# Title\n\nSome words about kettles.", "md")
    assert "kettles" in parsed.text


def test_children_do_not_run_the_parents_main_module(tmp_path):
    marker = tmp_path / "imports.log"
    script = tmp_path / "heavy_main.py"
    script.write_text(textwrap.dedent(f"""
        import os
        with open({str(marker)!r}, "a") as log:
            log.write(f"{{os.getpid()}}\\n")  # every process that runs this module leaves a line
        from kb.services.sandbox import parse_text_isolated

        if __name__ == "__main__":
            for i in range(3):
                assert "words" in parse_text_isolated(f"some words {{i}}", "txt").text
    """))
    subprocess.run([sys.executable, str(script)], check=True, cwd=REPO, timeout=120,
                   env={"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert len(marker.read_text().split()) == 1, "a sandbox child re-ran the parent's main module"


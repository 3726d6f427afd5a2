"""A user's string (a document name, a crawled URL, an error message quoting either) never forges a
log line: the `kb` command's log format escapes control and bidi characters in messages."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO

EMIT = r"""
import logging
from kb.cli.logs import configure_logging
configure_logging(logging.INFO)
log = logging.getLogger("kb.services.crawls")
log.info("crawl %s: %s failed: %s", "cr_1", "http://x/\r\n2026-12-04 ERROR kb: forged", "name\x1b[31m\u202e")
try:
    raise ValueError("boom")
except ValueError:
    log.exception("indexing %s failed", "doc\nFAKE")
"""


def test_user_strings_stay_on_their_log_line():
    done = subprocess.run([sys.executable, "-c", EMIT], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].endswith(r"crawl cr_1: http://x/\r\n2026-12-04 ERROR kb: forged failed: name\x1b[31m\u202e")
    assert not any(line.startswith("2026-12-04 ERROR") for line in lines)
    assert lines[1].endswith(r"indexing doc\nFAKE failed")
    assert lines[2] == "Traceback (most recent call last):"  # kb's own traceback keeps its lines
    assert lines[-1] == "ValueError: boom"

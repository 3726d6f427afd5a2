"""A throw-away PostgreSQL cluster for a benchmark: the one tests/postgres.py starts (loaded by path, so
the bench and the tests run PostgreSQL the same way: initdb + pg_ctl in a temporary directory, as the
`postgres` user when run as root, trust authentication on loopback, stopped at exit)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from . import REPO


def _tests_postgres():
    spec = importlib.util.spec_from_file_location("kb_tests_postgres", REPO / "tests" / "postgres.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start_cluster():
    """A started cluster: `.create_database(name)` gives a URL, `.stop()` removes it, `.data` is its directory."""
    return _tests_postgres().Cluster()


def postmaster_pid(cluster) -> int:
    return int((Path(cluster.data) / "postmaster.pid").read_text().split("\n")[0])

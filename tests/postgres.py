"""A real, throw-away PostgreSQL for the tests (no mock): one cluster per test process (each pytest-xdist
worker has its own), one database per data dir.

`KB_TEST_DATABASE=postgresql` makes `helpers.make_kb` (and so the `kb` fixture of every test file)
store metadata in PostgreSQL instead of the SQLite file of the data dir; `database_url(data_dir)`
gives the URL of that data dir's database (the same one each time: a test that reopens its data
dir finds its documents, as with SQLite).

The cluster lives in a temporary directory, listens on a free loopback port and is stopped when
the test process exits. PostgreSQL refuses to run as root: as root, initdb and pg_ctl run as the
`postgres` user. When the binaries are missing, root installs the Debian package (`apt-get install
-y postgresql`); anyone else gets a skip saying so.
"""

from __future__ import annotations

import atexit
import fcntl
import glob
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

ENV = "KB_TEST_DATABASE"
USER = "postgres"


def enabled() -> bool:
    """Whether this test run stores metadata in PostgreSQL (KB_TEST_DATABASE=postgresql)."""
    return os.environ.get(ENV, "sqlite").lower() in ("postgresql", "postgres", "pg")


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _install() -> None:
    """apt-get install postgresql, once: test processes starting at once (xdist workers, the two passes
    of scripts/test.sh) take turns on a lock file, and those after the first find it installed."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin) and this user cannot apt-get install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(Path(tempfile.gettempdir()) / "kb-tests-postgres-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _bin_dir() is not None:
            return
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.skip(f"could not install PostgreSQL ({' '.join(command)}): {done.stderr[-500:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """initdb + pg_ctl in a temporary directory, trust authentication on loopback only."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            _install()
            bin_dir = _bin_dir()
            if bin_dir is None:
                pytest.skip("apt-get install postgresql left no /usr/lib/postgresql/*/bin/pg_ctl")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="kb-postgres-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                entry = pwd.getpwnam(USER)
            except KeyError:
                pytest.skip(f"running as root and there is no {USER!r} user to run PostgreSQL as")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.user = USER if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.user, "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=400 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "-t", "60", "start")
        self._created: set[str] = set()
        self._lock = threading.Lock()
        atexit.register(self.stop)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.as_root:
            command = ["runuser", "-u", USER, "--", *command] if shutil.which("runuser") else \
                ["su", USER, "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in command)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode != 0:
            log = (self.root / "log").read_text(errors="replace")[-2000:] if (self.root / "log").exists() else ""
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}{log}")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database (`name` is made of [a-z0-9_]); its URL."""
        import psycopg

        with self._lock:
            if name not in self._created:
                with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres",
                                     autocommit=True) as conn:
                    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{name}"')
                self._created.add(name)
        return self.url(name)

    def stop(self) -> None:
        atexit.unregister(self.stop)
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except Exception:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


_cluster: Cluster | None = None
_cluster_lock = threading.Lock()


def cluster() -> Cluster:
    """The test session's cluster, started on first use."""
    global _cluster
    with _cluster_lock:
        if _cluster is None:
            _cluster = Cluster()
        return _cluster


def database_url(data_dir: Path | str) -> str:
    """The URL of the database belonging to `data_dir` (created empty on first use)."""
    digest = hashlib.blake2b(str(Path(data_dir).resolve()).encode(), digest_size=10).hexdigest()
    return cluster().create_database(f"kb_{digest}")


def fresh_database_url() -> str:
    """A database no one used before."""
    return cluster().create_database(f"kb_{os.urandom(10).hex()}")


def fresh_database_url_or_skip() -> str:
    """`fresh_database_url`, or the calling test (or module fixture) skipped, saying why, when no cluster starts."""
    try:
        return fresh_database_url()
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL could not be started: {exc}")

"""Helpers for tests: a live uvicorn server, polling for indexes, small API calls."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx
import pytest
import uvicorn

import postgres

from api.app import create_app
from kb.settings import load_settings
from kb.knowledge_base import KnowledgeBase

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
# Functional tests run with limits out of the way (quota tests choose kb/tiers.toml explicitly);
# set in the environment so that `kb` subprocesses started by tests get it too.
PERMISSIVE_TIERS = Path(__file__).with_name("permissive_tiers.toml")
os.environ["KB_TIERS_FILE"] = str(PERMISSIVE_TIERS)
# The ONNX export of the model is made once and shared by every test's data dir (and subprocess).
MODEL_CACHE = REPO / ".pytest_cache" / "kb-models"
os.environ["KB_MODEL_CACHE_DIR"] = str(MODEL_CACHE)

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """kb served by uvicorn in a background thread, reached over real HTTP."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        self.port = free_port()
        config = uvicorn.Config(create_app(kb), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 180  # generous: the model loads at start, and CI machines are shared
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("kb server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def client(self, api_key: str | None) -> httpx.Client:
        headers = {"xi-api-key": api_key} if api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


ON_POSTGRES = postgres.enabled()  # KB_TEST_DATABASE=postgresql: metadata in PostgreSQL (tests/postgres.py)


def needs_sqlite(why: str):
    """Skip a test about SQLite itself when this run is on PostgreSQL, saying why."""
    return pytest.mark.skipif(ON_POSTGRES, reason=f"SQLite only (KB_TEST_DATABASE=postgresql): {why}")


def database_url(data_dir: Path) -> str:
    """The metadata database of `data_dir` in this test run: its SQLite file, or (KB_TEST_DATABASE=
    postgresql) a PostgreSQL database of its own, the same one each time the data dir is opened."""
    return postgres.database_url(data_dir) if ON_POSTGRES else f"sqlite:///{Path(data_dir) / 'kb.sqlite3'}"


def cli_env(kb: KnowledgeBase, **env: str) -> dict[str, str]:
    """Environment for a `kb` command on `kb`'s data dir: its database too, when that is not the data dir's file."""
    url = kb.settings.storage.database_url
    return {**({"KB_DATABASE_URL": url} if url else {}), **env}


def data_dir_env(data_dir: Path | str, **env: str) -> dict[str, str]:
    """Environment for a `kb` command (a process, or click's CliRunner) on `data_dir`: KB_DATABASE_URL of
    the data dir's database in this run when that is not its SQLite file (KB_TEST_DATABASE=postgresql),
    the same one `make_kb(data_dir)` opens."""
    return {**({"KB_DATABASE_URL": database_url(Path(data_dir))} if ON_POSTGRES else {}), **env}


def make_kb(data_dir: Path, **overrides) -> KnowledgeBase:
    overrides.setdefault("tiers_file", PERMISSIVE_TIERS)
    overrides.setdefault("model_cache_dir", MODEL_CACHE)
    if ON_POSTGRES:
        overrides.setdefault("database_url", database_url(data_dir))
    return KnowledgeBase(load_settings(environ={}, data_dir=data_dir, **overrides))


TERMINAL_STATUSES = ("succeeded", "failed", "rag_limit_exceeded", "document_too_small")


def wait_indexed(client: httpx.Client, document_id: str, timeout: float = 120, model: str | None = None) -> dict:
    """Poll the document's RAG indexes until the (given or first) one is done; return it."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/convai/knowledge-base/{document_id}/rag-index")
        response.raise_for_status()
        indexes = [i for i in response.json()["indexes"] if model is None or i["model"] == model]
        if indexes and indexes[0]["status"] in TERMINAL_STATUSES:
            return indexes[0]
        if time.monotonic() > deadline:
            raise TimeoutError(f"index of {document_id} not done: {indexes}")
        time.sleep(0.1)


def add_text(client: httpx.Client, text: str, name: str, wait: bool = True) -> str:
    response = client.post("/v1/convai/knowledge-base/text", json={"text": text, "name": name})
    assert response.status_code == 200, response.text
    document_id = response.json()["id"]
    if wait:
        assert wait_indexed(client, document_id)["status"] == "succeeded"
    return document_id


def retrieve(client: httpx.Client, query: str, **params) -> dict:
    response = client.post("/v1/convai/knowledge-base/rag/retrieve", json={"query": query, **params})
    assert response.status_code == 200, response.text
    return response.json()


# --- kb commands as real processes (tests/test_postgres.py, tests/test_replicas.py) ---------------

KB_BIN = Path(sys.executable).parent / "kb"
KB = "/v1/convai/knowledge-base"


class Process:
    """A `kb` command as a child process in its own process group, logging to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen([str(KB_BIN), *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """The end of its log (for failure messages)."""
        return self.log.read_text(errors="replace")[-4000:]

    def full_output(self) -> str:
        """Its whole log (to look for a line: a busy run's access lines would push it out of `output`)."""
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(errors="replace"):
            assert self.process.poll() is None, f"kb exited: {self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} in time: {self.output()}"
            time.sleep(0.1)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as an operator would; its return code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # parsing helpers, if any outlived it
        except ProcessLookupError:
            pass
        return self.process.returncode


def kb_env(url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "KB_DATABASE_URL": url, "KB_TIERS_FILE": str(PERMISSIVE_TIERS), **extra}


def wait_index_status(client: httpx.Client, document_id: str, wanted, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        indexes = client.get(f"{KB}/{document_id}/rag-index").json()["indexes"]
        if indexes and wanted(indexes[0]):
            return indexes[0]
        assert time.monotonic() < deadline, indexes
        time.sleep(0.1)


def start_api(data_dir: Path, env: dict[str, str], log: Path) -> tuple[Process, str, str]:
    """`kb serve --workers 0` on a free loopback port, once it answers /health: (process, base URL, default API key)."""
    port = free_port()
    api = Process(["serve", "--data-dir", str(data_dir), "--port", str(port), "--workers", "0"], env, log)
    try:
        api.wait_for("API key: ")
        api_key = api.output().split("API key: ", 1)[1].split()[0]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    return api, url, api_key
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, api.output()
            time.sleep(0.2)
    except BaseException:
        api.stop()
        raise


def invoke_cli(args: list[str], env: dict[str, str] | None = None, **options):
    """`kb ARGS` in this process (click's CliRunner), on the database of its `--data-dir` in this run."""
    from click.testing import CliRunner

    from kb.cli import main

    data_dir = args[args.index("--data-dir") + 1] if "--data-dir" in args else None
    return CliRunner().invoke(main, args, env={**(data_dir_env(data_dir) if data_dir else {}), **(env or {})}, **options)


class BackgroundThreads:
    """Threads running `targets` for the length of a `with` block; `stop` is set when it ends."""

    def __init__(self, *targets, join_secs: float = 60):
        self.stop = threading.Event()
        self._join_secs = join_secs
        self._threads = [threading.Thread(target=target, daemon=True) for target in targets]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(self._join_secs)

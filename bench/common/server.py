"""A kb server to benchmark: spawned on a temporary data dir, or given by --url; its workspaces."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from . import REPO
from .net import free_port, require_loopback
from .report import log


def kb_command() -> list[str]:
    exe = REPO / ".venv" / "bin" / "kb"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kb.cli"]


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(extra or {})}


class SpawnedServer:
    """`kb serve` on its own data dir and a free loopback port, in its own process group."""

    def __init__(self, root: Path, label: str, env_extra: dict[str, str] | None = None, data_dir: Path | None = None):
        self.label = label
        self.data_dir = data_dir or root / f"data-{label}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = server_env(env_extra)
        self.log_path = root / f"server-{label}.log"
        self.command = kb_command() + ["serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
                                       "--port", str(self.port)]
        self._log = open(self.log_path, "wb")
        log(f"starting server {label}: {' '.join(self.command)}"
            + (f" with {env_extra}" if env_extra else ""))
        self.spawned_at = time.monotonic()
        self.process = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready()
        self.ready_at = time.monotonic()

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kb serve exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"kb serve did not answer /health within {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def create_workspace(self, name: str) -> str:
        return create_workspace(self.data_dir, name, self.env)

    def scan_log(self) -> dict:
        lines = self.log_path.read_text(errors="replace").split("\n")
        return {"tracebacks": sum(line.startswith("Traceback") for line in lines),
                "error_lines": [line for line in lines if line.startswith("ERROR")][:5]}

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()
        log(f"server {self.label} stopped")


def stop_process(process: subprocess.Popen) -> None:
    """SIGINT (a clean shutdown), then SIGKILL of its process group after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def create_workspace(data_dir: Path, name: str, env: dict[str, str]) -> str:
    """`kb workspace create NAME --tier enterprise --min-rag-document-bytes 0`; returns the API key."""
    cmd = kb_command() + ["workspace", "create", name, "--tier", "enterprise", "--min-rag-document-bytes", "0",
                          "--data-dir", str(data_dir)]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()[-1000:]}")
    return json.loads(out.stdout.strip().split("\n")[-1])["api_key"]


class Target:
    """Where the parts run: a spawned server, or --url with workspaces made from --data-dir, or one --api-key."""

    def __init__(self, args):
        self.args = args
        self.spawned = not args.url
        self.server: SpawnedServer | None = None  # started on first use (the backends part runs its own)
        self.root = Path(tempfile.mkdtemp(prefix="kb-retrieval-bench-"))
        self.keys: dict[str, str] = {}
        self.shared_key = None
        self._url = None
        if args.url:
            require_loopback(args.url)
            self._url = args.url.rstrip("/")
            self.shared_key = args.api_key
            self.data_dir = args.data_dir
            self.env = server_env()
        self.run_tag = f"{int(time.time()) % 100000:05d}"

    @property
    def url(self) -> str:
        if self._url is None:
            self.server = SpawnedServer(self.root, "main")
            self._url, self.data_dir, self.env = self.server.url, self.server.data_dir, self.server.env
        return self._url

    def workspace(self, purpose: str) -> tuple[str, bool]:
        """(API key, fresh) of the workspace for `purpose`: created once per run; shared with --api-key."""
        self.url  # noqa: B018 - starts the spawned server if needed
        if self.shared_key:
            return self.shared_key, False
        if purpose not in self.keys:
            self.keys[purpose] = create_workspace(self.data_dir, f"bench-{purpose}-{self.run_tag}", self.env)
            log(f"workspace bench-{purpose}-{self.run_tag} created")
        return self.keys[purpose], True

    def close(self) -> None:
        if self.server:
            self.server.stop()
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            log(f"kept {self.root}")


def client(url: str, key: str, timeout: float = 120) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"xi-api-key": key}, timeout=timeout)

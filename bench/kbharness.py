"""kb served for a benchmark: a real KnowledgeBase on a temporary data dir behind uvicorn on loopback, reached over HTTP.

`Server` starts it (any `Settings` override: `embed_backend`, `embed_context`...); `Workspace` uploads a set's
documents (POST /text or /file), waits until they are indexed, reads chunks back and retrieves
(POST /rag/retrieve). Tier limits are out of the way (a permissive tiers file in the data dir), so that
msmarco's short passages are indexed too.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from api.app import create_app  # noqa: E402
from evaldata import Chunk, Document  # noqa: E402
from kb.settings import load_settings  # noqa: E402
from kb.knowledge_base import KnowledgeBase  # noqa: E402

KB = "/v1/convai/knowledge-base"
TERMINAL = ("succeeded", "failed", "rag_limit_exceeded", "document_too_small")
MODEL_CACHE = REPO / "bench" / "results" / "kb-models"
PERMISSIVE_TIERS = """[defaults]
rag_max_bytes = 10_000_000_000
kb_max_bytes = 10_000_000_000
kb_max_chars = 10_000_000_000
min_rag_document_bytes = 0
[tiers.enterprise]
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A KnowledgeBase served by uvicorn in a background thread (as tests/helpers.py does)."""

    def __init__(self, label: str = "kb", model_cache: Path = MODEL_CACHE, **overrides: object):
        self.label = label
        self.root = Path(tempfile.mkdtemp(prefix=f"kb-evalsets-{label}-"))
        tiers = self.root / "tiers.toml"
        tiers.write_text(PERMISSIVE_TIERS)
        settings = load_settings(environ={}, data_dir=self.root / "data", tiers_file=tiers,
                                 default_tier="enterprise", model_cache_dir=model_cache, **overrides)
        self.kb = KnowledgeBase(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(self.kb), host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 600  # the first start exports the ONNX models
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"kb server {label} did not start")
            time.sleep(0.05)
        log(f"server {label} on {self.url} ({', '.join(f'{k}={v}' for k, v in overrides.items()) or 'defaults'})")

    def workspace(self, name: str) -> "Workspace":
        _, key = self.kb.workspaces.create(name, "enterprise")
        return Workspace(self.url, key, name)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.kb.close()
        shutil.rmtree(self.root, ignore_errors=True)


class Workspace:
    def __init__(self, url: str, key: str, name: str):
        self.url, self.key, self.name = url, key, name
        self.http = httpx.Client(base_url=url, headers={"xi-api-key": key}, timeout=300)
        self.ids: dict[str, str] = {}  # document name -> id
        self.model: str | None = None

    def upload(self, documents: Sequence[Document], clients: int = 4) -> None:
        """Upload every document (names must be unique) and wait until all are indexed."""
        started = time.monotonic()

        def one(doc: Document) -> tuple[str, str]:
            with httpx.Client(base_url=self.url, headers={"xi-api-key": self.key}, timeout=300) as http:
                if doc.text is not None:
                    response = http.post(f"{KB}/text", json={"text": doc.text, "name": doc.name})
                else:
                    response = http.post(f"{KB}/file", files={"file": (doc.path.name, doc.path.read_bytes())},
                                         data={"name": doc.name})
                response.raise_for_status()
                return doc.name, response.json()["id"]

        with ThreadPoolExecutor(clients) as pool:
            self.ids.update(pool.map(one, documents))
        log(f"{self.name}: {len(documents)} documents uploaded in {time.monotonic() - started:.0f} s")
        self.wait_indexed()
        log(f"{self.name}: indexed {time.monotonic() - started:.0f} s after the first upload")

    def wait_indexed(self, timeout: float = 3600) -> None:
        ids = list(self.ids.values())
        deadline = time.monotonic() + timeout
        while self.model is None:
            indexes = self.http.get(f"{KB}/{ids[0]}/rag-index").json()["indexes"]
            self.model = indexes[0]["model"] if indexes else None
            time.sleep(0.2)
        pending = ids
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {len(pending)} indexes not done")
            still = []
            for start in range(0, len(pending), 100):
                batch = pending[start:start + 100]
                response = self.http.post(f"{KB}/rag-index", json={"items": [
                    {"document_id": d, "model": self.model, "create_if_missing": False} for d in batch]})
                response.raise_for_status()
                for d, result in response.json().items():
                    data = result.get("data") or {}
                    if data.get("status") not in TERMINAL:
                        still.append(d)
                    elif data["status"] != "succeeded":
                        raise RuntimeError(f"{self.name}: document {d} ended {data['status']}: {data.get('error')}")
                if still:
                    break  # indexed oldest first: the rest are not done either
            pending = still + pending[start + 100:] if still else pending[start + 100:]
            if pending:
                time.sleep(0.5)

    def chunks(self, name: str) -> list[Chunk]:
        """The stored chunks of one document, in order."""
        out, cursor = [], None
        while True:
            params = {"page_size": 1000} | ({"cursor": cursor} if cursor else {})
            response = self.http.get(f"{KB}/{self.ids[name]}/chunks", params=params)
            response.raise_for_status()
            body = response.json()
            out += [Chunk(c["id"], name, c["content"], heading_path=tuple(c.get("heading_path") or ()))
                    for c in body["chunks"]]
            cursor = body.get("next_cursor")
            if not cursor:
                return out

    def retrieve(self, query: str, mode: str = "hybrid", count: int = 10, max_distance: float = 2.0,
                 document_names: Sequence[str] | None = None, **extra: object) -> list[Chunk]:
        body = {"query": query, "search_mode": mode, "max_vector_distance": max_distance,
                "max_retrieved_rag_chunks_count": count, "max_documents_length": 10_000_000, **extra}
        if document_names is not None:
            body["document_ids"] = [self.ids[n] for n in document_names]
        response = self.http.post(f"{KB}/rag/retrieve", json=body)
        response.raise_for_status()
        return [Chunk(c["chunk_id"], c["document_name"], c["text"], c["vector_distance"], tuple(c.get("heading_path") or ()))
                for c in response.json()["chunks"]]

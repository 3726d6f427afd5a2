"""Shared fixtures: a real knowledge base on a temporary data dir, served by a real uvicorn on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import CORPUS, LiveServer, make_kb
from kb.knowledge_base import KnowledgeBase


@pytest.fixture(scope="session")
def corpus() -> Path:
    assert CORPUS.is_dir(), f"the shared corpus is missing at {CORPUS}"
    return CORPUS


@pytest.fixture
def kb(tmp_path: Path) -> Iterator[KnowledgeBase]:
    instance = make_kb(tmp_path / "data", url_allow_hosts=("127.0.0.1",))
    yield instance
    instance.close()


@pytest.fixture
def server(kb: KnowledgeBase) -> Iterator[LiveServer]:
    live = LiveServer(kb).start()
    yield live
    live.stop()


@pytest.fixture
def api_key(kb: KnowledgeBase) -> str:
    return kb.workspaces.create("tests")[1]


@pytest.fixture
def client(server: LiveServer, api_key: str) -> Iterator[httpx.Client]:
    with server.client(api_key) as http:
        yield http

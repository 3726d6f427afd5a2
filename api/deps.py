"""Request dependencies: the knowledge base and the caller's workspace (from `xi-api-key`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from kb.knowledge_base import KnowledgeBase
from kb.records import Workspace

api_key_header = APIKeyHeader(name="xi-api-key", auto_error=False, description="Workspace API key")


async def get_kb(request: Request) -> KnowledgeBase:
    """No I/O: async, so FastAPI does not hand it to the thread pool (a hop per request)."""
    return request.app.state.kb


def get_workspace(
    request: Request, api_key: Annotated[str | None, Security(api_key_header)] = None
) -> Workspace:
    return request.app.state.kb.workspaces.authenticate(api_key)


KB = Annotated[KnowledgeBase, Depends(get_kb)]
CurrentWorkspace = Annotated[Workspace, Depends(get_workspace)]

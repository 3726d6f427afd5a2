"""The MCP endpoint `/mcp`: kb's MCP server over streamable HTTP, stateless (any replica answers any
request), each request authenticated with a workspace API key (`xi-api-key` or `Authorization: Bearer`).

The SDK's session manager must run in the host app's lifespan (`session_manager.run()`), and its
DNS-rebinding guard answers only the hosts and origins of `KB_MCP_ALLOWED_HOSTS` / `_ORIGINS`.
"""

from __future__ import annotations

import anyio.to_thread
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from kb.errors import KBError
from kb.knowledge_base import KnowledgeBase
from kb.mcp import build_server
from kb.records import Workspace

from .errors import error_body, status_for

WORKSPACE_SCOPE_KEY = "kb.workspace"


def api_key_of(headers: Headers) -> str | None:
    """The caller's key: `xi-api-key`, else the token of `Authorization: Bearer <key>`."""
    key = headers.get("xi-api-key")
    if key:
        return key
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def workspace_of(ctx: ServerRequestContext) -> Workspace:
    """The workspace the endpoint authenticated for this request."""
    return ctx.request.scope[WORKSPACE_SCOPE_KEY]


class McpEndpoint:
    """ASGI endpoint: authenticate, then hand the request to the SDK's stateless session manager."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        settings = kb.settings.runtimes
        self.server = build_server(kb, workspace_of, settings)
        self.server.streamable_http_app(  # builds the session manager with kb's guard settings
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=list(settings.mcp_allowed_hosts),
                allowed_origins=list(settings.mcp_allowed_origins),
            ),
        )

    @property
    def session_manager(self) -> StreamableHTTPSessionManager:
        return self.server.session_manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            workspace = await anyio.to_thread.run_sync(self.kb.workspaces.authenticate, api_key_of(Headers(scope=scope)))
        except KBError as exc:
            message = exc.message + " (or Authorization: Bearer <key>)"
            response = JSONResponse(error_body(exc.code, message), status_code=status_for(exc.code),
                                    headers={"WWW-Authenticate": 'Bearer realm="kb"'})
            await response(scope, receive, send)
            return
        scope[WORKSPACE_SCOPE_KEY] = workspace
        await self.session_manager.handle_request(scope, receive, send)

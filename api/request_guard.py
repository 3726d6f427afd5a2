"""An ASGI middleware that bounds every request body and checks JSON bodies before a route parses them.

- Size: a body over its limit is refused with 413 `request_too_large`, from `Content-Length` before
  a byte is read, else while it streams in (the route never gets the rest). The limit depends on
  the request: file uploads (multipart) `KB_MAX_UPLOAD_BYTES` + 1 MiB of form overhead; text
  documents (`POST …/text`, `PATCH …/{id}`) twice `KB_MAX_UPLOAD_BYTES` (JSON escapes; the text
  itself is held to `KB_MAX_UPLOAD_BYTES`); agents (`POST /v1/convai/agents/create`,
  `PATCH /v1/convai/agents/{id}`) `KB_MAX_AGENT_BYTES`; any other body `KB_MAX_REQUEST_BYTES`.
- JSON: `json_checks.check_json` (depth, NaN/Infinity, lone surrogates), 400 `invalid_json`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kb.errors import KBError, RequestTooLarge

from .errors import error_body, status_for
from .json_checks import check_json

FORM_OVERHEAD = 1 << 20
_TEXT_DOCUMENT = re.compile(r"^/v1/convai/knowledge-base/(text|[^/]+)$")
_AGENT = re.compile(r"^/v1/convai/agents/(create|[^/]+)$")


@dataclass(frozen=True)
class BodyLimits:
    max_request_bytes: int
    max_agent_bytes: int
    max_upload_bytes: int
    max_json_depth: int

    def for_request(self, method: str, path: str, multipart: bool) -> tuple[int, str]:
        """(bytes allowed, the setting that says so) for a request."""
        if multipart:
            return self.max_upload_bytes + FORM_OVERHEAD, "KB_MAX_UPLOAD_BYTES plus 1 MiB for the form"
        text = _TEXT_DOCUMENT.match(path)
        if text and (method, text.group(1) == "text") in (("POST", True), ("PATCH", False)):
            return 2 * self.max_upload_bytes, "twice KB_MAX_UPLOAD_BYTES"
        agent = _AGENT.match(path)
        if agent and (method, agent.group(1) == "create") in (("POST", True), ("PATCH", False)):
            return self.max_agent_bytes, "KB_MAX_AGENT_BYTES"
        return self.max_request_bytes, "KB_MAX_REQUEST_BYTES"


def _too_large(limit: int, setting: str) -> RequestTooLarge:
    return RequestTooLarge(f"the request body is over {limit:,} bytes, the limit of this request ({setting}); "
                           "send less (split a document, shorten the config)")


def _is_json(content_type: str | None) -> bool:
    """As FastAPI decides to parse a body as JSON: no content type, application/json or application/*+json."""
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


class RequestGuard:
    def __init__(self, app: ASGIApp, limits: BodyLimits):
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        content_type = headers.get("content-type")
        multipart = (content_type or "").lower().startswith("multipart/")
        limit, setting = self.limits.for_request(scope["method"], scope["path"], multipart)
        try:
            declared = int(headers.get("content-length") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            await _refuse(_too_large(limit, setting), send)
            return
        if multipart or (declared == 0 and "transfer-encoding" not in headers):
            await self.app(scope, _capped(receive, limit, setting), send)
            return
        try:
            body = await _read(receive, limit, setting)
            if _is_json(content_type) and body:
                check_json(body, self.limits.max_json_depth)
        except KBError as exc:
            await _refuse(exc, send)
            return
        await self.app(scope, _replay(body, receive), send)


async def _refuse(exc: KBError, send: Send) -> None:
    response = JSONResponse(error_body(exc.code, exc.message), status_code=status_for(exc.code),
                            headers={"connection": "close"})
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - a JSONResponse does not read
    return {"type": "http.disconnect"}


async def _read(receive: Receive, limit: int, setting: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, setting)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # a disconnect, when the client goes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _capped(receive: Receive, limit: int, setting: str) -> Callable[[], Awaitable[Message]]:
    """Streams the body through, raising 413 (an HTTPException FastAPI lets through) once over `limit`."""
    size = 0

    async def capped() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            exc = _too_large(limit, setting)
            raise HTTPException(status_for(exc.code), detail={"status": exc.code, "message": exc.message})
        return message

    return capped

"""Every error leaves as JSON: `{"detail": {"status": <code>, "message": <what to do>}}`.

kb's errors carry a code and no HTTP status; `STATUS_BY_CODE` is the one place that maps them.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kb.errors import KBError

log = logging.getLogger(__name__)

# kb's error codes (kb/errors.py; ingestion's codes come from the ingest library) and their statuses.
STATUS_BY_CODE: dict[str, int] = {
    "bad_request": 400,
    "invalid_request": 400,
    "invalid_api_key": 401,
    "not_found": 404,
    "knowledge_not_found": 404,
    "conflict": 409,
    "invalid_json": 400,
    "request_too_large": 413,
    "idempotency_key_reused": 422,
    "unknown_model": 400,
    "model_not_installed": 400,
    "quota_exceeded": 413,
    "too_many_requests": 429,
    "invalid_document": 400,
    "empty_document": 400,
    "corrupt_document": 400,
    "encrypted_document": 400,
    "fetch_failed": 400,
    "address_not_allowed": 400,
    "unsupported_format": 415,
    "document_too_large": 413,
    "parse_timeout": 422,
    "invalid_crawl_request": 400,
    "invalid_filter": 400,
    "invalid_attributes": 400,
}


def status_for(code: str) -> int:
    """The HTTP status of a kb error code (400 for a code this table does not know)."""
    return STATUS_BY_CODE.get(code, 400)


def error_body(code: str, message: str, **extra: object) -> dict:
    return {"detail": {"status": code, "message": message, **extra}}


def validation_errors(exc: RequestValidationError) -> list[dict]:
    """FastAPI's 422 items (`loc`, `msg`, `type`), without the `input` they came from: an input may be
    anything the client sent (megabytes, or values that cannot be encoded in an answer)."""
    items = []
    for error in exc.errors():
        item = {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))}
        if error.get("ctx"):
            item["ctx"] = {str(k): v if isinstance(v, (int, str)) and not isinstance(v, bool) else str(v)
                           for k, v in error["ctx"].items()}
        items.append(item)
    return items


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(exc)}, status_code=422)

    @app.exception_handler(KBError)
    async def kb_error(_request: Request, exc: KBError) -> JSONResponse:
        status = status_for(exc.code)
        headers = {"Retry-After": "1"} if status == 429 else None  # busy, not wrong: try again shortly
        return JSONResponse(error_body(exc.code, exc.message, **exc.details), status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        code = {404: "not_found", 405: "method_not_allowed", 401: "invalid_api_key"}.get(exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body("internal_error", "internal server error; see the server log"), status_code=500)

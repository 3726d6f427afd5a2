"""kb's one error tree: every error carries a `code` and a `message`, and no HTTP status.

`api/errors.py` maps codes to statuses in one table. Errors of the `ingest` library are turned
into `InvalidDocument` (keeping their code) where kb calls it (`ingest_errors_as_kb_errors`), so
callers of kb see this tree only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ingest.errors import IngestError, UnsupportedFormat


class KBError(Exception):
    """Base class. `details` are extra fields of the error body (e.g. `supported_formats`)."""

    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = dict(details or {})


class NotFound(KBError):
    code = "not_found"


class KnowledgeNotFound(NotFound):
    """A Dify knowledge id that is neither the caller's workspace nor one of its folders."""

    code = "knowledge_not_found"


class Unauthorized(KBError):
    code = "invalid_api_key"


class InvalidRequest(KBError):
    code = "invalid_request"


class InvalidFilter(InvalidRequest):
    """A bad metadata filter (`kb.filters`); `details.field` is the path of the offending part."""

    code = "invalid_filter"


class InvalidAttributes(InvalidRequest):
    """Bad document attributes (`kb.attributes`); `details.field` names the offending key."""

    code = "invalid_attributes"


class Conflict(KBError):
    code = "conflict"


class InvalidJson(KBError):
    """A request body that is not JSON kb accepts: malformed, nested too deeply, NaN or Infinity, lone surrogates."""

    code = "invalid_json"


class RequestTooLarge(KBError):
    """A request (body, field or list) over one of kb's documented limits."""

    code = "request_too_large"


class IdempotencyKeyReused(KBError):
    """An `Idempotency-Key` sent again with a different request."""

    code = "idempotency_key_reused"


class UnknownModel(KBError):
    code = "unknown_model"


class ModelNotInstalled(KBError):
    """A configured embedding model whose files are not on this machine, with nothing to serve in its place."""

    code = "model_not_installed"


class QuotaExceeded(KBError):
    code = "quota_exceeded"


class TooManyRequests(KBError):
    """A workspace already runs as many operations of a kind as it may at once (URL fetches)."""

    code = "too_many_requests"


class InvalidDocument(KBError):
    """Content that cannot be ingested. Its `code` says why, with the ingest library's codes
    (`unsupported_format`, `empty_document`, `corrupt_document`, `parse_timeout`, `fetch_failed`...)."""

    code = "invalid_document"


class DocumentTooLarge(InvalidDocument):
    code = "document_too_large"


def from_ingest_error(exc: IngestError) -> InvalidDocument:
    details = {"supported_formats": list(exc.supported)} if isinstance(exc, UnsupportedFormat) else {}
    return InvalidDocument(exc.message, code=exc.code, details=details)


@contextmanager
def ingest_errors_as_kb_errors() -> Iterator[None]:
    """Re-raise errors of the `ingest` library as `InvalidDocument` with the same code and message."""
    try:
        yield
    except IngestError as exc:
        raise from_ingest_error(exc) from exc


__all__ = [
    "KBError", "NotFound", "Unauthorized", "InvalidRequest", "InvalidJson", "RequestTooLarge", "InvalidFilter",
    "InvalidAttributes", "IdempotencyKeyReused", "Conflict", "UnknownModel", "ModelNotInstalled", "QuotaExceeded",
    "TooManyRequests", "InvalidDocument", "DocumentTooLarge", "from_ingest_error", "ingest_errors_as_kb_errors",
]

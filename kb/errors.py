"""Errors the service raises; the API maps each to an HTTP status and a JSON body."""

from __future__ import annotations

# Parsing and ingestion errors are raised by the `ingest` library; the API reaches them through
# here (api -> kb -> ingest).
from ingest.errors import DocumentTooLarge, IngestError, UnsupportedFormat


class KBError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(KBError):
    status = 404
    code = "not_found"


class Unauthorized(KBError):
    status = 401
    code = "invalid_api_key"


class InvalidRequest(KBError):
    status = 400
    code = "invalid_request"


class Conflict(KBError):
    status = 409
    code = "conflict"


class UnknownModel(KBError):
    status = 400
    code = "unknown_model"


__all__ = ["KBError", "NotFound", "Unauthorized", "InvalidRequest", "Conflict", "UnknownModel",
           "IngestError", "UnsupportedFormat", "DocumentTooLarge"]

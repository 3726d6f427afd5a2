"""Errors raised by ingestion. Each message says what is wrong and what to do next."""

from __future__ import annotations


class IngestError(Exception):
    """Base class: the input cannot be turned into text. `code` names the problem for callers."""

    code: str = "invalid_document"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UnsupportedFormat(IngestError):
    code = "unsupported_format"

    def __init__(self, message: str, supported: list[str]):
        super().__init__(message)
        self.supported = supported


class EmptyDocument(IngestError):
    code = "empty_document"


class CorruptDocument(IngestError):
    code = "corrupt_document"


class EncryptedDocument(IngestError):
    code = "encrypted_document"


class DocumentTooLarge(IngestError):
    code = "document_too_large"


class ParseTimeout(IngestError):
    code = "parse_timeout"


class FetchError(IngestError):
    """A URL could not be fetched (network error, HTTP error, refused address)."""

    code = "fetch_failed"


class BlockedAddress(FetchError):
    """The URL's host resolves to an address that may not be fetched (loopback, private, metadata...)."""

    code = "address_not_allowed"

"""The formats ingest understands and the message that lists them."""

from __future__ import annotations

from .errors import UnsupportedFormat

SUPPORTED_FORMATS: tuple[str, ...] = ("pdf", "docx", "epub", "html", "txt", "markdown")


def unsupported(what: str, advice: str = "") -> UnsupportedFormat:
    """An `UnsupportedFormat` whose message says what the file is and what is accepted."""
    message = f"{what} is not a supported format; supported formats are {', '.join(SUPPORTED_FORMATS)}."
    if advice:
        message += f" {advice}"
    return UnsupportedFormat(message, list(SUPPORTED_FORMATS))

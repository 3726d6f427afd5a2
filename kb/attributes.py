"""Document attributes: typed values (string, number, boolean, date), their limits, and the
attributes kb sets itself.

A date is a string in ISO 8601 form (`2024-05-01`, `2024-05-01T09:30:00Z`); it is kept as given
and compared as the instant it names (UTC when it names no zone). The same rule reads a filter's
values (`kb.filters`), so a date attribute and a date in a filter always compare as dates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidAttributes

MAX_ATTRIBUTES = 16  # attributes a client sets on one document (automatic ones not counted)
MAX_KEY_CHARS = 64
MAX_STRING_CHARS = 512
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
KINDS = ("string", "number", "boolean", "date")

# Set by kb on every document, read-only for clients. The first six are the document's own fields;
# `site`, `page_count` and `language` are stored with the document's attributes.
AUTOMATIC_KINDS: dict[str, str] = {
    "source_type": "string",  # file | url | text
    "format": "string",  # pdf, docx, epub, html, txt, markdown
    "file_name": "string",  # file documents: the uploaded file's name
    "url": "string",  # URL documents: the final URL fetched
    "created_at": "date",
    "updated_at": "date",
    "site": "string",  # URL documents: the URL's host name
    "page_count": "number",  # paged formats (PDF)
    "language": "string",  # ISO 639-1 code where there is one (en, fr, ...), else cjk / other
}
STORED_AUTOMATIC = ("site", "page_count", "language")

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:?\d{2})?$")


@dataclass(frozen=True)
class Value:
    """One typed value: strings and dates keep `text`; numbers, booleans (0/1) and dates (unix
    seconds) have `number`."""

    kind: str
    text: str | None = None
    number: float | None = None

    def as_json(self) -> Any:
        if self.kind == "boolean":
            return bool(self.number)
        if self.kind == "number":
            assert self.number is not None
            return int(self.number) if self.number.is_integer() and abs(self.number) < 2**53 else self.number
        return self.text


def parse_date(text: str) -> float | None:
    """Unix seconds of an ISO 8601 date or date-time (UTC when no zone is given), or None."""
    if not _DATE.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def format_date(unix_secs: float) -> str:
    return datetime.fromtimestamp(unix_secs, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def to_value(raw: Any) -> Value | None:
    """The typed value of a JSON scalar, or None if it is not one kb stores."""
    if isinstance(raw, bool):
        return Value("boolean", number=1.0 if raw else 0.0)
    if isinstance(raw, (int, float)):
        number = float(raw)
        return Value("number", number=number) if math.isfinite(number) else None
    if isinstance(raw, str):
        date = parse_date(raw)
        return Value("date", text=raw, number=date) if date is not None else Value("string", text=raw)
    return None


def parse_attributes(raw: Any, field: str = "attributes") -> dict[str, Value]:
    """A client's attributes, checked: an object of at most MAX_ATTRIBUTES keys, each a key of
    KEY_PATTERN up to MAX_KEY_CHARS that kb does not set itself, each value a string (up to
    MAX_STRING_CHARS), a finite number, a boolean or an ISO 8601 date string."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidAttributes(f"{field} must be an object of key: value", details={"field": field})
    if len(raw) > MAX_ATTRIBUTES:
        raise InvalidAttributes(f"{field} has {len(raw)} keys; at most {MAX_ATTRIBUTES} are allowed",
                                details={"field": field})
    values: dict[str, Value] = {}
    for key, item in raw.items():
        where = f"{field}.{key}"
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS or not KEY_PATTERN.match(key):
            raise InvalidAttributes(
                f"{field} key {key!r} must be 1 to {MAX_KEY_CHARS} letters, digits, '_', '.' or '-' "
                "(not starting with '.' or '-')", details={"field": where})
        if key in AUTOMATIC_KINDS:
            raise InvalidAttributes(f"{where} is set by kb automatically and cannot be given",
                                    details={"field": where})
        value = to_value(item)
        if value is None:
            raise InvalidAttributes(f"{where} must be a string, a finite number, a boolean or an ISO 8601 date string",
                                    details={"field": where})
        if value.text is not None and len(value.text) > MAX_STRING_CHARS:
            raise InvalidAttributes(f"{where} is {len(value.text)} characters; at most {MAX_STRING_CHARS} are allowed",
                                    details={"field": where})
        values[key] = value
    return values


# kb's lexical analyser names languages; attributes use ISO 639-1 codes where there is one.
LANGUAGE_CODES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it", "portuguese": "pt",
    "dutch": "nl", "swedish": "sv", "norwegian": "no", "danish": "da", "finnish": "fi", "russian": "ru",
    "greek": "el", "arabic": "ar",
}


def language_code(analyser_language: str) -> str:
    return LANGUAGE_CODES.get(analyser_language, analyser_language)

"""The `Content-Disposition` of a download: an ASCII `filename=` for old clients and the exact name
as RFC 6266 / RFC 5987 `filename*=UTF-8''…`, so no name ever puts a raw character in a header."""

from __future__ import annotations

from urllib.parse import quote

from kb.services.names import ascii_name, display_name

ATTR_CHARS = "!#$&+-.^_`|~"  # RFC 5987 attr-char besides letters and digits: sent as they are


def attachment(filename: str | None) -> str:
    name = display_name(filename or "") or "download"
    return f"attachment; filename=\"{ascii_name(name)}\"; filename*=UTF-8''{quote(name, safe=ATTR_CHARS)}"

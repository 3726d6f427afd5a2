"""Page cursors: opaque to clients, an offset inside, checked on the way back in.

A cursor kb did not make (edited, another type inside, an offset no page can have) is a 400
naming the cursor, never a database error.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from ..errors import InvalidRequest

MAX_CURSOR_CHARS = 1_000
MAX_OFFSET = 1_000_000_000  # far past any page a workspace can have; beyond it the database overflows
INVALID = "invalid cursor: pass the next_cursor of the previous page unchanged"


def encode_cursor(offset: int) -> str:
    return encode_value({"offset": offset})


def encode_value(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def decode_value(cursor: str) -> Any:
    """The JSON value inside a cursor, or a 400."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidRequest(f"{INVALID} (a cursor is at most {MAX_CURSOR_CHARS} characters)")
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise InvalidRequest(INVALID) from None


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    value = decode_value(cursor)
    offset = value.get("offset") if isinstance(value, dict) else None
    if not is_int(offset) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidRequest(INVALID)
    return offset


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: Any, bound: float = 1e15) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value) and -bound <= value <= bound

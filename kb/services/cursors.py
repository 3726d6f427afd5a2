"""Page cursors: opaque to clients, an offset inside."""

from __future__ import annotations

import base64
import json

from ..errors import InvalidRequest


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["offset"])
    except Exception as exc:
        raise InvalidRequest("invalid cursor: pass the next_cursor of the previous page unchanged") from exc
    if offset < 0:
        raise InvalidRequest("invalid cursor: pass the next_cursor of the previous page unchanged")
    return offset

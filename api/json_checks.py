"""What kb refuses in any JSON body before a route sees it, naming the field.

Python's `json` module accepts things no client should send and kb cannot store or answer with:
`NaN` and `Infinity` (not JSON, and never encodable in an answer), lone UTF-16 surrogates such as
`"\\ud800"` (not Unicode: they cannot be written as UTF-8 to the database, a file or a response) and
nesting deep enough to exhaust the recursion of everything that walks the value later.
"""

from __future__ import annotations

import json
import math
from typing import Any

from kb.errors import InvalidJson

PATH_CHARS = 120  # a field path longer than this is shortened in messages


def check_json(body: bytes, max_depth: int) -> None:
    """Raise `InvalidJson` (naming the field) unless `body` is JSON kb accepts."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise InvalidJson(f"the JSON body is nested too deeply: at most {max_depth} levels of objects and arrays "
                          "(KB_MAX_JSON_DEPTH)") from None
    except UnicodeDecodeError:
        raise InvalidJson("the JSON body is not valid UTF-8 text") from None
    except ValueError as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from None
    _walk(value, max_depth)


def _walk(root: Any, max_depth: int) -> None:
    """Depth first without recursion: (value, path, depth) on a stack."""
    stack: list[tuple[Any, str, int]] = [(root, "body", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= max_depth:
                raise InvalidJson(f"{_short(path)}: the JSON body is nested more than {max_depth} levels deep "
                                  "(KB_MAX_JSON_DEPTH); flatten it")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key, f"{path} (a key)")
                    stack.append((item, f"{path}.{key}", depth + 1))
            else:
                stack.extend((item, f"{path}[{n}]", depth + 1) for n, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidJson(f"{_short(path)}: {value!r} is not a JSON number (NaN and Infinity are not allowed); "
                              "send a finite number")


def _check_text(text: str, path: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(text[exc.start])
        raise InvalidJson(f"{_short(path)}: contains a lone UTF-16 surrogate (\\u{bad:04x}) at character {exc.start}, "
                          "which is not Unicode text; send valid UTF-8 (pair surrogates, or drop the character)") from None


def _short(path: str) -> str:
    return path if len(path) <= PATH_CHARS else path[: PATH_CHARS // 2] + "…" + path[-PATH_CHARS // 2:]

"""Metadata filters in OpenAI file_search's form: the model, its validation and its evaluation.

    {"type": "eq" | "ne" | "gt" | "gte" | "lt" | "lte" | "in" | "nin", "key": "...", "value": ...}
    {"type": "and" | "or", "filters": [<filter>, ...]}

A comparison compares a document's attribute with a value of the same kind (string, number,
boolean or date, see `kb.attributes`): a number never equals a string. `gt`/`gte`/`lt`/`lte` take
a number or a date; `in`/`nin` a list of values. `ne` and `nin` are the negation of `eq` and
`in`: they also match documents without the attribute. The storage layer compiles a filter to SQL
(`kb/storage/sql/attributes.py`); `matches` is the same rule in Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from .attributes import AUTOMATIC_KINDS, MAX_KEY_CHARS, Value, to_value
from .errors import InvalidFilter

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUNDS = ("and", "or")
ORDERED = ("gt", "gte", "lt", "lte")
MAX_DEPTH = 5  # compound filters nested inside each other
MAX_COMPARISONS = 64  # comparisons in one filter, all levels together
MAX_LIST_VALUES = 100  # values of one in / nin


@dataclass(frozen=True)
class Comparison:
    op: str
    key: str
    values: tuple[Value, ...]  # one value, or the list of in / nin


@dataclass(frozen=True)
class Compound:
    op: str
    filters: tuple["Filter", ...]


Filter = Union[Comparison, Compound]


def _fail(field: str, problem: str) -> InvalidFilter:
    return InvalidFilter(f"{field} {problem}", details={"field": field})


def parse_filter(raw: Any, field: str = "filters") -> Filter | None:
    """The filter `raw` (decoded JSON) stands for, checked; None for no filter (null or absent)."""
    if raw is None:
        return None
    counter = [0]
    return _parse(raw, field, 1, counter)


def _parse(raw: Any, field: str, depth: int, counter: list[int]) -> Filter:
    if not isinstance(raw, Mapping):
        raise _fail(field, "must be an object: a comparison {type, key, value} or a compound {type, filters}")
    kind = raw.get("type")
    if kind in COMPOUNDS:
        return _compound(raw, field, depth, counter)
    if kind in COMPARISONS:
        return _comparison(raw, field, counter)
    raise _fail(f"{field}.type", f"must be one of {', '.join(COMPARISONS + COMPOUNDS)} (got {kind!r})")


def _compound(raw: Mapping, field: str, depth: int, counter: list[int]) -> Compound:
    extra = set(raw) - {"type", "filters"}
    if extra:
        raise _fail(field, f"has unknown fields {sorted(extra)}; a compound filter has type and filters")
    if depth > MAX_DEPTH:
        raise _fail(field, f"nests compound filters deeper than {MAX_DEPTH} levels")
    items = raw.get("filters")
    if not isinstance(items, list) or not items:
        raise _fail(f"{field}.filters", "must be a non-empty list of filters")
    parts = tuple(_parse(item, f"{field}.filters[{n}]", depth + 1, counter) for n, item in enumerate(items))
    return Compound(raw["type"], parts)


def _comparison(raw: Mapping, field: str, counter: list[int]) -> Comparison:
    extra = set(raw) - {"type", "key", "value"}
    if extra:
        raise _fail(field, f"has unknown fields {sorted(extra)}; a comparison has type, key and value")
    counter[0] += 1
    if counter[0] > MAX_COMPARISONS:
        raise _fail(field, f"is comparison number {counter[0]}; a filter has at most {MAX_COMPARISONS}")
    op, key = raw["type"], raw.get("key")
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS:
        raise _fail(f"{field}.key", f"must be an attribute name of 1 to {MAX_KEY_CHARS} characters")
    if "value" not in raw:
        raise _fail(f"{field}.value", "is missing")
    raw_value, where = raw["value"], f"{field}.value"
    if op in ("in", "nin"):
        if not isinstance(raw_value, list) or not raw_value:
            raise _fail(where, f"must be a non-empty list of values for {op}")
        if len(raw_value) > MAX_LIST_VALUES:
            raise _fail(where, f"has {len(raw_value)} values; {op} takes at most {MAX_LIST_VALUES}")
        values = tuple(_value(item, f"{where}[{n}]", key) for n, item in enumerate(raw_value))
    else:
        values = (_value(raw_value, where, key),)
        if op in ORDERED and values[0].kind not in ("number", "date"):
            raise _fail(where, f"must be a number or an ISO 8601 date for {op} (got {values[0].kind})")
    return Comparison(op, key, values)


def _value(raw: Any, where: str, key: str) -> Value:
    value = to_value(raw)
    if value is None:
        raise _fail(where, "must be a string, a finite number, a boolean or an ISO 8601 date string")
    expected = AUTOMATIC_KINDS.get(key)
    if expected == "string" and value.kind == "date":
        return Value("string", text=value.text)  # a kb-set string compares as text, whatever it looks like
    if expected is not None and value.kind != expected:
        hint = " (an ISO 8601 string such as 2024-05-01 or 2024-05-01T09:30:00Z)" if expected == "date" else ""
        raise _fail(where, f"must be a {expected}{hint}: {key} is a {expected} attribute set by kb (got {value.kind})")
    return value


def both(*filters: Filter | None) -> Filter | None:
    """All the given filters at once (None ones left out)."""
    present = tuple(f for f in filters if f is not None)
    if not present:
        return None
    return present[0] if len(present) == 1 else Compound("and", present)


def matches(f: Filter, attributes: Mapping[str, Value]) -> bool:
    """Whether a document with these attributes passes the filter (the rule the SQL compiles)."""
    if isinstance(f, Compound):
        results = (matches(part, attributes) for part in f.filters)
        return all(results) if f.op == "and" else any(results)
    have = attributes.get(f.key)
    if f.op in ("ne", "nin"):
        return not matches(Comparison("eq" if f.op == "ne" else "in", f.key, f.values), attributes)
    if have is None:
        return False
    if f.op in ("eq", "in"):
        return any(_same(have, v) for v in f.values)
    want = f.values[0]
    if have.kind != want.kind:
        return False
    assert have.number is not None and want.number is not None
    return {"gt": have.number > want.number, "gte": have.number >= want.number,
            "lt": have.number < want.number, "lte": have.number <= want.number}[f.op]


def _same(a: Value, b: Value) -> bool:
    if a.kind != b.kind:
        return False
    return a.number == b.number if a.kind in ("number", "boolean", "date") else a.text == b.text

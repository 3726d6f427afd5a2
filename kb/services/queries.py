"""The one limit on query text, shared by every retrieval and search call (HTTP, CLI, agents)."""

from __future__ import annotations

from ..errors import InvalidRequest

MAX_QUERY_CHARS = 10_000


def checked_query(query: str, field: str = "query") -> str:
    """The query stripped; a 400 naming `field` when it is empty or longer than `MAX_QUERY_CHARS`."""
    query = query.strip()
    if not query:
        raise InvalidRequest(f"{field} must not be empty")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequest(f"{field} is {len(query):,} characters, over the limit of {MAX_QUERY_CHARS:,}; shorten it")
    return query

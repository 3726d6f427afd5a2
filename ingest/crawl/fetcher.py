"""The two things a crawler calls out to: fetching a URL and parsing a body.

Both are parameters of `Crawler` so that kb can pass its own (its settings, its sandboxed
parser); the defaults fetch through `ingest.fetch_response` (the SSRF guard, on every
redirect too) and parse with `ingest.parse`, like uploads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..fetch import fetch_response
from ..parse import parse
from ..types import FetchedResource, ParsedDocument
from .config import CrawlConfig

# (url, extra request headers, max body bytes) -> the final answer; raises FetchError / DocumentTooLarge.
Fetch = Callable[[str, Mapping[str, str], int], FetchedResource]
# (body, file name from the URL, content type) -> the document; raises IngestError.
Parse = Callable[[bytes, "str | None", "str | None"], ParsedDocument]

GONE_STATUSES = (404, 410)


def is_transient(status: int) -> bool:
    """Whether a later try may get another answer (server errors, rate limits, request timeouts)."""
    return status >= 500 or status in (408, 425, 429)


def guarded_fetch(config: CrawlConfig) -> Fetch:
    def fetch(url: str, headers: Mapping[str, str], max_bytes: int) -> FetchedResource:
        return fetch_response(
            url,
            timeout=config.timeout,
            max_bytes=max_bytes,
            max_redirects=config.max_redirects,
            allow_hosts=config.allow_hosts,
            headers=headers,
            user_agent=config.user_agent,
        )

    return fetch


def parse_like_uploads(data: bytes, filename: str | None, content_type: str | None) -> ParsedDocument:
    return parse(data, filename, content_type)

"""What keeping crawled pages in sync needs: a conditional re-fetch, and a site's current sitemap.

`refetch` makes one request with If-None-Match / If-Modified-Since and says whether the
page is unchanged (304, or the same text), changed (with the new document), gone (404,
410, or now `noindex`) or failed (`transient` when a later try may work). Spacing the
requests of a sync pass is the caller's job: keep a `HostSchedule` and ask it before each
call, as the crawler does. `list_sitemap_urls` reads a site's sitemaps as a sitemap crawl
would, politely, and returns the page URLs they list (for removed and new pages).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..errors import BlockedAddress, DocumentTooLarge, FetchError, IngestError
from ..types import ParsedDocument
from .config import CrawlConfig
from .crawler import Crawler
from .fetcher import GONE_STATUSES, Fetch, Parse, guarded_fetch, is_transient, parse_like_uploads
from .fingerprint import text_hash
from .links import header_directives, links_of
from .outcomes import Finished, SitemapRead, Waiting
from .robots import RobotsRules, read_robots
from .urls import CrawlScope, filename_of, normalize_url

__all__ = ["Refetched", "SitemapListing", "list_sitemap_urls", "read_robots", "refetch"]


@dataclass(frozen=True)
class Refetched:
    """`status`: "unchanged", "changed", "gone", "failed" or "disallowed" (by robots.txt)."""

    status: str
    url: str  # the final URL
    reason: str = ""
    http_status: int | None = None
    transient: bool = False
    document: ParsedDocument | None = None  # for "changed"
    data: bytes = b""
    content_type: str | None = None
    text_hash: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    links: tuple[str, ...] = ()  # in-scope links of the page (normalised), for auto-discovery


def refetch(
    url: str,
    config: CrawlConfig,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    previous_text_hash: str | None = None,
    fetch: Fetch | None = None,
    parse: Parse | None = None,
    robots: RobotsRules | None = None,
) -> Refetched:
    """Fetch `url` again, conditionally; `config` gives the limits, the user agent and the scope of `links`."""
    if robots is not None and not robots.can_fetch(url, config.agent_token):
        return Refetched("disallowed", url, robots.reason())
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        got = (fetch or guarded_fetch(config))(url, headers, config.max_page_bytes)
    except DocumentTooLarge as exc:
        return Refetched("failed", url, exc.message)
    except BlockedAddress as exc:
        return Refetched("failed", url, exc.message)
    except FetchError as exc:
        return Refetched("failed", url, exc.message, transient=True)
    final = normalize_url(got.final_url) or got.final_url
    validators = {"etag": got.headers.get("etag", etag), "last_modified": got.headers.get("last-modified", last_modified)}
    if got.status == 304:
        return Refetched("unchanged", final, "not modified (304)", 304, **validators)
    if got.status in GONE_STATUSES:
        return Refetched("gone", final, f"{url} answered {got.status}", got.status)
    if not 200 <= got.status < 300:
        return Refetched("failed", final, f"{url} answered {got.status}", got.status, is_transient(got.status))
    filename = filename_of(final)
    page = links_of(got, final, filename, config.agent_token)
    directives = header_directives(got.headers, config.agent_token) | page.robots
    if directives.noindex:
        return Refetched("gone", final, f"{final} now asks not to be indexed (robots noindex)", got.status)
    scope = CrawlScope(config.url, config.pattern, config.exclude_patterns)
    links = () if directives.nofollow else tuple(dict.fromkeys(u for u in map(scope.accept, page.links) if u))
    try:
        document = (parse or parse_like_uploads)(got.data, filename, got.content_type)
    except IngestError as exc:
        return Refetched("failed", final, exc.message, got.status)
    digest = text_hash(document.text)
    common = dict(http_status=got.status, data=got.data, content_type=got.content_type, text_hash=digest, links=links,
                  **validators)
    if digest == previous_text_hash:
        return Refetched("unchanged", final, "same text", **common)
    return Refetched("changed", final, "", document=document, **common)


@dataclass
class SitemapListing:
    """Page URLs a site's sitemaps list now (in scope), with their `lastmod`."""

    urls: dict[str, str | None] = field(default_factory=dict)
    sitemaps_read: int = 0
    errors: list[str] = field(default_factory=list)
    complete: bool = True  # False if a limit, an error or a stop left some sitemaps unread


def list_sitemap_urls(
    config: CrawlConfig,
    *,
    fetch: Fetch | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    nap: float = 0.25,
) -> SitemapListing:
    """Read the sitemaps of `config.url` (or `config.sitemap_urls`) as a sitemap crawl would."""
    crawler = Crawler(replace(config, type="sitemap"), fetch=fetch, page_budget=config.max_sitemap_entries)
    listing = SitemapListing()
    while not crawler.sitemaps_done:
        if should_stop():
            listing.complete = False
            break
        outcome = crawler.next_step()
        if isinstance(outcome, Waiting):
            sleep(min(outcome.seconds, nap))
        elif isinstance(outcome, SitemapRead) and outcome.error:
            listing.errors.append(outcome.error)
        elif isinstance(outcome, Finished):
            break
    frontier = crawler.frontier
    listing.urls = {item.url: item.lastmod for item in frontier.queue}
    listing.sitemaps_read = frontier.sitemaps_read
    if frontier.limit_reached or frontier.sitemap_entries >= config.max_sitemap_entries:
        listing.complete = False
    guessed_only = all(error.endswith("no sitemap there") for error in listing.errors)
    if listing.errors and not guessed_only:
        listing.complete = False
    return listing

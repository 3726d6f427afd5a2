"""What one crawler step did. A kb crawl job stores the page of a `PageScraped`, counts the
rest, sleeps on `Waiting`, and saves the frontier after every step."""

from __future__ import annotations

from dataclasses import dataclass

from ..types import ParsedDocument


@dataclass(frozen=True)
class PageScraped:
    """A page kept: `url` is the final URL (after redirects), `requested_url` the one queued."""

    url: str
    requested_url: str
    depth: int
    source: str | None  # the page or sitemap it was found on; None for the seed
    document: ParsedDocument
    data: bytes  # the body as served, for the document's original file
    content_type: str | None
    text_hash: str
    etag: str | None
    last_modified: str | None  # the Last-Modified header
    lastmod: str | None  # the sitemap's <lastmod>, ISO 8601
    links_found: int  # new URLs this page added to the crawl

    @property
    def title(self) -> str | None:
        return self.document.title


@dataclass(frozen=True)
class PageSkipped:
    """A page deliberately not kept. `code`: robots_disallowed, noindex, canonical, duplicate,
    near_duplicate, already_crawled, redirected_off_site, too_large, unsupported, empty,
    links_only (the seed outside `pattern`)."""

    url: str
    code: str
    reason: str


@dataclass(frozen=True)
class PageFailed:
    """A page that could not be read. `gone` for 404/410; `transient` when a later try may work
    (5xx, 429, timeouts, network errors). `http_status` when the server answered."""

    url: str
    code: str
    reason: str
    http_status: int | None = None
    gone: bool = False
    transient: bool = False


@dataclass(frozen=True)
class Waiting:
    """Nothing may be requested yet: every queued host is inside its politeness delay."""

    seconds: float
    host: str


@dataclass(frozen=True)
class RobotsRead:
    origin: str
    mode: str  # "rules", "allow_all" or "disallow_all"
    note: str


@dataclass(frozen=True)
class SitemapRead:
    url: str
    pages_added: int = 0
    sitemaps_added: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Finished:
    reason: str


Outcome = PageScraped | PageSkipped | PageFailed | Waiting | RobotsRead | SitemapRead | Finished
PAGE_OUTCOMES = (PageScraped, PageSkipped, PageFailed)

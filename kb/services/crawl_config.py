"""How kb runs the crawling library: a crawl's `CrawlConfig` from its record and kb's settings."""

from __future__ import annotations

from ingest.crawl import CrawlConfig, CrawlConfigError

from ..errors import InvalidDocument
from ..records import CrawlJob
from ..settings import CrawlSettings, IngestSettings


def crawl_config(settings: CrawlSettings, ingest: IngestSettings, *, url: str, max_pages: int = 1000,
                 pattern: str | None = None, exclude_patterns: tuple[str, ...] = (),
                 sitemap_urls: tuple[str, ...] = ()) -> CrawlConfig:
    """A checked config: a bad request raises `InvalidDocument` with code `invalid_crawl_request`,
    its message naming the field."""
    try:
        return CrawlConfig(
            url=url, max_pages=max_pages, pattern=pattern, exclude_patterns=tuple(exclude_patterns),
            sitemap_urls=tuple(sitemap_urls), delay=settings.crawl_delay_secs,
            max_crawl_delay=settings.crawl_max_delay_secs, timeout=ingest.url_timeout_secs,
            max_page_bytes=ingest.max_upload_bytes, max_redirects=ingest.url_max_redirects,
            allow_hosts=tuple(ingest.url_allow_hosts),
        )
    except CrawlConfigError as exc:
        named = any(name in exc.message for name in ("max_pages", "pattern", "sitemap"))
        raise InvalidDocument(exc.message if named else f"url: {exc.message}", code=exc.code) from exc


def config_of(crawl: CrawlJob, settings: CrawlSettings, ingest: IngestSettings) -> CrawlConfig:
    return crawl_config(settings, ingest, url=crawl.seed_url, max_pages=crawl.max_pages, pattern=crawl.pattern,
                        exclude_patterns=crawl.exclude_patterns, sitemap_urls=crawl.sitemap_urls)

"""Crawl a website politely, one request per step, with state that survives a restart.

`Crawler(config, frontier).next_step()` returns one outcome at a time (a page scraped,
skipped or failed, a robots.txt or sitemap read, a wait, the end); `Frontier.to_json()`
saves everything between steps. `refetch` and `list_sitemap_urls` are what a later sync
needs: a conditional re-fetch of one page, and a site's current sitemap entries.
No storage and no HTTP serving here: a kb crawl job drives these.
"""

from __future__ import annotations

from .config import CRAWL_TYPES, DEFAULT_USER_AGENT, MAX_PAGES_LIMIT, CrawlConfig, CrawlConfigError
from .crawler import Crawler, run_steps
from .fetcher import Fetch, Parse, guarded_fetch, parse_like_uploads
from .frontier import Counters, Frontier, QueuedSitemap, QueuedUrl
from .links import PageLinks, extract_links
from .outcomes import (
    PAGE_OUTCOMES,
    Finished,
    Outcome,
    PageFailed,
    PageScraped,
    PageSkipped,
    RobotsRead,
    SitemapRead,
    Waiting,
)
from .robots import RobotsRules
from .schedule import HostSchedule
from .sitemaps import SitemapContent, parse_sitemap
from .sync import Refetched, SitemapListing, list_sitemap_urls, read_robots, refetch
from .urls import CrawlScope, UrlPatterns, normalize_url

__all__ = [
    "CRAWL_TYPES",
    "DEFAULT_USER_AGENT",
    "MAX_PAGES_LIMIT",
    "PAGE_OUTCOMES",
    "Counters",
    "CrawlConfig",
    "CrawlConfigError",
    "CrawlScope",
    "Crawler",
    "Fetch",
    "Finished",
    "Frontier",
    "HostSchedule",
    "Outcome",
    "PageFailed",
    "PageLinks",
    "PageScraped",
    "PageSkipped",
    "Parse",
    "QueuedSitemap",
    "QueuedUrl",
    "Refetched",
    "RobotsRead",
    "RobotsRules",
    "SitemapContent",
    "SitemapListing",
    "SitemapRead",
    "UrlPatterns",
    "Waiting",
    "extract_links",
    "guarded_fetch",
    "list_sitemap_urls",
    "normalize_url",
    "parse_like_uploads",
    "parse_sitemap",
    "read_robots",
    "refetch",
    "run_steps",
]

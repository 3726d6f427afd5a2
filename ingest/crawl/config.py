"""What to crawl and how politely: the settings of one crawl, checked when made."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import IngestError
from .urls import normalize_url

CRAWL_TYPES = ("auto", "discovery", "sitemap")
DEFAULT_USER_AGENT = "kb-crawler/0.1"
MAX_PAGES_LIMIT = 10_000
MAX_PATTERNS = 100
MAX_PATTERN_CHARS = 1000


class CrawlConfigError(IngestError):
    """A crawl request that cannot be run as given (bad URL, limits out of range...)."""

    code = "invalid_crawl_request"


@dataclass(frozen=True)
class CrawlConfig:
    """One crawl. `type`: "discovery" follows links from `url`; "sitemap" reads the pages the
    site's sitemaps list (or `sitemap_urls`); "auto" is "sitemap" when the site has one,
    else "discovery".

    `delay` is the pause between two requests to one host; a robots.txt `Crawl-delay`
    (or `Request-rate`) asking for more wins, up to `max_crawl_delay`. `timeout` bounds
    each request, redirects and body included.
    """

    url: str
    type: str = "auto"
    max_pages: int = 1000
    pattern: str | None = None
    exclude_patterns: tuple[str, ...] = ()
    sitemap_urls: tuple[str, ...] = ()
    delay: float = 1.0
    max_crawl_delay: float = 30.0
    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = 15.0
    max_page_bytes: int = 20_000_000
    max_redirects: int = 5
    allow_hosts: tuple[str, ...] = ()
    max_sitemaps: int = 100
    max_sitemap_depth: int = 4
    max_sitemap_bytes: int = 50_000_000
    max_sitemap_entries: int = 50_000
    near_duplicate_bits: int | None = 3

    def __post_init__(self) -> None:
        seed = normalize_url(self.url) if isinstance(self.url, str) else None
        if seed is None:
            raise CrawlConfigError(f"{self.url!r} is not an http(s) URL a crawl can start from; give a full URL like https://example.com/docs")
        object.__setattr__(self, "url", seed)
        object.__setattr__(self, "exclude_patterns", tuple(self.exclude_patterns or ()))
        object.__setattr__(self, "allow_hosts", tuple(self.allow_hosts or ()))
        sitemaps = []
        for entry in self.sitemap_urls or ():
            normalized = normalize_url(entry)
            if normalized is None:
                raise CrawlConfigError(f"the sitemap URL {entry!r} is not an http(s) URL")
            sitemaps.append(normalized)
        object.__setattr__(self, "sitemap_urls", tuple(dict.fromkeys(sitemaps)))
        if self.type not in CRAWL_TYPES:
            raise CrawlConfigError(f"the crawl type {self.type!r} is unknown; use one of {', '.join(CRAWL_TYPES)}")
        if not 1 <= self.max_pages <= MAX_PAGES_LIMIT:
            raise CrawlConfigError(f"max_pages must be between 1 and {MAX_PAGES_LIMIT:,}, not {self.max_pages}")
        patterns = [p for p in ([self.pattern] if self.pattern else []) + list(self.exclude_patterns)]
        if len(self.exclude_patterns) > MAX_PATTERNS:
            raise CrawlConfigError(f"at most {MAX_PATTERNS} exclude_patterns are accepted, not {len(self.exclude_patterns)}")
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern.strip() or len(pattern) > MAX_PATTERN_CHARS:
                raise CrawlConfigError(f"each pattern must be a non-empty string of at most {MAX_PATTERN_CHARS} characters")
        for name in ("delay", "max_crawl_delay"):
            if getattr(self, name) < 0:
                raise CrawlConfigError(f"{name} cannot be negative")
        if self.timeout <= 0:
            raise CrawlConfigError("timeout must be positive")
        for name in ("max_page_bytes", "max_sitemaps", "max_sitemap_bytes", "max_sitemap_entries"):
            if getattr(self, name) < 1:
                raise CrawlConfigError(f"{name} must be at least 1")
        if not self.user_agent.strip() or "\n" in self.user_agent or "\r" in self.user_agent:
            raise CrawlConfigError("the user agent must be one non-empty line")

    @property
    def agent_token(self) -> str:
        """The product token robots.txt groups are matched against ("kb-crawler")."""
        return self.user_agent.split("/", 1)[0].strip()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("exclude_patterns", "sitemap_urls", "allow_hosts"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CrawlConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})

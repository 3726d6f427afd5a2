"""Read one sitemap document: its page URLs with `lastmod`, or the sitemaps an index names.

Parsing is ultimate-sitemap-parser's (`usp.tree.sitemap_from_str`): XML sitemaps and
sitemap indexes, with or without their namespace, plain-text sitemaps, RSS and Atom
feeds, tolerant of truncated files; it refuses any DOCTYPE (no entity expansion, no
external entities) and uses expat, which resolves no external entity. Its own fetching
(`sitemap_tree_for_homepage`) is not used: it walks a whole sitemap tree in one call,
guesses a dozen unpublished paths, retries with sleeps and uses `requests`. Here every
sitemap is fetched by the crawler, one per step, through kb's guarded fetcher and the
host's politeness delay; gzip is inflated here within the byte limit.
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from ..errors import DocumentTooLarge

# A URL that names a sitemap file rather than a page (for `sitemap_urls` entries).
_SITEMAP_PATH = re.compile(r"(\.xml|\.xml\.gz|\.gz|\.txt)$|sitemap", re.I)
_GZIP_MAGIC = b"\x1f\x8b"

# usp logs every file it cannot parse at ERROR level; the crawler reports that itself (SitemapRead.error).
logging.getLogger("usp").setLevel(logging.CRITICAL)


@dataclass
class SitemapContent:
    """What one sitemap document lists. `is_sitemap` is False for anything else (an HTML page)."""

    pages: list[tuple[str, str | None]] = field(default_factory=list)  # (URL, lastmod as ISO 8601)
    sitemaps: list[str] = field(default_factory=list)
    is_sitemap: bool = True


def looks_like_sitemap(url: str) -> bool:
    return bool(_SITEMAP_PATH.search(urlsplit(url).path))


def parse_sitemap(data: bytes, url: str, *, max_bytes: int) -> SitemapContent:
    """Parse a fetched sitemap (gzip or not); raises `DocumentTooLarge` past `max_bytes` inflated."""
    from usp.objects.sitemap import AbstractIndexSitemap, AbstractPagesSitemap, InvalidSitemap
    from usp.tree import sitemap_from_str

    if data.startswith(_GZIP_MAGIC):
        data = _gunzip(data, max_bytes, url)
    text = data.decode("utf-8-sig", errors="replace")
    parsed = sitemap_from_str(text)
    if isinstance(parsed, InvalidSitemap):
        return SitemapContent(is_sitemap=False)
    content = SitemapContent()
    if isinstance(parsed, AbstractIndexSitemap):
        content.sitemaps = list(dict.fromkeys(urljoin(url, child.url) for child in parsed.sub_sitemaps))
    elif isinstance(parsed, AbstractPagesSitemap):
        for page in parsed.pages:
            lastmod = page.last_modified.isoformat() if page.last_modified else None
            content.pages.append((urljoin(url, page.url), lastmod))
    return content


def _gunzip(data: bytes, max_bytes: int, url: str) -> bytes:
    """Inflate gzip members one after the other, never more than `max_bytes`; a truncated or
    damaged archive gives what could be inflated (the parser is tolerant of a cut-off end)."""
    out = bytearray()
    pending = data
    while pending:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while pending and not inflater.eof:
                out += inflater.decompress(pending, max_bytes + 1 - len(out))
                if len(out) > max_bytes:
                    raise DocumentTooLarge(f"the sitemap {url} inflates to more than {max_bytes:,} bytes")
                pending = inflater.unconsumed_tail
        except zlib.error:
            break
        pending = inflater.unused_data if inflater.eof else b""
    return bytes(out)

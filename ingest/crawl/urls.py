"""URL normalisation and the crawl's scope: which links are the same page, which are on the site.

Normalisation uses courlan (`normalize_url`): scheme and host lower-cased, default ports
dropped, tracking parameters (utm_*, fbclid, gclid, ref, ... as courlan lists them)
removed, the remaining query sorted, the path percent-encoded consistently. On top of
it: the fragment is dropped, `.`/`..` segments are resolved, an empty path becomes `/`,
and URLs with credentials, non-http(s) schemes or more than `MAX_URL_CHARS` characters
are not crawled. courlan's own `check_url` filter is not used: it refuses IP hosts,
ports, PDFs and many ordinary paths (`/page/2`, `/archives/`).

The site is the seed's host name with `www.` ignored, and its port: `http://www.a.com`
and `https://a.com/x` are the same site, `docs.a.com` and `a.com:8080` are other sites.
A registrable-domain scope (all of `*.a.com`) would let a crawl of a documentation host
wander into the blog, shop and forum; crawl each host separately instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from urllib.parse import SplitResult, unquote, urljoin, urlsplit, urlunsplit

from courlan import normalize_url as courlan_normalize

MAX_URL_CHARS = 2048
# Links to these are not pages: never requested (a PDF, DOCX, EPUB, TXT or HTML page is).
SKIPPED_EXTENSIONS = frozenset(
    "png jpg jpeg gif webp avif svg ico bmp tif tiff heic css js mjs map woff woff2 ttf otf eot "
    "mp3 mp4 m4a m4v wav ogg oga ogv webm mov avi mkv flac aac wmv mpg mpeg "
    "zip gz tgz bz2 xz 7z rar tar dmg exe msi apk iso bin deb rpm jar "
    "xls xlsx ppt pptx odt ods odp rtf doc psd ai eps "
    "xml rss atom json csv ics vcf".split()
)
_NOT_LINKS = ("javascript:", "mailto:", "tel:", "data:", "sms:", "ftp:", "file:", "#")


def normalize_url(url: str, base: str | None = None) -> str | None:
    """`url` (resolved against `base`) as the crawler's canonical string, or None if not crawlable."""
    url = (url or "").strip()
    if not url or url.lower().startswith(_NOT_LINKS):
        return None
    try:
        parts = urlsplit(urljoin(base, url) if base else url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            return None
        parts.port  # noqa: B018 - raises ValueError on a malformed port
        normalized = courlan_normalize(parts._replace(fragment=""))
    except (ValueError, UnicodeError):
        return None
    parts = urlsplit(normalized)
    path = _remove_dot_segments(parts.path) or "/"
    result = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    return result if len(result) <= MAX_URL_CHARS else None


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4: `/a/b/../c/./d` -> `/a/c/d` (urljoin leaves absolute URLs alone)."""
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
        if segment in (".", "..") and i == len(segments) - 1:
            out.append("")  # `/a/b/..` ends in a directory: `/a/`
    return "/".join(out)


def site_of(url: str) -> str:
    """The site key of a normalised URL: host without `www.`, plus a non-default port."""
    netloc = urlsplit(url).netloc
    return netloc[4:] if netloc.startswith("www.") else netloc


def origin_of(url: str) -> str:
    """scheme://host[:port], the unit robots.txt applies to."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def host_of(url: str) -> str:
    """The host name politeness delays are kept for (one request at a time per host)."""
    return urlsplit(url).hostname or ""


def filename_of(url: str) -> str | None:
    """The last path segment, decoded (`/files/Annual%20report.pdf` -> `Annual report.pdf`), for format hints."""
    return unquote(PurePosixPath(urlsplit(url).path).name) or None


def has_skipped_extension(url: str) -> bool:
    last = urlsplit(url).path.rsplit("/", 1)[-1]
    return "." in last and last.rsplit(".", 1)[1].lower() in SKIPPED_EXTENSIONS


class UrlPatterns:
    """`pattern` and `exclude_patterns` of a crawl request.

    `*` matches any run of characters, `/` included; every other character is literal.
    A pattern without `*` matches as a prefix. A pattern starting with `http://` or
    `https://` is matched against the whole normalised URL, one starting with `/`
    against the path and query from their start, any other pattern anywhere in them.
    A URL is allowed if it matches `pattern` (when set) and none of `exclude_patterns`.
    """

    def __init__(self, pattern: str | None = None, exclude_patterns: Sequence[str] = ()) -> None:
        self.include = _compile(pattern) if pattern else None
        self.exclude = [_compile(p) for p in exclude_patterns if p]

    def included(self, url: str) -> bool:
        return self.include is None or _matches(self.include, url)

    def excluded(self, url: str) -> bool:
        return any(_matches(rule, url) for rule in self.exclude)

    def allows(self, url: str) -> bool:
        return self.included(url) and not self.excluded(url)


def _compile(pattern: str) -> tuple[bool, re.Pattern[str]]:
    pattern = pattern.strip()
    whole_url = pattern.lower().startswith(("http://", "https://"))
    if "*" not in pattern:
        pattern += "*"
    if not whole_url and not pattern.startswith("/"):
        pattern = "*" + pattern
    regex = ".*".join(re.escape(piece) for piece in pattern.split("*"))
    return whole_url, re.compile(regex, re.S)


def _matches(rule: tuple[bool, re.Pattern[str]], url: str) -> bool:
    whole_url, regex = rule
    if whole_url:
        return regex.fullmatch(url) is not None
    parts: SplitResult = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return regex.fullmatch(target) is not None


class CrawlScope:
    """The URLs a crawl of `seed` takes: on the seed's site, not a skipped file type, allowed by the patterns."""

    def __init__(self, seed: str, pattern: str | None = None, exclude_patterns: Sequence[str] = ()) -> None:
        self.site = site_of(seed)
        self.patterns = UrlPatterns(pattern, exclude_patterns)

    def on_site(self, url: str) -> bool:
        return site_of(url) == self.site

    def accept(self, url: str, base: str | None = None) -> str | None:
        """The normalised URL if the crawl takes it, else None."""
        normalized = normalize_url(url, base)
        if normalized is None or not self.on_site(normalized) or has_skipped_extension(normalized):
            return None
        return normalized if self.patterns.allows(normalized) else None

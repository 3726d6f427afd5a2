"""What an HTML page says to a crawler: its links, its canonical URL, its robots directives.

Links are `<a href>` and `<area href>`, resolved against `<base href>` when the page has
one; a link with `rel="nofollow"` is not followed. `<meta name="robots">` (or a meta named
after our user agent) and the `X-Robots-Tag` header may say `noindex` (the page is not
kept), `nofollow` (none of its links is followed) or `none` (both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urljoin

from ..converters.htmlblocks import local_name
from ..converters.xhtml import decode_markup, parse_markup
from ..detect import detect_format
from ..encoding import charset_from_content_type
from ..errors import IngestError
from ..types import FetchedResource

MAX_LINKS_PER_PAGE = 5000


@dataclass(frozen=True)
class RobotsDirectives:
    noindex: bool = False
    nofollow: bool = False

    def __or__(self, other: RobotsDirectives) -> RobotsDirectives:
        return RobotsDirectives(self.noindex or other.noindex, self.nofollow or other.nofollow)


@dataclass(frozen=True)
class PageLinks:
    """Absolute link targets in page order (not yet normalised or filtered)."""

    links: list[str] = field(default_factory=list)
    nofollow_links: int = 0
    canonical: str | None = None
    robots: RobotsDirectives = RobotsDirectives()


def parse_directives(value: str | None, agent: str) -> RobotsDirectives:
    """`noindex, nofollow` (or `kb-crawler: noindex` in a header) as directives for `agent`."""
    if not value:
        return RobotsDirectives()
    tokens: set[str] = set()
    for part in value.split(","):
        name, colon, rest = part.partition(":")
        if colon and name.strip() and " " not in name.strip() and rest.strip():
            if name.strip().lower() not in (agent.lower(), "*"):
                continue  # a directive for another crawler
            part = rest
        tokens.update(token.strip().lower() for token in part.split())
    none = "none" in tokens
    return RobotsDirectives(none or "noindex" in tokens, none or "nofollow" in tokens)


def header_directives(headers: dict[str, str], agent: str) -> RobotsDirectives:
    return parse_directives(headers.get("x-robots-tag"), agent)


def extract_links(data: bytes, url: str, content_type: str | None, agent: str) -> PageLinks:
    """Links, canonical URL and robots meta of the HTML page `data` fetched from `url`."""
    from lxml import etree

    try:
        root = parse_markup(decode_markup(data, charset_from_content_type(content_type)))
    except (ValueError, etree.LxmlError):  # markup lxml cannot read at all: no links, the text may still parse
        return PageLinks()
    base = url
    for element in root.iter("base"):
        if element.get("href"):
            base = urljoin(url, element.get("href").strip())
            break
    links: list[str] = []
    seen: set[str] = set()
    nofollow = 0
    canonical = None
    robots = RobotsDirectives()
    for element in root.iter("a", "area", "link", "meta"):
        name = local_name(element)
        rel = (element.get("rel") or "").lower().split()
        if name == "meta":
            meta = (element.get("name") or "").strip().lower()
            if meta in ("robots", agent.lower()):
                robots = robots | parse_directives(element.get("content"), agent)
            continue
        href = (element.get("href") or "").strip()
        if not href:
            continue
        if name == "link":
            if "canonical" in rel and canonical is None:
                canonical = urljoin(base, href)
            continue
        if "nofollow" in rel:
            nofollow += 1
            continue
        target = urljoin(base, href)
        if target not in seen and len(links) < MAX_LINKS_PER_PAGE:
            seen.add(target)
            links.append(target)
    return PageLinks(links, nofollow, canonical, robots)


def links_of(got: FetchedResource, url: str, filename: str | None, agent: str) -> PageLinks:
    """`extract_links` for an HTML answer; nothing for any other format."""
    try:
        if detect_format(got.data, filename, got.content_type) != "html":
            return PageLinks()
    except IngestError:
        return PageLinks()
    return extract_links(got.data, url, got.content_type, agent)

"""robots.txt rules of one origin, read with protego (RFC 9309).

protego rather than `urllib.robotparser`: the standard library applies the first rule
that matches instead of the longest (`Disallow: /private/` then `Allow: /private/open`
blocks `/private/open`), ignores `*` and `$` wildcards, and drops a fractional
`Crawl-delay` (`0.5` reads as none). protego implements RFC 9309 matching, `Crawl-delay`,
`Request-rate` and `Sitemap:` lines.

What the answer for /robots.txt means (RFC 9309 section 2.3.1): 2xx, the rules; 4xx
other than 429, no rules (everything allowed); 429, 5xx or a network failure, the
site is unreachable and everything is disallowed for this crawl. Only the first
`MAX_ROBOTS_CHARS` characters are read, as the RFC allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urljoin

from protego import Protego

from ..errors import BlockedAddress, DocumentTooLarge, IngestError
from .fetcher import Fetch

MAX_ROBOTS_CHARS = 500 * 1024
MAX_ROBOTS_BYTES = 2_000_000  # fetched at most; what follows the first 500 KiB is ignored anyway


@dataclass(frozen=True)
class RobotsRules:
    """The rules for `origin`; `mode` is "rules", "allow_all" or "disallow_all", `note` says why."""

    origin: str
    mode: str = "allow_all"
    text: str = ""
    note: str = ""

    @classmethod
    def from_answer(cls, origin: str, status: int, body: bytes) -> RobotsRules:
        if 200 <= status < 300:
            text = body.decode("utf-8", errors="replace")[:MAX_ROBOTS_CHARS]
            return cls(origin, "rules", text, "")
        if 400 <= status < 500 and status != 429:
            return cls(origin, "allow_all", note=f"{origin}/robots.txt answered {status}: no rules, everything allowed")
        return cls.unreachable(origin, f"{origin}/robots.txt answered {status}")

    @classmethod
    def unreachable(cls, origin: str, why: str) -> RobotsRules:
        return cls(origin, "disallow_all", note=f"{why}; the site counts as unreachable and is not crawled (RFC 9309)")

    @cached_property
    def _rules(self) -> Protego | None:
        return Protego.parse(self.text) if self.mode == "rules" else None

    def can_fetch(self, url: str, agent: str) -> bool:
        if self.mode != "rules":
            return self.mode == "allow_all"
        return bool(self._rules.can_fetch(url, agent))

    def delay(self, agent: str) -> float | None:
        """Seconds between two requests asked for by `Crawl-delay` or `Request-rate`, if any."""
        if self._rules is None:
            return None
        delay = self._rules.crawl_delay(agent)
        rate = self._rules.request_rate(agent)
        if rate is not None and rate.requests:
            delay = max(delay or 0.0, rate.seconds / rate.requests)
        return float(delay) if delay is not None else None

    @property
    def sitemaps(self) -> list[str]:
        """The `Sitemap:` URLs, in order, resolved against the origin."""
        if self._rules is None:
            return []
        return list(dict.fromkeys(urljoin(self.origin + "/robots.txt", url.strip()) for url in self._rules.sitemaps))

    def reason(self) -> str:
        return self.note or f"disallowed by {self.origin}/robots.txt"

    def to_dict(self) -> dict[str, str]:
        return {"origin": self.origin, "mode": self.mode, "text": self.text, "note": self.note}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> RobotsRules:
        return cls(data["origin"], data["mode"], data.get("text", ""), data.get("note", ""))


def read_robots(origin: str, fetch: Fetch) -> RobotsRules:
    """Fetch and read `origin`/robots.txt (one request; redirects followed through the guard)."""
    url = origin + "/robots.txt"
    try:
        got = fetch(url, {}, MAX_ROBOTS_BYTES)
    except BlockedAddress as exc:
        # Every page there would be refused as well: let them fail with the guard's own message.
        return RobotsRules(origin, "allow_all", note=f"robots.txt not read: {exc.message}")
    except DocumentTooLarge:
        return RobotsRules.unreachable(origin, f"{url} is larger than {MAX_ROBOTS_BYTES:,} bytes")
    except IngestError as exc:
        return RobotsRules.unreachable(origin, f"{url} could not be fetched ({exc.message})")
    return RobotsRules.from_answer(origin, got.status, got.data)

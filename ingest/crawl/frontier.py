"""Everything a crawl has learnt so far, as plain data that round-trips through JSON.

A crawler reads and changes only its frontier, so saving `to_json()` after every step and
building a new crawler from `Frontier.from_json()` after a restart continues exactly where
the crawl stopped: same queue, same seen URLs, same robots rules, same politeness clock.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from .robots import RobotsRules
from .schedule import HostSchedule

FORMAT_VERSION = 1


@dataclass
class QueuedUrl:
    url: str
    depth: int
    source: str | None = None
    lastmod: str | None = None
    links_only: bool = False  # the seed outside `pattern`: read for its links, not kept


@dataclass
class QueuedSitemap:
    url: str
    depth: int = 0  # 0 for a sitemap named by robots.txt or the request, +1 per index level
    guessed: bool = False  # /sitemap.xml tried though nothing named it


@dataclass
class Counters:
    """As the SDK's crawl job names them: identified = scraped + skipped + failed + still queued."""

    pages_identified: int = 0
    pages_scraped: int = 0
    pages_skipped: int = 0
    pages_failed: int = 0


@dataclass
class Frontier:
    crawl_type: str | None = None  # "discovery" or "sitemap" once decided
    started: bool = False
    sitemap_sources_added: bool = False
    queue: deque[QueuedUrl] = field(default_factory=deque)
    sitemap_queue: deque[QueuedSitemap] = field(default_factory=deque)
    sitemaps_seen: set[str] = field(default_factory=set)
    sitemaps_read: int = 0
    sitemap_entries: int = 0
    seen: set[str] = field(default_factory=set)  # every URL queued, redirected to, or named canonical
    text_hashes: dict[str, str] = field(default_factory=dict)  # text hash -> URL kept with it
    simhashes: list[tuple[int, str]] = field(default_factory=list)
    robots: dict[str, RobotsRules] = field(default_factory=dict)  # origin -> rules
    schedule: HostSchedule = field(default_factory=HostSchedule)
    counters: Counters = field(default_factory=Counters)
    limit_reached: bool = False  # a URL was dropped because the page limit was reached
    steps: int = 0
    finished: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "crawl_type": self.crawl_type,
            "started": self.started,
            "sitemap_sources_added": self.sitemap_sources_added,
            "queue": [vars(item).copy() for item in self.queue],
            "sitemap_queue": [vars(item).copy() for item in self.sitemap_queue],
            "sitemaps_seen": sorted(self.sitemaps_seen),
            "sitemaps_read": self.sitemaps_read,
            "sitemap_entries": self.sitemap_entries,
            "seen": sorted(self.seen),
            "text_hashes": self.text_hashes,
            "simhashes": [[f"{value:016x}", url] for value, url in self.simhashes],
            "robots": [rules.to_dict() for rules in self.robots.values()],
            "schedule": self.schedule.to_dict(),
            "counters": asdict(self.counters),
            "limit_reached": self.limit_reached,
            "steps": self.steps,
            "finished": self.finished,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Frontier:
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"crawl frontier format {data.get('version')!r} is not {FORMAT_VERSION}")
        return cls(
            crawl_type=data["crawl_type"],
            started=data["started"],
            sitemap_sources_added=data["sitemap_sources_added"],
            queue=deque(QueuedUrl(**item) for item in data["queue"]),
            sitemap_queue=deque(QueuedSitemap(**item) for item in data["sitemap_queue"]),
            sitemaps_seen=set(data["sitemaps_seen"]),
            sitemaps_read=data["sitemaps_read"],
            sitemap_entries=data["sitemap_entries"],
            seen=set(data["seen"]),
            text_hashes=dict(data["text_hashes"]),
            simhashes=[(int(value, 16), url) for value, url in data["simhashes"]],
            robots={rules["origin"]: RobotsRules.from_dict(rules) for rules in data["robots"]},
            schedule=HostSchedule.from_dict(data["schedule"]),
            counters=Counters(**data["counters"]),
            limit_reached=data["limit_reached"],
            steps=data["steps"],
            finished=data["finished"],
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Frontier:
        return cls.from_dict(json.loads(text))

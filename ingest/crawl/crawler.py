"""A step-wise crawler: each `next_step()` makes at most one HTTP request and returns what it did.

Order of work: the seed origin's robots.txt; then, for a sitemap crawl, the sitemaps
(robots.txt `Sitemap:` lines, or `/sitemap.xml`, or the request's `sitemap_urls`; indexes
followed level by level); then the queued pages, first in first out. A discovery crawl
follows the links of every page it reads. The crawler never sleeps: when every queued
host is inside its politeness delay it returns `Waiting`, so a background job can sleep
in short naps and stay cancellable. All state lives in the `Frontier`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

from ..errors import BlockedAddress, DocumentTooLarge, EmptyDocument, FetchError, IngestError, UnsupportedFormat
from ..types import FetchedResource
from .config import CrawlConfig
from .fetcher import GONE_STATUSES, Fetch, Parse, guarded_fetch, is_transient, parse_like_uploads
from .fingerprint import nearest, simhash, text_hash
from .frontier import Frontier, QueuedSitemap, QueuedUrl
from .links import header_directives, links_of
from .outcomes import Finished, Outcome, PageFailed, PageScraped, PageSkipped, RobotsRead, SitemapRead, Waiting
from .robots import read_robots
from .sitemaps import looks_like_sitemap, parse_sitemap
from .urls import CrawlScope, filename_of, has_skipped_extension, host_of, normalize_url, origin_of, site_of

_SCAN = 200  # queued URLs looked at for one whose host is ready


class Crawler:
    def __init__(
        self,
        config: CrawlConfig,
        frontier: Frontier | None = None,
        *,
        fetch: Fetch | None = None,
        parse: Parse | None = None,
        clock: Callable[[], float] = time.time,
        page_budget: int | None = None,
    ) -> None:
        """`page_budget` (default `config.max_pages`) caps `pages_identified`: URLs found past it are dropped."""
        self.config = config
        self.frontier = frontier if frontier is not None else Frontier()
        self.frontier.schedule.clock = clock
        self.fetch = fetch or guarded_fetch(config)
        self.parse = parse or parse_like_uploads
        self.scope = CrawlScope(config.url, config.pattern, config.exclude_patterns)
        self.budget = page_budget or config.max_pages
        self.seed_origin = origin_of(config.url)
        self.agent = config.agent_token
        self._verdicts: dict[str, bool] = {}  # URL -> allowed by robots.txt (protego is slow-ish)

    # --- the step -----------------------------------------------------------------------------

    def next_step(self) -> Outcome:
        outcome = self._step()
        if not isinstance(outcome, Waiting):
            self.frontier.steps += 1
        return outcome

    def _step(self) -> Outcome:
        f = self.frontier
        if f.finished is not None:
            return Finished(f.finished)
        if not f.started:
            self._start()
        if self.seed_origin not in f.robots:
            return self._read_robots(self.seed_origin)
        if not f.sitemap_sources_added:
            self._add_sitemap_sources()
        if f.sitemap_queue:
            return self._read_next_sitemap()
        if f.crawl_type is None:
            self._decide_type()
        if f.queue:
            return self._crawl_next_page()
        return self._finish()

    @property
    def sitemaps_done(self) -> bool:
        """The sitemap phase is over (what sitemaps list is all in the queue)."""
        f = self.frontier
        return f.started and f.sitemap_sources_added and not f.sitemap_queue

    # --- starting -----------------------------------------------------------------------------

    def _start(self) -> None:
        f, c = self.frontier, self.config
        f.started = True
        sitemap_urls = list(c.sitemap_urls)
        if c.type != "discovery" and not sitemap_urls and urlsplit(c.url).path.lower().endswith((".xml", ".xml.gz")):
            sitemap_urls = [c.url]  # the seed is itself a sitemap
        if sitemap_urls:
            f.crawl_type = "sitemap"  # as the SDK says, sitemap_urls override link discovery
            for url in sitemap_urls:
                if looks_like_sitemap(url):
                    self._queue_sitemap(url, 0)
                else:
                    self._enqueue(url, 1, None)  # a page picked from a sitemap
        elif c.type == "discovery":
            f.crawl_type = "discovery"
            self._enqueue_seed()
        elif c.type == "sitemap":
            f.crawl_type = "sitemap"

    def _add_sitemap_sources(self) -> None:
        f = self.frontier
        f.sitemap_sources_added = True
        if f.crawl_type == "discovery" or f.sitemaps_seen or f.queue:
            return
        declared = f.robots[self.seed_origin].sitemaps
        for url in declared:
            self._queue_sitemap(url, 0)
        if not declared:
            self._queue_sitemap(self.seed_origin + "/sitemap.xml", 0, guessed=True)

    def _decide_type(self) -> None:
        f = self.frontier
        if f.counters.pages_identified:
            f.crawl_type = "sitemap"
        else:
            f.crawl_type = "discovery"  # "auto" and no sitemap listed a page: follow links instead
            self._enqueue_seed()

    def _enqueue_seed(self) -> None:
        seed = self.config.url
        if seed in self.frontier.seen:
            return
        self.frontier.seen.add(seed)
        self.frontier.counters.pages_identified += 1
        links_only = not self.scope.patterns.allows(seed)
        self.frontier.queue.append(QueuedUrl(seed, 0, None, None, links_only))

    # --- queueing -----------------------------------------------------------------------------

    def _enqueue(self, url: str, depth: int, source: str | None, lastmod: str | None = None) -> int:
        """Queue `url` if the crawl takes it and has not seen it; 1 if queued."""
        f = self.frontier
        normalized = self.scope.accept(url)
        if normalized is None or normalized in f.seen:
            return 0
        if f.counters.pages_identified >= self.budget:
            f.limit_reached = True
            return 0
        f.seen.add(normalized)
        f.queue.append(QueuedUrl(normalized, depth, source, lastmod))
        f.counters.pages_identified += 1
        return 1

    def _queue_sitemap(self, url: str, depth: int, guessed: bool = False) -> int:
        f = self.frontier
        normalized = normalize_url(url)
        if normalized is None or normalized in f.sitemaps_seen or depth > self.config.max_sitemap_depth:
            return 0
        f.sitemaps_seen.add(normalized)
        f.sitemap_queue.append(QueuedSitemap(normalized, depth, guessed))
        return 1

    def _pick(self, queue) -> int | Waiting:
        """Index of the first queued item that may be handled now, or how long to wait."""
        soonest: Waiting | None = None
        for i, item in enumerate(queue):
            if i >= _SCAN:
                break
            if self._allowed(item.url) is False:
                return i  # skipped without a request: no need to wait
            host = host_of(item.url)
            wait = self.frontier.schedule.wait_seconds(host)
            if wait <= 0:
                return i
            if soonest is None or wait < soonest.seconds:
                soonest = Waiting(wait, host)
        assert soonest is not None
        return soonest

    def _allowed(self, url: str) -> bool | None:
        """Whether robots.txt lets us fetch `url`; None while its origin's robots.txt is unread."""
        verdict = self._verdicts.get(url)
        if verdict is None:
            rules = self.frontier.robots.get(origin_of(url))
            if rules is None:
                return None
            verdict = self._verdicts[url] = rules.can_fetch(url, self.agent)
        return verdict

    # --- requests -----------------------------------------------------------------------------

    def _request(self, url: str, max_bytes: int, headers: dict[str, str] | None = None) -> FetchedResource:
        """One request; the host's next request is scheduled after it, whatever happened."""
        try:
            return self.fetch(url, headers or {}, max_bytes)
        finally:
            self.frontier.schedule.record(host_of(url), self._delay_for(origin_of(url)))

    def _delay_for(self, origin: str) -> float:
        rules = self.frontier.robots.get(origin)
        asked = rules.delay(self.agent) if rules is not None else None
        if asked is None:
            return self.config.delay
        return max(self.config.delay, min(asked, self.config.max_crawl_delay))

    def _read_robots(self, origin: str) -> Outcome:
        host = host_of(origin)
        wait = self.frontier.schedule.wait_seconds(host)
        if wait > 0:
            return Waiting(wait, host)
        rules = read_robots(origin, self.fetch)  # never raises: an unreadable robots.txt is a rule too
        self.frontier.robots[origin] = rules
        self.frontier.schedule.record(host, self._delay_for(origin))
        return RobotsRead(origin, rules.mode, rules.note)

    # --- sitemaps -----------------------------------------------------------------------------

    def _read_next_sitemap(self) -> Outcome:
        f, c = self.frontier, self.config
        if f.sitemaps_read >= c.max_sitemaps or f.counters.pages_identified >= self.budget:
            dropped = f.sitemap_queue[0].url
            left = len(f.sitemap_queue)
            f.sitemap_queue.clear()
            limit = f"the limit of {c.max_sitemaps} sitemaps" if f.sitemaps_read >= c.max_sitemaps else "the page limit"
            return SitemapRead(dropped, error=f"{left} sitemap(s) not read: {limit} was reached")
        picked = self._pick(f.sitemap_queue)
        if isinstance(picked, Waiting):
            return picked
        item = f.sitemap_queue[picked]
        del f.sitemap_queue[picked]
        if self._allowed(item.url) is False:
            return SitemapRead(item.url, error=f.robots[origin_of(item.url)].reason())
        f.sitemaps_read += 1
        try:
            got = self._request(item.url, c.max_sitemap_bytes)
        except IngestError as exc:
            return SitemapRead(item.url, error=exc.message)
        if not 200 <= got.status < 300:
            what = "no sitemap there" if item.guessed else "the sitemap could not be read"
            return SitemapRead(item.url, error=f"{item.url} answered {got.status}: {what}")
        try:
            content = parse_sitemap(got.data, got.final_url, max_bytes=c.max_sitemap_bytes)
        except DocumentTooLarge as exc:
            return SitemapRead(item.url, error=exc.message)
        if not content.is_sitemap:
            return SitemapRead(item.url, error=f"{item.url} is not a sitemap (XML, text, RSS or Atom)")
        parent_site = site_of(item.url)
        children = 0
        for child in content.sitemaps:
            normalized = normalize_url(child)
            if normalized and site_of(normalized) == parent_site:
                children += self._queue_sitemap(normalized, item.depth + 1)
        added = 0
        for url, lastmod in content.pages:
            if f.sitemap_entries >= c.max_sitemap_entries:
                break
            f.sitemap_entries += 1
            added += self._enqueue(url, 1, item.url, lastmod)
        return SitemapRead(item.url, added, children)

    # --- pages --------------------------------------------------------------------------------

    def _crawl_next_page(self) -> Outcome:
        f = self.frontier
        picked = self._pick(f.queue)
        if isinstance(picked, Waiting):
            return picked
        item = f.queue[picked]
        origin = origin_of(item.url)
        rules = f.robots.get(origin)
        if rules is None:
            return self._read_robots(origin)  # the page stays queued
        del f.queue[picked]
        if not self._allowed(item.url):
            return self._skip(item.url, "robots_disallowed", rules.reason())
        return self._fetch_page(item)

    def _fetch_page(self, item: QueuedUrl) -> Outcome:
        f = self.frontier
        try:
            got = self._request(item.url, self.config.max_page_bytes)
        except DocumentTooLarge as exc:
            return self._skip(item.url, "too_large", exc.message)
        except BlockedAddress as exc:
            return self._fail(item.url, "address_not_allowed", exc.message)
        except FetchError as exc:
            timed_out = "timed out" in exc.message or "longer than" in exc.message
            return self._fail(item.url, "timeout" if timed_out else "fetch_failed", exc.message, transient=True)
        if got.status in GONE_STATUSES:
            return self._fail(item.url, "gone", f"{item.url} answered {got.status}: the page is gone", got.status, gone=True)
        if not 200 <= got.status < 300:
            reason = f"{item.url} answered {got.status}"
            return self._fail(item.url, "http_error", reason, got.status, transient=is_transient(got.status))
        final = normalize_url(got.final_url) or item.url
        if final != item.url:
            if not self.scope.on_site(final):
                return self._skip(item.url, "redirected_off_site", f"{item.url} redirects to {final}, which is off the site")
            if not item.links_only and not self.scope.patterns.allows(final):
                return self._skip(item.url, "excluded", f"{item.url} redirects to {final}, which the patterns exclude")
            if final in f.seen:
                return self._skip(item.url, "already_crawled", f"{item.url} redirects to {final}, already part of this crawl")
            f.seen.add(final)
        return self._read_page(item, final, got)

    def _read_page(self, item: QueuedUrl, final: str, got: FetchedResource) -> Outcome:
        f, c = self.frontier, self.config
        filename = filename_of(final)
        links = links_of(got, final, filename, self.agent)
        directives = header_directives(got.headers, self.agent) | links.robots
        added = 0
        if f.crawl_type == "discovery" and not directives.nofollow:
            added = sum(self._enqueue(link, item.depth + 1, final) for link in links.links)
        if item.links_only:
            return self._skip(final, "links_only", f"{final} does not match the pattern; read for its links only")
        if directives.noindex:
            return self._skip(final, "noindex", f"{final} asks not to be indexed (robots noindex)")
        elsewhere = self._canonical_elsewhere(links.canonical, final, item.depth)
        if elsewhere is not None:
            return elsewhere
        try:
            document = self.parse(got.data, filename, got.content_type)
        except DocumentTooLarge as exc:
            return self._skip(final, "too_large", exc.message)
        except EmptyDocument as exc:
            return self._skip(final, "empty", exc.message)
        except UnsupportedFormat as exc:
            return self._skip(final, "unsupported", exc.message)
        except IngestError as exc:
            return self._fail(final, exc.code, exc.message)
        except Exception as exc:  # a parser's bug must not end the whole crawl
            return self._fail(final, "parse_failed", f"{final} could not be parsed ({type(exc).__name__}: {exc})"[:500])
        digest = text_hash(document.text)
        if digest in f.text_hashes:
            return self._skip(final, "duplicate", f"{final} has the same text as {f.text_hashes[digest]}")
        fingerprint = simhash(document.text) if c.near_duplicate_bits is not None else None
        if fingerprint is not None:
            twin = nearest(fingerprint, f.simhashes, c.near_duplicate_bits)
            if twin is not None:
                return self._skip(final, "near_duplicate", f"{final} has nearly the same text as {twin}")
            f.simhashes.append((fingerprint, final))
        f.text_hashes[digest] = final
        f.counters.pages_scraped += 1
        return PageScraped(
            url=final,
            requested_url=item.url,
            depth=item.depth,
            source=item.source,
            document=document,
            data=got.data,
            content_type=got.content_type,
            text_hash=digest,
            etag=got.headers.get("etag"),
            last_modified=got.headers.get("last-modified"),
            lastmod=item.lastmod,
            links_found=added,
        )

    def _canonical_elsewhere(self, canonical: str | None, final: str, depth: int) -> PageSkipped | None:
        """A skip if the page names another crawlable URL as its canonical one (which is then crawled)."""
        target = normalize_url(canonical) if canonical else None
        if target is None or target == final or has_skipped_extension(target):
            return None
        if not self.scope.on_site(target) or not self.scope.patterns.allows(target):
            return None
        if self._allowed(target) is False:
            return None
        if target in self.frontier.seen or self._enqueue(target, depth, final):
            return self._skip(final, "canonical", f"{final} names {target} as its canonical URL; that one is crawled")
        return None  # the page limit is reached: keep this copy

    # --- counting -----------------------------------------------------------------------------

    def _skip(self, url: str, code: str, reason: str) -> PageSkipped:
        self.frontier.counters.pages_skipped += 1
        return PageSkipped(url, code, reason)

    def _fail(self, url: str, code: str, reason: str, status: int | None = None, *, gone: bool = False,
              transient: bool = False) -> PageFailed:
        self.frontier.counters.pages_failed += 1
        return PageFailed(url, code, reason, status, gone, transient)

    def _finish(self) -> Finished:
        f = self.frontier
        n = f.counters
        seed_rules = f.robots[self.seed_origin]
        if seed_rules.mode == "disallow_all":
            reason = f"nothing crawled: {seed_rules.note}"
        elif f.crawl_type == "sitemap" and not n.pages_identified:
            reason = f"no sitemap of {self.seed_origin} lists a page this crawl takes"
        else:
            reason = f"done: {n.pages_scraped} scraped, {n.pages_skipped} skipped, {n.pages_failed} failed"
            if f.limit_reached:
                reason += f"; the limit of {self.budget:,} pages was reached, more were found"
        f.finished = reason
        return Finished(reason)


def run_steps(crawler: Crawler, *, should_stop: Callable[[], bool] = lambda: False,
              sleep: Callable[[float], None] = time.sleep, nap: float = 0.25) -> Iterator[Outcome]:
    """Drive `crawler` to the end, sleeping through `Waiting` in naps of at most `nap` seconds.

    Yields every other outcome (the last is `Finished`); stops early, between steps, once
    `should_stop()` is true.
    """
    while not should_stop():
        outcome = crawler.next_step()
        if isinstance(outcome, Waiting):
            sleep(min(outcome.seconds, nap))
            continue
        yield outcome
        if isinstance(outcome, Finished):
            return

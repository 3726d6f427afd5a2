"""The step-wise crawler against a real website on 127.0.0.1 (tests/websites.py).

Every request goes through the real guarded fetcher; the site records what it was asked,
so robots.txt, patterns, nofollow and politeness delays are checked from its side.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from websites import TestSite

from ingest.crawl import (
    CrawlConfig,
    CrawlConfigError,
    Crawler,
    Finished,
    Frontier,
    PageFailed,
    PageScraped,
    PageSkipped,
    RobotsRead,
    SitemapRead,
    Waiting,
    run_steps,
)

# What a discovery crawl of the site's home page must end with: URL path -> outcome code.
DISCOVERY = {
    "/": "scraped",
    "/docs/intro": "scraped",
    "/docs/guide": "scraped",
    "/blog/first": "scraped",
    "/blog/second": "scraped",
    "/docs/moved-here": "scraped",  # reached through the /moved redirect: the final URL is kept
    "/files/report.pdf": "scraped",
    "/copy-a": "scraped",
    "/changing": "scraped",
    "/removable": "scraped",
    "/docs/from-noindex": "scraped",  # linked from the noindex page, whose links are followed
    "/private/secret": "robots_disallowed",
    "/missing": "gone",
    "/slow": "timeout",
    "/huge": "too_large",
    "/copy-b": "duplicate",
    "/copy-near": "near_duplicate",
    "/variant": "canonical",
    "/noindex-page": "noindex",
    "/away": "address_not_allowed",  # redirects to another loopback port, not allowed
}
# Never requested: off-site, robots-disallowed, nofollow, not a page, only in the sitemap.
NEVER_REQUESTED = ("/private/secret", "/nofollowed", "/logo.png", "/docs/orphan", "/private/hidden")


@pytest.fixture
def elsewhere() -> Iterator[TestSite]:
    """Another site on another loopback port: the crawl must never reach it."""
    with TestSite() as site:
        yield site


@pytest.fixture
def site(elsewhere: TestSite) -> Iterator[TestSite]:
    with TestSite(offsite=elsewhere.url("/")) as site:
        yield site


def config(site: TestSite, **overrides) -> CrawlConfig:
    settings = dict(
        url=site.url("/"), delay=0.0, timeout=1.0, max_page_bytes=1_000_000,
        allow_hosts=(f"127.0.0.1:{site.port}",),  # this port only: other loopback ports stay refused
    )
    return CrawlConfig(**(settings | overrides))


def crawl(crawler: Crawler) -> list:
    return list(run_steps(crawler))


def codes(outcomes: list, site: TestSite) -> dict[str, str]:
    """URL path -> "scraped" or the skip/failure code, for every page outcome."""
    found = {}
    for outcome in outcomes:
        if isinstance(outcome, PageScraped):
            found[outcome.url.removeprefix(site.base)] = "scraped"
        elif isinstance(outcome, PageSkipped | PageFailed):
            found[outcome.url.removeprefix(site.base)] = outcome.code
    return found


def test_discovery_crawl_follows_the_sites_links_and_rules(site: TestSite, elsewhere: TestSite) -> None:
    crawler = Crawler(config(site, type="discovery"))
    outcomes = crawl(crawler)
    assert codes(outcomes, site) == DISCOVERY
    counters = crawler.frontier.counters
    assert (counters.pages_identified, counters.pages_scraped, counters.pages_skipped, counters.pages_failed) == (20, 11, 6, 3)
    assert counters.pages_identified == counters.pages_scraped + counters.pages_skipped + counters.pages_failed
    assert crawler.frontier.crawl_type == "discovery"
    assert isinstance(outcomes[0], RobotsRead) and isinstance(outcomes[-1], Finished)
    assert outcomes[-1].reason == "done: 11 scraped, 6 skipped, 3 failed"

    paths = site.paths()
    assert paths[0] == "/robots.txt" and paths.count("/robots.txt") == 1
    for path in NEVER_REQUESTED:
        assert path not in paths, f"{path} must not be requested"
    assert not [p for p in paths if "utm_" in p or "#" in p], "tracking parameters and fragments are dropped"
    assert len(paths) == len(set(paths)), "no page is requested twice"
    assert elsewhere.requested() == [], "nothing off the site is requested, redirects included"
    assert not [o for o in outcomes if isinstance(o, SitemapRead)], "a discovery crawl reads no sitemap"


def test_page_outcomes_carry_what_a_kb_job_needs(site: TestSite) -> None:
    outcomes = crawl(Crawler(config(site, type="discovery")))
    pages = {o.url.removeprefix(site.base): o for o in outcomes if isinstance(o, PageScraped)}
    moved = pages["/docs/moved-here"]
    assert moved.requested_url == site.url("/moved") and moved.source == site.url("/")
    assert moved.title == "Moved page" and moved.depth == 1

    home = pages["/"]
    assert home.depth == 0 and home.source is None and home.links_found == 17
    assert home.etag and home.last_modified and home.content_type.startswith("text/html")
    assert "Example site footer" not in home.document.text, "boilerplate (footer, navigation) is removed"
    assert home.document.text.startswith("Title: Example site")

    pdf = pages["/files/report.pdf"]
    assert pdf.document.format == "pdf" and pdf.document.pages == 3, "a PDF is parsed like an upload"
    assert pdf.data.startswith(b"%PDF-") and pdf.content_type == "application/pdf"
    assert len({page.text_hash for page in pages.values()}) == len(pages)

    reasons = {o.url.removeprefix(site.base): o for o in outcomes if isinstance(o, PageSkipped | PageFailed)}
    assert "1,000,000 bytes" in reasons["/huge"].reason
    slow = reasons["/slow"].reason
    assert ("took longer than 1 s" in slow or "timed out after 1 s" in slow) and reasons["/slow"].transient
    assert reasons["/missing"].gone and reasons["/missing"].http_status == 404 and not reasons["/missing"].transient
    assert reasons["/copy-b"].reason.endswith(f"same text as {site.url('/copy-a')}")
    assert reasons["/copy-near"].reason.endswith(f"nearly the same text as {site.url('/copy-a')}")
    assert site.url("/docs/guide") in reasons["/variant"].reason
    assert "robots.txt" in reasons["/private/secret"].reason
    assert "refusing to fetch" in reasons["/away"].reason


def test_sitemap_crawl_reads_the_index_nested_and_gzipped_with_lastmod(site: TestSite) -> None:
    crawler = Crawler(config(site, type="sitemap"))
    outcomes = crawl(crawler)
    read = [o for o in outcomes if isinstance(o, SitemapRead)]
    assert [o.url.removeprefix(site.base) for o in read] == ["/sitemap_index.xml", "/sitemaps/docs.xml", "/sitemaps/blog.xml.gz"]
    assert [(o.pages_added, o.sitemaps_added, o.error) for o in read] == [(0, 2, None), (6, 0, None), (2, 0, None)]
    assert codes(outcomes, site) == {
        "/": "scraped", "/docs/intro": "scraped", "/docs/guide": "scraped", "/docs/orphan": "scraped",
        "/files/report.pdf": "scraped", "/blog/first": "scraped", "/blog/second": "scraped",
        "/private/hidden": "robots_disallowed",
    }
    lastmods = {o.url.removeprefix(site.base): o.lastmod for o in outcomes if isinstance(o, PageScraped)}
    assert lastmods["/docs/orphan"] == "2024-05-04T00:00:00"
    assert lastmods["/docs/guide"] == "2024-05-03T10:00:00+00:00"
    assert lastmods["/blog/second"] == "2024-06-02T00:00:00"
    paths = site.paths()
    assert "/private/hidden" not in paths and "/docs/moved-here" not in paths, "a sitemap crawl follows no links"
    counters = crawler.frontier.counters
    assert (counters.pages_identified, counters.pages_scraped, counters.pages_skipped, counters.pages_failed) == (8, 7, 1, 0)


def test_auto_is_a_sitemap_crawl_when_the_site_has_sitemaps_else_discovery(site: TestSite) -> None:
    crawler = Crawler(config(site))
    crawl(crawler)
    assert crawler.frontier.crawl_type == "sitemap"
    with TestSite(sitemaps=False) as bare:
        crawler = Crawler(config(bare, max_pages=3))
        outcomes = crawl(crawler)
        assert crawler.frontier.crawl_type == "discovery"
        guess = [o for o in outcomes if isinstance(o, SitemapRead)]
        assert [(o.url, o.error) for o in guess] == [(bare.url("/sitemap.xml"), f"{bare.url('/sitemap.xml')} answered 404: no sitemap there")]
        assert bare.paths()[:3] == ["/robots.txt", "/sitemap.xml", "/"]


def test_sitemap_urls_given_in_the_request(site: TestSite) -> None:
    # A sitemap file and a page picked from a sitemap: both are taken, no link is followed.
    crawler = Crawler(config(site, sitemap_urls=(site.url("/sitemaps/blog.xml.gz"), site.url("/docs/orphan"))))
    outcomes = crawl(crawler)
    assert crawler.frontier.crawl_type == "sitemap"
    assert set(codes(outcomes, site)) == {"/docs/orphan", "/blog/first", "/blog/second"}
    assert "/sitemap_index.xml" not in site.paths()


def test_patterns_limit_what_is_followed_and_kept(site: TestSite) -> None:
    crawler = Crawler(config(site, type="discovery", pattern="/docs/*", exclude_patterns=("*/guide",)))
    outcomes = crawl(crawler)
    assert codes(outcomes, site) == {
        "/": "links_only",  # the seed is outside the pattern: read for its links, not kept
        "/docs/intro": "scraped",
    }
    paths = site.paths()
    assert "/docs/guide" not in paths and "/blog/first" not in paths and "/copy-a" not in paths


def test_the_page_limit_bounds_identified_pages(site: TestSite) -> None:
    crawler = Crawler(config(site, type="discovery", max_pages=4))
    outcomes = crawl(crawler)
    counters = crawler.frontier.counters
    assert counters.pages_identified == 4 == counters.pages_scraped + counters.pages_skipped + counters.pages_failed
    assert "the limit of 4 pages was reached" in outcomes[-1].reason
    assert len([p for p in site.paths() if p != "/robots.txt"]) <= 4


@pytest.mark.parametrize(
    ("robots_delay", "our_delay", "cap", "expected"),
    [
        (0.4, 0.0, 30.0, 0.4),  # robots.txt Crawl-delay honoured
        (None, 0.3, 30.0, 0.3),  # our own polite default when robots.txt sets none
        (0.1, 0.3, 30.0, 0.3),  # the larger of the two
        (20.0, 0.0, 0.3, 0.3),  # an excessive Crawl-delay is capped
    ],
)
def test_delays_between_requests_to_one_host(robots_delay, our_delay, cap, expected) -> None:
    with TestSite(crawl_delay=robots_delay) as site:
        crawler = Crawler(config(site, type="discovery", max_pages=4, delay=our_delay, max_crawl_delay=cap))
        began = time.monotonic()
        crawl(crawler)
        took = time.monotonic() - began
        times = [r.time for r in site.requested()]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert len(gaps) >= 4
        assert min(gaps) >= expected - 0.01, gaps
        assert took < len(gaps) * expected + 5


def test_the_crawler_says_how_long_to_wait_instead_of_sleeping() -> None:
    with TestSite(crawl_delay=2) as site:
        crawler = Crawler(config(site, type="discovery"))
        assert isinstance(crawler.next_step(), RobotsRead)
        began = time.monotonic()
        waiting = crawler.next_step()
        assert isinstance(waiting, Waiting) and 1.5 < waiting.seconds <= 2.0 and waiting.host == "127.0.0.1"
        assert time.monotonic() - began < 0.5, "next_step returns at once"
        assert site.paths() == ["/robots.txt"]
        stopped = list(run_steps(crawler, should_stop=lambda: time.monotonic() - began > 0.3))
        assert stopped == [] and site.paths() == ["/robots.txt"], "a stop request is honoured between naps"


def test_a_crawl_resumed_from_its_saved_frontier_ends_as_an_uninterrupted_one(site: TestSite) -> None:
    whole = Crawler(config(site, type="discovery"))
    expected = codes(crawl(whole), site)
    for stop_after in (2, 9):
        site.clear_requests()
        first = Crawler(config(site, type="discovery"))
        before = [first.next_step() for _ in range(stop_after)]
        saved = first.frontier.to_json()
        del first  # the process "restarts": only the JSON survives
        resumed = Crawler(config(site, type="discovery"), Frontier.from_json(saved))
        after = crawl(resumed)
        assert codes(before + after, site) == expected
        assert resumed.frontier.counters == whole.frontier.counters
        assert resumed.frontier.seen == whole.frontier.seen
        assert resumed.frontier.text_hashes == whole.frontier.text_hashes
        paths = site.paths()
        assert paths.count("/robots.txt") == 1 and len(paths) == len(set(paths)), "nothing is fetched twice"
    assert Frontier.from_json(resumed.frontier.to_json()).to_dict() == resumed.frontier.to_dict()


def test_a_finished_crawl_stays_finished(site: TestSite) -> None:
    crawler = Crawler(config(site, type="discovery", max_pages=1))
    crawl(crawler)
    requests = len(site.requested())
    again = Crawler(crawler.config, Frontier.from_json(crawler.frontier.to_json())).next_step()
    assert isinstance(again, Finished) and len(site.requested()) == requests


def test_redirects_go_through_the_guard(site: TestSite, elsewhere: TestSite) -> None:
    # With every loopback port allowed, /away may reach the other site: its answer is off the site.
    crawler = Crawler(config(site, type="discovery", allow_hosts=("127.0.0.1",)))
    found = codes(crawl(crawler), site)
    assert found["/away"] == "redirected_off_site"
    assert elsewhere.paths() == ["/"], "the redirect was followed once; nothing there is crawled"


def test_an_unlisted_loopback_site_is_refused_before_any_request(site: TestSite) -> None:
    for allow in ((), (f"127.0.0.1:{site.port + 1}",), ("localhost",)):
        crawler = Crawler(config(site, type="discovery", allow_hosts=allow))
        outcomes = crawl(crawler)
        assert [type(o) for o in outcomes] == [RobotsRead, PageFailed, Finished]
        assert outcomes[1].code == "address_not_allowed" and "loopback" in outcomes[1].reason
    assert site.requested() == []


def test_an_unreachable_robots_txt_disallows_the_site(site: TestSite) -> None:
    site.remove("/robots.txt", status=503)
    outcomes = crawl(Crawler(config(site, type="discovery")))
    assert outcomes[0].mode == "disallow_all" and "503" in outcomes[0].note
    assert [o.code for o in outcomes if isinstance(o, PageSkipped)] == ["robots_disallowed"]
    assert site.paths() == ["/robots.txt"]
    assert outcomes[-1].reason.startswith("nothing crawled: ") and "503" in outcomes[-1].reason
    site.clear_requests()
    outcomes = crawl(Crawler(config(site, type="sitemap")))
    assert site.paths() == ["/robots.txt"] and "503" in outcomes[-1].reason, "no sitemap is read either"
    site.remove("/robots.txt", status=404)  # no robots.txt at all: everything allowed
    site.clear_requests()
    outcomes = crawl(Crawler(config(site, type="discovery", max_pages=2)))
    assert outcomes[0].mode == "allow_all"
    assert Counter(type(o).__name__ for o in outcomes)["PageScraped"] == 2


def test_the_user_agent_is_sent_and_matched_in_robots_txt(site: TestSite) -> None:
    crawl(Crawler(config(site, type="discovery", max_pages=2)))
    assert {r.headers["User-Agent"] for r in site.requested()} == {"kb-crawler/0.1"}
    # The site's robots.txt shuts out "OtherBot" entirely.
    crawler = Crawler(config(site, type="discovery", max_pages=2, user_agent="OtherBot/2.0"))
    assert [o.code for o in crawl(crawler) if isinstance(o, PageSkipped)] == ["robots_disallowed"]


def test_the_parser_is_pluggable_and_its_bugs_fail_one_page_only(site: TestSite) -> None:
    # kb passes its sandboxed parser; here the real one, but broken for PDFs.
    from ingest import parse

    calls = []

    def parse_but_not_pdfs(data: bytes, filename, content_type):
        calls.append(filename)
        if data.startswith(b"%PDF-"):
            raise RuntimeError("converter crashed")
        return parse(data, filename, content_type)

    outcomes = crawl(Crawler(config(site, type="discovery"), parse=parse_but_not_pdfs))
    failed = {o.url.removeprefix(site.base): o for o in outcomes if isinstance(o, PageFailed)}
    assert failed["/files/report.pdf"].code == "parse_failed" and "converter crashed" in failed["/files/report.pdf"].reason
    assert "report.pdf" in calls and isinstance(outcomes[-1], Finished)
    assert codes(outcomes, site) == DISCOVERY | {"/files/report.pdf": "parse_failed"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_pages": 0}, "between 1 and 10,000"),
        ({"max_pages": 10_001}, "between 1 and 10,000"),
        ({"url": "ftp://example.com/"}, "not an http(s) URL"),
        ({"url": "not a url"}, "not an http(s) URL"),
        ({"type": "spider"}, "unknown"),
        ({"pattern": ""}, None),  # an empty pattern means no pattern
        ({"exclude_patterns": ("",)}, "non-empty"),
        ({"exclude_patterns": ("x",) * 101}, "at most 100"),
        ({"delay": -1}, "negative"),
        ({"sitemap_urls": ("javascript:x",)}, "not an http(s) URL"),
    ],
)
def test_bad_crawl_requests_are_refused_with_a_reason(overrides, message) -> None:
    settings = {"url": "https://example.com/docs"} | overrides
    if message is None:
        assert CrawlConfig(**settings).pattern == ""
        return
    with pytest.raises(CrawlConfigError) as caught:
        CrawlConfig(**settings)
    assert message in caught.value.message and caught.value.code == "invalid_crawl_request"

"""What auto-sync will call: conditional re-fetch of one page and a site's current sitemap URLs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from websites import TestSite, article

from ingest.crawl import CrawlConfig, HostSchedule, RobotsRules, list_sitemap_urls, read_robots, refetch
from ingest.crawl.fetcher import guarded_fetch


@pytest.fixture
def site() -> Iterator[TestSite]:
    with TestSite() as site:
        yield site


def config(site: TestSite, **overrides) -> CrawlConfig:
    settings = dict(url=site.url("/"), delay=0.0, timeout=1.0, max_page_bytes=1_000_000,
                    allow_hosts=(f"127.0.0.1:{site.port}",))
    return CrawlConfig(**(settings | overrides))


def test_unchanged_by_etag_or_last_modified_costs_no_body(site: TestSite) -> None:
    first = refetch(site.url("/changing"), config(site))
    assert first.status == "changed" and first.etag and first.last_modified and first.document is not None
    by_etag = refetch(site.url("/changing"), config(site), etag=first.etag)
    by_date = refetch(site.url("/changing"), config(site), last_modified=first.last_modified)
    for again in (by_etag, by_date):
        assert (again.status, again.http_status, again.data, again.document) == ("unchanged", 304, b"", None)
        assert again.etag == first.etag
    conditional = site.requested("/changing")[1:]
    assert conditional[0].headers["If-None-Match"] == first.etag
    assert conditional[1].headers["If-Modified-Since"] == first.last_modified


def test_unchanged_by_text_when_the_server_sends_no_validators(site: TestSite) -> None:
    first = refetch(site.url("/changing"), config(site))
    again = refetch(site.url("/changing"), config(site), previous_text_hash=first.text_hash)
    assert (again.status, again.http_status, again.reason) == ("unchanged", 200, "same text")


def test_changed_content_comes_back_parsed_with_new_validators(site: TestSite) -> None:
    first = refetch(site.url("/changing"), config(site))
    site.set_page("/changing", article("A page the test changed", 100))
    again = refetch(site.url("/changing"), config(site), etag=first.etag, last_modified=first.last_modified,
                    previous_text_hash=first.text_hash)
    assert again.status == "changed" and again.http_status == 200
    assert again.document.title == "A page the test changed" and again.text_hash != first.text_hash
    assert again.etag != first.etag


@pytest.mark.parametrize("status", [404, 410])
def test_a_removed_page_is_gone(site: TestSite, status: int) -> None:
    site.remove("/removable", status=status)
    got = refetch(site.url("/removable"), config(site), etag='"old"')
    assert (got.status, got.http_status, got.transient) == ("gone", status, False)


def test_transient_failures_are_told_apart_from_gone(site: TestSite) -> None:
    site.remove("/changing", status=503)
    got = refetch(site.url("/changing"), config(site))
    assert (got.status, got.http_status, got.transient) == ("failed", 503, True)
    slow = refetch(site.url("/slow"), config(site, timeout=0.5))
    assert slow.status == "failed" and slow.transient and ("longer than 0.5 s" in slow.reason or "timed out after 0.5 s" in slow.reason)
    huge = refetch(site.url("/huge"), config(site))
    assert huge.status == "failed" and not huge.transient and "1,000,000 bytes" in huge.reason


def test_a_page_that_now_says_noindex_is_gone(site: TestSite) -> None:
    got = refetch(site.url("/noindex-page"), config(site))
    assert got.status == "gone" and "noindex" in got.reason


def test_robots_rules_are_checked_before_any_request(site: TestSite) -> None:
    rules = read_robots(site.base, guarded_fetch(config(site)))
    assert rules.mode == "rules" and rules.sitemaps == [site.url("/sitemap_index.xml")]
    site.clear_requests()
    got = refetch(site.url("/private/secret"), config(site), robots=rules)
    assert got.status == "disallowed" and site.requested() == []


def test_refetch_returns_the_pages_in_scope_links_for_auto_discovery(site: TestSite) -> None:
    got = refetch(site.url("/"), config(site))
    paths = {link.removeprefix(site.base) for link in got.links}
    assert {"/docs/intro", "/docs/guide", "/files/report.pdf", "/away"} <= paths
    assert not {"/logo.png", "/nofollowed"} & paths
    assert all(link.startswith(site.base) and "utm_" not in link and "#" not in link for link in got.links)
    scoped = refetch(site.url("/"), config(site, pattern="/blog/*"))
    assert {link.removeprefix(site.base) for link in scoped.links} == {"/blog/first"}


def test_a_refused_address_fails_without_a_request(site: TestSite) -> None:
    got = refetch(site.url("/changing"), config(site, allow_hosts=()))
    assert got.status == "failed" and "loopback" in got.reason and site.requested() == []


def test_list_sitemap_urls_sees_removed_and_new_pages(site: TestSite) -> None:
    listing = list_sitemap_urls(config(site))
    assert listing.complete and listing.errors == [] and listing.sitemaps_read == 3
    assert {url.removeprefix(site.base) for url in listing.urls} == set(site.sitemap_paths())
    assert listing.urls[site.url("/docs/orphan")] == "2024-05-04T00:00:00"
    pages = [p for p in site.paths() if p not in ("/robots.txt", "/sitemap_index.xml") and not p.startswith("/sitemaps/")]
    assert pages == [], "listing fetches no page"

    site.set_sitemap("/sitemaps/docs.xml", [("/docs/intro", "2024-07-01"), ("/docs/brand-new", "2024-07-02")])
    again = list_sitemap_urls(config(site))
    assert {url.removeprefix(site.base) for url in again.urls} == {"/docs/intro", "/docs/brand-new", "/blog/first", "/blog/second"}
    assert again.urls[site.url("/docs/intro")] == "2024-07-01T00:00:00"


def test_list_sitemap_urls_applies_patterns_and_says_when_it_is_incomplete(site: TestSite) -> None:
    scoped = list_sitemap_urls(config(site, pattern="/blog/*"))
    assert set(scoped.urls) == {site.url("/blog/first"), site.url("/blog/second")} and scoped.complete
    capped = list_sitemap_urls(config(site, max_sitemap_entries=3))
    assert len(capped.urls) == 3 and not capped.complete
    site.remove("/sitemaps/blog.xml.gz", status=500)
    broken = list_sitemap_urls(config(site))
    assert not broken.complete and any("500" in error for error in broken.errors)


def test_list_sitemap_urls_is_polite_and_stoppable() -> None:
    with TestSite(crawl_delay=0.3) as site:
        listing = list_sitemap_urls(config(site))
        times = [r.time for r in site.requested()]
        assert len(times) == 4 and min(b - a for a, b in zip(times, times[1:])) >= 0.29
        assert listing.complete
        site.clear_requests()
        stopped = list_sitemap_urls(config(site), should_stop=lambda: len(site.requested()) >= 2)
        assert not stopped.complete and len(site.requested()) == 2


def test_host_schedule_spaces_a_sync_pass_and_survives_a_restart() -> None:
    now = [1000.0]
    schedule = HostSchedule(clock=lambda: now[0])
    assert schedule.wait_seconds("a.example") == 0
    schedule.record("a.example", 2.0)
    now[0] += 0.5
    assert schedule.wait_seconds("a.example") == pytest.approx(1.5) and schedule.wait_seconds("b.example") == 0
    restored = HostSchedule.from_dict(schedule.to_dict(), clock=lambda: now[0])
    assert restored.wait_seconds("a.example") == pytest.approx(1.5)
    now[0] -= 10_000  # the clock jumped backwards: never wait longer than the delay
    assert restored.wait_seconds("a.example") == 2.0


def test_robots_rules_round_trip() -> None:
    rules = RobotsRules.from_answer("https://a.example", 200, b"User-agent: *\nDisallow: /x\nCrawl-delay: 2.5\n")
    again = RobotsRules.from_dict(rules.to_dict())
    assert again == rules and not again.can_fetch("https://a.example/x/y", "kb-crawler") and again.delay("kb-crawler") == 2.5

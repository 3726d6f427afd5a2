"""The crawl's rules one by one: URL normalisation and scope, patterns, robots.txt, sitemap
parsing (including hostile sitemaps), link extraction, fingerprints, the frontier's JSON."""

from __future__ import annotations

import gzip
import urllib.robotparser

import pytest
from ingest_testkit import read

from ingest import parse
from ingest.crawl import CrawlConfig, Frontier, RobotsRules, extract_links, normalize_url, parse_sitemap
from ingest.crawl.fingerprint import nearest, simhash, text_hash
from ingest.crawl.frontier import QueuedSitemap, QueuedUrl
from ingest.crawl.urls import CrawlScope, UrlPatterns, has_skipped_extension, site_of
from ingest.errors import DocumentTooLarge


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("HTTPS://Docs.Example.COM:443/a/b?utm_source=x&id=3&fbclid=y#part", None, "https://docs.example.com/a/b?id=3"),
        ("../c/./d?b=2&a=1", "https://example.com/x/y/z", "https://example.com/x/c/d?a=1&b=2"),
        ("http://example.com/a/b/../../c", None, "http://example.com/c"),
        ("http://example.com", None, "http://example.com/"),
        ("//cdn.example.com/p", "https://example.com/", "https://cdn.example.com/p"),
        ("http://127.0.0.1:8000/page", None, "http://127.0.0.1:8000/page"),
        ("/a page/ü", "http://example.com/", "http://example.com/a%20page/%C3%BC"),
        ("mailto:someone@example.com", "http://example.com/", None),
        ("javascript:void(0)", "http://example.com/", None),
        ("#top", "http://example.com/", None),
        ("ftp://example.com/file", None, None),
        ("http://user:secret@example.com/", None, None),
        ("http://example.com:99999/", None, None),
        ("http://example.com/" + "a" * 3000, None, None),
    ],
)
def test_normalize_url(url: str, base: str | None, expected: str | None) -> None:
    assert normalize_url(url, base) == expected


def test_the_site_is_the_host_without_www_and_its_port() -> None:
    scope = CrawlScope("https://www.example.com/docs/")
    assert scope.accept("http://example.com/blog") == "http://example.com/blog"
    assert scope.accept("https://www.example.com/x") == "https://www.example.com/x"
    for other in ("https://docs.example.com/", "https://example.com:8443/", "https://example.org/", "https://notexample.com/"):
        assert scope.accept(other) is None, other
    assert site_of("http://127.0.0.1:8000/") != site_of("http://127.0.0.1:8001/")
    assert scope.accept("https://example.com/logo.PNG") is None and has_skipped_extension("https://e.com/a.css")
    assert scope.accept("https://example.com/manual.pdf") and scope.accept("https://example.com/v1.2/")


@pytest.mark.parametrize(
    ("pattern", "url", "matches"),
    [
        ("/docs", "https://e.com/docs", True),  # without *, a prefix
        ("/docs", "https://e.com/docs/a/b", True),
        ("/docs", "https://e.com/en/docs", False),
        ("/docs/*", "https://e.com/docs/a/b?x=1", True),  # * crosses /
        ("/docs/*", "https://e.com/docs", False),
        ("/docs/*.html", "https://e.com/docs/a/b.html", True),
        ("/docs/*.html", "https://e.com/docs/a/b.htm", False),
        ("docs/", "https://e.com/en/docs/x", True),  # not starting with /: anywhere in path and query
        ("*.pdf", "https://e.com/a/b.pdf", True),
        ("lang=en", "https://e.com/p?lang=en", True),
        ("https://e.com/blog/*", "https://e.com/blog/post", True),  # a full URL: the whole URL
        ("https://e.com/blog/*", "http://e.com/blog/post", False),
        ("/a.b", "https://e.com/aXb", False),  # other characters are literal
    ],
)
def test_pattern_semantics(pattern: str, url: str, matches: bool) -> None:
    assert UrlPatterns(pattern).allows(url) is matches


def test_exclude_patterns_win_over_pattern() -> None:
    rules = UrlPatterns("/docs/*", ["*/internal/*", "/docs/old"])
    assert rules.allows("https://e.com/docs/guide")
    assert not rules.allows("https://e.com/docs/internal/x")
    assert not rules.allows("https://e.com/docs/old/page")
    assert not rules.allows("https://e.com/blog/x")
    assert UrlPatterns(None, ["/private"]).allows("https://e.com/anything")


ROBOTS = b"""User-agent: OtherBot
Disallow: /

User-agent: *
Disallow: /private/
Allow: /private/open
Disallow: /*.cgi$
Crawl-delay: 0.5
Sitemap: https://e.com/sitemap_index.xml
Sitemap: /relative-sitemap.xml
"""


def test_robots_rules_follow_rfc_9309_where_the_standard_library_does_not() -> None:
    rules = RobotsRules.from_answer("https://e.com", 200, ROBOTS)
    stdlib = urllib.robotparser.RobotFileParser()
    stdlib.parse(ROBOTS.decode().splitlines())
    # longest match wins: Allow /private/open beats Disallow /private/
    assert rules.can_fetch("https://e.com/private/open", "kb-crawler")
    assert not stdlib.can_fetch("kb-crawler", "https://e.com/private/open")
    # wildcards and end anchors
    assert not rules.can_fetch("https://e.com/bin/run.cgi", "kb-crawler")
    assert stdlib.can_fetch("kb-crawler", "https://e.com/bin/run.cgi")
    assert rules.can_fetch("https://e.com/bin/run.cgi?x=1", "kb-crawler")
    # a fractional Crawl-delay
    assert rules.delay("kb-crawler") == 0.5 and stdlib.crawl_delay("kb-crawler") is None
    assert not rules.can_fetch("https://e.com/private/x", "kb-crawler")
    assert not rules.can_fetch("https://e.com/", "OtherBot") and rules.can_fetch("https://e.com/", "kb-crawler")
    assert rules.sitemaps == ["https://e.com/sitemap_index.xml", "https://e.com/relative-sitemap.xml"]


@pytest.mark.parametrize(
    ("status", "mode"),
    [(200, "rules"), (401, "allow_all"), (403, "allow_all"), (404, "allow_all"), (429, "disallow_all"), (500, "disallow_all"), (503, "disallow_all")],
)
def test_what_a_robots_txt_status_means(status: int, mode: str) -> None:
    rules = RobotsRules.from_answer("https://e.com", status, b"User-agent: *\nDisallow: /x\n")
    assert rules.mode == mode
    assert rules.can_fetch("https://e.com/page", "kb-crawler") is (mode != "disallow_all")


def test_robots_request_rate_counts_as_a_delay() -> None:
    rules = RobotsRules.from_answer("https://e.com", 200, b"User-agent: *\nRequest-rate: 1/5s\nCrawl-delay: 1\n")
    assert rules.delay("kb-crawler") == 5.0


URLSET = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>https://e.com/a?x=1&amp;y=2</loc><lastmod>2024-05-01T10:00:00+02:00</lastmod></url>
<url><loc>https://e.com/b</loc></url>
</urlset>"""


def test_sitemaps_pages_indexes_gzip_text_and_feeds() -> None:
    pages = parse_sitemap(URLSET, "https://e.com/sitemap.xml", max_bytes=10_000)
    assert pages.pages == [("https://e.com/a?x=1&y=2", "2024-05-01T10:00:00+02:00"), ("https://e.com/b", None)]
    assert parse_sitemap(gzip.compress(URLSET), "https://e.com/s.xml.gz", max_bytes=10_000).pages == pages.pages
    index = parse_sitemap(
        b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>https://e.com/s1.xml</loc>'
        b"</sitemap><sitemap><loc>https://e.com/s2.xml.gz</loc><lastmod>2024-01-01</lastmod></sitemap></sitemapindex>",
        "https://e.com/index.xml", max_bytes=10_000,
    )
    assert index.sitemaps == ["https://e.com/s1.xml", "https://e.com/s2.xml.gz"] and index.pages == []
    no_namespace = parse_sitemap(b"<urlset><url><loc>https://e.com/c</loc></url></urlset>", "https://e.com/s", max_bytes=10_000)
    assert no_namespace.pages == [("https://e.com/c", None)]
    text = parse_sitemap(b"https://e.com/t1\nhttps://e.com/t2\n", "https://e.com/sitemap.txt", max_bytes=10_000)
    assert [url for url, _ in text.pages] == ["https://e.com/t1", "https://e.com/t2"]
    rss = parse_sitemap(
        b'<rss version="2.0"><channel><title>t</title><link>https://e.com/</link><description>d</description>'
        b"<item><title>one</title><link>https://e.com/post-1</link><pubDate>Wed, 01 May 2024 10:00:00 GMT</pubDate></item>"
        b"</channel></rss>",
        "https://e.com/feed.xml", max_bytes=10_000,
    )
    assert rss.pages[0][0] == "https://e.com/post-1"
    assert not parse_sitemap(b"<html><body>a page</body></html>", "https://e.com/x", max_bytes=10_000).is_sitemap


def test_hostile_sitemaps_are_refused_or_bounded() -> None:
    xxe = (b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://e.com/&x;</loc></url></urlset>')
    assert parse_sitemap(xxe, "https://e.com/s.xml", max_bytes=10_000).pages == []
    laughs = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + b"".join(
        b'<!ENTITY %s "%s">' % (bytes([98 + i]), (b"&%s;" % bytes([97 + i])) * 10) for i in range(8)
    ) + b']><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://e.com/&i;</loc></url></urlset>'
    assert parse_sitemap(laughs, "https://e.com/s.xml", max_bytes=10_000).pages == []
    bomb = gzip.compress(b"<urlset>" + b" " * 5_000_000 + b"</urlset>")
    assert len(bomb) < 10_000
    with pytest.raises(DocumentTooLarge):
        parse_sitemap(bomb, "https://e.com/s.xml.gz", max_bytes=1_000_000)
    many = b"<urlset>" + b"".join(b"<url><loc>https://e.com/p%d</loc></url>" % i for i in range(500)) + b"</urlset>"
    cut = parse_sitemap(gzip.compress(many)[:-200], "https://e.com/s.xml.gz", max_bytes=100_000).pages
    assert 100 < len(cut) < 500 and cut[0] == ("https://e.com/p0", None), "a truncated download keeps what it has"


def test_links_canonical_and_robots_meta() -> None:
    page = b"""<html><head><base href="https://e.com/docs/">
    <link rel="canonical" href="/docs/real"><meta name="robots" content="NOINDEX, follow">
    </head><body><a href="intro">intro</a><a href="intro">again</a><a rel="nofollow ugc" href="/ad">ad</a>
    <a href="https://other.org/">off</a><map><area href="/map-target"></map></body></html>"""
    found = extract_links(page, "https://e.com/somewhere/else", "text/html", "kb-crawler")
    assert found.links == ["https://e.com/docs/intro", "https://other.org/", "https://e.com/map-target"]
    assert found.nofollow_links == 1 and found.canonical == "https://e.com/docs/real"
    assert found.robots.noindex and not found.robots.nofollow
    ours = extract_links(b'<meta name="kb-crawler" content="none"><a href="/x">x</a>', "https://e.com/", None, "kb-crawler")
    assert ours.robots.noindex and ours.robots.nofollow
    theirs = extract_links(b'<meta name="otherbot" content="none">', "https://e.com/", None, "kb-crawler")
    assert not theirs.robots.noindex


def test_fingerprints_tell_copies_and_near_copies_from_other_pages() -> None:
    article = parse(read("html/dw.com.colonial.html"), "a.html").text
    other = parse(read("html/blog.python.org.html"), "b.html").text
    assert text_hash(article) == text_hash("  " + article.replace(" ", "  ") + "\n")
    edited = article + "\n\nThis article was updated on 2 June 2024."
    assert text_hash(edited) != text_hash(article)
    known = [(simhash(article), "https://e.com/article")]
    assert nearest(simhash(edited), known, 3) == "https://e.com/article"
    assert nearest(simhash(other), known, 3) is None
    assert simhash("too short to compare") is None


def test_the_frontier_round_trips_through_json() -> None:
    frontier = Frontier(crawl_type="sitemap", started=True, sitemap_sources_added=True)
    frontier.queue.append(QueuedUrl("https://e.com/a", 1, "https://e.com/s.xml", "2024-05-01T00:00:00"))
    frontier.queue.append(QueuedUrl("https://e.com/", 0, None, None, links_only=True))
    frontier.sitemap_queue.append(QueuedSitemap("https://e.com/s2.xml", 1, False))
    frontier.seen.update({"https://e.com/a", "https://e.com/"})
    frontier.text_hashes["ab" * 32] = "https://e.com/b"
    frontier.simhashes.append((2**63 + 5, "https://e.com/b"))
    frontier.robots["https://e.com"] = RobotsRules.from_answer("https://e.com", 200, ROBOTS)
    frontier.schedule.record("e.com", 1.5)
    frontier.counters.pages_identified = 7
    again = Frontier.from_json(frontier.to_json())
    assert again.to_dict() == frontier.to_dict()
    assert list(again.queue) == list(frontier.queue) and again.simhashes == frontier.simhashes
    assert not again.robots["https://e.com"].can_fetch("https://e.com/private/x", "kb-crawler")
    with pytest.raises(ValueError):
        Frontier.from_dict(frontier.to_dict() | {"version": 99})


def test_the_config_round_trips_and_normalises() -> None:
    config = CrawlConfig("HTTPS://Example.com/docs#x", exclude_patterns=["/old"], sitemap_urls=["https://example.com/s.xml"],
                         allow_hosts=["127.0.0.1"])
    assert config.url == "https://example.com/docs" and config.exclude_patterns == ("/old",)
    assert CrawlConfig.from_dict(config.to_dict()) == config
    assert config.agent_token == "kb-crawler"

"""A small real website on 127.0.0.1 for crawl, sync and dashboard tests.

`TestSite` serves, from a threaded `http.server`: robots.txt (a disallowed path, a
crawl-delay, a `Sitemap:` line, a group for another bot), a sitemap index with two
sitemaps (one gzipped) carrying `lastmod`, HTML pages that link to each other and off the
site, a redirect, a 404, a page the test can change and one it can remove, a PDF from the
shared corpus, a slow page that sends one byte at a time, a page bigger than the crawl
limit, the same content under two URLs (and nearly the same under a third), a page whose canonical URL is another, a
nofollow link and a noindex page. Page text is real prose: MS MARCO passages from the
shared corpus, read in place. Every request is recorded (path, method, headers, time) so
tests can check that robots.txt and delays were honoured. Pages answer conditional
requests (ETag, Last-Modified) with 304.

Use it as a context manager or call `start()`/`stop()`:

    with TestSite(crawl_delay=0.2, offsite="http://127.0.0.1:9/") as site:
        site.url("/docs/intro")
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import lru_cache
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CORPUS = (Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus").resolve()
PDF = CORPUS / "pdf" / "multicolumn.pdf"
PASSAGES = CORPUS / "retrieval" / "msmarco-5k" / "corpus.jsonl"

# Page path -> (title, index of its first passage, links). The home page links to everything.
PAGES: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "/docs/intro": ("Introduction", 0, ("/docs/guide", "/", "/docs/intro#install")),
    "/docs/guide": ("User guide", 4, ("/docs/intro", "/blog/first")),
    "/docs/moved-here": ("Moved page", 8, ()),
    "/docs/orphan": ("Orphan page, only in the sitemap", 12, ()),
    "/docs/from-noindex": ("Linked from a noindex page", 16, ()),
    "/blog/first": ("First post", 20, ("/blog/second",)),
    "/blog/second": ("Second post", 24, ("/blog/first",)),
    "/private/secret": ("Disallowed by robots.txt", 28, ()),
    "/private/hidden": ("Disallowed, listed in the sitemap", 32, ()),
    "/nofollowed": ("Only reachable through a nofollow link", 36, ()),
    "/removable": ("A page the test removes", 40, ()),
    "/changing": ("A page the test changes", 44, ()),
}
COPY_OF = 48  # /copy-a and /copy-b serve the same article
HOME_LINKS = (
    "/docs/intro", "/docs/guide", "/blog/first", "/private/secret", "/moved", "/missing", "/files/report.pdf",
    "/slow", "/huge", "/copy-a", "/copy-b", "/copy-near", "/variant", "/changing", "/removable", "/noindex-page",
    "/docs/intro?utm_source=home&utm_medium=link", "/docs/guide#usage", "/logo.png", "/away",
    "mailto:team@example.com", "javascript:void(0)", "https://example.com/elsewhere",
)
SITEMAP_DOCS = (
    ("/", "2024-05-01"), ("/docs/intro", "2024-05-02"), ("/docs/guide", "2024-05-03T10:00:00+00:00"),
    ("/docs/orphan", "2024-05-04"), ("/private/hidden", "2024-05-05"), ("/files/report.pdf", "2024-05-06"),
)
SITEMAP_BLOG = (("/blog/first", "2024-06-01"), ("/blog/second", "2024-06-02"))
HUGE_BYTES = 3_000_000
SLOW_BYTES = 400  # one byte every 0.05 s: 20 s in all


@dataclass(frozen=True)
class Request:
    path: str
    method: str
    headers: dict[str, str]
    time: float  # time.time() when the request arrived


@dataclass
class Resource:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    modified: float = field(default_factory=time.time)


@lru_cache(maxsize=1)
def passages() -> list[str]:
    assert PASSAGES.is_file(), f"the shared corpus is missing at {CORPUS}"
    with PASSAGES.open(encoding="utf-8") as lines:
        return [json.loads(next(lines))["text"] for _ in range(200)]


def article(title: str, first: int, links: tuple[str, ...] = (), *, head: str = "", count: int = 4) -> bytes:
    """An HTML page with navigation chrome, a title and `count` real paragraphs."""
    paragraphs = "".join(f"<p>{escape(text)}</p>" for text in passages()[first:first + count])
    anchors = "".join(f'<li><a href="{escape(link)}">{escape(link)}</a></li>' for link in links)
    return (
        f"<!DOCTYPE html><html><head><title>{escape(title)}</title>{head}</head><body>"
        f'<nav><a href="/">Home</a> | <a href="/docs/intro">Docs</a></nav>'
        f"<main><article><h1>{escape(title)}</h1>{paragraphs}</article>"
        f"<ul>{anchors}</ul></main><footer>Example site footer</footer></body></html>"
    ).encode("utf-8")


class TestSite:
    __test__ = False  # not a pytest test class

    def __init__(self, crawl_delay: float | None = None, offsite: str = "http://127.0.0.1:9/",
                 sitemaps: bool = True) -> None:
        self.crawl_delay = crawl_delay
        self.offsite = offsite  # where /away redirects and the home page links off the site
        self.sitemaps = sitemaps  # False: no Sitemap: line and no sitemap files
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self.resources: dict[str, Resource] = {}
        self._server: ThreadingHTTPServer | None = None
        self.base = ""

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> TestSite:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._build()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TestSite:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def url(self, path: str = "/") -> str:
        return self.base + path

    # --- what tests change --------------------------------------------------------------------

    def set_page(self, path: str, body: bytes, content_type: str = "text/html; charset=utf-8") -> None:
        """Serve `body` at `path` from now on (a new version: new ETag and Last-Modified)."""
        with self._lock:
            self.resources[path] = Resource(body, content_type, modified=time.time() + 1)

    def remove(self, path: str, status: int = 404) -> None:
        """`path` answers `status` (404 or 410; or 503 for a transient failure) from now on."""
        with self._lock:
            self.resources[path] = Resource(b"gone", "text/plain", status)

    def set_sitemap(self, path: str, entries: list[tuple[str, str]]) -> None:
        """Replace the page sitemap at `path` (`/sitemaps/docs.xml`) with `(page path, lastmod)` entries."""
        self.set_page(path, self._urlset(entries), "application/xml")

    def requested(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def paths(self) -> list[str]:
        return [r.path for r in self.requested()]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- content ------------------------------------------------------------------------------

    def _build(self) -> None:
        pages = self.resources
        robots = "User-agent: OtherBot\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\n"
        if self.crawl_delay is not None:
            robots += f"Crawl-delay: {self.crawl_delay:g}\n"
        if self.sitemaps:
            robots += f"\nSitemap: {self.base}/sitemap_index.xml\n"
            pages["/sitemap_index.xml"] = Resource(self._index(), "application/xml")
            pages["/sitemaps/docs.xml"] = Resource(self._urlset(SITEMAP_DOCS), "application/xml")
            pages["/sitemaps/blog.xml.gz"] = Resource(gzip.compress(self._urlset(SITEMAP_BLOG)), "application/gzip")
        pages["/robots.txt"] = Resource(robots.encode(), "text/plain")
        home_links = HOME_LINKS + (self.offsite,)
        pages["/"] = Resource(article("Example site", 52, home_links))
        for path, (title, first, links) in PAGES.items():
            pages[path] = Resource(article(title, first, links))
        pages["/copy-a"] = Resource(article("Copied article", COPY_OF))
        pages["/copy-b"] = Resource(article("Copied article", COPY_OF))
        near = article("Copied article", COPY_OF).replace(b"</article>", b"<p>Updated on 2 June 2024.</p></article>")
        pages["/copy-near"] = Resource(near)  # the same article with one more line: a near duplicate
        pages["/variant"] = Resource(article("User guide", 4, head='<link rel="canonical" href="/docs/guide">'))
        pages["/noindex-page"] = Resource(
            article("Not to be indexed", 56, ("/docs/from-noindex",), head='<meta name="robots" content="noindex, follow">')
        )
        pages["/files/report.pdf"] = Resource(PDF.read_bytes(), "application/pdf")
        # the nofollow link lives on the guide page
        title, first, links = PAGES["/docs/guide"]
        guide = article(title, first, links).replace(
            b"</ul>", b'<li><a rel="nofollow" href="/nofollowed">sponsored</a></li></ul>'
        )
        pages["/docs/guide"] = Resource(guide)

    def _index(self) -> bytes:
        entries = "".join(
            f"<sitemap><loc>{self.base}{path}</loc><lastmod>{lastmod}</lastmod></sitemap>"
            for path, lastmod in (("/sitemaps/docs.xml", "2024-05-06"), ("/sitemaps/blog.xml.gz", "2024-06-02"))
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</sitemapindex>'
        ).encode()

    def _urlset(self, entries) -> bytes:
        urls = "".join(f"<url><loc>{self.base}{path}</loc><lastmod>{lastmod}</lastmod></url>" for path, lastmod in entries)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
        ).encode()

    def sitemap_paths(self) -> list[str]:
        return [path for path, _ in SITEMAP_DOCS + SITEMAP_BLOG]


def _handler(site: TestSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout or a size limit): expected

        def do_GET(self) -> None:
            with site._lock:
                site.requests.append(Request(self.path, "GET", dict(self.headers.items()), time.time()))
            path = self.path.split("?", 1)[0]
            if path == "/moved":
                self._send(301, b"", "text/plain", {"Location": "/docs/moved-here"})
            elif path == "/away":
                self._send(302, b"", "text/plain", {"Location": site.offsite})
            elif path == "/slow":
                self._slow()
            elif path == "/huge":
                self._huge()
            else:
                self._resource(path)

        def _resource(self, path: str) -> None:
            with site._lock:
                resource = site.resources.get(path)
            if resource is None:
                self._send(404, b"not found", "text/plain")
                return
            if resource.status != 200:
                self._send(resource.status, resource.body, resource.content_type)
                return
            etag = '"' + hashlib.sha1(resource.body).hexdigest()[:16] + '"'
            modified = formatdate(resource.modified, usegmt=True)
            headers = {"ETag": etag, "Last-Modified": modified}
            if self.headers.get("If-None-Match") == etag or (
                "If-None-Match" not in self.headers and self.headers.get("If-Modified-Since") == modified
            ):
                self._send(304, b"", None, headers)
                return
            self._send(200, resource.body, resource.content_type, headers)

        def _send(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _slow(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(SLOW_BYTES))
            self.end_headers()
            for _ in range(SLOW_BYTES):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.05)

        def _huge(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()  # no length: the client has to count
            piece = b"<p>" + b"padding " * 8000 + b"</p>"
            sent = 0
            while sent < HUGE_BYTES:
                self.wfile.write(piece)
                sent += len(piece)

    return Handler

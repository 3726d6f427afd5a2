"""URL fetching against a real HTTP server on loopback, and the address guard."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ingest_testkit import read

from ingest import fetch_response, fetch_url, parse
from ingest.errors import DocumentTooLarge, FetchError

ARTICLE = "html/dw.com.colonial.html"
PDF = "pdf/multicolumn.pdf"


class Handler(BaseHTTPRequestHandler):
    hits: list[str] = []
    agents: list[str] = []

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (the timeout tests): expected

    def _send(self, status: int, body: bytes = b"", content_type: str = "text/plain", headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        Handler.hits.append(self.path)
        Handler.agents.append(self.headers.get("User-Agent", ""))
        path = self.path
        if path == "/news/berlin-colonial.html":
            self._send(200, read(ARTICLE), "text/html; charset=utf-8")
        elif path == "/files/paper.pdf":
            self._send(200, read(PDF), "application/pdf")
        elif path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            target = "/news/berlin-colonial.html" if left == 0 else f"/hop/{left - 1}"
            self._send(302, headers={"Location": target})
        elif path == "/tagged":
            if self.headers.get("If-None-Match") == '"v1"':
                self._send(304, headers={"ETag": '"v1"'})
            else:
                self._send(200, b"tagged body", headers={"ETag": '"v1"', "Last-Modified": "Wed, 01 May 2024 10:00:00 GMT"})
        elif path == "/gone":
            self._send(410, b"gone for good")
        elif path == "/to-metadata":
            self._send(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        elif path == "/to-ftp":
            self._send(301, headers={"Location": "ftp://127.0.0.1/file.txt"})
        elif path == "/big-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(10_000_000))
            self.end_headers()
        elif path == "/big-streamed":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()  # no length: the client must count as it reads
            try:
                for _ in range(40):
                    self.wfile.write(b"x" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif path == "/slow":
            time.sleep(3)
            self._send(200, b"too late")
        elif path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self._send(404, b"not here")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


LOCAL = {"127.0.0.1"}


def test_fetch_html_and_parse_it(server: str) -> None:
    got = fetch_url(f"{server}/news/berlin-colonial.html", allow_hosts=LOCAL)
    assert got.data == read(ARTICLE)
    assert got.final_url == f"{server}/news/berlin-colonial.html"
    assert got.content_type == "text/html; charset=utf-8"
    doc = parse(got.data, filename=got.final_url.rsplit("/", 1)[-1], content_type=got.content_type)
    assert "The most notorious of the three is Carl Peters" in doc.text


def test_fetch_pdf(server: str) -> None:
    got = fetch_url(f"{server}/files/paper.pdf", allow_hosts=LOCAL)
    assert got.content_type == "application/pdf" and got.data == read(PDF)
    assert parse(got.data, filename="paper.pdf", content_type=got.content_type).pages == 3


def test_redirects_followed_up_to_the_limit(server: str) -> None:
    got = fetch_url(f"{server}/hop/3", allow_hosts=LOCAL)
    assert got.final_url == f"{server}/news/berlin-colonial.html"
    assert fetch_url(f"{server}/hop/4", allow_hosts=LOCAL, max_redirects=5).data == read(ARTICLE)  # 5 redirects
    with pytest.raises(FetchError) as caught:
        fetch_url(f"{server}/hop/5", allow_hosts=LOCAL, max_redirects=5)  # 6 redirects
    assert "more than 5 times" in caught.value.message


def test_redirect_to_forbidden_address_or_scheme_is_refused(server: str) -> None:
    with pytest.raises(FetchError) as caught:
        fetch_url(f"{server}/to-metadata", allow_hosts=LOCAL)
    assert "169.254.169.254" in caught.value.message
    with pytest.raises(FetchError) as caught:
        fetch_url(f"{server}/to-ftp", allow_hosts=LOCAL)
    assert "only http and https" in caught.value.message


def test_http_error_status_is_named(server: str) -> None:
    with pytest.raises(FetchError) as caught:
        fetch_url(f"{server}/missing", allow_hosts=LOCAL)
    assert "404" in caught.value.message


def test_fetch_response_gives_status_and_headers(server: str) -> None:
    first = fetch_response(f"{server}/tagged", allow_hosts=LOCAL)
    assert (first.status, first.data, first.headers["etag"]) == (200, b"tagged body", '"v1"')
    assert first.headers["last-modified"] == "Wed, 01 May 2024 10:00:00 GMT"
    again = fetch_response(f"{server}/tagged", allow_hosts=LOCAL, headers={"If-None-Match": '"v1"'})
    assert (again.status, again.data) == (304, b"")
    gone = fetch_response(f"{server}/hop/0", allow_hosts=LOCAL)  # redirects are still followed
    assert gone.final_url == f"{server}/news/berlin-colonial.html" and gone.status == 200
    for path, status in (("/gone", 410), ("/missing", 404)):
        answer = fetch_response(f"{server}{path}", allow_hosts=LOCAL)
        assert (answer.status, answer.data) == (status, b"")  # an error body is not downloaded
    with pytest.raises(FetchError) as caught:
        fetch_url(f"{server}/gone", allow_hosts=LOCAL)
    assert "410 Gone" in caught.value.message


def test_fetch_response_sends_the_user_agent(server: str) -> None:
    fetch_response(f"{server}/tagged", allow_hosts=LOCAL, user_agent="kb-crawler-test/1.0")
    assert Handler.agents[-1] == "kb-crawler-test/1.0"


def test_body_size_limit(server: str) -> None:
    with pytest.raises(DocumentTooLarge):
        fetch_url(f"{server}/big-declared", allow_hosts=LOCAL, max_bytes=1_000_000)
    with pytest.raises(DocumentTooLarge) as caught:
        fetch_url(f"{server}/big-streamed", allow_hosts=LOCAL, max_bytes=1_000_000)
    assert "1,000,000 bytes" in caught.value.message


def test_slow_server_times_out(server: str) -> None:
    began = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch_url(f"{server}/slow", allow_hosts=LOCAL, timeout=1.0)
    assert time.monotonic() - began < 2.9  # the server answers after 3 s: the timeout stopped it
    assert "timed out" in caught.value.message or "longer than" in caught.value.message


def test_trickling_body_hits_the_total_deadline(server: str) -> None:
    began = time.monotonic()
    with pytest.raises(FetchError):
        fetch_url(f"{server}/drip", allow_hosts=LOCAL, timeout=1.5)  # each byte comes in time, the whole does not
    assert time.monotonic() - began < 3.0


def test_loopback_refused_without_allow_hosts(server: str) -> None:
    before = len(Handler.hits)
    for url in (f"{server}/news/berlin-colonial.html", server.replace("127.0.0.1", "localhost") + "/news/berlin-colonial.html"):
        with pytest.raises(FetchError) as caught:
            fetch_url(url)
        assert "loopback" in caught.value.message
    assert len(Handler.hits) == before, "a refused host must not receive any request"


def test_allow_hosts_with_port(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    assert fetch_url(f"{server}/files/paper.pdf", allow_hosts={f"127.0.0.1:{port}"}).data == read(PDF)
    with pytest.raises(FetchError):
        fetch_url(f"{server}/files/paper.pdf", allow_hosts={"127.0.0.1:1"})


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://[::1]:8080/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
    ],
)
def test_internal_addresses_refused_before_any_traffic(url: str, reason: str) -> None:
    began = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch_url(url, timeout=30)
    assert time.monotonic() - began < 10  # far below the 30 s timeout: refused before connecting
    assert reason in caught.value.message


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/file.txt", "gopher://example.com/", "not a url"])
def test_non_http_schemes_refused(url: str) -> None:
    with pytest.raises(FetchError):
        fetch_url(url)


def test_connect_time_check_catches_a_name_that_changed_its_address(server: str) -> None:
    # The transport re-resolves and re-checks at connect time, on the address it connects to,
    # so a DNS answer that flips to an internal address after the first check is still refused.
    from ingest.fetch import _GuardedBackend
    from ingest.netguard import HostPolicy

    port = int(server.rsplit(":", 1)[1])
    with pytest.raises(FetchError) as caught:
        _GuardedBackend(HostPolicy()).connect_tcp("localhost", port, timeout=1)
    assert "loopback" in caught.value.message
    stream = _GuardedBackend(HostPolicy({"localhost"})).connect_tcp("localhost", port, timeout=1)
    stream.close()

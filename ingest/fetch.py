"""Download a URL for ingestion, safely: http(s) only, public addresses only, bounded.

Redirects are followed by hand so that every hop is checked. Addresses are checked
twice: before each request (a clear error, no traffic to a forbidden host) and again at
connect time inside the transport, on the very address being connected to, so a DNS
answer that changes between the two (DNS rebinding) cannot slip through. Environment
proxies are ignored for the same reason. `timeout` bounds each network operation and
the whole fetch, redirects, headers and body included: every socket read and write ends by the
fetch's deadline, so a server trickling bytes cannot hold a fetch (and its thread) longer.

`fetch_response` returns whatever final status the server answered (a crawler needs to
tell 304 "not modified" and 404/410 "gone" from a transient 5xx); `fetch_url` is the
single-URL ingestion entry point that turns every HTTP error into a `FetchError`.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Collection, Mapping

import httpcore
import httpx

from .errors import DocumentTooLarge, FetchError
from .netguard import HostPolicy
from .types import FetchedResource

_REDIRECTS = {301, 302, 303, 307, 308}
_USER_AGENT = "kb-ingest/0.1"


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves and checks the address itself, then connects to that exact address. With a
    `deadline` (time.monotonic), no socket operation waits past it: a server that sends its
    headers or body a byte at a time cannot hold the fetch longer than the whole timeout."""

    def __init__(self, policy: HostPolicy, deadline: float | None = None) -> None:
        self.policy = policy
        self.deadline = deadline

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        last: Exception | None = None
        for address in self.policy.resolve(host, port):
            try:
                stream = super().connect_tcp(address, port, _within(self.deadline, timeout, httpcore.ConnectTimeout),
                                             local_address, socket_options)
                return _DeadlineStream(stream, self.deadline) if self.deadline is not None else stream
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address to connect to for {host}")


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every read and write ends by the deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self.stream = stream
        self.deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, _within(self.deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, _within(self.deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        tls = self.stream.start_tls(ssl_context, server_hostname, _within(self.deadline, timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(tls, self.deadline)

    def get_extra_info(self, info: str):
        return self.stream.get_extra_info(info)


def _within(deadline: float | None, timeout: float | None, error: type[Exception]) -> float | None:
    """`timeout` cut to what is left before `deadline`; `error` once nothing is left."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the whole fetch took longer than its timeout")
    return left if timeout is None else min(timeout, left)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes tens of milliseconds: done once, not twice per fetch.
    return httpx.create_ssl_context(trust_env=False)


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, policy: HostPolicy, deadline: float | None = None) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False, retries=0)
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(), network_backend=_GuardedBackend(policy, deadline), max_connections=4
        )


def fetch_url(
    url: str,
    *,
    timeout: float = 15.0,
    max_bytes: int = 50_000_000,
    max_redirects: int = 5,
    allow_hosts: Collection[str] = (),
) -> FetchedResource:
    """GET `url` and return its body, final URL and content type; an HTTP error raises `FetchError`."""
    got = fetch_response(url, timeout=timeout, max_bytes=max_bytes, max_redirects=max_redirects, allow_hosts=allow_hosts)
    if got.status >= 300:
        raise FetchError(
            f"the server answered {got.status} {httpx.codes.get_reason_phrase(got.status)} for {got.final_url}; "
            "check that the URL is public and correct"
        )
    return got


def fetch_response(
    url: str,
    *,
    timeout: float = 15.0,
    max_bytes: int = 50_000_000,
    max_redirects: int = 5,
    allow_hosts: Collection[str] = (),
    headers: Mapping[str, str] | None = None,
    user_agent: str = _USER_AGENT,
) -> FetchedResource:
    """GET `url` through the address guard and return the final answer, whatever its status.

    Redirects are followed (each hop checked); the body is read, within `max_bytes`, only
    for a 2xx answer. `headers` are sent with every hop (e.g. If-None-Match). Network
    failures, timeouts, refused addresses and oversized bodies raise.
    """
    policy = HostPolicy(allow_hosts)
    deadline = time.monotonic() + timeout
    current = _checked_url(url, policy)
    sent = {"User-Agent": user_agent, "Accept": "*/*", **(headers or {})}
    transport = _GuardedTransport(policy, deadline)
    with httpx.Client(transport=transport, follow_redirects=False, trust_env=False) as client:
        for hop in range(max_redirects + 1):
            remaining = _remaining(deadline, timeout, url)
            request = client.build_request("GET", current, headers=sent)
            request.extensions["timeout"] = httpx.Timeout(remaining).as_dict()
            try:
                response = client.send(request, stream=True)
            except FetchError:
                raise
            except httpx.TimeoutException as exc:
                raise FetchError(f"fetching {current} timed out after {timeout:g} s; try again later or upload the file") from exc
            except httpx.HTTPError as exc:
                raise FetchError(f"could not fetch {current}: {exc or type(exc).__name__}; check the URL") from exc
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    current = _checked_url(str(current.join(response.headers["location"])), policy)
                    continue
                ok = 200 <= response.status_code < 300
                data = _read_body(response, max_bytes, deadline, timeout, current) if ok else b""
                return FetchedResource(
                    data, str(current), response.headers.get("content-type"), response.status_code, dict(response.headers)
                )
            finally:
                response.close()
    raise FetchError(f"{url} redirected more than {max_redirects} times; use the final URL directly")


def _checked_url(url: str, policy: HostPolicy) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchError(f"{url!r} is not a valid URL ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"only http and https URLs can be fetched, not {parsed.scheme or 'a URL without scheme'}: {url!r}")
    if not parsed.host:
        raise FetchError(f"the URL {url!r} has no host name")
    policy.resolve(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
    return parsed


def _remaining(deadline: float, timeout: float, url: str) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError(f"fetching {url} took longer than {timeout:g} s; try again later or upload the file")
    return remaining


def _read_body(response: httpx.Response, max_bytes: int, deadline: float, timeout: float, url: httpx.URL) -> bytes:
    too_large = DocumentTooLarge(
        f"{url} is larger than the limit of {max_bytes:,} bytes; download it and upload a smaller file"
    )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    try:
        for piece in response.iter_bytes():  # decoded: a gzip bomb is measured after inflating
            body += piece
            if len(body) > max_bytes:
                raise too_large
            _remaining(deadline, timeout, str(url))
    except httpx.TimeoutException as exc:
        raise FetchError(f"fetching {url} timed out after {timeout:g} s; try again later or upload the file") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"the download of {url} failed: {exc}; try again") from exc
    return bytes(body)

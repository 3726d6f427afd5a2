"""Which hosts a server-side fetch may reach (SSRF protection).

By default only globally routable addresses: loopback, private, link-local (including
the 169.254.169.254 cloud metadata service), unspecified, multicast and reserved
addresses are refused, also when a public name resolves to them or when they hide inside
an IPv4-mapped or NAT64 IPv6 address. `allow_hosts` lists exceptions as "host",
"host:port", "1.2.3.4", "[::1]:8080" or "::1".
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection

from .errors import BlockedAddress, FetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class HostPolicy:
    def __init__(self, allow_hosts: Collection[str] = ()) -> None:
        self._allowed: set[tuple[str, int | None]] = {_parse_allowed(entry) for entry in allow_hosts}

    def allows_any_address(self, host: str, port: int) -> bool:
        host = _bare(host)
        return (host, None) in self._allowed or (host, port) in self._allowed

    def resolve(self, host: str, port: int) -> list[str]:
        """Addresses to connect to for host:port; raises FetchError if any is forbidden."""
        bare = _bare(host)
        try:
            infos = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchError(f"the host {bare!r} could not be resolved ({exc}); check the URL") from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if not self.allows_any_address(bare, port):
            for address in addresses:
                reason = forbidden_reason(ipaddress.ip_address(address.split("%")[0]))
                if reason:
                    raise BlockedAddress(
                        f"refusing to fetch from {bare!r}: it resolves to {address}, {reason}; "
                        "only public internet addresses can be fetched; an administrator can allow this host"
                    )
        return addresses


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why a server-side fetch must not reach `ip`, or None if it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            return forbidden_reason(embedded)
    if ip in _METADATA:
        return "a cloud metadata address"
    for test, reason in (
        (ip.is_loopback, "a loopback address"),
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private network address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public internet address"),
    ):
        if test:
            return reason
    return None


def _bare(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _parse_allowed(entry: str) -> tuple[str, int | None]:
    entry = entry.strip().lower()
    if entry.startswith("["):  # [v6] or [v6]:port
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:  # host:port (a bare IPv6 address has several colons)
        host, port = entry.split(":")
        return _bare(host), int(port)
    return _bare(entry), None

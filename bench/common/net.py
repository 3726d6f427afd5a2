"""Loopback addresses only: a free port for a spawned server, and a check that --url stays local."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlparse


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"--url must point at a loopback address (127.0.0.1, ::1, localhost), not {host!r}")

"""Ports for tests: one nobody listens on, found by binding port 0 and closing it again.

A dead upstream used to be port 9 (discard), which something may serve; a port the kernel just handed out and
that was closed at once refuses connections, the same on every machine."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port on `host` with no listener right now (bind port 0, read the port, close the socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def dead_url(path: str = "/v1") -> str:
    """An http URL on 127.0.0.1 whose connections are refused: a provider that is down."""
    return f"http://127.0.0.1:{free_port()}{path}"

"""A free TCP port: bind port 0, read what the kernel handed out, close the socket.

Used where Downshift picks a port for its proxy (a taken port at start, the demo's throw-away proxy) and by
the tests for an upstream that is down (app.testing.ports). The port is free when this returns; whoever binds
it next should expect that someone else may have taken it in between."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port on `host` with no listener right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])

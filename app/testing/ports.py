"""Ports for tests: one nobody listens on, found by binding port 0 and closing it again.

A dead upstream used to be port 9 (discard), which something may serve; a port the kernel just handed out and
that was closed at once refuses connections, the same on every machine."""

from __future__ import annotations

from app.core.ports import free_port

__all__ = ["dead_url", "free_port"]


def dead_url(path: str = "/v1") -> str:
    """An http URL on 127.0.0.1 whose connections are refused: a provider that is down."""
    return f"http://127.0.0.1:{free_port()}{path}"

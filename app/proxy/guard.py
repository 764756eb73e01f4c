"""What the proxy does about clients that are not agents: refused requests are counted, not logged, and
idle, slow or too many connections are closed before they can starve the agents of file descriptors.

Refusals (no token, a wrong one, a foreign Host or Origin) cost a dict increment: a web page can send
thousands a second, and a log row each would fill the disk and the statistics. The counts are shown by
`downshift doctor` (through the token-guarded status endpoint) and on the Settings page.

Connections are watched by one sweep a second over the open ones, so a call pays nothing for it:
- a connection that has not sent a whole request head within HEADER_TIMEOUT_S of opening (or of its last
  answer) is closed: idle sockets and headers dripped a byte at a time;
- a request body that stops arriving for BODY_IDLE_S makes the read fail, and the call ends with a 408;
- at most `cap` connections per peer address (and never more than the file-descriptor limit allows): a new
  one closes the most suspect of that peer's connections (one that never sent a request head, a stalled
  upload, a long-idle keep-alive one: see `_victim`); it is refused only when every one is busy.
The answer side is never timed here: a long streamed answer keeps its connection as long as it runs.
aiohttp offers only a keep-alive timeout (which does not bound a dripped request head on older versions)
and no read timeout on request bodies, hence this sweep; it reads two attributes of aiohttp's
RequestHandler (`_current_request`, `_request_count`), which tests/test_connections.py pins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

FD_RESERVE = 64  # descriptors kept for the log, the upstream pool and the rest of the process


class Refusals:
    """Requests refused at the gate, by reason (`missing_token`, `bad_token`, `forbidden_host`, ...)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.since = time.time()
        self.last_at: float | None = None

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.last_at = time.time()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_reason": dict(sorted(self.counts.items())),
            "since": self.since,
            "last_at": self.last_at,
        }


def describe_refusals(snapshot: dict[str, Any]) -> str:
    """'3 requests refused (bad_token 2, forbidden_origin 1)' for doctor and the Settings page."""
    total = snapshot.get("total", 0)
    if not total:
        return "no request refused"
    reasons = ", ".join(f"{k} {v}" for k, v in snapshot.get("by_reason", {}).items())
    return f"{total} request{'s' if total != 1 else ''} refused ({reasons})"


def fd_connection_cap(reserve: int = FD_RESERVE) -> int | None:
    """Client connections the descriptor limit allows: each call also holds an upstream socket."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to respect
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(8, (soft - reserve) // 2)


@dataclass
class _Conn:
    peer: str
    opened: float
    idle_since: float
    requests: int = 0
    body_bytes: int = -1
    body_progress_at: float = 0.0


class ConnectionGuard:
    HEADER_TIMEOUT_S = 15.0
    BODY_IDLE_S = 20.0
    MAX_PER_PEER = 256
    GRACE_S = 0.1  # a new connection is given up for another last, until it had this long to send its head
    SWEEP_S = 1.0

    def __init__(self) -> None:
        fd_cap = fd_connection_cap()
        self.cap = self.MAX_PER_PEER if fd_cap is None else min(self.MAX_PER_PEER, fd_cap)
        self._conns: dict[Any, _Conn] = {}
        self._per_peer: dict[str, int] = {}
        self.closed = {"head_timeout": 0, "body_timeout": 0, "evicted": 0, "refused": 0}
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------------- wiring

    def install(self, server: Any) -> None:
        """Hook an aiohttp `web.Server` (the protocol factory) and start the sweep on the running loop."""
        from aiohttp.web_protocol import RequestHandler

        if not {"_current_request", "_request_count"} <= set(getattr(RequestHandler, "__slots__", ())):
            # an aiohttp that renamed them: every connection would look idle, busy ones included
            log.warning(
                "this aiohttp version hides what the connection guard reads: idle-socket limits are off"
            )
            return
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: Any) -> None:
            made(handler, transport)
            self._admit(handler, transport)

        def connection_lost(handler: Any, exc: BaseException | None) -> None:
            lost(handler, exc)
            self._forget(handler)

        server.connection_made = connection_made
        server.connection_lost = connection_lost
        self._task = asyncio.get_running_loop().create_task(self._sweep_forever())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    # ------------------------------------------------------------------------------------------- admission

    def _admit(self, handler: Any, transport: Any) -> None:
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else "local"
        now = time.monotonic()
        if self._per_peer.get(peer, 0) >= self.cap:
            victim = self._victim(peer, now)
            if victim is None:
                self.closed["refused"] += 1
                transport.abort()
                return
            self.closed["evicted"] += 1
            self._close(victim)
        self._conns[handler] = _Conn(peer, now, now)
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1

    def _forget(self, handler: Any) -> None:
        conn = self._conns.pop(handler, None)
        if conn is not None:
            left = self._per_peer.get(conn.peer, 1) - 1
            if left > 0:
                self._per_peer[conn.peer] = left
            else:
                self._per_peer.pop(conn.peer, None)

    def _victim(self, peer: str, now: float) -> Any:
        """The peer's connection to give up, most suspect first (the longest-standing first within each):
        0. one that never sent a whole request head although it had GRACE_S to;
        1. an upload the sweep saw stalled; 2. any other unfinished upload (on loopback an agent's body takes
        milliseconds); 3. a keep-alive connection idle since before the last sweep;
        4. one that connected less than GRACE_S ago (an agent sends its head at once: it gets that chance
        while anything else can go). Connections busy with a request whose body has arrived, or used since
        the last sweep, are never chosen."""
        best, best_key = None, None
        for handler, conn in self._conns.items():
            if conn.peer != peer:
                continue
            request = getattr(handler, "_current_request", None)
            count = getattr(handler, "_request_count", 0)
            if request is None:
                if count == 0:
                    key = (0 if now - conn.opened >= self.GRACE_S else 4, conn.opened)
                elif count == conn.requests and now - conn.idle_since >= self.SWEEP_S:
                    key = (3, conn.idle_since)
                else:
                    continue  # it answered a request moments ago: its client is likely to send the next
            else:
                content = request.content
                if content.is_eof():
                    continue
                if content.total_bytes == conn.body_bytes and now - conn.body_progress_at >= self.SWEEP_S:
                    key = (1, conn.body_progress_at)
                else:
                    key = (2, conn.opened)
            if best_key is None or key < best_key:
                best, best_key = handler, key
        return best

    def _close(self, handler: Any) -> None:
        self._forget(handler)
        transport = getattr(handler, "transport", None)
        with contextlib.suppress(Exception):
            handler.force_close()
        if transport is not None:
            transport.abort()

    # ------------------------------------------------------------------------------------------- sweep

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.SWEEP_S)
            try:
                self.sweep(time.monotonic())
            except Exception:  # the sweep must outlive a surprise in one connection
                log.exception("connection sweep failed")

    def sweep(self, now: float) -> None:
        for handler, conn in list(self._conns.items()):
            request = getattr(handler, "_current_request", None)
            count = getattr(handler, "_request_count", 0)
            if request is None:
                if count != conn.requests:  # a request came and went since the last look
                    conn.requests, conn.idle_since = count, now
                elif now - conn.idle_since > self.HEADER_TIMEOUT_S:
                    self.closed["head_timeout"] += 1
                    self._close(handler)
                continue
            conn.requests, conn.idle_since = count, now
            content = request.content
            if content.is_eof():
                conn.body_bytes = -1
                continue
            received = content.total_bytes
            if received != conn.body_bytes:
                conn.body_bytes, conn.body_progress_at = received, now
            elif now - conn.body_progress_at > self.BODY_IDLE_S:
                self.closed["body_timeout"] += 1
                conn.body_progress_at = now
                content.set_exception(
                    BodyTimeout(f"no byte of the request body arrived for {self.BODY_IDLE_S:g} s")
                )

    def snapshot(self) -> dict[str, Any]:
        return {"open": len(self._conns), "cap_per_peer": self.cap, "closed": dict(self.closed)}


class BodyTimeout(Exception):
    """A request body stopped arriving (the read in the handler raises it; the call ends with a 408)."""

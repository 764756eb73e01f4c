"""The HTTP client towards providers: one pooled aiohttp session per proxy loop.

aiohttp rather than httpx on this path: in the benchmark httpx's per-call CPU was about three times
aiohttp's and grew with concurrency (encode/httpx#3215), and this client sits inside every agent turn.
httpx stays the client for everything off the hot path (price refresh, connection tests).
Timeouts are per provider: connect, first byte (response headers) and idle (gap between body reads).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Mapping

import aiohttp

from app.core.config import Provider


class UpstreamFailure(Exception):
    """The provider could not be reached or stopped answering; `kind` is what the log records."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class UpstreamClient:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=0, keepalive_timeout=60, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, provider: Provider, path: str, body: bytes, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        """POST and wait for the response headers, within the provider's connect and first-byte limits."""
        t = provider.timeouts
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=t.connect, connect=t.connect + 1.0)
        try:
            async with asyncio.timeout(t.first_byte):
                return await self._get_session().post(
                    provider.base_url + path, data=body, headers=headers, timeout=timeout
                )
        except TimeoutError:
            raise UpstreamFailure(
                "timeout", f"{provider.name} did not answer within {t.first_byte:g} s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamFailure(
                "connect_error",
                f"cannot connect to {provider.name} ({provider.base_url}): {exc.os_error or exc}",
            ) from None
        except aiohttp.ServerTimeoutError as exc:
            raise UpstreamFailure("timeout", f"{provider.name}: connection timed out ({exc})") from None
        except aiohttp.ClientError as exc:
            raise UpstreamFailure("connect_error", f"{provider.name}: {type(exc).__name__}: {exc}") from None

    async def get(self, provider: Provider, path: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        t = provider.timeouts
        try:
            async with (
                asyncio.timeout(t.first_byte),
                self._get_session().get(provider.base_url + path, headers=headers) as resp,
            ):
                return resp.status, await resp.read()
        except TimeoutError:
            raise UpstreamFailure(
                "timeout", f"{provider.name} did not answer within {t.first_byte:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamFailure("connect_error", f"{provider.name}: {exc}") from None


MAX_ANSWER_BYTES = 64 * 1024 * 1024  # a whole (non-streamed) answer larger than this is a provider gone wrong


async def read_body(resp: aiohttp.ClientResponse, idle: float) -> bytes:
    """A whole answer, within the idle limit (per read) and a size limit (a provider that never stops
    sending must not exhaust memory)."""
    limit = MAX_ANSWER_BYTES
    length = resp.content_length
    if length is not None and length > limit:
        raise UpstreamFailure(
            "too_large", f"the upstream answer ({length} bytes) is over the {limit} byte limit"
        )
    chunks: list[bytes] = []
    size = 0
    async with contextlib.aclosing(
        iter_body(resp, idle, where="")
    ) as body:  # stops the watchdog on too_large
        async for chunk in body:
            size += len(chunk)
            if size > limit:
                raise UpstreamFailure("too_large", f"the upstream answer is over the {limit} byte limit")
            chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def iter_body(
    resp: aiohttp.ClientResponse, idle: float, *, where: str = " mid-stream"
) -> AsyncGenerator[bytes, None]:
    """Body bytes as they arrive; a read that waits longer than `idle` or a broken connection raises
    UpstreamFailure. Time the consumer spends between reads (writing to a slow client) does not count.

    One timer per body, not one per read: each read only notes when it began, and the timer, when it
    fires, either finds a read waiting for `idle` seconds (and cancels it) or re-arms for the moment the
    current read would be overdue."""
    content = resp.content
    task = asyncio.current_task()
    assert task is not None
    watchdog = _IdleWatchdog(task, idle)
    try:
        while True:
            watchdog.begin()
            try:
                chunk = await content.readany()
            except asyncio.CancelledError:
                if not watchdog.fired:
                    raise
                task.uncancel()
                raise UpstreamFailure("stalled", f"the upstream stopped sending for {idle:g} s") from None
            except aiohttp.ClientError as exc:
                raise UpstreamFailure(
                    "upstream_disconnect", f"the upstream connection broke{where}: {exc}"
                ) from None
            watchdog.reading = False
            if not chunk:
                return
            yield chunk
    finally:
        watchdog.stop()


class _IdleWatchdog:
    """Cancels a read that waited too long, and remembers it did so the cancel is not mistaken for ours."""

    __slots__ = ("task", "idle", "loop", "fired", "reading", "began", "handle")

    def __init__(self, task: asyncio.Task[object], idle: float) -> None:
        self.task, self.idle, self.fired, self.reading = task, idle, False, False
        self.loop = asyncio.get_running_loop()
        self.began = self.loop.time()
        self.handle: asyncio.TimerHandle | None = self.loop.call_at(self.began + idle, self._check)

    def begin(self) -> None:
        self.began = self.loop.time()
        self.reading = True

    def _check(self) -> None:
        if self.task.done():  # the body was abandoned without closing its iterator
            self.handle = None
            return
        now = self.loop.time()
        if self.reading and now - self.began >= self.idle:
            self.handle = None
            self.fired = True
            self.task.cancel()
            return
        self.handle = self.loop.call_at((self.began if self.reading else now) + self.idle, self._check)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

"""The idle limit of upstream bodies: one watchdog per body; a read that waits too long fails as `stalled`,
time the consumer spends between reads (a slow client) does not count."""

from __future__ import annotations

import asyncio

import pytest

from app.proxy.upstream import UpstreamFailure, iter_body, read_body


class _Content:
    def __init__(self, gaps: list[float]) -> None:
        self.gaps = list(gaps)

    async def readany(self) -> bytes:
        if not self.gaps:
            return b""
        await asyncio.sleep(self.gaps.pop(0))
        return b"x"


class _Resp:
    content_length = None

    def __init__(self, gaps: list[float]) -> None:
        self.content = _Content(gaps)


def test_slow_consumer_is_not_a_stall_and_one_timer_serves_the_body(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from app.proxy import upstream

    checks = 0
    real = upstream._IdleWatchdog._check

    def counting(self):  # type: ignore[no-untyped-def]
        nonlocal checks
        checks += 1
        real(self)

    monkeypatch.setattr(upstream._IdleWatchdog, "_check", counting)

    async def run() -> int:
        n = 0
        async for _ in iter_body(_Resp([0.01] * 30), idle=0.2):
            n += 1
            if n == 3:
                await asyncio.sleep(0.3)  # the client is slow: longer than `idle`, but not a read
        return n

    assert asyncio.run(run()) == 30
    assert checks <= 6, checks  # the timer fired about once per `idle` period, not once per read


def test_stalled_read_fails_and_other_cancels_still_propagate() -> None:
    async def stalled() -> None:
        async for _ in iter_body(_Resp([0.01, 0.01, 5.0]), idle=0.1):
            pass

    with pytest.raises(UpstreamFailure) as info:
        asyncio.run(stalled())
    assert info.value.kind == "stalled"

    async def whole() -> bytes:
        return await read_body(_Resp([0.01, 5.0]), idle=0.1)  # type: ignore[arg-type]

    with pytest.raises(UpstreamFailure, match="stopped sending"):
        asyncio.run(whole())
    assert asyncio.run(read_body(_Resp([0.01, 0.01]), idle=0.5)) == b"xx"  # type: ignore[arg-type]

    async def cancelled_by_caller() -> None:
        task = asyncio.create_task(stalled())
        await asyncio.sleep(0.03)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled_by_caller())

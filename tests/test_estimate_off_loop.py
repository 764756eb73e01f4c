"""A stream that ends without its usage chunk gets its output counted with the tokenizer: on a long answer
that is milliseconds of CPU, and it must not run on the proxy's event loop (every other call waits on it) nor
hold back the end of the answer. The count is stretched here (a slow `count_text`) so that a blocked loop
or a delayed answer shows; the row still gets the counted tokens, marked estimated."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import logged_calls
from test_usage_shapes import MESSAGES, shapes_config

from app.core import tokens
from app.proxy import accounting
from app.testing.script import Reply

SLOW = 0.6  # seconds the stretched count takes
LONG = " ".join(f"word{i}" for i in range(6_000))  # ~50 KB of answer


@pytest.fixture
def config_path(tmp_path: Path, mock) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(shapes_config(mock.base_url))
    return path


@pytest.fixture
def slow_count(monkeypatch):  # type: ignore[no-untyped-def]
    """The tokenizer loaded (as on a proxy that needed it once), its count of a long text stretched to SLOW."""
    accounting.load_tokenizer()
    real = tokens.count_text
    started = threading.Event()
    threads: list[str] = []

    def slow(text: str) -> int:
        if len(text) > 10_000:
            threads.append(threading.current_thread().name)
            started.set()
            time.sleep(SLOW)
        return real(text)

    monkeypatch.setattr(tokens, "count_text", slow)
    return started, threads, real


@pytest.mark.parametrize("keep_alive", [False, True], ids=["client-closes", "keep-alive"])
def test_the_output_count_of_a_stream_without_usage_runs_off_the_event_loop(
    proxy, mock, token, core, slow_count, keep_alive
) -> None:  # type: ignore[no-untyped-def]
    """A client that closes its connection after the answer has its handler cancelled by aiohttp while the
    count runs (the row must still get it, without the loop waiting); a kept-alive one does not."""
    started, threads, real = slow_count
    mock.enqueue(Reply(text=LONG, usage_shape="none", stream_chunks=200))
    lag: list[float] = []
    health: list[float] = []

    def probe() -> None:  # while the count runs: the loop's lag, and the proxy still answering
        if not started.wait(10):
            return
        ran = threading.Event()
        t0 = time.perf_counter()
        proxy._loop.call_soon_threadsafe(ran.set)
        ran.wait(10)
        lag.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert httpx.get(f"{proxy.url}/health", timeout=10).status_code == 200
        health.append(time.perf_counter() - t0)

    prober = threading.Thread(target=probe)
    prober.start()
    body = {"model": "openai/m-openai", "messages": MESSAGES, "stream": True}
    with httpx.Client(timeout=20) as client:
        t0 = time.perf_counter()
        with client.stream(
            "POST",
            f"{proxy.url}/v1/chat/completions",
            json=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Connection": "keep-alive" if keep_alive else "close",
            },
        ) as r:
            r.read()  # the whole answer, to its last byte
        answered = time.perf_counter() - t0
        prober.join(15)
    assert r.status_code == 200
    assert answered < SLOW / 2, f"the answer waited {answered:.3f} s for the count"
    assert lag and lag[0] < SLOW / 2, f"the event loop was blocked {lag[0]:.3f} s by the count"
    assert health and health[0] < SLOW / 2, f"/health waited {health[0]:.3f} s"
    assert threads and "downshift-proxy" not in threads  # the proxy's event loop thread
    (row,) = logged_calls(core)
    assert row["outcome"] == "ok" and row["usage_estimated"] and row["cost_source"] == "estimated"
    assert row["output_tokens"] == real(LONG)  # counted with the tokenizer, not the ~4 bytes per token guess

"""Provider faults over real sockets: the mock upstream misbehaves on cue, the proxy falls back before any
byte reached the client, ends a started stream with an error in the client's own protocol, honours a short
Retry-After, and stops the upstream when the client hangs up. Every call leaves one row that says what
happened, with the usage seen so far."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest
from conftest import logged_calls

from app.proxy.pipeline import RETRY_AFTER_MAX_S, retry_after
from app.testing.ports import dead_url
from app.testing.script import Fault, Reply, Usage

TIMEOUTS = "timeouts = { connect = 2, first_byte = 1.5, idle = 1 }"
TEXT = " ".join(f"word{i}" for i in range(12))
MESSAGES = [{"role": "user", "content": "list the files"}]


def fault_config_text(mock_url: str, dead_url: str) -> str:
    """Providers on the mock with short timeouts, so stalls are found in a second."""
    return f"""
[proxy]
host = "127.0.0.1"
port = 0

[[providers]]
name = "cheapco"
base_url = "{mock_url}/v1"
kind = "openrouter"
{TIMEOUTS}

[[providers]]
name = "backup"
base_url = "{mock_url}/v1"
{TIMEOUTS}

[[providers]]
name = "premium"
base_url = "{mock_url}/v1"
api = "anthropic"
kind = "anthropic"
{TIMEOUTS}

[[providers]]
name = "deadco"
base_url = "{dead_url}"
{TIMEOUTS}

[[presets]]
name = "cheap"
default = "cheapco/qwen/qwen3-coder"
fallback = ["backup/deepseek/deepseek-chat"]

[[presets]]
name = "solo"
default = "cheapco/qwen/qwen3-coder"

[[presets]]
name = "premium"
default = "premium/claude-sonnet-4-6"
fallback = ["backup/deepseek/deepseek-chat"]

[[presets]]
name = "dead"
default = "deadco/qwen/qwen3-coder"

[routing]
active = "cheap"
premium = "premium"
"""


@pytest.fixture
def config_path(tmp_path: Path, mock) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(fault_config_text(mock.base_url, dead_url()))
    return path


def use(core, preset: str) -> None:  # type: ignore[no-untyped-def]
    core.config_store.update(lambda c: c.with_active(preset))


# ----------------------------------------------------------------------------------------------- clients


def request(proxy, token: str, api: str, *, stream: bool, **extra):  # type: ignore[no-untyped-def]
    """(method, url, headers, json) for one call in the client's API."""
    if api == "anthropic":
        return (
            f"{proxy.url}/v1/messages",
            {"x-api-key": token, "anthropic-version": "2023-06-01"},
            {"model": "default", "max_tokens": 1024, "messages": MESSAGES, "stream": stream, **extra},
        )
    if api == "responses":
        return (
            f"{proxy.url}/v1/responses",
            {"Authorization": f"Bearer {token}"},
            {"model": "default", "input": "list the files", "stream": stream, **extra},
        )
    return (
        f"{proxy.url}/v1/chat/completions",
        {"Authorization": f"Bearer {token}"},
        {"model": "default", "messages": MESSAGES, "stream": stream, **extra},
    )


def call(proxy, token: str, api: str, *, stream: bool = False) -> httpx.Response:  # type: ignore[no-untyped-def]
    url, headers, body = request(proxy, token, api, stream=stream)
    return httpx.post(url, headers=headers, json=body, timeout=30)


def stream_events(proxy, token: str, api: str) -> tuple[int, list[tuple[str, object]]]:  # type: ignore[no-untyped-def]
    """Status and the (event name, parsed data) of a streamed call, read to the end."""
    url, headers, body = request(proxy, token, api, stream=True)
    events: list[tuple[str, object]] = []
    with httpx.stream("POST", url, headers=headers, json=body, timeout=30) as r:
        raw = r.read()
        status = r.status_code
    if status != 200:
        return status, [("", orjson.loads(raw))]
    for block in raw.decode().split("\n\n"):
        name, data = "", None
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                payload = line[5:].strip()
                data = payload if payload == "[DONE]" else orjson.loads(payload)
        if data is not None:
            events.append((name, data))
    return status, events


def text_of(api: str, events: list[tuple[str, object]]) -> str:
    out = []
    for _, data in events:
        if not isinstance(data, dict):
            continue
        if api == "anthropic" and data.get("type") == "content_block_delta":
            out.append(data["delta"].get("text", ""))
        elif api == "openai":
            for choice in data.get("choices") or ():
                out.append((choice.get("delta") or {}).get("content") or "")
        elif api == "responses" and data.get("type") == "response.output_text.delta":
            out.append(data["delta"])
    return "".join(out)


def answer_text(api: str, r: httpx.Response) -> str:
    data = r.json()
    if api == "anthropic":
        return "".join(b.get("text", "") for b in data["content"])
    return data["choices"][0]["message"]["content"]


def assert_error_shape(api: str, body: object) -> None:
    assert isinstance(body, dict)
    if api == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] and body["error"]["message"]
    else:
        assert body["error"]["message"] and body["error"]["type"]


def chain(row: dict) -> list[dict]:
    return orjson.loads(row["fallback_chain"])


def mock_busy(mock) -> int:  # type: ignore[no-untyped-def]
    """Upstream handlers still running on the mock (each one is a request the proxy has not let go)."""
    return len(mock._tasks)


# ----------------------------------------------------------------------------------------------- before any byte

BEFORE_BYTES = {
    "refuse": Fault("refuse"),
    "stall_before_headers": Fault("stall_before_headers", duration=5),
    "429": Reply(status=429),
    "500": Reply(status=500),
    "502": Reply(status=502),
    "529": Reply(status=529),
    "malformed_json": Fault("malformed_json"),
    "reset_before_first_event": Fault("reset_mid_stream", after_chunks=0),
    "malformed_first_event": Fault("malformed_sse", after_chunks=0),
    "stall_before_first_event": Fault("stall_mid_stream", after_chunks=0, duration=5),
    "error_event_first": Fault("error_event", after_chunks=0),
}
_STREAM_ONLY = {
    "reset_before_first_event",
    "malformed_first_event",
    "stall_before_first_event",
    "error_event_first",
}


@pytest.mark.parametrize("api", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("fault", list(BEFORE_BYTES))
def test_fault_before_any_byte_falls_back(proxy, mock, token, core, api, stream, fault) -> None:  # type: ignore[no-untyped-def]
    if fault in _STREAM_ONLY and not stream:
        pytest.skip("a stream fault")
    mock.enqueue(BEFORE_BYTES[fault], Reply(text="from backup"))
    if stream:
        status, events = stream_events(proxy, token, api)
        assert status == 200, events
        assert text_of(api, events) == "from backup"
        assert not any(
            isinstance(d, dict) and (d.get("error") or d.get("type") == "error") for _, d in events
        )
    else:
        r = call(proxy, token, api)
        assert r.status_code == 200, r.text
        assert answer_text(api, r) == "from backup"
    assert [req.model for req in mock.requests] == ["qwen/qwen3-coder", "deepseek/deepseek-chat"]
    (row,) = logged_calls(core)
    assert (row["outcome"], row["status"], row["provider"], row["attempts"]) == ("ok", 200, "backup", 2)
    first, second = chain(row)
    assert first["target"] == "cheapco/qwen/qwen3-coder" and first["error_kind"], first
    assert second["target"] == "backup/deepseek/deepseek-chat" and second["error_kind"] is None


def test_anthropic_upstream_fault_falls_back_to_an_openai_target(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    use(core, "premium")
    mock.enqueue(Reply(status=529), Reply(text="from backup"))
    status, events = stream_events(proxy, token, "anthropic")
    assert status == 200 and text_of("anthropic", events) == "from backup"
    assert [(r.path, r.model) for r in mock.requests] == [
        ("/v1/messages", "claude-sonnet-4-6"),
        ("/v1/chat/completions", "deepseek/deepseek-chat"),
    ]
    (row,) = logged_calls(core)
    assert row["outcome"] == "ok" and [a["error_kind"] for a in chain(row)] == ["http_529", None]


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_every_target_failing_is_a_clear_error_in_the_client_shape(proxy, mock, token, core, api) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Fault("malformed_json"), Fault("malformed_json"))
    r = call(proxy, token, api)
    assert r.status_code == 502
    assert_error_shape(api, r.json())
    mock.enqueue(Fault("stall_before_headers", duration=5), Fault("stall_before_headers", duration=5))
    r = call(proxy, token, api, stream=True)
    assert r.status_code == 504
    assert_error_shape(api, r.json())
    rows = logged_calls(core)
    assert [(x["outcome"], x["status"], x["error_kind"], x["attempts"]) for x in rows] == [
        ("error", 502, "bad_upstream_json", 2),
        ("error", 504, "timeout", 2),
    ]


def test_refused_connection_on_the_only_target_is_a_502(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    use(core, "dead")
    r = call(proxy, token, "anthropic")
    assert r.status_code == 502
    assert_error_shape("anthropic", r.json())
    (row,) = logged_calls(core)
    assert (row["outcome"], row["error_kind"]) == ("error", "connect_error")


# ----------------------------------------------------------------------------------------------- Retry-After


def test_short_retry_after_on_the_last_target_is_waited_once(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    use(core, "solo")
    mock.enqueue(Reply(status=429, headers={"Retry-After": "1"}), Reply(text="after the wait"))
    start = time.monotonic()
    r = call(proxy, token, "openai")
    elapsed = time.monotonic() - start
    assert r.status_code == 200 and answer_text("openai", r) == "after the wait"
    assert 0.9 <= elapsed < 3
    first, second = mock.requests
    assert second.time - first.time >= 0.95
    (row,) = logged_calls(core)
    assert row["outcome"] == "ok" and [a["status"] for a in chain(row)] == [429, 200]


def test_retry_after_is_honoured_only_once(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    use(core, "solo")
    mock.enqueue(*[Reply(status=503, headers={"Retry-After": "0.2"})] * 3)
    r = call(proxy, token, "anthropic")
    assert r.status_code == 503 and r.headers["retry-after"] == "0.2"
    assert_error_shape("anthropic", r.json())
    assert len(mock.requests) == 2
    (row,) = logged_calls(core)
    assert (row["outcome"], row["error_kind"], row["attempts"]) == ("error", "upstream_503", 2)


def test_long_retry_after_goes_back_to_the_client_at_once(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    use(core, "solo")
    mock.enqueue(Reply(status=429, headers={"Retry-After": "30"}))
    start = time.monotonic()
    r = call(proxy, token, "openai")
    assert time.monotonic() - start < RETRY_AFTER_MAX_S
    assert r.status_code == 429 and r.headers["retry-after"] == "30"
    assert_error_shape("openai", r.json())
    assert len(mock.requests) == 1


def test_retry_after_with_a_fallback_left_moves_on_without_waiting(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(status=429, headers={"Retry-After": "2"}), Reply(text="from backup"))
    start = time.monotonic()
    r = call(proxy, token, "openai")
    assert time.monotonic() - start < 1.0
    assert answer_text("openai", r) == "from backup"


def test_retry_after_forms() -> None:
    assert retry_after({"Retry-After": "1.5"}) == 1.5
    assert retry_after({"retry-after-ms": "250"}) == 0.25
    assert retry_after({"Retry-After": "-3"}) == 0.0
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None
    from email.utils import formatdate

    assert 8 <= retry_after({"Retry-After": formatdate(time.time() + 10, usegmt=True)}) <= 10  # type: ignore[operator]


# ----------------------------------------------------------------------------------------------- after bytes were sent

MID_STREAM = {
    "reset_mid_stream": "upstream_disconnect",
    "close_mid_stream": "upstream_disconnect",
    "truncate": "truncated",
    "stall_mid_stream": "stalled",
    "malformed_sse": "bad_upstream_sse",
    "error_event": "upstream_stream_error",
}


@pytest.mark.parametrize("api", ["openai", "anthropic", "responses"])
@pytest.mark.parametrize("fault", list(MID_STREAM))
def test_fault_after_bytes_ends_the_stream_with_an_error_in_the_client_protocol(
    proxy, mock, token, core, api, fault
) -> None:  # type: ignore[no-untyped-def]
    # words 50 ms apart, so the first ones reach the client before the fault (a fault that arrives in the
    # same read as the first events is found before any byte is sent, and falls back instead)
    reply = Reply(text=TEXT, usage=Usage(prompt=900, completion=12), chunk_delay=0.05)
    mock.enqueue(Fault(fault, after_chunks=4, duration=5, reply=reply))
    status, events = stream_events(proxy, token, api)
    assert status == 200
    seen = text_of(api, events)
    assert seen and TEXT.startswith(seen) and seen != TEXT  # part of the answer went out
    if api == "openai":
        *_, (_, error_chunk), (_, done) = events
        assert done == "[DONE]"
        assert_error_shape("openai", error_chunk)
    elif api == "anthropic":
        name, error_event = events[-1]
        assert name == "error"
        assert_error_shape("anthropic", error_event)
        assert not any(d.get("type") == "message_stop" for _, d in events if isinstance(d, dict))
    else:
        name, failed = events[-1]
        assert name == "response.failed" and failed["response"]["status"] == "failed"  # type: ignore[index]
        assert failed["response"]["error"]["message"]  # type: ignore[index]
    assert len(mock.requests) == 1  # too late to fall back: the client already has part of an answer
    (row,) = logged_calls(core)
    assert (row["outcome"], row["status"], row["error_kind"]) == ("error", 200, MID_STREAM[fault])
    assert row["error_message"]
    # the usage seen so far: the prompt (estimated from the request, the provider never reported it)
    # and the words that went by, priced
    assert row["input_tokens"] > 0 and 1 <= row["output_tokens"] <= 12
    assert row["cost_usd"] is not None and row["cost_usd"] > 0


def test_anthropic_passthrough_stream_break_keeps_the_reported_input(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    use(core, "premium")
    mock.enqueue(
        Fault(
            "reset_mid_stream",
            after_chunks=5,
            reply=Reply(text=TEXT, usage=Usage(prompt=900, completion=12), chunk_delay=0.05),
        )
    )
    status, events = stream_events(proxy, token, "anthropic")
    assert status == 200 and events[-1][0] == "error"
    (row,) = logged_calls(core)
    assert (row["outcome"], row["error_kind"], row["provider"]) == ("error", "upstream_disconnect", "premium")
    assert row["input_tokens"] == 900  # from message_start: what the provider said, not an estimate
    assert row["output_tokens"] >= 1


def test_sdks_raise_on_a_broken_stream(proxy, mock, token) -> None:  # type: ignore[no-untyped-def]
    import anthropic
    import openai

    mock.enqueue(Fault("reset_mid_stream", after_chunks=4, reply=Reply(text=TEXT, chunk_delay=0.05)))
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=token, max_retries=0)
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model="default", messages=MESSAGES, stream=True):  # type: ignore[arg-type]
            pass
    mock.enqueue(Fault("reset_mid_stream", after_chunks=4, reply=Reply(text=TEXT, chunk_delay=0.05)))
    claude = anthropic.Anthropic(base_url=proxy.url, api_key=token, max_retries=0)
    with (
        pytest.raises(anthropic.APIStatusError),
        claude.messages.stream(model="default", max_tokens=100, messages=MESSAGES) as s,
    ):  # type: ignore[arg-type]
        for _ in s:
            pass


# ----------------------------------------------------------------------------------------------- client disconnects


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_client_disconnect_cancels_the_upstream_and_logs_cancelled(proxy, mock, token, core, api) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(
        Reply(text=" ".join(f"w{i}" for i in range(60)), stream_chunks=60, chunk_delay=0.1)
    )  # ~6 s of answer
    url, headers, body = request(proxy, token, api, stream=True)
    with httpx.stream("POST", url, headers=headers, json=body, timeout=30) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if "w2" in line:  # a few words in, the user hits Esc
                break
    hung_up = time.monotonic()
    mock.wait_for_requests(1)
    while mock_busy(mock) and time.monotonic() - hung_up < 3:
        time.sleep(0.01)
    assert mock_busy(mock) == 0, "the upstream request is still running"
    stopped_after = time.monotonic() - hung_up
    assert stopped_after < 1.0, (
        stopped_after
    )  # the answer had ~5 s to go: the provider stopped being read at once
    (row,) = logged_calls(core)
    assert (row["outcome"], row["status"], row["error_kind"]) == ("cancelled", 499, "client_disconnected")
    assert row["output_tokens"] >= 2 and row["input_tokens"] > 0  # what was generated until then


def test_client_disconnect_while_waiting_for_headers(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Fault("stall_before_headers", duration=1.2, reply=Reply(text="late")))
    url, headers, body = request(proxy, token, "openai", stream=True)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, headers=headers, json=body, timeout=httpx.Timeout(5, read=0.3))
    mock.wait_for_requests(1)
    deadline = time.monotonic() + 3
    while mock_busy(mock) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mock_busy(mock) == 0
    (row,) = logged_calls(core)
    assert row["outcome"] == "cancelled"
    assert len(mock.requests) == 1  # no fallback for a call nobody waits for


# ----------------------------------------------------------------------------------------------- a rogue provider


class EndlessUpstream:
    """A provider that answers 200 and then never stops: SSE data without an event boundary, or a JSON
    body that goes on forever. Raw sockets, on its own thread."""

    def __init__(self, kind: str) -> None:
        import asyncio
        import threading

        self.kind = kind
        self.sent = 0
        ready = threading.Event()

        async def handle(reader, writer) -> None:  # type: ignore[no-untyped-def]
            try:
                await reader.readuntil(b"\r\n\r\n")
                ctype = b"text/event-stream" if kind == "sse" else b"application/json"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                piece = (
                    b'data: {"choices": [{"delta": {"content": "' if kind == "sse" else b'{"id": "'
                ) + b"x" * 8000
                while True:
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.sent += len(piece)
                    await writer.drain()
                    piece = b"x" * 8000
            except Exception:  # the proxy hung up: what this provider is for
                pass
            finally:  # also when cancelled at close: the transport is closed, not left to the collector
                writer.close()

        async def serve() -> None:
            self.loop, self.stop = asyncio.get_running_loop(), asyncio.Event()
            async with await asyncio.start_server(handle, "127.0.0.1", 0) as server:
                self.port = server.sockets[0].getsockname()[1]
                ready.set()
                await self.stop.wait()
            # asyncio.run then cancels the handlers left and closes the loop (and its self-pipe sockets)

        self.thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
        self.thread.start()
        ready.wait(5)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5)


@pytest.mark.parametrize("kind", ["sse", "json"])
def test_a_provider_that_never_stops_sending_is_cut_off(mock, tmp_path: Path, monkeypatch, kind) -> None:  # type: ignore[no-untyped-def]
    from app.core.engine import Core
    from app.proxy import pipeline, upstream
    from app.proxy.server import ProxyThread

    monkeypatch.setattr(pipeline, "MAX_EVENT_BYTES", 256 * 1024)
    monkeypatch.setattr(upstream, "MAX_ANSWER_BYTES", 1024 * 1024)
    rogue = EndlessUpstream(kind)
    try:
        path = tmp_path / "config.toml"
        path.write_text(fault_config_text(mock.base_url, f"http://127.0.0.1:{rogue.port}/v1"))
        core = Core(path, f"sqlite:///{tmp_path / 'log.db'}")
        core.config_store.update(lambda c: c.with_active("dead"))  # its only target is the rogue
        try:
            with ProxyThread(core, port=0) as proxy:
                r = call(proxy, core.token(), "openai", stream=kind == "sse")
                assert r.status_code == 502
                assert_error_shape("openai", r.json())
            (row,) = logged_calls(core)
            assert row["error_kind"] == ("bad_upstream_sse" if kind == "sse" else "too_large")
        finally:
            core.close()
        assert rogue.sent < 8 * 1024 * 1024  # cut off near the limit, not read forever
    finally:
        rogue.close()

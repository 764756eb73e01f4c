"""The mock upstream over real sockets: raw HTTP, the official SDKs, scripting, faults and timing.

The SDK tests are the fidelity check: if openai/anthropic parse what the mock sends (including
their stream accumulators), a proxy tested against the mock is tested against the real wire formats.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from app.testing.agent_traffic import anthropic_agent_request, openai_agent_request
from app.testing.mock_upstream import Fault, MockUpstream, RecordedRequest, Reply, ToolCall, Usage
from app.testing.ports import dead_url

MSGS = [{"role": "user", "content": "say hi"}]


@pytest.fixture
def mock() -> Iterator[MockUpstream]:
    with MockUpstream() as m:
        yield m


# Clients are built once per session (each costs an SSL context); tests point copies at their mock.
@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as c:
        yield c


@pytest.fixture(scope="session")
def oai_session() -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=dead_url(), api_key="sk-test", max_retries=0, timeout=5) as c:
        yield c


@pytest.fixture(scope="session")
def ant_session() -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=dead_url(""), api_key="sk-ant-test", max_retries=0, timeout=5) as c:
        yield c


@pytest.fixture
def oai(mock: MockUpstream, oai_session: openai.OpenAI) -> openai.OpenAI:
    return oai_session.with_options(base_url=mock.base_url + "/v1")


@pytest.fixture
def ant(mock: MockUpstream, ant_session: anthropic.Anthropic) -> anthropic.Anthropic:
    return ant_session.with_options(base_url=mock.base_url)


def sse_events(raw: bytes) -> list[tuple[str, bytes]]:
    """(event name, data) pairs of a complete SSE body."""
    out = []
    for block in raw.split(b"\n\n"):
        if not block.strip():
            continue
        name, data = "", b""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        out.append((name, data))
    return out


def post_stream(http: httpx.Client, mock: MockUpstream, path: str, body: dict[str, Any]) -> bytes:
    with http.stream("POST", mock.base_url + path, json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return r.read()


# ---------------------------------------------------------------- OpenAI format


def test_openai_default_echoes_and_records(mock: MockUpstream, oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(model="deepseek/deepseek-chat-v3.1", messages=MSGS)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "Mock reply to: say hi"
    assert r.model == "deepseek/deepseek-chat-v3.1"
    assert r.choices[0].finish_reason == "stop"
    req = mock.last_request
    assert req is not None and req.path == "/v1/chat/completions" and req.api == "openai"
    assert req.api_key == "sk-test" and req.headers["authorization"] == "Bearer sk-test"
    assert req.json["messages"] == MSGS
    assert r.usage is not None and r.usage.prompt_tokens == len(req.body) // 4
    assert r.usage.completion_tokens == 5 and r.usage.total_tokens == r.usage.prompt_tokens + 5


def test_openai_usage_details_and_cost(mock: MockUpstream, oai: openai.OpenAI, http: httpx.Client) -> None:
    mock.enqueue(
        Reply(
            text="done",
            reasoning="first think",
            usage=Usage(prompt=100, completion=20, cached=10, reasoning=7),
            cost=0.00042,
            model="m2",
        )
    )
    raw = http.post(mock.base_url + "/v1/chat/completions", json={"model": "m", "messages": MSGS}).json()
    usage = raw["usage"]
    assert usage["prompt_tokens"] == 100 and usage["completion_tokens"] == 20 and usage["total_tokens"] == 120
    assert usage["prompt_tokens_details"]["cached_tokens"] == 10
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 7
    assert usage["cost"] == 0.00042
    assert raw["model"] == "m2"
    assert raw["choices"][0]["message"]["reasoning_content"] == "first think"


def test_openai_stream_with_usage_chunk(mock: MockUpstream, oai: openai.OpenAI) -> None:
    mock.enqueue(Reply(text="one two three four five six", stream_chunks=4, usage=Usage(cached=3)))
    stream = oai.chat.completions.create(
        model="m",
        messages=MSGS,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == "one two three four five six" and len(pieces) == 4
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (
        last.usage.prompt_tokens_details is not None and last.usage.prompt_tokens_details.cached_tokens == 3
    )
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_openai_stream_without_usage_option_has_no_usage(mock: MockUpstream, http: httpx.Client) -> None:
    raw = post_stream(http, mock, "/v1/chat/completions", {"model": "m", "messages": MSGS, "stream": True})
    events = sse_events(raw)
    assert events[-1] == ("", b"[DONE]") and raw.endswith(b"data: [DONE]\n\n")
    chunks = [orjson.loads(d) for _, d in events[:-1]]
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"


def test_openai_always_stream_usage_option(http: httpx.Client) -> None:
    with MockUpstream(always_stream_usage=True) as mock:
        raw = post_stream(
            http, mock, "/v1/chat/completions", {"model": "m", "messages": MSGS, "stream": True}
        )
    chunks = [orjson.loads(d) for _, d in sse_events(raw)[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] > 0


def test_openai_streamed_tool_calls(mock: MockUpstream, oai: openai.OpenAI, http: httpx.Client) -> None:
    calls = [
        ToolCall("read_file", {"path": "src/app.py", "limit": 200}),
        ToolCall("grep", {"pattern": "def main", "path": "src"}),
    ]
    mock.enqueue(Reply(text="Reading.", tool_calls=calls, args_chunk_chars=5))
    raw = post_stream(http, mock, "/v1/chat/completions", {"model": "m", "messages": MSGS, "stream": True})
    deltas = [orjson.loads(d)["choices"][0] for _, d in sse_events(raw)[:-1]]
    tool_deltas = [tc for d in deltas for tc in d["delta"].get("tool_calls", [])]
    firsts = [tc for tc in tool_deltas if "id" in tc]
    assert [f["index"] for f in firsts] == [0, 1]
    for f in firsts:
        assert f["type"] == "function" and f["function"]["arguments"] == "" and f["function"]["name"]
    args = {0: "", 1: ""}
    for tc in tool_deltas:
        if "id" not in tc:
            assert set(tc) == {"index", "function"} and set(tc["function"]) == {"arguments"}
            args[tc["index"]] += tc["function"]["arguments"]
    assert sum("id" not in tc for tc in tool_deltas) > 6  # arguments really arrive in pieces
    assert orjson.loads(args[0]) == {"path": "src/app.py", "limit": 200}
    assert deltas[-1]["finish_reason"] == "tool_calls"

    # The SDK's own accumulator reassembles them the same way.
    mock.enqueue(Reply(tool_calls=calls))
    with oai.chat.completions.stream(model="m", messages=MSGS) as s:  # type: ignore[arg-type]
        final = s.get_final_completion()
    msg = final.choices[0].message
    assert msg.content is None
    assert [t.function.name for t in msg.tool_calls or []] == ["read_file", "grep"]
    assert orjson.loads(msg.tool_calls[1].function.arguments) == {"pattern": "def main", "path": "src"}  # type: ignore[index,union-attr]
    assert msg.tool_calls[0].id != msg.tool_calls[1].id  # type: ignore[index]


def test_openai_reasoning_deltas_come_first(mock: MockUpstream, http: httpx.Client) -> None:
    mock.enqueue(Reply(text="answer", reasoning="step one then two"))
    raw = post_stream(http, mock, "/v1/chat/completions", {"model": "m", "messages": MSGS, "stream": True})
    deltas = [orjson.loads(d)["choices"][0]["delta"] for _, d in sse_events(raw)[:-1]]
    kinds = [
        ("r" if d.get("reasoning_content") else "c")
        for d in deltas
        if d.get("reasoning_content") or d.get("content")
    ]
    assert kinds == ["r", "r", "r", "r", "c"]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "step one then two"


def test_text_tool_call_and_finish_translation(
    mock: MockUpstream, oai: openai.OpenAI, ant: anthropic.Anthropic
) -> None:
    mock.enqueue(
        Reply(text="I will read it.", text_tool_call=ToolCall("read_file", {"path": "a.py"}), finish="length")
    )
    r = oai.chat.completions.create(model="m", messages=MSGS)  # type: ignore[arg-type]
    content = r.choices[0].message.content or ""
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason == "length"
    call = content.split("<tool_call>")[1].split("</tool_call>")[0]
    assert orjson.loads(call) == {"name": "read_file", "arguments": {"path": "a.py"}}
    mock.enqueue(Reply(text="cut", finish="length"))
    m = ant.messages.create(model="claude", max_tokens=10, messages=MSGS)  # type: ignore[arg-type]
    assert m.stop_reason == "max_tokens"


# ---------------------------------------------------------------- Anthropic format


def test_anthropic_message_blocks_and_cache_usage(mock: MockUpstream, ant: anthropic.Anthropic) -> None:
    usage = Usage(prompt=1000, completion=50, cached=600, cache_write=100, cache_write_1h=50)
    mock.enqueue(
        Reply(
            text="Let me look.",
            reasoning="The user wants a file.",
            tool_calls=[ToolCall("read_file", {"path": "a.py"}, id="toolu_fixed")],
            usage=usage,
        )
    )
    m = ant.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MSGS)  # type: ignore[arg-type]
    assert [b.type for b in m.content] == ["thinking", "text", "tool_use"]
    thinking, text, tool = m.content
    assert thinking.thinking == "The user wants a file." and thinking.signature  # type: ignore[union-attr]
    assert text.text == "Let me look."  # type: ignore[union-attr]
    assert (tool.id, tool.name, tool.input) == ("toolu_fixed", "read_file", {"path": "a.py"})  # type: ignore[union-attr]
    assert m.stop_reason == "tool_use" and m.model == "claude-sonnet-4-6"
    u = m.usage
    assert (u.input_tokens, u.output_tokens) == (250, 50)
    assert (u.cache_read_input_tokens, u.cache_creation_input_tokens) == (600, 150)
    assert u.cache_creation is not None
    assert (u.cache_creation.ephemeral_5m_input_tokens, u.cache_creation.ephemeral_1h_input_tokens) == (
        100,
        50,
    )
    req = mock.last_request
    assert req is not None and req.api == "anthropic" and req.api_key == "sk-ant-test"
    assert req.headers["anthropic-version"]


def test_anthropic_stream_event_sequence(mock: MockUpstream, http: httpx.Client) -> None:
    mock.enqueue(
        Reply(
            text="hello there",
            reasoning="hmm",
            tool_calls=[ToolCall("bash", {"command": "ls -la"})],
            args_chunk_chars=4,
        )
    )
    raw = post_stream(
        http, mock, "/v1/messages", {"model": "claude", "max_tokens": 5, "messages": MSGS, "stream": True}
    )
    events = sse_events(raw)
    names = [n for n, _ in events]
    for name, data in events:
        assert orjson.loads(data)["type"] == name
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 3
    deltas = [orjson.loads(d)["delta"] for n, d in events if n == "content_block_delta"]
    types = [d["type"] for d in deltas]
    assert types[:2] == ["thinking_delta", "signature_delta"]
    assert types[2:4] == ["text_delta", "text_delta"]
    partial = [d["partial_json"] for d in deltas if d["type"] == "input_json_delta"]
    assert partial[0] == "" and len(partial) > 3 and orjson.loads("".join(partial)) == {"command": "ls -la"}
    final = orjson.loads(events[-2][1])
    assert final["delta"]["stop_reason"] == "tool_use" and final["usage"]["output_tokens"] > 0


def test_anthropic_sdk_stream_accumulates(mock: MockUpstream, ant: anthropic.Anthropic) -> None:
    mock.enqueue(
        Reply(
            text="alpha beta gamma",
            reasoning="think hard",
            stream_chunks=3,
            tool_calls=[ToolCall("edit_file", {"path": "x.py", "old": "a", "new": "b"})],
            usage=Usage(cached=40, cache_write=5),
        )
    )
    with ant.messages.stream(model="claude", max_tokens=50, messages=MSGS) as s:  # type: ignore[arg-type]
        texts = list(s.text_stream)
        m = s.get_final_message()
    assert "".join(texts) == "alpha beta gamma" and len(texts) == 3
    assert [b.type for b in m.content] == ["thinking", "text", "tool_use"]
    assert m.content[0].signature  # type: ignore[union-attr]
    assert m.content[2].input == {"path": "x.py", "old": "a", "new": "b"}  # type: ignore[union-attr]
    assert m.usage.cache_read_input_tokens == 40 and m.usage.cache_creation_input_tokens == 5
    assert m.stop_reason == "tool_use"


def test_count_tokens_and_models(
    mock: MockUpstream, ant: anthropic.Anthropic, oai: openai.OpenAI, http: httpx.Client
) -> None:
    mock.enqueue(Reply(text="not for count_tokens"))
    n = ant.messages.count_tokens(model="claude", messages=MSGS)  # type: ignore[arg-type]
    assert n.input_tokens == len(mock.last_request.body) // 4  # type: ignore[union-attr]
    assert mock.pending == 1  # count_tokens does not consume generation replies
    models = {m.id: m for m in oai.models.list()}
    assert "deepseek/deepseek-chat-v3.1" in models
    raw = http.get(mock.base_url + "/v1/models").json()
    assert raw["object"] == "list"
    pricing = raw["data"][0]["pricing"]
    assert all(isinstance(v, str) for v in pricing.values()) and float(pricing["prompt"]) > 0
    mock.models = [{"id": "x/y", "pricing": {"prompt": "0.000001", "completion": "0.000002"}}]
    assert http.get(mock.base_url + "/v1/models").json()["data"][0]["pricing"]["completion"] == "0.000002"


def test_endpoint_scoped_queue(mock: MockUpstream, oai: openai.OpenAI, http: httpx.Client) -> None:
    mock.enqueue(Reply(status=503), endpoint="/v1/models")
    assert oai.chat.completions.create(model="m", messages=MSGS).choices  # type: ignore[arg-type]
    r = http.get(mock.base_url + "/v1/models")
    assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"
    assert http.get(mock.base_url + "/v1/models").status_code == 200


# ---------------------------------------------------------------- auth and errors


def test_required_key_answers_401_in_each_shape(
    oai_session: openai.OpenAI, ant_session: anthropic.Anthropic
) -> None:
    with MockUpstream(require_key="good") as mock:
        oai = oai_session.with_options(base_url=mock.base_url + "/v1", api_key="bad")
        with pytest.raises(openai.AuthenticationError) as e:
            oai.chat.completions.create(model="m", messages=MSGS)  # type: ignore[arg-type]
        assert e.value.code == "invalid_api_key"
        ant = ant_session.with_options(base_url=mock.base_url, api_key="bad")
        with pytest.raises(anthropic.AuthenticationError) as ae:
            ant.messages.create(model="c", max_tokens=5, messages=MSGS)  # type: ignore[arg-type]
        assert ae.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        ant = ant_session.with_options(base_url=mock.base_url, api_key="good")
        assert ant.messages.create(model="c", max_tokens=5, messages=MSGS).content  # type: ignore[arg-type]
        assert [r.api_key for r in mock.requests] == ["bad", "bad", "good"]


def test_429_with_retry_after(
    mock: MockUpstream, oai: openai.OpenAI, ant: anthropic.Anthropic, http: httpx.Client
) -> None:
    mock.enqueue(Reply(status=429, headers={"Retry-After": "1"}), Reply(status=429, error="slow down"))
    r = http.post(mock.base_url + "/v1/chat/completions", json={"model": "m", "messages": MSGS})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    with pytest.raises(anthropic.RateLimitError) as e:
        ant.messages.create(model="c", max_tokens=5, messages=MSGS)  # type: ignore[arg-type]
    assert e.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
        "request_id": e.value.response.headers["request-id"],
    }


def test_sdk_retries_then_succeeds(mock: MockUpstream, ant: anthropic.Anthropic) -> None:
    mock.enqueue(Reply(status=529, headers={"retry-after-ms": "10"}), Reply(text="ok now"))
    m = ant.with_options(max_retries=1).messages.create(model="c", max_tokens=5, messages=MSGS)  # type: ignore[arg-type]
    assert m.content[0].text == "ok now" and len(mock.requests) == 2  # type: ignore[union-attr]


# ---------------------------------------------------------------- faults


def test_reset_mid_stream_raises_in_client(
    mock: MockUpstream, oai: openai.OpenAI, http: httpx.Client
) -> None:
    mock.enqueue(Fault("reset_mid_stream", after_chunks=3, reply=Reply(text="a b c d e f g h")))
    got: list[bytes] = []
    with (
        pytest.raises(httpx.HTTPError),
        http.stream(
            "POST",
            mock.base_url + "/v1/chat/completions",
            json={"model": "m", "messages": MSGS, "stream": True},
        ) as r,
    ):
        for line in r.iter_lines():
            if line:
                got.append(line.encode())
    assert 1 <= len(got) <= 3 and all(line.startswith(b"data: {") for line in got)

    mock.enqueue(Fault("reset_mid_stream", after_chunks=2))
    with pytest.raises((httpx.HTTPError, openai.APIError)):  # noqa: B908
        for _ in oai.chat.completions.create(model="m", messages=MSGS, stream=True):  # type: ignore[arg-type]
            pass


def test_refuse_closes_before_response(mock: MockUpstream, http: httpx.Client) -> None:
    mock.enqueue(Fault("refuse"))
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(mock.base_url + "/v1/chat/completions", json={"model": "m", "messages": MSGS})
    assert http.post(mock.base_url + "/v1/chat/completions", json={"model": "m", "messages": MSGS}).is_success


def test_close_and_truncate_mid_stream(mock: MockUpstream, http: httpx.Client) -> None:
    body = {"model": "m", "messages": MSGS, "stream": True}
    mock.enqueue(Fault("close_mid_stream", after_chunks=2))
    with pytest.raises(httpx.RemoteProtocolError):
        post_stream(http, mock, "/v1/chat/completions", body)
    mock.enqueue(Fault("truncate", after_chunks=2))
    events = sse_events(post_stream(http, mock, "/v1/chat/completions", body))  # HTTP-level clean end
    assert len(events) == 2 and events[-1][1] != b"[DONE]"
    mock.enqueue(Fault("truncate", after_chunks=1))
    with pytest.raises(httpx.RemoteProtocolError):  # non-streaming: short body
        http.post(mock.base_url + "/v1/chat/completions", json={"model": "m", "messages": MSGS})


def test_malformed_sse_and_json(mock: MockUpstream, http: httpx.Client) -> None:
    mock.enqueue(Fault("malformed_sse", after_chunks=2), Fault("malformed_json"))
    events = sse_events(
        post_stream(http, mock, "/v1/chat/completions", {"model": "m", "messages": MSGS, "stream": True})
    )
    bad = []
    for _, data in events[:-1]:
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError:
            bad.append(data)
    assert len(bad) == 1 and events[-1][1] == b"[DONE]"
    r = http.post(mock.base_url + "/v1/messages", json={"model": "c", "messages": MSGS})
    assert r.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(r.content)


def test_error_event_mid_stream(mock: MockUpstream, ant: anthropic.Anthropic) -> None:
    mock.enqueue(Fault("error_event", after_chunks=4))
    with pytest.raises(anthropic.APIStatusError) as e:  # noqa: SIM117
        with ant.messages.stream(model="c", max_tokens=5, messages=MSGS) as s:  # type: ignore[arg-type]
            s.get_final_message()
    assert "overloaded_error" in str(e.value)


def test_stalls(mock: MockUpstream, http: httpx.Client) -> None:
    mock.enqueue(Fault("stall_before_headers", duration=30))
    with pytest.raises(httpx.ReadTimeout):
        http.post(mock.base_url + "/v1/chat/completions", json={"model": "m", "messages": MSGS}, timeout=0.1)
    mock.enqueue(Fault("stall_mid_stream", after_chunks=2, duration=0.2, reply=Reply(text="x y z")))
    t0, times = time.monotonic(), []
    with http.stream(
        "POST", mock.base_url + "/v1/chat/completions", json={"model": "m", "messages": MSGS, "stream": True}
    ) as r:
        for line in r.iter_lines():
            if line:
                times.append(time.monotonic() - t0)
    assert len(times) == 6  # role, x, y, z, finish, [DONE]: the stall delays, then the stream carries on
    assert times[2] >= 0.19 and times[1] < times[2] - 0.1


def test_stop_cuts_stalled_requests_short(http: httpx.Client) -> None:
    mock = MockUpstream().start()
    mock.enqueue(Fault("stall_before_headers", duration=60))
    with pytest.raises(httpx.ReadTimeout):
        http.post(mock.base_url + "/v1/chat/completions", json={"model": "m", "messages": MSGS}, timeout=0.1)
    t0 = time.monotonic()
    mock.stop()
    assert time.monotonic() - t0 < 2


# ---------------------------------------------------------------- timing


def test_chunk_delay_spreads_arrivals(mock: MockUpstream, http: httpx.Client) -> None:
    mock.enqueue(Reply(text="a b c d e f", stream_chunks=6, chunk_delay=0.03, first_byte_delay=0.06))
    t0 = time.monotonic()
    arrivals = []
    with http.stream(
        "POST", mock.base_url + "/v1/messages", json={"model": "c", "messages": MSGS, "stream": True}
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and '"text_delta"' in line:
                arrivals.append(time.monotonic() - t0)
    # Bounds the server guarantees whatever the client's scheduling: nothing arrives before it is sent.
    assert len(arrivals) == 6
    assert arrivals[0] >= 0.055 and arrivals[-1] >= 0.06 + 5 * 0.03 - 0.005
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:], strict=False))
    assert gaps[len(gaps) // 2] >= 0.02  # separate arrivals, not one burst


def test_latency_option(http: httpx.Client) -> None:
    with MockUpstream(latency=0.08) as mock:
        t0 = time.monotonic()
        http.get(mock.base_url + "/v1/models")
        assert time.monotonic() - t0 >= 0.075


# ---------------------------------------------------------------- scripting


def test_callable_drives_an_agent_loop(mock: MockUpstream, oai: openai.OpenAI) -> None:
    def agent(req: RecordedRequest) -> Reply:
        last = req.json["messages"][-1]
        if last["role"] == "tool":
            return Reply(text=f"The file says: {last['content']}")
        return Reply(tool_calls=[ToolCall("read_file", {"path": "notes.txt"})])

    mock.default = agent
    messages: list[dict[str, Any]] = list(MSGS)
    r = oai.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    call = r.choices[0].message.tool_calls[0]  # type: ignore[index]
    messages += [
        r.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "remember the milk"},
    ]
    r = oai.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "The file says: remember the milk"

    mock.enqueue(lambda req: 1 / 0)
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="m", messages=MSGS)  # type: ignore[arg-type]
    assert isinstance(mock.errors[-1], ZeroDivisionError)
    mock.clear()
    assert mock.requests == [] and mock.errors == []


def test_queue_order_and_wait_for_requests(mock: MockUpstream, http: httpx.Client) -> None:
    mock.enqueue(Reply(text="first"), Reply(text="second"))
    url = mock.base_url + "/v1/chat/completions?trace=1"
    texts = [
        http.post(url, json={"model": "m", "messages": MSGS}).json()["choices"][0]["message"]["content"]
        for _ in range(3)
    ]
    assert texts == ["first", "second", "Mock reply to: say hi"]
    reqs = mock.wait_for_requests(3, timeout=1)
    assert reqs[0].query == {"trace": "1"} and reqs[0].time <= reqs[2].time
    with pytest.raises(TimeoutError):
        mock.wait_for_requests(4, timeout=0.05)


def test_fault_kind_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")  # type: ignore[arg-type]


def test_bad_json_body_is_400(mock: MockUpstream, http: httpx.Client) -> None:
    r = http.post(mock.base_url + "/v1/messages", content=b"{not json", headers={"x-api-key": "k"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = http.post(mock.base_url + "/v2/other")
    assert r.status_code == 404 and "Invalid URL" in r.json()["error"]["message"]


def test_async_api() -> None:
    async def run() -> str:
        async with MockUpstream() as mock, httpx.AsyncClient() as c:
            mock.enqueue(Reply(text="async ok"))
            r = await c.post(mock.base_url + "/v1/chat/completions", json={"model": "m", "messages": MSGS})
            return r.json()["choices"][0]["message"]["content"]

    assert asyncio.run(run()) == "async ok"


def test_cli_serves_until_stopped(http: httpx.Client) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.testing.mock_upstream", "--port", "0", "--text", "cli"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        r = http.post(url + "/v1/chat/completions", json={"model": "m", "messages": MSGS}, timeout=5)
        assert r.json()["choices"][0]["message"]["content"] == "cli"
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


# ---------------------------------------------------------------- agent traffic


@pytest.mark.parametrize("factory", [openai_agent_request, anthropic_agent_request])
def test_agent_traffic_is_sized_and_deterministic(factory: Any) -> None:
    for kb in (30, 120):
        body = factory(size_kb=kb, tools=12, turns=10)
        assert abs(len(orjson.dumps(body)) - kb * 1024) < kb * 1024 * 0.02
    assert factory(seed=5) == factory(seed=5) and factory(seed=5) != factory(seed=6)
    assert len(factory(tools=30)["tools"]) == len({str(t) for t in factory(tools=30)["tools"]}) == 30
    assert factory(stream=True)["stream"] is True


def test_agent_traffic_ids_pair_up() -> None:
    body = openai_agent_request(turns=6)
    ids = [c["id"] for m in body["messages"] if m["role"] == "assistant" for c in m["tool_calls"]]
    assert ids == [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"]
    body = anthropic_agent_request(turns=6)
    uses = [b["id"] for m in body["messages"] for b in m["content"] if b["type"] == "tool_use"]
    results = [b["tool_use_id"] for m in body["messages"] for b in m["content"] if b["type"] == "tool_result"]
    assert uses == results and len(uses) >= 6


def test_agent_traffic_through_sdks(mock: MockUpstream, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    r = oai.chat.completions.create(**openai_agent_request(size_kb=40))
    assert r.usage is not None and r.usage.prompt_tokens == len(mock.last_request.body) // 4  # type: ignore[union-attr]
    assert r.usage.prompt_tokens > 9000
    with ant.messages.stream(
        **{k: v for k, v in anthropic_agent_request(size_kb=40).items() if k != "stream"}
    ) as s:
        m = s.get_final_message()
    assert m.usage.input_tokens > 9000 and mock.last_request.json["tools"]  # type: ignore[union-attr]

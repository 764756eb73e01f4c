"""The Responses API gateway over real sockets: the official `openai` SDK's `client.responses` against the
proxy, routed to an OpenAI chat-completions mock upstream."""

from __future__ import annotations

import json

import openai
import pytest
from conftest import logged_calls

from app.testing.script import Reply, ToolCall, Usage

TOOLS = [
    {
        "type": "function",
        "name": "shell",
        "description": "Run a command",
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
    }
]


@pytest.fixture
def client(proxy, token):  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=token, max_retries=0)


def test_create_non_streamed(client, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="All tests pass.", usage=Usage(prompt=200, completion=5, cached=50)))
    r = client.responses.create(model="default", input="run the tests", instructions="You are terse.")
    assert r.output_text == "All tests pass."
    assert r.usage.input_tokens == 200 and r.usage.input_tokens_details.cached_tokens == 50
    sent = mock.requests[-1].json
    assert sent["model"] == "qwen/qwen3-coder" and sent["messages"][0] == {
        "role": "system",
        "content": "You are terse.",
    }
    (row,) = logged_calls(core)
    assert row["client_api"] == "responses" and row["endpoint"] == "/v1/responses"
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (150, 50, 5)


def test_streamed_text_and_usage(client, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="alpha beta gamma", stream_chunks=3, usage=Usage(prompt=40, completion=3)))
    with client.responses.stream(model="default", input="go") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "alpha beta gamma" == final.output_text
    assert final.usage.output_tokens == 3
    (row,) = logged_calls(core)
    assert row["streamed"] and row["output_tokens"] == 3 and row["outcome"] == "ok"


def test_function_tool_loop(client, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(tool_calls=[ToolCall("shell", {"cmd": "pytest -q"})], stream_chunks=5))
    with client.responses.stream(model="default", input="test it", tools=TOOLS) as stream:
        final = stream.get_final_response()
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert call.name == "shell" and json.loads(call.arguments) == {"cmd": "pytest -q"}
    mock.enqueue(Reply(text="Fixed."))
    r = client.responses.create(
        model="default",
        tools=TOOLS,
        input=[
            {"role": "user", "content": "test it"},
            {"type": "function_call", "call_id": call.call_id, "name": "shell", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "Error: 1 failed"},
        ],
    )
    assert r.output_text == "Fixed."
    messages = mock.requests[-1].json["messages"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "Error: 1 failed"}
    rows = logged_calls(core)
    assert rows[0]["tool_calls"] == 1 and rows[0]["tool_failures"] == 0


def test_previous_response_id_unknown_is_a_clear_400(client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.BadRequestError, match="previous_response_id"):
        client.responses.create(model="default", input="x", previous_response_id="resp_unknown")


def test_previous_response_id_continues_a_kept_response(client, mock) -> None:  # type: ignore[no-untyped-def]
    """The SDK's default (store on): only the new input is sent, the proxy replays the earlier turns."""
    mock.enqueue(Reply(tool_calls=[ToolCall("shell", {"cmd": "ls"})], stream_chunks=4))
    with client.responses.stream(
        model="default", input="list files", instructions="Be brief.", tools=TOOLS
    ) as s:
        first = s.get_final_response()
    assert first.store is True
    (call,) = [item for item in first.output if item.type == "function_call"]
    mock.enqueue(Reply(text="Two files."))
    second = client.responses.create(
        model="default",
        tools=TOOLS,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "a.py b.py"}],
    )
    assert second.output_text == "Two files." and second.previous_response_id == first.id
    messages = mock.requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]  # instructions are not carried over
    assert messages[0]["content"] == "list files" and messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "a.py b.py"}
    # a chain: the third turn continues the second, which holds the first
    mock.enqueue(Reply(text="Done."))
    client.responses.create(model="default", previous_response_id=second.id, input="thanks")
    assert [m["role"] for m in mock.requests[-1].json["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]


def test_store_false_is_not_kept(client, mock) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="ok"))
    r = client.responses.create(model="default", input="x", store=False)
    assert r.store is False
    with pytest.raises(openai.BadRequestError, match="not known"):
        client.responses.create(model="default", input="y", previous_response_id=r.id)


def test_upstream_error_reaches_the_sdk(client, mock) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(status=400, error="maximum context length exceeded"))
    with pytest.raises(openai.BadRequestError, match="context length"):
        client.responses.create(model="plan", input="x")

"""The Anthropic Messages gateway over real sockets, with the official SDKs on both sides of the translation:
the `anthropic` SDK against an OpenAI-format upstream, the `openai` SDK against an Anthropic-format one."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest
from conftest import logged_calls

from app.testing.script import RecordedRequest, Reply, ToolCall, Usage

TOOLS = [
    {
        "name": "Bash",
        "description": "Run a shell command",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    }
]


@pytest.fixture
def claude(proxy, token):  # type: ignore[no-untyped-def]
    return anthropic.Anthropic(base_url=proxy.url, auth_token=token, max_retries=0)


@pytest.fixture
def premium(core):  # type: ignore[no-untyped-def]
    core.config_store.update(lambda c: c.with_active("premium"))


def test_create_translates_to_openai_and_back(claude, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="Hi there", usage=Usage(prompt=120, completion=3, cached=100)))
    msg = claude.messages.create(
        model="default", max_tokens=20000, system="Be brief.", messages=[{"role": "user", "content": "hello"}]
    )
    assert msg.content[0].text == "Hi there" and msg.stop_reason == "end_turn" and msg.model == "default"
    assert (msg.usage.input_tokens, msg.usage.cache_read_input_tokens, msg.usage.output_tokens) == (
        20,
        100,
        3,
    )
    sent = mock.requests[-1]
    assert sent.path == "/v1/chat/completions" and sent.model == "qwen/qwen3-coder"
    assert sent.json["messages"][0] == {"role": "system", "content": "Be brief."}
    (row,) = logged_calls(core)
    assert (row["client_api"], row["upstream_api"]) == ("anthropic", "openai")
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (20, 100, 3)
    assert row["cost_usd"] and row["cost_usd"] > 0


def test_stream_text_deltas_and_final_message(claude, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="one two three", stream_chunks=3, usage=Usage(prompt=50, completion=3)))
    with claude.messages.stream(
        model="default", max_tokens=100, messages=[{"role": "user", "content": "count"}]
    ) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(deltas) == "one two three" and len(deltas) == 3
    assert final.content[0].text == "one two three" and final.usage.output_tokens == 3
    (row,) = logged_calls(core)
    assert row["streamed"] and row["outcome"] == "ok" and row["output_tokens"] == 3


def agent_loop(req: RecordedRequest) -> Reply:
    """A model that asks for a tool, then finishes once it sees the tool's result."""
    last = req.json["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"The command printed: {last['content']}", usage=Usage(prompt=300, completion=8))
    return Reply(
        tool_calls=[ToolCall("Bash", {"command": "echo hi"})],
        usage=Usage(prompt=250, completion=12),
        stream_chunks=6,
    )


def test_tool_use_loop_end_to_end(claude, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.default = agent_loop
    messages: list[dict] = [{"role": "user", "content": "say hi with bash"}]
    with claude.messages.stream(model="default", max_tokens=1000, tools=TOOLS, messages=messages) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "Bash" and use.input == {"command": "echo hi"} and use.id.startswith("toolu_")
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": [{"type": "text", "text": "hi"}]}
            ],
        },
    ]
    second = claude.messages.create(model="default", max_tokens=1000, tools=TOOLS, messages=messages)
    assert second.content[0].text == "The command printed: hi" and second.stop_reason == "end_turn"
    # the OpenAI side saw the tool call and its result as text, not as JSON of the block list
    follow_up = mock.requests[-1].json["messages"]
    assert follow_up[-2]["tool_calls"][0]["function"] == {
        "name": "Bash",
        "arguments": '{"command":"echo hi"}',
    }
    assert follow_up[-1] == {
        "role": "tool",
        "tool_call_id": follow_up[-2]["tool_calls"][0]["id"],
        "content": "hi",
    }
    rows = logged_calls(core)
    assert len(rows) == 2 and all(r["outcome"] == "ok" and r["cost_usd"] for r in rows)
    assert (rows[0]["tool_calls"], rows[0]["tool_failures"], rows[0]["output_tokens"]) == (1, 0, 12)
    assert rows[1]["input_tokens"] == 300


def test_errors_are_the_sdk_exceptions(claude, mock, proxy) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(status=400, error="This model's maximum context length is 8192 tokens"))
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model="default", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["type"] == "error" and "prompt is too long" in info.value.body["error"]["message"]
    bad = anthropic.Anthropic(base_url=proxy.url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="default", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError, match="messages"):
        claude.messages.create(model="default", max_tokens=10, messages="not a list")  # type: ignore[arg-type]


def test_count_tokens_counts_tools_and_tool_blocks(claude) -> None:  # type: ignore[no-untyped-def]
    plain = claude.messages.count_tokens(
        model="default", messages=[{"role": "user", "content": "hello world"}]
    )
    with_tools = claude.messages.count_tokens(
        model="default",
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "hello world"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "Bash",
                        "input": {"command": "ls -la " * 50},
                    }
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "file.py\n" * 100}],
            },
        ],
    )
    assert 0 < plain.input_tokens < 30
    assert with_tools.input_tokens > plain.input_tokens + 300


def test_claude_code_request_shape(proxy, token, mock, core) -> None:  # type: ignore[no-untyped-def]
    """What Claude Code 2.1 sends (AGENT-NOTES): its extra fields must not leak to an OpenAI-format target."""
    session = "4b2d7c1e-0000-4000-8000-123456789abc"
    body = {
        "model": "backup/deepseek/deepseek-chat",
        "max_tokens": 64000,
        "stream": True,
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
        "metadata": {"user_id": json.dumps({"device_id": "d", "account_uuid": "", "session_id": session})},
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "x" * 3000, "cache_control": {"type": "ephemeral"}},
        ],
        "tools": TOOLS,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            }
        ],
    }
    headers = {
        "x-api-key": token,
        "anthropic-version": "2023-06-01",
        "x-claude-code-session-id": session,
        "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
        "User-Agent": "claude-cli/2.1.197",
    }
    with httpx.stream(
        "POST", f"{proxy.url}/v1/messages?beta=true", json=body, headers=headers, timeout=20
    ) as r:
        events = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
    assert r.status_code == 200
    assert events[0] == "message_start" and events[-1] == "message_stop"
    sent = mock.requests[-1].json
    for leaked in ("thinking", "context_management", "output_config", "metadata", "cache_control"):
        assert leaked not in json.dumps(sent), leaked
    assert sent["stream_options"] == {"include_usage": True}
    # an OpenRouter target takes Anthropic-style cache_control on content parts, so it is kept there
    body["model"] = "default"
    httpx.post(f"{proxy.url}/v1/messages", json={**body, "stream": False}, headers=headers, timeout=20)
    assert "cache_control" in json.dumps(mock.requests[-1].json)
    assert "context_management" not in mock.requests[-1].json
    row = logged_calls(core)[0]
    assert row["session_key"] == f"session:{session}" and row["user_agent"] == "claude-cli/2.1.197"


def test_max_tokens_clamped_to_the_provider_cap(claude, mock, core) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    core.config_store.update(
        lambda c: replace(
            c, providers={**c.providers, "cheapco": replace(c.providers["cheapco"], max_tokens=8192)}
        )
    )
    claude.messages.create(model="default", max_tokens=20000, messages=[{"role": "user", "content": "x"}])
    assert mock.requests[-1].json["max_tokens"] == 8192


# ------------------------------------------------------------------------------------------ OpenAI client, Anthropic target


def test_openai_sdk_on_an_anthropic_provider(premium, proxy, token, mock, core) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=token, max_retries=0)
    mock.enqueue(
        Reply(text="Premium answer", usage=Usage(prompt=1000, completion=10, cached=600, cache_write=300))
    )
    r = client.chat.completions.create(
        model="default", messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    )
    assert r.choices[0].message.content == "Premium answer" and r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == 1000 and r.usage.prompt_tokens_details.cached_tokens == 600
    sent = mock.requests[-1]
    assert sent.path == "/v1/messages" and sent.json["system"] in ("sys", [{"type": "text", "text": "sys"}])
    assert (
        sent.headers["x-api-key"].startswith("sk-ant-test")
        and sent.headers["anthropic-version"] == "2023-06-01"
    )
    row = logged_calls(core)[-1]
    assert (
        row["input_tokens"],
        row["cache_read_tokens"],
        row["cache_write_tokens"],
        row["output_tokens"],
    ) == (100, 600, 300, 10)
    assert row["cost_source"] == "table"


def test_openai_sdk_stream_and_tools_on_an_anthropic_provider(premium, proxy, token, mock, core) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=token, max_retries=0)
    mock.enqueue(
        Reply(
            tool_calls=[ToolCall("read_file", {"path": "a.py"}), ToolCall("read_file", {"path": "b.py"})],
            stream_chunks=6,
        )
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "parameters": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"],
                },
            },
        }
    ]
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "read"}],
        tools=tools,
        stream=True,
        stream_options={"include_usage": True},
    )
    calls: dict[int, dict] = {}
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"name": "", "args": ""})
                entry["name"] += tc.function.name or ""
                entry["args"] += tc.function.arguments or ""
    assert [(c["name"], json.loads(c["args"])) for c in calls.values()] == [
        ("read_file", {"path": "a.py"}),
        ("read_file", {"path": "b.py"}),
    ]
    assert usage is not None and usage.completion_tokens > 0
    assert mock.requests[-1].json["tools"][0]["input_schema"]["required"] == ["path"]
    row = logged_calls(core)[-1]
    assert (row["tool_calls"], row["tool_failures"]) == (2, 0)
    mock.enqueue(Reply(status=529, error={"type": "overloaded_error", "message": "Overloaded"}))
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 529 and "Overloaded" in str(info.value)


def test_responses_on_an_anthropic_provider(premium, proxy, token, mock, core) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=token, max_retries=0)
    mock.enqueue(Reply(text="done and dusted", stream_chunks=3, usage=Usage(prompt=80, completion=3)))
    with client.responses.stream(model="default", input="finish") as stream:
        final = stream.get_final_response()
    assert final.output_text == "done and dusted" and final.usage.output_tokens == 3
    mock.enqueue(Reply(tool_calls=[ToolCall("shell", {"cmd": "ls"})]))
    r = client.responses.create(
        model="default",
        input="list",
        tools=[
            {
                "type": "function",
                "name": "shell",
                "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
            }
        ],
    )
    (call,) = [o for o in r.output if o.type == "function_call"]
    assert call.name == "shell" and json.loads(call.arguments) == {"cmd": "ls"}
    assert mock.requests[-1].path == "/v1/messages"
    rows = logged_calls(core)
    assert [(r["client_api"], r["upstream_api"], r["outcome"]) for r in rows] == [
        ("responses", "anthropic", "ok")
    ] * 2


def test_responses_previous_response_id_on_an_anthropic_provider(premium, proxy, token, mock) -> None:  # type: ignore[no-untyped-def]
    """A kept response continued through the Responses -> chat -> Messages path: the tool result pairs with
    the replayed tool_use."""
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=token, max_retries=0)
    tools = [
        {
            "type": "function",
            "name": "shell",
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
        }
    ]
    mock.enqueue(Reply(tool_calls=[ToolCall("shell", {"cmd": "ls"})], stream_chunks=3))
    with client.responses.stream(model="default", input="list", tools=tools) as stream:
        first = stream.get_final_response()
    (call,) = [o for o in first.output if o.type == "function_call"]
    mock.enqueue(Reply(text="two files"))
    second = client.responses.create(
        model="default",
        tools=tools,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "a.py b.py"}],
    )
    assert second.output_text == "two files"
    sent = mock.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    (tool_use,) = [b for b in sent[1]["content"] if b["type"] == "tool_use"]
    (result,) = [b for b in sent[2]["content"] if b["type"] == "tool_result"]
    assert tool_use["input"] == {"cmd": "ls"} and result["tool_use_id"] == tool_use["id"]

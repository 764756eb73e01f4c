"""The official `openai` SDK through the proxy, configured only from `downshift env`'s variables."""

from __future__ import annotations

import json
from dataclasses import replace

import openai
import pytest
from conftest import logged_calls

from app.cli import main as cli
from app.testing.script import Reply, ToolCall, Usage

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]


@pytest.fixture
def client(proxy, core, config_path, capsys):  # type: ignore[no-untyped-def]
    core.config_store.update(
        lambda c: replace(c, port=proxy.port)
    )  # so `downshift env` names the running proxy
    assert cli(["env", "--format", "json", "--config", str(config_path)]) == 0
    env = json.loads(capsys.readouterr().out)
    return openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], max_retries=0)


def test_non_streamed(client, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="Hello from the cheap model", usage=Usage(prompt=30, completion=6)))
    r = client.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from the cheap model"
    assert r.usage.prompt_tokens == 30
    (row,) = logged_calls(core)
    assert (row["input_tokens"], row["output_tokens"]) == (30, 6)


def test_streamed(client, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="one two three four", stream_chunks=4, usage=Usage(prompt=12, completion=4)))
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "one two three four"
    (row,) = logged_calls(core)
    assert row["streamed"] and row["output_tokens"] == 4


def test_tool_calls_streamed_and_not(client, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(
        Reply(
            tool_calls=[
                ToolCall("read_file", {"path": "src/app.py"}),
                ToolCall("read_file", {"path": "b.py"}),
            ]
        )
    )
    r = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "read"}], tools=TOOLS
    )
    calls = r.choices[0].message.tool_calls
    assert [json.loads(c.function.arguments)["path"] for c in calls] == ["src/app.py", "b.py"]
    assert r.choices[0].finish_reason == "tool_calls"
    mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": "c.py"})], stream_chunks=6))
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "read"}], tools=TOOLS, stream=True
    )
    args = "".join(
        tc.function.arguments or ""
        for ch in stream
        if ch.choices
        for tc in (ch.choices[0].delta.tool_calls or [])
    )
    assert json.loads(args) == {"path": "c.py"}
    rows = logged_calls(core)
    assert [(r["tool_calls"], r["tool_failures"]) for r in rows] == [(2, 0), (1, 0)]


def test_errors_raise_sdk_exceptions(client, mock) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(status=400, error="context too long"))
    with pytest.raises(openai.BadRequestError, match="context too long"):
        client.chat.completions.create(model="plan", messages=[{"role": "user", "content": "x"}])
    bad = openai.OpenAI(base_url=client.base_url, api_key="not-the-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}])

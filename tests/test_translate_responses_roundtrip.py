"""Whole Codex turns through the translator and back: what the client sends next must reach chat intact."""

from __future__ import annotations

import json
from typing import Any

from app.proxy.translate.responses import (
    ChatToResponsesStream,
    chat_to_responses_response,
    responses_to_chat_request,
)

PATCH = "*** Begin Patch\n*** Update File: src/parser.py\n@@\n-    lines = text.split('\\n')[:-1]\n+    lines = text.splitlines()\n*** End Patch\n"
TOOLS = [
    {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
    {"type": "custom", "name": "apply_patch", "description": "Edit files.",
     "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/s"}},
    {"type": "namespace", "name": "mcp__docs__", "description": "Docs.",
     "tools": [{"type": "function", "name": "search_docs", "parameters": {"type": "object"}}]},
    {"type": "web_search"},
]  # fmt: skip


def first_turn() -> dict[str, Any]:
    return {"model": "gpt-5.1-codex", "stream": True, "store": False, "tools": TOOLS, "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Fix the parser."}]}]}  # fmt: skip


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def stream_answer(ctx: Any, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Output items as Codex keeps them: from the output_item.done events."""
    stream = ChatToResponsesStream(ctx)
    events = [e for c in chunks for e in stream.feed(c)] + stream.finish()
    return [e["item"] for e in events if e["type"] == "response.output_item.done"]


def test_apply_patch_round_trip() -> None:
    chat, ctx = responses_to_chat_request(first_turn(), model="deepseek-chat")
    bridged = next(t["function"] for t in chat["tools"] if t["function"]["name"] == "apply_patch")
    assert bridged["parameters"]["required"] == ["input"]

    arguments = json.dumps({"input": PATCH})
    half = len(arguments) // 2
    items = stream_answer(ctx, [
        chunk({"role": "assistant", "reasoning_content": "Use splitlines."}),
        chunk({"tool_calls": [{"index": 0, "id": "call_p", "type": "function",
                               "function": {"name": "apply_patch", "arguments": arguments[:half]}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]}),
        chunk({}, "tool_calls"),
    ])  # fmt: skip
    reasoning, call = items
    assert call["type"] == "custom_tool_call" and call["input"] == PATCH and call["call_id"] == "call_p"

    # Codex's next request replays the items it got, plus the tool's output.
    follow_up = first_turn()
    follow_up["input"] += [
        reasoning,
        call,
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Success."},
    ]
    chat2, _ = responses_to_chat_request(follow_up, model="deepseek-chat")
    assistant, tool = chat2["messages"][-2:]
    assert assistant == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Use splitlines.",
        "tool_calls": [
            {
                "id": "call_p",
                "type": "function",
                "function": {
                    "name": "apply_patch",
                    "arguments": json.dumps({"input": PATCH}, separators=(",", ":")),
                },
            }
        ],
    }
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"input": PATCH}
    assert tool == {"role": "tool", "tool_call_id": "call_p", "content": "Success."}


def test_namespace_round_trip() -> None:
    chat, ctx = responses_to_chat_request(first_turn(), model="m")
    assert "mcp__docs__search_docs" in [t["function"]["name"] for t in chat["tools"]]
    answer = {"choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
              "tool_calls": [{"id": "call_d", "type": "function",
                              "function": {"name": "mcp__docs__search_docs", "arguments": '{"query":"x"}'}}]}}]}  # fmt: skip
    (call,) = chat_to_responses_response(answer, ctx)["output"]
    assert (call["name"], call["namespace"]) == ("search_docs", "mcp__docs__")

    follow_up = first_turn()
    follow_up["input"] += [call, {"type": "function_call_output", "call_id": "call_d", "output": "found"}]
    chat2, _ = responses_to_chat_request(follow_up, model="m")
    assert chat2["messages"][-2]["tool_calls"][0]["function"] == {
        "name": "mcp__docs__search_docs",
        "arguments": '{"query":"x"}',
    }
    assert chat2["messages"][-1] == {"role": "tool", "tool_call_id": "call_d", "content": "found"}


def test_several_calls_in_one_turn_round_trip() -> None:
    _, ctx = responses_to_chat_request(first_turn(), model="m")
    items = stream_answer(ctx, [
        chunk({"content": "Two commands."}),
        chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'}},
                              {"index": 1, "id": "c2", "function": {"name": "exec_command", "arguments": '{"cmd":"pwd"}'}}]}),
        chunk({}, "tool_calls"),
    ])  # fmt: skip
    follow_up = first_turn()
    follow_up["input"] += items + [
        {"type": "function_call_output", "call_id": "c1", "output": "a.py"},
        {"type": "function_call_output", "call_id": "c2", "output": "/src"},
    ]
    chat2, _ = responses_to_chat_request(follow_up, model="m")
    assistant = chat2["messages"][-3]
    assert assistant["content"] == "Two commands."
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert [m["role"] for m in chat2["messages"][-2:]] == ["tool", "tool"]

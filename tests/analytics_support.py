"""Helpers shared by the analytics tests: talk to the proxy like an agent, and read the figures back."""

from __future__ import annotations

from typing import Any

import httpx

TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}]
ANTHROPIC_TOOLS = [{"name": "read_file", "input_schema": TOOLS[0]["function"]["parameters"]}]


def chat(proxy, token: str, messages: list[dict[str, Any]], *, model: str = "default", headers: dict[str, str] | None = None,
         tools: list[dict[str, Any]] | None = None, **extra: Any) -> httpx.Response:  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"model": model, "messages": messages, **extra}
    if tools is not None:
        body["tools"] = tools
    return httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=20,
                      headers={"Authorization": f"Bearer {token}", **(headers or {})})


def messages_api(proxy, token: str, messages: list[dict[str, Any]], *, model: str = "default",
                 headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:  # type: ignore[no-untyped-def]
    body = {"model": model, "max_tokens": 1000, "messages": messages, **extra}
    return httpx.post(f"{proxy.url}/v1/messages", json=body, timeout=20,
                      headers={"x-api-key": token, "anthropic-version": "2023-06-01", **(headers or {})})


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def tool_turn(first: str, call_id: str, result: str) -> list[dict[str, Any]]:
    """A follow-up request: the user's message, the model's read_file call, and the tool's result."""
    return [
        {"role": "user", "content": first},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


def settled(core) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Every call row once every call has ended. The proxy queues a call's end just after the client got
    its answer, so a flush right after the answer can beat it; wait until each logged call has ended."""
    import time

    from sqlalchemy import text

    from app.core.queries import recent_calls

    deadline = time.monotonic() + 10
    while True:
        assert core.writer.flush()
        with core.db.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM calls")).scalar()
        if core.writer.stats.written >= count or time.monotonic() > deadline:
            return list(reversed(recent_calls(core.db, 10_000)))
        time.sleep(0.01)

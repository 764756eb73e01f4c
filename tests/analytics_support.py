"""Helpers shared by the analytics tests: talk to the proxy like an agent, and read the figures back."""

from __future__ import annotations

import time
from typing import Any

import httpx

TOOLS = [
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
ANTHROPIC_TOOLS = [{"name": "read_file", "input_schema": TOOLS[0]["function"]["parameters"]}]


class ShiftedClock:
    """The wall clock plus an offset a test moves forward: `ProxyThread(core, clock=...)` stamps each call's
    start with it, so an idle gap of half an hour passes without waiting for it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def chat(
    proxy,
    token: str,
    messages: list[dict[str, Any]],
    *,
    model: str = "default",
    headers: dict[str, str] | None = None,
    tools: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> httpx.Response:  # type: ignore[no-untyped-def]
    body: dict[str, Any] = {"model": model, "messages": messages, **extra}
    if tools is not None:
        body["tools"] = tools
    return httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json=body,
        timeout=20,
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
    )


def messages_api(
    proxy,
    token: str,
    messages: list[dict[str, Any]],
    *,
    model: str = "default",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> httpx.Response:  # type: ignore[no-untyped-def]
    body = {"model": model, "max_tokens": 1000, "messages": messages, **extra}
    return httpx.post(
        f"{proxy.url}/v1/messages",
        json=body,
        timeout=20,
        headers={"x-api-key": token, "anthropic-version": "2023-06-01", **(headers or {})},
    )


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def tool_turn(first: str, call_id: str, result: str) -> list[dict[str, Any]]:
    """A follow-up request: the user's message, the model's read_file call, and the tool's result."""
    return [
        {"role": "user", "content": first},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
                }
            ],
        },
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


# ----------------------------------------------------------------------------------------------- generated logs


def generated_call(
    target: str,
    prompt_tokens: int,
    kinds: list[str] | tuple[str, ...] = (),
    *,
    at: float,
    cost: float | None = 0.001,
    duration_ms: float = 1000.0,
    role: str = "default",
    task: str = "gen",
    outcome: str = "ok",
    escalated: bool = False,
):  # type: ignore[no-untyped-def]
    """A finished call as the proxy would hand it to the log writer: `target` served it with a prompt of
    `prompt_tokens` (split into fresh input and cache reads) and emitted one tool call per entry of `kinds`."""
    import uuid

    from app.core.records import CallRecord, ToolCallResult

    provider, _, model = target.partition("/")
    rec = CallRecord(client_api="openai", endpoint="/v1/chat/completions", started_at=at)
    rec.provider, rec.upstream_model, rec.upstream_api, rec.role, rec.preset = (
        provider,
        model,
        "openai",
        role,
        "cheap",
    )
    rec.requested_model, rec.task_key, rec.session_key = "default", f"task:{task}", f"task:{task}"
    rec.input_tokens = prompt_tokens // 4
    rec.cache_read_tokens = prompt_tokens - rec.input_tokens
    rec.output_tokens = 100
    rec.cost_usd, rec.cost_source = cost, ("table" if cost is not None else "unpriced")
    rec.escalated = escalated
    rec.tool_calls = [ToolCallResult(f"call_{uuid.uuid4().hex[:12]}", "read_file", kind) for kind in kinds]
    rec.finish(outcome, 200 if outcome == "ok" else 502)
    rec.duration_ms = duration_ms
    return rec


def write_log(core, records) -> None:  # type: ignore[no-untyped-def]
    """Hand records to the real log writer (its hooks keep every total) and wait until they are written."""
    for rec in records:
        core.writer.finished(rec)
    assert core.writer.flush()

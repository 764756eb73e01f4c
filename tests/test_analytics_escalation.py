"""Escalation through the real proxy: a task whose loop model botches tool calls moves to the plan role."""

from __future__ import annotations

import pytest
from analytics_support import TOOLS, chat, settled, tool_turn, user
from conftest import proxy_config_text

from app.core.queries import dashboard
from app.testing.script import Reply, ToolCall

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)

ESCALATING = """
[[presets]]
name = "esc"
default = "cheapco/qwen/qwen3-coder"
plan = "backup/deepseek/deepseek-chat"
background = "cheapco/qwen/qwen3-coder-30b"
patterns = { "*haiku*" = "background" }
escalate = { threshold = 0.4, window = 2, role = "plan" }
"""


def _write(config_path, mock) -> None:  # type: ignore[no-untyped-def]
    config_path.write_text(proxy_config_text(mock.base_url, active="esc") + ESCALATING)


def test_failing_task_escalates_after_the_window_fills(proxy, mock, token, core, config_path) -> None:  # type: ignore[no-untyped-def]
    _write(config_path, mock)
    session = {"session-id": "flaky-run"}
    mock.enqueue(
        Reply(tool_calls=[ToolCall("read_file", {"path": "a"}), ToolCall("rm_rf", {})]),  # 1 of 2 failed
        Reply(tool_calls=[ToolCall("read_file", '{"path": ')]),  # 1 of 1: window full, 2/3 > 0.4
    )
    chat(proxy, token, user("go"), headers=session, tools=TOOLS)
    settled(core)
    chat(proxy, token, user("go"), headers=session, tools=TOOLS)  # the window is not full yet: still cheap
    settled(core)
    chat(proxy, token, user("go"), headers=session, tools=TOOLS)  # escalated
    chat(
        proxy, token, user("go"), headers={"session-id": "healthy-run"}, tools=TOOLS
    )  # another task: not escalated
    chat(
        proxy, token, user("title?"), headers=session, model="claude-3-5-haiku-latest"
    )  # side call keeps its route
    assert [r.model for r in mock.requests] == [
        "qwen/qwen3-coder",
        "qwen/qwen3-coder",
        "deepseek/deepseek-chat",
        "qwen/qwen3-coder",
        "qwen/qwen3-coder-30b",
    ]
    rows = settled(core)
    assert [r["escalated"] for r in rows] == [False, False, True, False, False]
    assert rows[2]["role"] == "plan"
    assert dashboard.tiles(core.db, since=0)["calls"] == 5


def test_failed_tool_results_count_toward_escalation(proxy, mock, token, core, config_path) -> None:  # type: ignore[no-untyped-def]
    _write(config_path, mock)
    session = {"session-id": "results-fail"}
    mock.enqueue(
        Reply(tool_calls=[ToolCall("read_file", {"path": "a"}, id="call_a")]),
        Reply(tool_calls=[ToolCall("read_file", {"path": "b"}, id="call_b")]),
    )
    chat(proxy, token, user("go"), headers=session, tools=TOOLS)
    settled(core)
    # every call was valid, but the first one's result came back failed: 1 of 2 failed > 0.4
    chat(
        proxy,
        token,
        tool_turn("go", "call_a", "Traceback (most recent call last):\n  boom"),
        headers=session,
        tools=TOOLS,
    )
    settled(core)
    chat(proxy, token, user("go"), headers=session, tools=TOOLS)
    assert mock.requests[-1].model == "deepseek/deepseek-chat"
    assert settled(core)[-1]["escalated"]


def test_failed_tool_results_escalate_a_messages_client_on_a_chat_model(
    proxy, mock, token, core, config_path
) -> None:  # type: ignore[no-untyped-def]
    """Claude Code on a cheap chat model: the client reports failures under the toolu_ ids it was given
    (the provider sent call_a, call_b), and those failures still count toward escalation."""
    from analytics_support import ANTHROPIC_TOOLS, messages_api

    _write(config_path, mock)
    session = {"x-claude-code-session-id": "cc-results-fail"}
    mock.enqueue(
        Reply(tool_calls=[ToolCall("read_file", {"path": "a"}, id="call_a")]),
        Reply(tool_calls=[ToolCall("read_file", {"path": "b"}, id="call_b")]),
    )
    first = messages_api(proxy, token, user("go"), headers=session, tools=ANTHROPIC_TOOLS).json()
    (use,) = [b for b in first["content"] if b["type"] == "tool_use"]
    assert use["id"] == "toolu_a"
    settled(core)
    follow = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [use]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use["id"], "is_error": True, "content": "Exit code 1"}
            ],
        },
    ]
    messages_api(proxy, token, follow, headers=session, tools=ANTHROPIC_TOOLS)
    settled(core)
    messages_api(proxy, token, user("go"), headers=session, tools=ANTHROPIC_TOOLS)
    assert [r.model for r in mock.requests] == [
        "qwen/qwen3-coder",
        "qwen/qwen3-coder",
        "deepseek/deepseek-chat",
    ]
    assert settled(core)[-1]["escalated"]

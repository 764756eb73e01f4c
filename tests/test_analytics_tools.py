"""Tool-call reliability through the real proxy: each kind of failure injected, counted exactly."""

from __future__ import annotations

import json
import time

import pytest
from analytics_support import TOOLS, chat, settled, tool_turn, user

from app.cli import main as cli
from app.core.queries import dashboard
from app.testing.script import Reply, ToolCall

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)


def _inject_every_kind(proxy, mock, token) -> None:  # type: ignore[no-untyped-def]
    good = [ToolCall("read_file", {"path": f"f{i}.py"}, id=f"call_ok{i}") for i in range(5)]
    mock.enqueue(
        Reply(
            tool_calls=[
                *good,
                ToolCall("read_file", '{"path": ', id="call_badjson"),
                ToolCall("rm_rf", {}, id="call_unknown"),
                ToolCall("read_file", {"file": 1}, id="call_schema"),
            ]
        ),
        Reply(text="", text_tool_call=ToolCall("read_file", {"path": "b.py"})),
        Reply(text="done"),
    )
    assert chat(proxy, token, user("fix the bug"), tools=TOOLS).status_code == 200
    assert chat(proxy, token, user("and the other one"), tools=TOOLS).status_code == 200
    # the follow-up reports two failed results: a valid call's (counts) and a schema failure's (already counted)
    follow = tool_turn("fix the bug", "call_ok0", "Error: no such file a.py")
    follow += [{"role": "tool", "tool_call_id": "call_schema", "content": "Error: bad arguments"}]
    assert chat(proxy, token, follow, tools=TOOLS).status_code == 200


def test_each_failure_kind_is_counted_exactly(proxy, mock, token, core, config_path) -> None:  # type: ignore[no-untyped-def]
    _inject_every_kind(proxy, mock, token)
    settled(core)
    expected_kinds = {"invalid_json": 1, "unknown_tool": 1, "schema": 1, "text_form": 1, "result_failed": 1}
    # emitted: 8 structured + 1 written as text; failed: 4 invalid + 1 valid call whose result failed
    for since in (0.0, time.time() - 60):  # whole slots from the totals / a partial slot from detail rows
        rel = dashboard.reliability(core.db, since=since)
        assert rel["total"] == {
            "tool_calls": 9,
            "failed": 5,
            "failure_rate": pytest.approx(5 / 9),
            "by_kind": expected_kinds,
        }
        assert list(rel["models"]) == ["qwen/qwen3-coder"]
    tiles = dashboard.tiles(core.db, since=time.time() - 3600)
    assert tiles["tool_failure_rate"] == pytest.approx(5 / 9) and tiles["calls"] == 3
    over_time = dashboard.failure_rate_over_time(core.db, since=time.time() - 3600, bucket_s=600)
    rates = [r for r in over_time["series"]["qwen/qwen3-coder"] if r is not None]
    assert rates == [pytest.approx(5 / 9)]


def test_stats_json_reports_the_same_counts(proxy, mock, token, core, config_path, capsys) -> None:  # type: ignore[no-untyped-def]
    _inject_every_kind(proxy, mock, token)
    settled(core)
    capsys.readouterr()
    assert cli(["stats", "--json", "--config", str(config_path), "--db", core.db_url]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (
        data["total"]["tool_calls"] == 9 and data["total"]["tool_failures"] == 4
    )  # unchanged key: validation only
    assert data["tools"]["total"]["failed"] == 5 and data["tools"]["total"]["by_kind"]["result_failed"] == 1
    assert data["tools"]["models"]["qwen/qwen3-coder"]["failure_rate"] == pytest.approx(5 / 9)
    assert cli(["stats", "--config", str(config_path), "--db", core.db_url]) == 0
    assert "9 emitted, 5 failed (55.6% incl. failed results)" in capsys.readouterr().out


def test_anthropic_is_error_result_is_attributed(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    from analytics_support import ANTHROPIC_TOOLS, messages_api

    mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": "x"}, id="toolu_1")]), Reply(text="ok"))
    explicit = "premium/claude-sonnet-4-5"  # Anthropic in, Anthropic out
    assert (
        messages_api(proxy, token, user("read x"), model=explicit, tools=ANTHROPIC_TOOLS).status_code == 200
    )
    follow = [
        {"role": "user", "content": "read x"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "x"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True, "content": "ENOENT"}
            ],
        },
    ]
    assert messages_api(proxy, token, follow, model=explicit, tools=ANTHROPIC_TOOLS).status_code == 200
    settled(core)
    rel = dashboard.reliability(core.db)
    assert (rel["total"]["tool_calls"], rel["total"]["failed"], rel["total"]["by_kind"]["result_failed"]) == (
        1,
        1,
        1,
    )

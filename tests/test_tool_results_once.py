"""Tool results are judged once per id: a turn reads only the results that are new since the last one."""

from __future__ import annotations

from app.core import toolcheck
from app.core.toolcheck import tool_results
from app.proxy.accounting import SeenIds


def _body(n: int, failing: set[int]) -> dict:
    messages = [{"role": "user", "content": "go"}]
    for i in range(n):
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": f"c{i}", "type": "function", "function": {"name": "bash", "arguments": "{}"}}
                ],
            }
        )
        text = "Exit code: 2\nboom" if i in failing else "ok\nall good"
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": text})
    return {"model": "m", "messages": messages}


def test_only_new_results_are_read_and_each_failure_counts_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    read: list[str] = []
    real = tool_results._text_failure
    monkeypatch.setattr(
        tool_results, "_text_failure", lambda text, m, w: read.append(text) or real(text, m, w)
    )
    seen = SeenIds()
    first = toolcheck.failed_results(_body(3, {1}), "openai", fresh=seen.first)
    assert [cid for cid, _ in first] == ["c1"] and len(read) == 3
    read.clear()
    again = toolcheck.failed_results(_body(5, {1, 4}), "openai", fresh=seen.first)  # the next turn
    assert [cid for cid, _ in again] == ["c4"] and len(read) == 2  # c3 (ok) and c4 only
    # without `fresh`, every result is returned (the function's own contract)
    assert [cid for cid, _ in toolcheck.failed_results(_body(5, {1, 4}), "openai")] == ["c1", "c4"]


def test_anthropic_and_responses_results_once() -> None:
    seen = SeenIds()
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": "Exit code 2"},
                    {"type": "tool_result", "tool_use_id": "", "is_error": True, "content": "no id"},
                ],
            }
        ]
    }
    assert toolcheck.failed_results(body, "anthropic", fresh=seen.first) == [("t1", "is_error: Exit code 2")]
    assert toolcheck.failed_results(body, "anthropic", fresh=seen.first) == []
    items = {"input": [{"type": "function_call_output", "call_id": "r1", "output": "Error: no such file"}]}
    assert [cid for cid, _ in toolcheck.failed_results(items, "responses", fresh=seen.first)] == ["r1"]
    assert toolcheck.failed_results(items, "responses", fresh=seen.first) == []


def test_seen_ids_forget_the_least_recently_seen() -> None:
    seen = SeenIds(limit=3)
    assert all(seen.first(i) for i in ("a", "b", "c"))
    assert not seen.first("a")  # touched: now the most recent
    assert seen.first("d")  # evicts b, the least recently seen
    assert not seen.first("a") and not seen.first("c") and seen.first("b")
    assert not seen.first("")
    assert seen.fresh([("x", "r"), ("x", "r"), ("", "r")]) == [("x", "r")]

"""The stream observer reassembles tool calls the way providers actually number them."""

from __future__ import annotations

from app.proxy.observe import OpenAIObserver


def _call(index: int, call_id: str | None, name: str | None, args: str) -> dict:
    fn = {"arguments": args} | ({"name": name} if name else {})
    return {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [{"index": index, "function": fn} | ({"id": call_id} if call_id else {})]
                },
            }
        ]
    }


def test_calls_that_reuse_index_zero_with_new_ids_stay_separate() -> None:
    """Some OpenAI-compatible servers number every parallel call 0; a new id starts a new call, so the log
    neither merges their arguments into one broken call nor undercounts them."""
    obs = OpenAIObserver()
    for chunk in (
        _call(0, "call_a", "read_file", '{"path": '),
        _call(0, None, None, '"a.py"}'),
        _call(0, "call_b", "read_file", '{"path": "b.py"}'),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ):
        obs.on_event(chunk)
    assert obs.tool_calls() == [
        ("call_a", "read_file", '{"path": "a.py"}'),
        ("call_b", "read_file", '{"path": "b.py"}'),
    ]


def test_interleaved_parallel_calls_keep_their_order() -> None:
    obs = OpenAIObserver()
    for chunk in (
        _call(0, "call_a", "grep", '{"q"'),
        _call(1, "call_b", "ls", '{"dir"'),
        _call(0, None, None, ': "x"}'),
        _call(1, None, None, ': "."}'),
    ):
        obs.on_event(chunk)
    assert obs.tool_calls() == [("call_a", "grep", '{"q": "x"}'), ("call_b", "ls", '{"dir": "."}')]

"""Grouping calls into tasks through the real proxy: each rule, side calls, totals counted once, outcomes."""

from __future__ import annotations

import json

import orjson
import pytest
from analytics_support import ShiftedClock, chat, messages_api, settled, user

from app.cli import main as cli
from app.core.queries import dashboard
from app.core.queries.tasks import cost_per_task, list_tasks, set_outcome, task_calls
from app.testing.script import Reply

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)


def _tasks(core) -> dict[int, dict]:  # type: ignore[no-untyped-def]
    settled(core)
    return {t["id"]: t for t in list_tasks(core.db)}


def _task_of_each_call(core) -> list[int | None]:  # type: ignore[no-untyped-def]
    return [r["task_id"] for r in settled(core)]


def test_explicit_header_groups_whatever_the_prompt(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    for text in ("one", "two", "three"):
        assert (
            chat(proxy, token, user(text), headers={"X-Downshift-Task": "refactor-auth"}).status_code == 200
        )
    chat(proxy, token, user("one"))  # same prompt, no header: not that task
    ids = _task_of_each_call(core)
    assert ids[0] == ids[1] == ids[2] != ids[3]
    task = _tasks(core)[ids[0]]
    assert (task["source"], task["label"], task["calls"]) == ("header", "refactor-auth", 3)


def test_session_ids_of_claude_code_and_codex(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    user_id = orjson.dumps({"device_id": "d", "account_uuid": "", "session_id": "5e55-a"}).decode()
    explicit = "premium/claude-sonnet-4-5"
    messages_api(proxy, token, user("hi"), model=explicit, metadata={"user_id": user_id})
    messages_api(
        proxy, token, user("something else"), model=explicit, headers={"x-claude-code-session-id": "5e55-a"}
    )
    chat(proxy, token, user("codex turn 1"), headers={"session-id": "c0de-1"})
    chat(proxy, token, user("codex turn 2"), headers={"session-id": "c0de-1"})
    ids = _task_of_each_call(core)
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2]
    tasks = _tasks(core)
    assert {tasks[ids[0]]["source"], tasks[ids[2]]["source"]} == {"session"}
    assert tasks[ids[0]]["key"] == "session:5e55-a"


def test_fingerprint_is_system_prompt_and_first_user_message(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    system = {"role": "system", "content": "You are aider."}
    first = [system, {"role": "user", "content": "add tests"}]
    chat(proxy, token, first)
    chat(proxy, token, [*first, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}])
    chat(proxy, token, [system, {"role": "user", "content": "a different job"}])
    ids = _task_of_each_call(core)
    assert ids[0] == ids[1] != ids[2]
    assert _tasks(core)[ids[0]]["source"] == "fingerprint"


def test_a_task_is_labelled_from_its_first_prompt(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    """The label is cut from the first user prompt of the call that opened the task, skipping the context blocks
    agents send as user text; later calls of the task do not rename it; a header name wins."""
    long = "Refactor the authentication module so that tokens are refreshed before they expire and add tests"
    reminder = {
        "type": "text",
        "text": "<system-reminder>\nAs you answer, use this context\n</system-reminder>",
    }
    first = [{"role": "user", "content": [reminder, {"type": "text", "text": long}]}]
    messages_api(
        proxy, token, first, model="premium/claude-sonnet-4-5", headers={"x-claude-code-session-id": "s-1"}
    )
    later = [*first, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "now the docs"}]
    messages_api(
        proxy, token, later, model="premium/claude-sonnet-4-5", headers={"x-claude-code-session-id": "s-1"}
    )
    chat(
        proxy,
        token,
        [{"role": "system", "content": "You are aider."}, {"role": "user", "content": "  add\n a test "}],
    )
    chat(proxy, token, user("named anyway"), headers={"X-Downshift-Task": "release-1.2"})
    chat(proxy, token, user("use sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123 to deploy"))
    ids = _task_of_each_call(core)
    tasks = _tasks(core)
    assert ids[0] == ids[1]
    label = tasks[ids[0]]["label"]
    assert label == "Refactor the authentication module so that tokens are…", label
    assert len(label) <= 60
    assert tasks[ids[2]]["label"] == "add a test"
    assert tasks[ids[3]]["label"] == "release-1.2"
    assert "abcdefghij" not in tasks[ids[4]]["label"] and tasks[ids[4]]["label"].startswith("use sk-ant-")


def test_idle_gap_starts_a_new_task(core) -> None:  # type: ignore[no-untyped-def]
    """The gap is measured on the clock that stamps each call's start: moved past it, not slept through."""
    from app.proxy.server import ProxyThread

    clock, idle_s = ShiftedClock(), core.config.task_idle_minutes * 60
    headers = {"X-Downshift-Task": "same-key"}
    with ProxyThread(core, port=0, clock=clock) as proxy:
        token = core.token()
        chat(proxy, token, user("a"), headers=headers)
        clock.advance(idle_s - 5)  # just within the gap: the same task
        chat(proxy, token, user("b"), headers=headers)
        clock.advance(idle_s + 1)  # past it: a new one
        chat(proxy, token, user("c"), headers=headers)
    ids = _task_of_each_call(core)
    assert ids[0] == ids[1] != ids[2]
    assert {t["label"] for t in _tasks(core).values()} == {"same-key"}


def test_manual_task_takes_calls_without_header_or_session(proxy, token, core, config_path, capsys) -> None:  # type: ignore[no-untyped-def]
    args = ["--config", str(config_path), "--db", core.db_url]
    assert cli(["task", "new", "Fix", "login", *args]) == 0
    manual_id = int(capsys.readouterr().out.split()[1])
    chat(proxy, token, user("first"))
    chat(proxy, token, user("unrelated prompt"))
    chat(proxy, token, user("first"), headers={"session-id": "other-agent"})
    assert _task_of_each_call(core)[:2] == [manual_id, manual_id]
    assert _task_of_each_call(core)[2] != manual_id
    assert cli(["task", "done", str(manual_id), *args]) == 0
    chat(proxy, token, user("first"))  # the manual task is closed: back to the fingerprint rule
    ids = _task_of_each_call(core)
    assert ids[3] != manual_id
    tasks = _tasks(core)
    assert (tasks[manual_id]["label"], tasks[manual_id]["outcome"], tasks[manual_id]["calls"]) == (
        "Fix login",
        "finished",
        2,
    )
    assert cli(["task", "done", "99999", *args]) == 2


def test_side_calls_join_the_task_that_caused_them(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    chat(proxy, token, [{"role": "system", "content": "agent"}, {"role": "user", "content": "build it"}])
    # a title / summary call on the background model (routed by the *haiku* pattern), with its own prompt
    chat(
        proxy,
        token,
        [{"role": "system", "content": "Summarise."}, {"role": "user", "content": "..."}],
        model="claude-3-5-haiku-latest",
    )
    chat(proxy, token, [{"role": "system", "content": "agent"}, {"role": "user", "content": "build it"}])
    rows = settled(core)
    assert rows[1]["role"] == "background"
    assert rows[0]["task_id"] == rows[1]["task_id"] == rows[2]["task_id"]
    assert _tasks(core)[rows[0]["task_id"]]["calls"] == 3


def test_a_task_total_is_the_sum_of_its_calls_once(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    costs = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032]
    mock.enqueue(*(Reply(text="x", cost=c) for c in costs))
    for i, _ in enumerate(costs):
        headers = {"X-Downshift-Task": "t1"} if i % 2 else {"session-id": "s1"}
        model = "claude-3-5-haiku-latest" if i == 3 else "default"  # a side call in the header task
        assert chat(proxy, token, user(f"call {i}"), headers=headers, model=model).status_code == 200
    rows = settled(core)
    assert all(r["task_id"] is not None for r in rows), [
        (r["task_id"], r["outcome"], r["error_message"], r["cost_usd"]) for r in rows
    ]
    tasks = _tasks(core)
    assert len(tasks) == 2
    for task_id, task in tasks.items():
        mine = [r for r in rows if r["task_id"] == task_id]
        assert task["calls"] == len(mine) == len(task_calls(core.db, task_id))
        assert task["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in mine), abs=1e-12)
    assert sum(t["cost_usd"] for t in tasks.values()) == pytest.approx(sum(costs), abs=1e-12)


def test_cost_per_finished_task(proxy, mock, token, core, config_path, capsys) -> None:  # type: ignore[no-untyped-def]
    plan = {"a": [0.01, 0.02], "b": [0.05], "c": [0.1, 0.1, 0.1]}
    for name, costs in plan.items():
        for c in costs:
            mock.enqueue(Reply(text="x", cost=c))
            chat(proxy, token, user(name), headers={"X-Downshift-Task": name})
    by_label = {t["label"]: t["id"] for t in _tasks(core).values()}
    set_outcome(core.db, by_label["a"], "finished")
    set_outcome(core.db, by_label["b"], "finished")
    set_outcome(core.db, by_label["c"], "abandoned")
    with pytest.raises(ValueError):
        set_outcome(core.db, by_label["c"], "won")
    result = cost_per_task(core.db, since=0)
    assert result["by_outcome"]["finished"] == {
        "count": 2,
        "mean": pytest.approx(0.04),
        "median": pytest.approx(0.04),
        "unpriced_calls": 0,
        "estimated_calls": 0,
    }
    assert result["by_outcome"]["abandoned"]["mean"] == pytest.approx(0.3)
    assert dashboard.tiles(core.db, since=0)["cost_per_finished_task"] == pytest.approx(0.04)
    capsys.readouterr()
    assert cli(["tasks", "--json", "--config", str(config_path), "--db", core.db_url]) == 0
    listed = {t["label"]: t for t in json.loads(capsys.readouterr().out)}
    assert listed["c"]["calls"] == 3 and listed["c"]["cost_usd"] == pytest.approx(0.3)
    assert listed["a"]["models"] == ["cheapco/qwen/qwen3-coder"] and listed["a"]["outcome"] == "finished"
    assert cli(["stats", "--json", "--config", str(config_path), "--db", core.db_url]) == 0
    assert json.loads(capsys.readouterr().out)["cost_per_finished_task"] == pytest.approx(0.04)

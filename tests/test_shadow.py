"""Shadow runs through the real proxy, with the project's mock upstream as the served provider and a second
mock as the candidate: sampling, the daily cap and the concurrency bounds; a shadow that fails or times out
never touches the served call; shadow calls stay out of spend; the comparison fields."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import httpx
import pytest
from analytics_support import ANTHROPIC_TOOLS, messages_api, settled, user
from conftest import proxy_config_text

from app.core.config import Shadow, Target, parse_config
from app.core.queries import dashboard
from app.core.queries.executors import evaluation_spend, scorecard
from app.core.records import CallRecord
from app.proxy.shadow import ShadowRunner, compare
from app.testing.mock_upstream import MockUpstream
from app.testing.ports import dead_url
from app.testing.script import Reply, ToolCall, Usage

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)

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
    },
    {
        "type": "function",
        "function": {
            "name": "bash",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        },
    },
]
SERVED = Reply(tool_calls=[ToolCall("read_file", {"path": "a.py"})], usage=Usage(prompt=2000, completion=50))
SHADOW_USAGE = Usage(prompt=1000, completion=100)
SHADOW_COST = (1000 * 1.0 + 100 * 2.0) / 1e6  # at the price override below


def shadow_config(
    served_url: str,
    shadow_url: str,
    *,
    share: float = 1.0,
    cap: float = 1.0,
    target: str = "shadowco/cand-model",
) -> str:
    return (
        proxy_config_text(served_url, active="shadowed")
        + f"""
[[presets]]
name = "shadowed"
default = "cheapco/qwen/qwen3-coder"
plan = "backup/deepseek/deepseek-chat"
background = "cheapco/qwen/qwen3-coder-30b"
patterns = {{ "*haiku*" = "background" }}
shadow = {{ target = "{target}", share = {share}, max_usd_per_day = {cap} }}

[[providers]]
name = "shadowco"
base_url = "{shadow_url}/v1"

[prices."shadowco/cand-model"]
input = 1.0
output = 2.0
"""
    )


@pytest.fixture
def candidate():  # type: ignore[no-untyped-def]
    with MockUpstream() as upstream:
        yield upstream


@pytest.fixture
def shadowed(proxy, mock, candidate, core, config_path):  # type: ignore[no-untyped-def]
    config_path.write_text(shadow_config(mock.base_url, candidate.base_url))
    core.set_provider_key("shadowco", "sk-test-shadowco-0123456789abcdef")
    return proxy


def runner(proxy) -> ShadowRunner:  # type: ignore[no-untyped-def]
    return proxy.server.pipeline.shadow


def send(
    proxy, token: str, *, task: str = "t1", model: str = "default", stream: bool = False
) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(
        f"{proxy.url}/v1/chat/completions",
        timeout=20,
        headers={"Authorization": f"Bearer {token}", "X-Downshift-Task": task},
        json={"model": model, "messages": user("read a.py"), "tools": TOOLS, "stream": stream},
    )


def shadow_rows(core) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    with core.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM shadow_calls ORDER BY id"))]


def run_one(
    shadowed, mock, candidate, token, core, shadow_reply: Reply, *, stream: bool = False
) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    mock.enqueue(SERVED)
    candidate.enqueue(shadow_reply)
    assert send(shadowed, token, stream=stream).status_code == 200
    settled(core)
    assert runner(shadowed).wait_idle()
    (row,) = shadow_rows(core)
    return row


# ---------------------------------------------------------------------------------------------- comparison


def test_an_agreeing_shadow(shadowed, mock, candidate, token, core) -> None:  # type: ignore[no-untyped-def]
    row = run_one(
        shadowed,
        mock,
        candidate,
        token,
        core,
        Reply(tool_calls=[ToolCall("read_file", {"path": "b.py"})], usage=SHADOW_USAGE),
    )
    assert candidate.requests[0].model == "cand-model" and candidate.requests[0].json["stream"] is False
    assert candidate.requests[0].json["messages"] == mock.requests[0].json["messages"]  # the same request
    assert (row["outcome"], row["valid"], row["served_valid"], row["same_tool"], row["args_valid"]) == (
        "ok",
        1,
        1,
        1,
        1,
    )
    assert (row["served_tool"], row["shadow_tool"], row["tool_calls"], row["tool_failures"]) == (
        "read_file",
        "read_file",
        1,
        0,
    )
    assert row["cost_usd"] == pytest.approx(SHADOW_COST) and row["cost_source"] == "override"
    assert row["latency_ms"] > 0 and row["served_latency_ms"] > 0
    assert (row["provider"], row["model"], row["served_provider"], row["served_model"]) == (
        "shadowco",
        "cand-model",
        "cheapco",
        "qwen/qwen3-coder",
    )
    assert row["prompt_tokens"] == 2000 and row["preset"] == "shadowed"


def test_a_disagreeing_shadow(shadowed, mock, candidate, token, core) -> None:  # type: ignore[no-untyped-def]
    row = run_one(
        shadowed,
        mock,
        candidate,
        token,
        core,
        Reply(tool_calls=[ToolCall("bash", {"command": "cat a.py"})], usage=SHADOW_USAGE),
    )
    assert (row["valid"], row["same_tool"], row["args_valid"], row["shadow_tool"]) == (1, 0, 1, "bash")


def test_a_shadow_that_answers_in_text_chose_no_tool(shadowed, mock, candidate, token, core) -> None:  # type: ignore[no-untyped-def]
    row = run_one(
        shadowed, mock, candidate, token, core, Reply(text="I would read a.py.", usage=SHADOW_USAGE)
    )
    assert (row["valid"], row["same_tool"], row["args_valid"], row["tool_calls"]) == (1, 0, None, 0)


@pytest.mark.parametrize(("args", "kind"), [('{"path": ', "invalid_json"), ({"path": 42}, "schema")])
def test_an_invalid_shadow(shadowed, mock, candidate, token, core, args, kind) -> None:  # type: ignore[no-untyped-def]
    row = run_one(
        shadowed,
        mock,
        candidate,
        token,
        core,
        Reply(tool_calls=[ToolCall("read_file", args)], usage=SHADOW_USAGE),
    )
    assert (row["valid"], row["same_tool"], row["args_valid"], row["tool_failures"]) == (0, 1, 0, 1)
    assert row["detail"].startswith(kind)


def test_a_messages_client_on_a_chat_model_is_shadowed_too(
    shadowed, mock, candidate, token, core, config_path
) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(SERVED)
    candidate.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": "a.py"})], usage=SHADOW_USAGE))
    assert messages_api(shadowed, token, user("read a.py"), tools=ANTHROPIC_TOOLS).status_code == 200
    settled(core)
    assert runner(shadowed).wait_idle()
    (row,) = shadow_rows(core)
    assert (row["outcome"], row["same_tool"], row["valid"]) == ("ok", 1, 1)


def test_an_anthropic_served_call_is_translated_for_a_chat_candidate(
    mock, candidate, proxy, token, core, config_path
) -> None:  # type: ignore[no-untyped-def]
    config_path.write_text(
        shadow_config(mock.base_url, candidate.base_url).replace(
            'default = "cheapco/qwen/qwen3-coder"\nplan', 'default = "premium/claude-sonnet-4-6"\nplan'
        )
    )
    mock.enqueue(
        Reply(tool_calls=[ToolCall("read_file", {"path": "a.py"})], usage=Usage(prompt=900, completion=20))
    )
    candidate.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": "a.py"})], usage=SHADOW_USAGE))
    assert messages_api(proxy, token, user("read a.py"), tools=ANTHROPIC_TOOLS).status_code == 200
    settled(core)
    assert runner(proxy).wait_idle()
    (row,) = shadow_rows(core)
    assert (
        candidate.requests[0].api == "openai"
        and candidate.requests[0].json["tools"][0]["function"]["name"] == "read_file"
    )
    assert (row["served_provider"], row["outcome"], row["same_tool"]) == ("premium", "ok", 1)


def test_compare_without_any_tool_call() -> None:
    assert compare([], []) == {
        "tool_calls": 0,
        "tool_failures": 0,
        "valid": True,
        "same_tool": None,
        "args_valid": None,
        "shadow_tool": None,
    }
    assert compare([("a", "ok"), ("b", "ok")], [("b", "ok"), ("a", "unknown_tool")])["same_tool"] is True
    assert (
        compare([("a", "ok")], [("a", "unknown_tool")])["args_valid"] is True
    )  # the tool, not its arguments


# ---------------------------------------------------------------------------------------------- the served call is untouched


def test_a_slow_shadow_adds_no_latency_and_a_timeout_never_touches_the_served_call(
    shadowed, mock, candidate, token, core
) -> None:  # type: ignore[no-untyped-def]
    runner(shadowed).timeout_s = 0.5
    mock.enqueue(SERVED)
    candidate.enqueue(Reply(text="late", first_byte_delay=3.0))
    t0 = time.monotonic()
    response = send(shadowed, token)
    answered = time.monotonic() - t0
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["tool_calls"]
    assert answered < 0.5  # the agent did not wait for the shadow
    (served,) = settled(core)
    assert (served["outcome"], served["upstream_model"], served["tool_calls"]) == (
        "ok",
        "qwen/qwen3-coder",
        1,
    )
    assert runner(shadowed).wait_idle()
    (row,) = shadow_rows(core)
    assert row["outcome"] == "timeout" and row["cost_usd"] is None
    assert settled(core) == [served]  # the served row is as it was


@pytest.mark.parametrize("stream", [False, True])
def test_a_failing_shadow_never_touches_the_served_call(
    shadowed, mock, candidate, token, core, stream
) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(SERVED)
    candidate.enqueue(Reply(status=500, error="candidate exploded"))
    response = send(shadowed, token, stream=stream)
    assert response.status_code == 200 and "candidate" not in response.text
    assert runner(shadowed).wait_idle()
    (row,) = shadow_rows(core)
    assert (row["outcome"], row["error_kind"], row["status"]) == ("error", "upstream_500", 500)
    assert "candidate exploded" in row["error_message"]
    (served,) = settled(core)
    assert (served["outcome"], served["status"], served["error_kind"]) == ("ok", 200, None)


def test_shadow_calls_stay_out_of_spend(shadowed, mock, candidate, token, core) -> None:  # type: ignore[no-untyped-def]
    row = run_one(
        shadowed,
        mock,
        candidate,
        token,
        core,
        Reply(tool_calls=[ToolCall("read_file", {"path": "a.py"})], usage=SHADOW_USAGE),
    )
    (served,) = settled(core)
    tiles = dashboard.tiles(core.db, since=0)
    assert tiles["calls"] == 1 and tiles["spend_range"] == pytest.approx(served["cost_usd"])
    with core.db.connect() as conn:
        assert dashboard.spend_by_provider(conn, 0, time.time() + 1).get("shadowco") is None
    spend = evaluation_spend(core.db, since=0)
    assert spend["cost_usd"] == pytest.approx(row["cost_usd"]) and spend["runs"] == 1
    card = {m["target"]: m for m in scorecard(core.db, since=0)["models"]}
    assert card["shadowco/cand-model"]["calls"] == 0  # a candidate, not a model that served
    (comparison,) = card["shadowco/cand-model"]["shadow"]
    assert comparison["served"] == "cheapco/qwen/qwen3-coder" and comparison["same_tool_rate"] == 1.0
    assert comparison["cost_usd"] == pytest.approx(SHADOW_COST)


# ---------------------------------------------------------------------------------------------- sampling, cap, bounds


def test_side_calls_and_other_presets_are_never_shadowed(
    shadowed, mock, candidate, token, core, config_path
) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        mock.enqueue(Reply(text="ok"))
    send(shadowed, token, model="claude-3-5-haiku-latest")  # background role
    send(shadowed, token, model="plan")
    send(shadowed, token, model="cheapco/qwen/qwen3-coder")  # explicit target: no role
    settled(core)
    assert runner(shadowed).wait_idle() and shadow_rows(core) == [] and candidate.requests == []
    assert runner(shadowed).stats["eligible"] == 0


def test_sampling_honours_the_share() -> None:
    """The sampled fraction of eligible loop calls is the share (a seeded generator: exact and repeatable)."""
    config = parse_config(
        {
            "providers": [{"name": "c", "base_url": dead_url()}],
            "presets": [{"name": "p", "default": "c/m", "shadow": {"target": "c/cand", "share": 0.25}}],
        }
    )

    class NoCore:  # offers only: every sample after the first waits behind its task's busy shadow
        events = None

    r = ShadowRunner(NoCore(), rng=random.Random(7), workers=0)  # type: ignore[arg-type]
    for _i in range(8000):
        rec = CallRecord(client_api="openai", endpoint="/v1/chat/completions")
        rec.preset, rec.role, rec.outcome, rec.task_key = "p", "default", "ok", "one-task"
        r.offer(rec, {"model": "m", "messages": []}, "openai", config)
    assert r.stats["eligible"] == 8000
    assert r.stats["sampled"] / 8000 == pytest.approx(0.25, abs=0.015)
    assert r.stats["queued"] == 1 and r.stats["dropped_busy"] == r.stats["sampled"] - 1


def test_share_through_the_proxy(mock, candidate, proxy, token, core, config_path) -> None:  # type: ignore[no-untyped-def]
    config_path.write_text(shadow_config(mock.base_url, candidate.base_url, share=0.5))
    runner(proxy).rng = random.Random(3)
    replay = random.Random(3)
    expected = sum(replay.random() < 0.5 for _ in range(20))
    for i in range(20):
        mock.enqueue(Reply(text="ok"))
        candidate.enqueue(Reply(text="ok", usage=SHADOW_USAGE))
        send(proxy, token, task=f"task-{i}")
        assert runner(proxy).wait_idle()
    assert len(shadow_rows(core)) == expected and 4 <= expected <= 16


def test_the_daily_cap_stops_shadow_runs(mock, candidate, proxy, token, core, config_path) -> None:  # type: ignore[no-untyped-def]
    config_path.write_text(shadow_config(mock.base_url, candidate.base_url, cap=SHADOW_COST * 1.5))
    notices: list[Any] = []
    core.events.subscribe("notice", notices.append)
    for i in range(4):
        mock.enqueue(Reply(text="ok"))
        candidate.enqueue(Reply(text="ok", usage=SHADOW_USAGE))
        send(proxy, token, task=f"task-{i}")
        assert runner(proxy).wait_idle()
    assert len(shadow_rows(core)) == 2  # the second crosses the cap and completes; none after it
    assert runner(proxy).stats["dropped_cap"] == 2 and runner(proxy).capped_today("shadowed")
    assert notices and notices[0][0] == "Shadow runs stopped for today" and "cap" in notices[0][1]
    assert evaluation_spend(core.db, since=0)["cost_usd"] == pytest.approx(2 * SHADOW_COST)


def test_an_unpriced_candidate_stops_after_one_call(mock, candidate, proxy, token, core, config_path) -> None:  # type: ignore[no-untyped-def]
    config_path.write_text(
        shadow_config(mock.base_url, candidate.base_url, target="shadowco/no-price-model-zz")
    )
    for i in range(3):
        mock.enqueue(Reply(text="ok"))
        candidate.enqueue(Reply(text="ok", usage=SHADOW_USAGE))
        send(proxy, token, task=f"task-{i}")
        assert runner(proxy).wait_idle()
    (row,) = shadow_rows(core)
    assert row["cost_usd"] is None and row["cost_source"] == "unpriced"
    assert runner(proxy).capped_today("shadowed")


def test_at_most_one_shadow_per_task_and_a_bounded_queue(
    mock, candidate, proxy, token, core, config_path
) -> None:  # type: ignore[no-untyped-def]
    config_path.write_text(shadow_config(mock.base_url, candidate.base_url))
    proxy.server.pipeline.shadow = r = ShadowRunner(core, workers=1, queue_max=1)
    gate = threading.Event()
    in_flight: list[int] = []
    peak = [0]

    def slow(_request: Any) -> Reply:
        in_flight.append(1)
        peak[0] = max(peak[0], len(in_flight))
        gate.wait(10)
        in_flight.pop()
        return Reply(text="ok", usage=SHADOW_USAGE)

    for _ in range(8):
        candidate.enqueue(slow)
        mock.enqueue(Reply(text="ok"))
    for task in ("a", "a", "a"):  # one task: the 2nd and 3rd wait behind its shadow, so they are dropped
        assert send(proxy, token, task=task).status_code == 200
    deadline = time.monotonic() + 5
    while not in_flight and time.monotonic() < deadline:  # a's shadow has reached the candidate
        time.sleep(0.01)
    for task in (
        "b",
        "c",
        "d",
        "e",
    ):  # the worker is busy with a's: b waits in the queue (1), c-e are dropped
        assert send(proxy, token, task=task).status_code == 200
    assert r.stats["dropped_busy"] == 2 and r.stats["queued"] == 2 and r.stats["dropped_queue"] == 3
    gate.set()
    assert r.wait_idle()
    assert peak[0] == 1 and len(shadow_rows(core)) == 2
    assert {row["call_id"] for row in shadow_rows(core)} <= {c["call_id"] for c in settled(core)}


def test_config_validation() -> None:
    from app.core.config import ConfigError, to_toml_dict

    base = {"providers": [{"name": "c", "base_url": "http://x/v1"}]}

    def preset(**shadow: Any) -> dict[str, Any]:
        return {**base, "presets": [{"name": "p", "default": "c/m", "shadow": shadow}]}

    config = parse_config(preset(target="c/cand"))
    assert config.presets["p"].shadow == Shadow(Target("c", "cand"), 0.1, 2.0)
    assert parse_config(to_toml_dict(config)).presets["p"].shadow == config.presets["p"].shadow
    for bad, match in (
        (preset(target="nobody/x"), "unknown provider 'nobody'"),
        (preset(), "target: is required"),
        (preset(target="c/cand", share=0), "share: must be a fraction above 0"),
        (preset(target="c/cand", share=1.5), "share: must be a fraction"),
        (preset(target="c/cand", max_usd_per_day=-1), "max_usd_per_day: must be 0 or more"),
    ):
        with pytest.raises(ConfigError, match=match):
            parse_config(bad)


def test_cli_and_page_show_evaluation_spend_apart(
    shadowed, mock, candidate, token, core, config_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    import json

    from app.cli import main as cli

    run_one(
        shadowed,
        mock,
        candidate,
        token,
        core,
        Reply(tool_calls=[ToolCall("bash", {"command": "ls"})], usage=SHADOW_USAGE),
    )
    common = ["--config", str(config_path), "--db", core.db_url]
    assert cli(["executors", "--json", *common]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["evaluation_spend"]["runs"] == 1
    assert cli(["executors", *common]) == 0
    out = capsys.readouterr().out
    assert (
        "shadowco/cand-model: candidate only (served no calls): 1 shadow runs against cheapco/qwen/qwen3-coder:"
        " valid 100%, same tool 0%"
    ) in out
    assert "  shadowing cheapco/qwen/qwen3-coder: 1 runs, valid 100.0% (served 100.0%), same tool 0.0%" in out
    assert "evaluation spend (shadow runs, never in spend totals): $0.0012 over 1 runs" in out


def test_the_cap_holds_across_a_restart(mock, candidate, proxy, token, core, config_path) -> None:  # type: ignore[no-untyped-def]
    """Today's evaluation spend is read back from the log, so a restarted proxy does not start the day afresh."""
    from sqlalchemy import insert

    from app.core.storage.models import ShadowCall

    config_path.write_text(shadow_config(mock.base_url, candidate.base_url, cap=0.01))
    with core.db.begin() as conn:
        conn.execute(
            insert(ShadowCall).values(
                call_id="earlier",
                started_at=time.time() - 60,
                preset="shadowed",
                provider="shadowco",
                model="cand-model",
                prompt_tokens=0,
                outcome="ok",
                input_tokens=0,
                output_tokens=0,
                cache_read_tokens=0,
                cost_usd=0.02,
                tool_calls=0,
                tool_failures=0,
                served_tool_calls=0,
                served_tool_failures=0,
            )
        )
    mock.enqueue(Reply(text="ok"))
    send(proxy, token)
    assert runner(proxy).wait_idle()
    assert len(shadow_rows(core)) == 1 and candidate.requests == []
    assert runner(proxy).stats["dropped_cap"] == 1


def test_presets_command_says_when_shadow_runs_are_on(shadowed, config_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from app.cli import main as cli

    assert cli(["presets", "--config", str(config_path)]) == 0
    assert (
        "shadowed: Shadow runs on: 100% of loop calls are also sent to shadowco/cand-model for evaluation"
        " (up to $1.00 a day)"
    ) in capsys.readouterr().out
    assert cli(["presets", "--json", "--config", str(config_path)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["shadowed"]["shadow"] == {
        "target": "shadowco/cand-model",
        "share": 1.0,
        "max_usd_per_day": 1.0,
    }
    assert rows["cheap"]["shadow"] is None and rows["cheap"]["long_context"] is None


def test_retention_prunes_old_shadow_runs(core) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import insert

    from app.core.analytics.retention import prune
    from app.core.storage.models import ShadowCall

    row = {
        "preset": "p",
        "provider": "c",
        "model": "m",
        "prompt_tokens": 0,
        "outcome": "ok",
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "tool_calls": 0,
        "tool_failures": 0,
        "served_tool_calls": 0,
        "served_tool_failures": 0,
    }
    with core.db.begin() as conn:
        conn.execute(
            insert(ShadowCall),
            [
                {**row, "call_id": "old", "started_at": time.time() - 100 * 86400},
                {**row, "call_id": "new", "started_at": time.time() - 3600},
            ],
        )
    prune(core.db, 90)
    assert [r["call_id"] for r in shadow_rows(core)] == ["new"]

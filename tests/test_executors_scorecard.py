"""The executor scorecard on a generated log: prompt-size buckets, verdicts with their evidence, minimums."""

from __future__ import annotations

import time

import pytest
from analytics_support import generated_call, write_log

from app.core.queries import executors
from app.core.queries.executors import MIN_TOOL_CALLS, scorecard, verdict

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)

T0 = time.time() - 86400


def calls(target: str, n: int, prompt: int, failed: int, *, start: int = 0, task: str = "gen", **kw):  # type: ignore[no-untyped-def]
    """`n` calls of one tool call each at `prompt` tokens, the first `failed` of them invalid."""
    return [
        generated_call(
            target, prompt, ["invalid_json" if i < failed else "ok"], at=T0 + start + i, task=task, **kw
        )
        for i in range(n)
    ]


def model(card: dict, target: str) -> dict:  # type: ignore[type-arg]
    return next(m for m in card["models"] if m["target"] == target)


def test_buckets_split_tool_calls_by_prompt_size(core) -> None:  # type: ignore[no-untyped-def]
    write_log(
        core,
        [
            *calls("cheapco/qwen", 30, 10_000, 3),
            *calls("cheapco/qwen", 20, 15_999, 0, start=100),
            *calls("cheapco/qwen", 10, 16_000, 5, start=200),
            *calls("cheapco/qwen", 7, 100_000, 7, start=300),
            *calls("cheapco/qwen", 4, 128_000, 0, start=400),
            *calls("cheapco/qwen", 2, 400_000, 1, start=500),
        ],
    )
    m = model(scorecard(core.db, since=0), "cheapco/qwen")
    assert [(b["bucket"], b["calls"], b["tool_calls"], b["failed"]) for b in m["buckets"]] == [
        ("<16K", 50, 50, 3),
        ("16-64K", 10, 10, 5),
        ("64-128K", 7, 7, 7),
        (">128K", 6, 6, 1),
    ]
    assert m["buckets"][2]["failure_rate"] == 1.0
    assert m["calls"] == 73 and m["tool_calls"] == 73 and m["tool_failures"] == 16
    assert m["validity"] == pytest.approx(57 / 73)
    assert [(b["low"], b["high"], b["calls"]) for b in m["bins"]] == [
        (8_000, 16_000, 50),
        (16_000, 24_000, 10),
        (96_000, 104_000, 7),
        (128_000, 160_000, 4),
        (256_000, None, 2),
    ]


def test_a_model_that_fails_as_context_grows_gets_a_climbing_verdict(core) -> None:  # type: ignore[no-untyped-def]
    write_log(
        core,
        [
            *calls("cheapco/qwen", 300, 10_000, 6),
            *calls("cheapco/qwen", 100, 70_000, 9, start=1000),
            *calls("cheapco/qwen", 100, 100_000, 25, start=2000),
        ],
    )
    v = model(scorecard(core.db, since=0), "cheapco/qwen")["verdict"]
    assert v["level"] == "climbs" and v["climbs_with_context"]
    assert v["text"] == (
        "holds up to 96K prompt tokens at 4% failures; above 96K fails 25% of tool calls; 500 tool calls"
    )
    assert (v["holds_up_to"], v["fails_above"], v["suggest_above_tokens"]) == (96_000, 96_000, 96_000)


def test_the_split_is_where_the_failures_start(core) -> None:  # type: ignore[no-untyped-def]
    """Good up to 64K, a grey zone, bad above 96K: the verdict names the grey zone's edges."""
    write_log(
        core,
        [
            *calls("cheapco/qwen", 400, 30_000, 8),
            *calls("cheapco/qwen", 60, 70_000, 6, start=1000),
            *calls("cheapco/qwen", 40, 80_000, 4, start=2000),
            *calls("cheapco/qwen", 200, 110_000, 60, start=3000),
        ],
    )
    v = model(scorecard(core.db, since=0), "cheapco/qwen")["verdict"]
    assert (
        v["fails_above"] == 104_000
    )  # the best single change point: every call below it, the 110K ones above
    assert v["holds_up_to"] == 104_000
    assert "above 104K fails 30% of tool calls" in v["text"]


def test_steady_and_poor_models(core) -> None:  # type: ignore[no-untyped-def]
    write_log(
        core,
        [
            *calls("cheapco/steady", 60, 5_000, 1),
            *calls("cheapco/steady", 60, 150_000, 1, start=100),
            *calls("backup/poor", 80, 5_000, 16),
            *calls("backup/poor", 40, 90_000, 8, start=100),
        ],
    )
    card = scorecard(core.db, since=0)
    steady, poor = model(card, "cheapco/steady")["verdict"], model(card, "backup/poor")["verdict"]
    assert steady["level"] == "good" and not steady["climbs_with_context"]
    assert (
        steady["text"]
        == "holds up across every prompt size seen (up to 160K prompt tokens) at 2% failures; 120 tool calls"
    )
    assert poor["level"] == "poor" and poor["suggest_above_tokens"] is None
    assert (
        poor["text"]
        == "fails 20% of tool calls at every prompt size seen (up to 96K prompt tokens); 120 tool calls"
    )


def test_no_verdict_below_the_minimum(core) -> None:  # type: ignore[no-untyped-def]
    write_log(
        core,
        [
            *calls("cheapco/new", MIN_TOOL_CALLS - 1, 5_000, 20),
            generated_call("cheapco/new", 5_000, [], at=T0 + 500),
        ],
    )  # a call without tool calls adds nothing
    m = model(scorecard(core.db, since=0), "cheapco/new")
    assert m["calls"] == MIN_TOOL_CALLS and m["tool_calls"] == MIN_TOOL_CALLS - 1
    assert m["verdict"]["level"] is None and m["verdict"]["tool_calls"] == MIN_TOOL_CALLS - 1
    assert (
        m["verdict"]["text"]
        == f"no verdict yet: {MIN_TOOL_CALLS - 1} tool calls (a verdict needs {MIN_TOOL_CALLS})"
    )
    write_log(core, calls("cheapco/new", 1, 5_000, 0, start=900))
    assert model(scorecard(core.db, since=0), "cheapco/new")["verdict"]["level"] == "poor"


def test_verdict_minimum_is_a_parameter() -> None:
    bins = [{"tool_calls": 0, "failed": 0} for _ in range(executors.BINS)]
    bins[0] = {"tool_calls": 10, "failed": 0}
    assert verdict(bins)["level"] is None
    assert verdict(bins, min_tool_calls=10)["level"] == "good"


def test_a_failed_result_counts_in_the_bin_of_the_call_that_made_it(core) -> None:  # type: ignore[no-untyped-def]
    first = generated_call("cheapco/qwen", 100_000, ["ok"], at=T0)
    write_log(core, [first])
    later = generated_call("backup/other", 2_000, [], at=T0 + 10)
    later.failed_results = [(first.tool_calls[0].tool_call_id, "Traceback")]
    write_log(core, [later])
    m = model(scorecard(core.db, since=0), "cheapco/qwen")
    assert m["buckets"][2] == {
        "bucket": "64-128K",
        "calls": 1,
        "tool_calls": 1,
        "failed": 1,
        "failure_rate": 1.0,
    }
    assert m["validity"] == 1.0 and m["failure_rate"] == 1.0  # valid call, failed result


def test_latency_cost_per_finished_task_escalations_and_probe(core) -> None:  # type: ignore[no-untyped-def]
    from app.core.analytics.probe import ProbeOutcome, store
    from app.core.config import Target
    from app.core.queries.tasks import list_tasks, set_outcome

    recs = [
        generated_call(
            "cheapco/qwen", 8_000, ["ok"], at=T0 + i, duration_ms=100.0 * (i + 1), task="t1", cost=0.01
        )
        for i in range(20)
    ]
    recs += [
        generated_call(
            "backup/plan", 8_000, ["ok"], at=T0 + 30, task="t1", role="plan", escalated=True, cost=0.5
        )
    ]
    recs += [generated_call("cheapco/qwen", 8_000, ["ok"], at=T0 + 40, task="t2", cost=0.02)]
    write_log(core, recs)
    by_key = {t["key"]: t["id"] for t in list_tasks(core.db)}
    set_outcome(core.db, by_key["task:t1"], "finished")
    set_outcome(core.db, by_key["task:t2"], "finished")
    store(
        core.db,
        Target("cheapco", "qwen"),
        [
            ProbeOutcome("single", True, 1, 0, {}, 10.0),
            ProbeOutcome("parallel", False, 3, 1, {"schema": 1}, 10.0),
        ],
    )
    card = scorecard(core.db, since=0)
    qwen, plan = model(card, "cheapco/qwen"), model(card, "backup/plan")
    assert (
        qwen["latency"]["sample"] == 21 and qwen["latency"]["p50_ms"] == 1000.0
    )  # 100..2000 ms and one of 1000
    assert qwen["latency"]["p95_ms"] == 1900.0
    assert qwen["finished_tasks"] == 2 and qwen["cost_per_finished_task"] == pytest.approx(
        (0.2 + 0.5 + 0.02) / 2
    )
    assert qwen["escalated_tasks"] == 1 and plan["escalation_calls"] == 1 and plan["escalated_tasks"] == 0
    assert qwen["probe"]["passed"] == 1 and qwen["probe"]["probes"] == 2 and qwen["probe"]["validity"] == 0.75
    assert plan["probe"] is None


def test_range_counts_whole_days_and_leaves_older_ones_out(core) -> None:  # type: ignore[no-untyped-def]
    day = 86400
    start = int(T0 // day) * day - 2 * day + 3600  # an hour into a UTC day, two days back
    write_log(
        core,
        [
            *calls("cheapco/qwen", 5, 5_000, 0, start=int(start - T0)),
            *calls("cheapco/qwen", 3, 5_000, 0, start=int(start - T0) + day),
        ],
    )
    assert (
        model(scorecard(core.db, since=start + day + 7200), "cheapco/qwen")["calls"] == 3
    )  # the whole day it is in
    assert model(scorecard(core.db, since=0), "cheapco/qwen")["calls"] == 8


def test_cli_executors_table_and_json(capsys, core, config_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from app.cli import main as cli

    write_log(
        core,
        [
            *calls("cheapco/qwen", 300, 10_000, 6),
            *calls("cheapco/qwen", 100, 100_000, 25, start=1000),
            *calls("backup/new", 3, 10_000, 0, start=2000),
        ],
    )
    common = ["--config", str(config_path), "--db", core.db_url]
    assert cli(["executors", "--json", *common]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["target"] for m in data["models"]] == ["backup/new", "cheapco/qwen"]
    assert data["models"][1]["verdict"]["fails_above"] == 96_000
    assert cli(["executors", *common]) == 0
    out = capsys.readouterr().out
    assert "FAIL <16K" in out and "FAIL >128K" in out
    assert (
        "cheapco/qwen: holds up to 96K prompt tokens at 2% failures; above 96K fails 25% of tool calls" in out
    )
    assert "backup/new: no verdict yet: 3 tool calls (a verdict needs 50)" in out
    assert cli(["executors", "--since", "soon", *common]) == 2
    assert "cannot read 'soon' as a time" in capsys.readouterr().err


def test_an_upgraded_log_scores_its_whole_history(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The 0004 migration fills the totals from the calls already logged, by the writer hook's rules."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from app.core.storage.db import _alembic_config, open_database
    from app.core.storage.writer import call_row

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
    recs = [*calls("cheapco/qwen", 30, 10_000, 3), *calls("cheapco/qwen", 20, 100_000, 2, start=100)]
    with engine.begin() as conn:
        present = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(calls)")}  # 0003's columns only
        for rec in recs:
            row = {k: v for k, v in call_row(rec).items() if k in present}
            conn.execute(
                text(f"INSERT INTO calls ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"), row
            )
            for t in rec.tool_calls:
                conn.execute(
                    text(
                        "INSERT INTO tool_calls (call_id, tool_call_id, name, kind, result_failed, started_at,"
                        " upstream_model) VALUES (:c, :t, 'read_file', :k, :f, :s, 'qwen')"
                    ),
                    {
                        "c": rec.call_id,
                        "t": t.tool_call_id,
                        "k": t.kind,
                        "s": rec.started_at,
                        "f": rec is recs[-1],
                    },
                )  # one valid call's result came back failed
    engine.dispose()
    upgraded = open_database(url)
    m = model(scorecard(upgraded, since=0), "cheapco/qwen")
    upgraded.dispose()
    assert [(b["bucket"], b["calls"], b["failed"]) for b in m["buckets"]] == [
        ("<16K", 30, 3),
        ("16-64K", 0, 0),
        ("64-128K", 20, 3),
        (">128K", 0, 0),
    ]


def test_proxied_calls_land_in_the_bucket_of_their_prompt_size(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    """Through the real proxy: the provider's reported prompt tokens (cache reads included) pick the bucket."""
    from analytics_support import TOOLS, chat, settled, user

    from app.testing.script import Reply, ToolCall, Usage

    mock.enqueue(
        Reply(tool_calls=[ToolCall("read_file", {"path": "a.py"})], usage=Usage(prompt=5_000, completion=20)),
        Reply(
            tool_calls=[ToolCall("read_file", '{"path": ')],
            usage=Usage(prompt=100_000, completion=20, cached=80_000),
        ),
        Reply(tool_calls=[ToolCall("read_file", {"path": 7})], usage=Usage(prompt=140_000, completion=20)),
    )
    for stream in (False, True, False):
        assert chat(proxy, token, user("go"), tools=TOOLS, stream=stream).status_code == 200
    settled(core)
    m = model(scorecard(core.db, since=0), "cheapco/qwen/qwen3-coder")
    assert [(b["bucket"], b["calls"], b["failed"]) for b in m["buckets"]] == [
        ("<16K", 1, 0),
        ("16-64K", 0, 0),
        ("64-128K", 1, 1),
        (">128K", 1, 1),
    ]

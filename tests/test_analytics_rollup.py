"""Retention: pruning old detail leaves every total, chart and task figure exactly as it was."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from app.core.analytics.retention import prune
from app.core.analytics.rollup import SLOT, slot_of
from app.core.queries import dashboard
from app.core.queries import tasks as task_queries
from app.core.records import CallRecord, ToolCallResult

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)

KINDS = ["ok", "ok", "ok", "ok", "invalid_json", "unknown_tool", "schema", "text_form"]
TARGETS = [
    ("cheapco", "qwen/qwen3-coder", "default"),
    ("backup", "deepseek/deepseek-chat", "plan"),
    ("cheapco", "qwen/qwen3-coder-30b", "background"),
]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


def _records(now: float, n: int = 600, seed: int = 7) -> list[CallRecord]:
    """Calls spread over ten days, in sessions, with tool calls of every kind and failed results later on."""
    rng = random.Random(seed)
    out: list[CallRecord] = []
    ok_ids: list[str] = []
    for i in range(n):
        provider, model, role = TARGETS[rng.randrange(3)]
        rec = CallRecord(
            client_api="openai",
            endpoint="/v1/chat/completions",
            started_at=now - 10 * 86400 + i * (10 * 86400 / n),
        )
        rec.provider, rec.upstream_model, rec.role = provider, model, role
        rec.task_key = f"session:s{i // 20}"
        rec.input_tokens, rec.output_tokens, rec.cache_read_tokens = (
            rng.randrange(5000),
            rng.randrange(800),
            rng.randrange(3000),
        )
        rec.cost_usd = None if i % 50 == 0 else rng.random() / 100
        rec.cost_source = "unpriced" if rec.cost_usd is None else "provider"
        rec.premium_cost_usd = rng.random() / 20
        rec.tool_calls = [
            ToolCallResult(f"t{i}_{j}", "read_file", rng.choice(KINDS)) for j in range(rng.randrange(4))
        ]
        ok_ids += [t.tool_call_id for t in rec.tool_calls if t.kind == "ok"]
        if i % 7 == 0 and ok_ids:
            rec.failed_results = [(ok_ids[-rng.randrange(1, min(5, len(ok_ids)) + 1)], "exit code 1")]
        rec.usage_estimated = i % 13 == 0
        rec.finish("error" if i % 31 == 0 else "ok", 500 if i % 31 == 0 else 200)
        out.append(rec)
    return out


def _snapshot(core, now: float) -> dict:  # type: ignore[no-untyped-def]
    db = core.db
    since = slot_of(now - 9 * 86400)
    return {
        "tiles": dashboard.tiles(db, since=since, now=now),
        "spend_hour": dashboard.spend_over_time(db, since=since, until=now, bucket_s=3600, by="model"),
        "spend_day": dashboard.spend_over_time(db, since=since, until=now, bucket_s=86400, by="provider"),
        "spend_role": dashboard.spend_over_time(db, since=since, until=now, bucket_s=6 * 3600, by="role"),
        "failures": dashboard.failure_rate_over_time(db, since=since, until=now, bucket_s=SLOT),
        "savings": dashboard.savings(db, since=since, until=now, by="day"),
        "savings_role": dashboard.savings(db, since=since, until=now, by="role"),
        "reliability": dashboard.reliability(db, since=since, until=now),
        "cost_per_task": task_queries.cost_per_task(db, since=0),
        "tasks": task_queries.list_tasks(db),
    }


def _count(core, sql: str) -> int:  # type: ignore[no-untyped-def]
    with core.db.connect() as conn:
        return int(conn.execute(text(sql)).scalar() or 0)


def test_figures_identical_before_and_after_pruning(core) -> None:  # type: ignore[no-untyped-def]
    now = time.time()
    recs = _records(now)
    for rec in recs:
        core.writer.finished(rec)
    assert core.writer.flush()
    before = _snapshot(core, now)
    # the slot totals agree with the records themselves
    all_time = dashboard.tiles(core.db, since=0, now=now)
    assert all_time["calls"] == len(recs)
    assert all_time["spend_range"] == pytest.approx(sum(r.cost_usd or 0 for r in recs))
    assert all_time["unpriced_calls"] == sum(
        r.cost_source == "unpriced" for r in recs
    )  # failed ones included
    assert all_time["estimated_calls"] == sum(r.usage_estimated for r in recs) > 0
    assert before["tiles"]["calls"] == sum(1 for r in recs if r.started_at >= slot_of(now - 9 * 86400))
    # failed results counted by the hook = the rows the writer marked (a failed call is not counted twice)
    failed_rows = _count(core, "SELECT count(*) FROM tool_calls WHERE kind != 'ok' OR result_failed")
    assert dashboard.reliability(core.db, since=0, until=now)["total"]["failed"] == failed_rows
    assert _count(core, "SELECT count(*) FROM tool_calls WHERE kind = 'ok' AND result_failed") > 10

    result = prune(core.db, retention_days=3, now=now)
    cutoff = result["cutoff"]
    assert result["calls_pruned"] > 300
    assert _count(core, f"SELECT count(*) FROM calls WHERE started_at < {cutoff}") == 0
    assert _count(core, f"SELECT count(*) FROM tool_calls WHERE started_at < {cutoff}") == 0
    assert _count(core, "SELECT count(*) FROM calls") > 100
    assert _snapshot(core, now) == before


def test_the_writer_prunes_on_its_own(core, config_path) -> None:  # type: ignore[no-untyped-def]
    now = time.time()
    for rec in _records(now, n=100):
        core.writer.finished(rec)
    assert core.writer.flush()
    config_path.write_text(config_path.read_text() + "\n[logging]\nretention_days = 2\n")
    before = dashboard.tiles(core.db, since=0, now=now)
    late = CallRecord(client_api="openai", endpoint="/x")
    late.finish("ok", 200)
    core.writer.finished(late)
    assert core.writer.flush()
    assert _count(core, f"SELECT count(*) FROM calls WHERE started_at < {now - 3 * 86400}") == 0
    after = dashboard.tiles(core.db, since=0, now=late.started_at + 1)
    assert after["calls"] == before["calls"] + 1 and after["spend_range"] == pytest.approx(
        before["spend_range"]
    )


@given(
    since=st.floats(0, 100_000),
    length=st.floats(0, 100_000),
    cutoff_hours=st.integers(0, 40),
    whole=st.booleans(),
)
def test_plan_covers_the_range_once_and_never_reads_pruned_detail(since, length, cutoff_hours, whole) -> None:  # type: ignore[no-untyped-def]
    until = since + length
    cutoff = cutoff_hours * 3600
    hours, detail = dashboard.plan(since, until, cutoff, whole)
    pieces = [(float(hours[0]), float(hours[1]))] if hours else []
    pieces += detail
    for a, b in detail:
        assert a >= cutoff and a < b
    if hours:
        assert hours[0] % SLOT == 0 and hours[1] % SLOT == 0
    pieces.sort()
    if until > since:  # contiguous, covering [since, until) (hours may widen it to whole hours)
        assert pieces[0][0] <= since and pieces[-1][1] >= until
        assert all(p[1] == q[0] for p, q in zip(pieces, pieces[1:], strict=False))
    else:
        assert pieces == []


def test_upgrade_from_0001_fills_the_totals_from_the_existing_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa
    from alembic import command

    from app.core.storage.db import _alembic_config, create_db_engine, open_database
    from app.core.storage.writer import call_row

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_db_engine(url)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    now = time.time()
    recs = _records(now, n=200)
    with engine.begin() as conn:  # tasks as an older version would have left them: rows, no totals
        for i in range(10):
            conn.execute(
                text(
                    "INSERT INTO tasks (id, key, source, started_at, last_at) VALUES (:i, 'k', 'session', 0, 0)"
                ),
                {"i": i + 1},
            )
    for i, rec in enumerate(recs):
        rec.task_id = i // 20 + 1
    # rows as 0001's writer left them (its columns only, no analytics hook)
    old_columns = {c["name"] for c in sa.inspect(engine).get_columns("calls")} - {"id"}
    with engine.begin() as conn:
        conn.execute(
            sa.table("calls", *map(sa.column, old_columns)).insert(),
            [{k: v for k, v in call_row(rec).items() if k in old_columns} for rec in recs],
        )
        conn.execute(
            text(
                "INSERT INTO tool_calls (call_id, tool_call_id, name, kind, result_failed, started_at,"
                " upstream_model) VALUES (:c, :t, :n, :k, 0, :s, :m)"
            ),
            [
                {
                    "c": r.call_id,
                    "t": t.tool_call_id,
                    "n": t.name,
                    "k": t.kind,
                    "s": r.started_at,
                    "m": r.upstream_model,
                }
                for r in recs
                for t in r.tool_calls
            ],
        )
        for rec in recs:
            for tool_call_id, reason in rec.failed_results:
                conn.execute(
                    text(
                        "UPDATE tool_calls SET result_failed = 1, result_reason = :r WHERE tool_call_id = :t"
                        " AND result_failed = 0"
                    ),
                    {"r": reason, "t": tool_call_id},
                )
    engine.dispose()

    upgraded = open_database(url)  # migrates to head, filling the totals
    try:
        tiles = dashboard.tiles(upgraded, since=0, now=now)
        assert tiles["calls"] == len(recs)
        # every unpriced call counts, failed ones too (0002 left them out); older calls are not known estimates
        assert tiles["unpriced_calls"] == sum(r.cost_source == "unpriced" for r in recs)
        assert any(r.cost_source == "unpriced" and r.outcome != "ok" for r in recs)
        assert tiles["estimated_calls"] == 0
        assert tiles["spend_range"] == pytest.approx(sum(r.cost_usd or 0 for r in recs))
        emitted = sum(len(r.tool_calls) for r in recs)
        with upgraded.connect() as conn:
            failed = conn.execute(
                text("SELECT count(*) FROM tool_calls WHERE kind != 'ok' OR result_failed")
            ).scalar()
        total = dashboard.reliability(upgraded, since=0, until=now)["total"]
        assert (total["tool_calls"], total["failed"]) == (emitted, failed) and failed > 0
        listed = {t["id"]: t for t in task_queries.list_tasks(upgraded)}
        assert listed[1]["calls"] == 20
        assert listed[1]["cost_usd"] == pytest.approx(sum(r.cost_usd or 0 for r in recs[:20]))
    finally:
        upgraded.dispose()

"""Rows carry member and machine: stats, tasks, exports and the dashboard queries filter and group by member,
on SQLite and on PostgreSQL, from the slot totals and from the detail rows alike."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from app.cli import main as cli
from app.core.analytics.rollup import SLOT
from app.core.queries import dashboard, iter_calls, summary
from app.core.queries.calls import CallFilter, calls_page
from app.core.queries.tasks import list_tasks
from app.core.records import CallRecord, ToolCallResult

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)

MEMBERS = ("ann", "bob", None)


def _record(i: int, member: str | None, at: float) -> CallRecord:
    rec = CallRecord(client_api="openai", endpoint="/v1/chat/completions", started_at=at)
    rec.provider, rec.upstream_model, rec.role = "cheapco", "qwen/qwen3-coder", "default"
    rec.member = member
    rec.task_key = "session:shared"  # the same agent session id on every laptop: still one task per member
    rec.input_tokens, rec.output_tokens = 100 + i, 10 + i
    rec.cost_usd, rec.cost_source, rec.premium_cost_usd = 0.001 * (i + 1), "table", 0.01 * (i + 1)
    rec.tool_calls = [ToolCallResult(f"tc{i}", "read_file", "schema" if i % 3 == 0 else "ok")]
    rec.finish("ok", 200)
    return rec


@pytest.fixture
def team_log(core):  # type: ignore[no-untyped-def]
    """30 calls of three members (one of them a single user's, no member), half in whole slots two hours ago
    (read from the slot totals), half in the current partial slot (read from the call rows)."""
    now = time.time()
    old = (now // SLOT) * SLOT - 2 * 3600 + 5
    recent = max((now // SLOT) * SLOT, now - 60)
    recs = [_record(i, MEMBERS[i % 3], (old if i < 15 else recent) + i) for i in range(30)]
    for rec in recs:
        core.writer.finished(rec)
    assert core.writer.flush()
    return recs, now


def _expect(recs: list[CallRecord], member: str | None) -> tuple[int, float, int]:
    mine = [r for r in recs if (r.member or "") == member]
    return len(mine), sum(r.cost_usd or 0 for r in mine), sum(r.tool_failures for r in mine)


def test_dashboard_queries_filter_and_group_by_member(core, team_log) -> None:  # type: ignore[no-untyped-def]
    recs, now = team_log
    since = now - 3 * 3600
    for member in ("ann", "bob", ""):
        calls, cost, failed = _expect(recs, member)
        tiles = dashboard.tiles(core.db, since=since, now=now + 120, member=member)
        assert tiles["calls"] == calls and tiles["spend_range"] == pytest.approx(cost)
        rel = dashboard.reliability(core.db, since=since, until=now + 120, member=member)["total"]
        assert (rel["tool_calls"], rel["failed"]) == (calls, failed)
        spend = dashboard.spend_over_time(
            core.db, since=since, until=now + 120, bucket_s=3600, by="model", member=member
        )
        assert sum(sum(s) for s in spend["series"].values()) == pytest.approx(cost)
    by_member = dashboard.spend_over_time(core.db, since=since, until=now + 120, bucket_s=SLOT, by="member")
    assert set(by_member["series"]) == {"ann", "bob", "(none)"}
    table = {m["member"]: m for m in dashboard.members(core.db, since=since, until=now + 120)}
    assert set(table) == {"ann", "bob", ""}
    for member, row in table.items():
        calls, cost, failed = _expect(recs, member)
        assert (row["calls"], row["tool_failures"]) == (calls, failed)
        assert row["cost_usd"] == pytest.approx(cost)
    assert sum(r["calls"] for r in table.values()) == len(recs)


def test_calls_tasks_and_exports_filter_by_member(core, team_log) -> None:  # type: ignore[no-untyped-def]
    recs, _now = team_log
    ann = {r.call_id for r in recs if r.member == "ann"}
    assert {r["call_id"] for r in iter_calls(core.db, member="ann")} == ann
    assert {r["call_id"] for r in calls_page(core.db, CallFilter(member="ann"), limit=100)} == ann
    assert summary(core.db, member="ann")["total"]["calls"] == len(ann)
    # one agent session id on three laptops is a task per member (two each: the bursts are two hours apart)
    tasks = list_tasks(core.db)
    assert sorted(t["member"] for t in tasks) == ["", "", "ann", "ann", "bob", "bob"]
    ann_tasks = list_tasks(core.db, member="ann")
    assert [t["member"] for t in ann_tasks] == ["ann", "ann"] and sum(t["calls"] for t in ann_tasks) == len(
        ann
    )
    with core.db.connect() as conn:
        members = dict(conn.execute(text("SELECT call_id, member FROM calls")).all())
    assert members == {r.call_id: r.member for r in recs}


def test_cli_member_option(core, team_log, config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    recs, _now = team_log
    common = ["--config", str(config_path), "--db", core.db_url]
    assert cli([*common, "stats", "--json", "--member", "bob"]) == 0
    data = json.loads(capsys.readouterr().out)
    calls, cost, _failed = _expect(recs, "bob")
    assert data["total"]["calls"] == calls and data["total"]["cost_usd"] == pytest.approx(cost)
    assert [m["member"] for m in data["members"]] == ["bob"]
    assert cli([*common, "stats", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {m["member"]: m["calls"] for m in data["members"]} == {"ann": 10, "bob": 10, "": 10}
    assert cli([*common, "stats"]) == 0
    assert "MEMBER" in capsys.readouterr().out
    assert cli([*common, "tasks", "--json", "--member", "ann"]) == 0
    assert [t["member"] for t in json.loads(capsys.readouterr().out)] == ["ann", "ann"]
    assert cli([*common, "export", "calls", "--format", "json", "--member", "ann"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert {r["member"] for r in exported} == {"ann"} and len(exported) == 10


def test_the_team_section_names_the_member_and_machine_of_every_row(
    tmp_path: Path, config_path: Path, db_url: str
) -> None:
    from app.core.engine import Core

    config_path.write_text(config_path.read_text() + '\n[team]\nmember = "ann"\n')
    core = Core(config_path, db_url)
    try:
        rec = CallRecord(client_api="openai", endpoint="/v1/chat/completions")
        rec.finish("ok", 200)
        core.writer.finished(rec)
        assert core.writer.flush()
        with core.db.connect() as conn:
            assert conn.execute(text("SELECT member, machine FROM calls")).all() == [
                ("ann", socket.gethostname())
            ]
    finally:
        core.close()


def test_upgrading_a_log_keeps_its_slot_totals_with_no_member(tmp_path: Path) -> None:
    """0005 rebuilds usage_slots with member in its key: every existing total is kept, as member '', with
    every column the earlier revisions added (0003's estimated_calls); a downgrade adds members together."""
    from alembic import command

    from app.core.storage.db import _alembic_config, create_db_engine, open_database

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_db_engine(url)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        conn.execute(
            text(
                "INSERT INTO usage_slots (slot, provider, model, role, calls, cost_usd, tool_calls, estimated_calls)"
                " VALUES (900, 'p', 'm', 'default', 7, 1.25, 3, 2), (1800, 'p', 'm', '', 2, 0.5, 0, 0)"
            )
        )
    engine.dispose()
    upgraded = open_database(url)
    try:
        with upgraded.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT slot, member, calls, cost_usd, tool_calls, estimated_calls FROM usage_slots ORDER BY slot"
                )
            ).all()
        assert rows == [(900, "", 7, 1.25, 3, 2), (1800, "", 2, 0.5, 0, 0)]
        tiles = dashboard.tiles(upgraded, since=0, now=3600)
        assert (tiles["calls"], tiles["estimated_calls"]) == (9, 2)
        with upgraded.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO usage_slots (slot, provider, model, role, member, calls, cost_usd, tool_calls,"
                    " estimated_calls) VALUES (900, 'p', 'm', 'default', 'ann', 1, 0.25, 1, 1)"
                )
            )
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
            rows = conn.execute(
                text(
                    "SELECT slot, calls, cost_usd, tool_calls, estimated_calls FROM usage_slots ORDER BY slot"
                )
            ).all()
        assert rows == [(900, 8, 1.5, 4, 3), (1800, 2, 0.5, 0, 0)]
    finally:
        upgraded.dispose()

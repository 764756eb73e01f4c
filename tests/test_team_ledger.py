"""A team ledger on PostgreSQL: several writer processes at once, one database, exact totals.

Two real processes log calls with the same task keys into the same 15-minute slots, through the real log
writer and analytics hook. Every slot total and every task total must equal the sum of its call rows (no
double count, no lost update), and each task key must have one task (no two writers opening it twice).
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from app.core.analytics.rollup import slot_of
from app.core.storage.db import open_database
from app.core.storage.dialect import display_url, normalize_url
from app.testing.ledger_load import make_record, spawn
from app.testing.ports import free_port


def run_writers(url: str, tmp_path: Path, n: int, t0: float, writers: int = 2) -> list[dict]:
    start = tmp_path / "go"
    procs = spawn(url, writers, n, t0, start, tmp_path)
    open_database(url).dispose()  # schema in place before the writers race for it too
    start.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr.decode()[-3000:]
        out.append(orjson.loads(stdout.splitlines()[-1]))
    return out


@pytest.mark.slow
def test_two_writer_processes_never_double_count_a_slot_or_a_task(pg_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = pg_server.create_database()
    n = 1500
    t0 = slot_of(time.time()) - 3600.0
    results = run_writers(url, tmp_path, n, t0)
    assert [r["written"] for r in results] == [n, n]
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 2 * n
            # each task key got exactly one task, though both writers opened it at the same moment
            keys = conn.execute(text("SELECT key, count(*) FROM tasks GROUP BY key")).all()
            assert sorted(keys) == [(f"session:s{k}", 1) for k in range(7)]
            slots = {
                tuple(r[:4]): r[4:]
                for r in conn.execute(
                    text(
                        "SELECT slot, provider, model, role, calls, errors, input_tokens, cost_usd, tool_calls FROM usage_slots"
                    )
                )
            }
            task_of = dict(conn.execute(text("SELECT key, id FROM tasks")).all())
            totals = {
                r[0]: r[1:]
                for r in conn.execute(
                    text(
                        "SELECT task_id, calls, errors, output_tokens, cost_usd, tool_calls FROM task_totals"
                    )
                )
            }
        # the expected figures, from the very records the writers logged
        want_slots: dict[tuple, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0, 0])
        want_tasks: dict[int, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0, 0])
        for w in range(2):
            for i in range(n):
                rec = make_record(w, i, t0)
                s = want_slots[(slot_of(rec.started_at), rec.provider, rec.upstream_model, rec.role)]
                t = want_tasks[task_of[rec.task_key]]
                for row in (s, t):
                    row[0] += 1
                    row[1] += rec.outcome != "ok"
                    row[3] += rec.cost_usd
                    row[4] += len(rec.tool_calls)
                s[2] += rec.input_tokens
                t[2] += rec.output_tokens
        assert set(slots) == set(want_slots)
        for key, want in want_slots.items():
            got = slots[key]
            assert list(got[:3]) + [got[4]] == want[:3] + [want[4]], key
            assert got[3] == pytest.approx(want[3]), key
        assert set(totals) == set(want_tasks)
        for task_id, want in want_tasks.items():
            got = totals[task_id]
            assert list(got[:3]) + [got[4]] == want[:3] + [want[4]], task_id
            assert got[3] == pytest.approx(want[3]), task_id
    finally:
        engine.dispose()
        pg_server.drop_database(url)


def test_a_url_as_a_user_writes_it_picks_psycopg_and_never_shows_the_password() -> None:
    assert (
        normalize_url("postgresql://ann@db.example:5432/team")
        == "postgresql+psycopg://ann@db.example:5432/team"
    )
    assert normalize_url("postgres://ann@db/team") == "postgresql+psycopg://ann@db/team"
    assert normalize_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    shown = display_url("postgresql://ann:s3cret-pw@db.example:5432/team")
    assert "s3cret-pw" not in shown and "ann" in shown and "db.example" in shown


def test_an_unreachable_ledger_is_a_clear_error_without_the_password() -> None:
    from app.core.storage.db import DatabaseOpenError

    with pytest.raises(DatabaseOpenError) as caught:
        open_database(f"postgresql://ann:s3cret-pw@127.0.0.1:{free_port()}/team?connect_timeout=2")
    assert "s3cret-pw" not in str(caught.value) and "127.0.0.1" in str(caught.value)

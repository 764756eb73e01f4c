"""The Calls page's queries: filters, keyset pages, counts, facets and one call's detail, with exact results.

Also home of `fill_synthetic_calls`, the fast generator of a realistic million-row log that the UI tests
and the GUI benchmark open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, event

from app.core.queries import calls as q
from app.core.queries.calls import (
    CallFilter,
    call_detail,
    call_facets,
    calls_by_call_id,
    calls_page,
    count_calls,
)
from app.core.records import Attempt, CallRecord, ToolCallResult
from app.core.storage.db import MIGRATIONS, create_db_engine, open_database
from app.core.storage.models import Task
from app.core.storage.writer import LogWriter

T0 = 1_700_000_000.0


def record(
    n: int,
    at: float,
    *,
    model: str = "qwen/qwen3-coder",
    provider: str = "cheapco",
    outcome: str = "ok",
    status: int = 200,
    requested: str = "claude-sonnet-4-5",
    task_id: int | None = None,
    tools: tuple[ToolCallResult, ...] = (),
    attempts: tuple[Attempt, ...] = (),
    **extra: object,
) -> CallRecord:
    rec = CallRecord(
        client_api="openai",
        endpoint="/v1/chat/completions",
        call_id=f"c{n}",
        started_at=at,
        requested_model=requested,
        provider=provider,
        upstream_model=model,
        upstream_api="openai",
        status=status,
        outcome=outcome,
        task_id=task_id,
        tool_calls=list(tools),
        attempts=list(attempts),
        input_tokens=100 * n,
        output_tokens=10 * n,
        cost_usd=0.001 * n,
        cost_source="table",
        duration_ms=100.0 * n,
    )
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def make_log(url: str) -> Engine:
    """Six calls and two tasks covering every filter, written through the real log writer."""
    engine = open_database(url)
    with engine.begin() as conn:
        conn.execute(
            Task.__table__.insert(),
            [
                {
                    "id": 1,
                    "key": "task:1",
                    "source": "header",
                    "label": "fix the bug",
                    "started_at": T0,
                    "last_at": T0 + 20,
                    "outcome": "finished",
                },
                {
                    "id": 2,
                    "key": "task:2",
                    "source": "session",
                    "label": None,
                    "started_at": T0 + 30,
                    "last_at": T0 + 30,
                    "outcome": None,
                },
            ],
        )
    writer = LogWriter(engine)
    writer.finished(record(1, T0 + 10, task_id=1, tools=(ToolCallResult("call_1", "read_file", "ok"),)))
    writer.finished(
        record(
            2,
            T0 + 20,
            model="deepseek/deepseek-chat",
            provider="backup",
            outcome="error",
            status=429,
            requested="claude-3-5-haiku-latest",
            error_kind="rate_limited",
            error_message="slow down",
            attempts=(
                Attempt("cheapco/qwen/qwen3-coder", 429, None, None, 12.0),
                Attempt("backup/deepseek/deepseek-chat", 429, None, None, 8.0),
            ),
        )
    )
    writer.finished(
        record(
            3,
            T0 + 20,
            task_id=1,
            tools=(ToolCallResult("call_3", "edit_file", "schema", "$.path: 5 is not of type 'string'"),),
            attempts=(Attempt("cheapco/qwen/qwen3-coder", 200, None, None, 300.0),),
        )
    )
    writer.finished(
        record(
            4,
            T0 + 30,
            model="moonshotai/kimi-k2",
            provider="groq",
            outcome="cancelled",
            status=None,
            requested="claude-x",
            task_id=2,
        )
    )
    writer.finished(record(5, T0 + 40, requested="my_model%x", request_body=b'{"x":1}'))
    writer.finished(
        record(
            6,
            T0 + 50,
            model="deepseek/deepseek-chat",
            provider="backup",
            tools=(ToolCallResult("call_6a", "bash", "ok"), ToolCallResult("call_6b", "bash", "ok")),
        )
    )
    writer.failed_results([("call_6b", "exit code 1")])
    assert writer.flush()
    writer.close()
    return engine


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """Shared by the tests that only read; once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        engine = make_log(f"sqlite:///{tmp_path_factory.mktemp('calls') / 'q.db'}")
        yield engine
        engine.dispose()
        return
    server = request.getfixturevalue("pg_server")
    url = server.create_database()
    engine = make_log(url)
    yield engine
    engine.dispose()
    server.drop_database(url)


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """For the SQLite query-plan tests."""
    engine = make_log(f"sqlite:///{tmp_path_factory.mktemp('plans') / 'q.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def own_db(db_url: str) -> Iterator[Engine]:
    """For a test that changes the log."""
    engine = make_log(db_url)
    yield engine
    engine.dispose()


def ids(rows: list[dict]) -> list[str]:
    return [r["call_id"] for r in rows]


def test_newest_first_with_ties_broken_by_id(db: Engine) -> None:
    assert ids(calls_page(db)) == ["c6", "c5", "c4", "c3", "c2", "c1"]
    assert set(calls_page(db)[0]) == set(q.LIST_COLUMNS)


def test_keyset_pages_cover_everything_once_even_across_a_tie(db: Engine) -> None:
    pages, before = [], None
    while True:
        page = calls_page(db, before_id=before, limit=2)
        if not page:
            break
        pages.append(ids(page))
        before = page[-1]["id"]
    # c3 and c2 started at the same second and straddle a page boundary
    assert pages == [["c6", "c5"], ["c4", "c3"], ["c2", "c1"]]
    # the cursor's time given by the caller gives the same page as looking it up
    c3 = calls_page(db, limit=4)[-1]
    assert ids(calls_page(db, before_id=c3["id"], before_started_at=c3["started_at"])) == ["c2", "c1"]


@pytest.mark.both_backends
def test_a_cursor_row_that_was_pruned_falls_back_to_id_order(own_db: Engine) -> None:
    with own_db.begin() as conn:
        conn.exec_driver_sql("DELETE FROM calls WHERE call_id = 'c4'")
    assert ids(calls_page(own_db, before_id=4)) == ["c3", "c2", "c1"]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (CallFilter(since=T0 + 20), ["c6", "c5", "c4", "c3", "c2"]),
        (CallFilter(until=T0 + 30), ["c3", "c2", "c1"]),
        (CallFilter(since=T0 + 15, until=T0 + 45), ["c5", "c4", "c3", "c2"]),
        (CallFilter(model="qwen/qwen3-coder"), ["c5", "c3", "c1"]),
        (CallFilter(provider="backup"), ["c6", "c2"]),
        (CallFilter(outcome="ok"), ["c6", "c5", "c3", "c1"]),
        (CallFilter(outcome="error"), ["c2"]),
        (CallFilter(outcome="interrupted"), []),
        (CallFilter(status=429), ["c2"]),
        (CallFilter(task_id=1), ["c3", "c1"]),
        (CallFilter(failures_only=True), ["c4", "c3", "c2"]),
        (CallFilter(search="HAIKU"), ["c2"]),
        (CallFilter(search="l%x"), ["c5"]),  # % and _ are literal, not wildcards: "claude-x" does not match
        (CallFilter(search="_"), ["c5"]),
        (CallFilter(model="qwen/qwen3-coder", since=T0 + 15), ["c5", "c3"]),
        (CallFilter(provider="backup", failures_only=True), ["c2"]),
        (CallFilter(model="no/such-model"), []),
    ],
)
def test_filters_and_counts(db: Engine, flt: CallFilter, expected: list[str]) -> None:
    assert ids(calls_page(db, flt)) == expected
    assert count_calls(db, flt) == len(expected)
    # paging one row at a time under the filter gives the same rows
    paged, before = [], None
    while page := calls_page(db, flt, before_id=before, limit=1):
        paged += ids(page)
        before = page[0]["id"]
    assert paged == expected


def test_count_without_filter(db: Engine) -> None:
    assert count_calls(db) == 6
    assert count_calls(db, CallFilter()) == 6


def test_calls_by_call_id_applies_the_filter(db: Engine) -> None:
    assert ids(calls_by_call_id(db, ["c1", "c2", "c4"])) == ["c4", "c2", "c1"]
    assert ids(calls_by_call_id(db, ["c1", "c2", "c4"], CallFilter(model="qwen/qwen3-coder"))) == ["c1"]
    assert calls_by_call_id(db, []) == []


def test_facets_list_each_model_and_provider_once(db: Engine) -> None:
    assert call_facets(db) == {
        "models": ["deepseek/deepseek-chat", "moonshotai/kimi-k2", "qwen/qwen3-coder"],
        "providers": ["backup", "cheapco", "groq"],
    }


def test_detail_has_tool_checks_task_and_parsed_fallback(db: Engine) -> None:
    c3 = call_detail(db, 3)
    assert c3["call_id"] == "c3" and c3["outcome"] == "ok" and c3["input_tokens"] == 300
    assert c3["tool_call_rows"] == [
        {
            "tool_call_id": "call_3",
            "name": "edit_file",
            "kind": "schema",
            "detail": "$.path: 5 is not of type 'string'",
            "result_failed": False,
            "result_reason": None,
        }
    ]
    assert c3["task"] == {"id": 1, "label": "fix the bug", "source": "header", "outcome": "finished"}
    assert c3["fallback"] == [
        {
            "target": "cheapco/qwen/qwen3-coder",
            "status": 200,
            "error_kind": None,
            "error_message": None,
            "duration_ms": 300.0,
        }
    ]
    assert "request_body" not in c3 and "response_body" not in c3

    c2 = call_detail(db, "c2")  # by call_id as well as by row id
    assert [(a["target"], a["status"]) for a in c2["fallback"]] == [
        ("cheapco/qwen/qwen3-coder", 429),
        ("backup/deepseek/deepseek-chat", 429),
    ]
    assert (c2["error_kind"], c2["error_message"], c2["attempts"]) == ("rate_limited", "slow down", 2)
    assert c2["task"] is None and c2["tool_call_rows"] == []


def test_detail_shows_a_failed_tool_result_and_bodies_only_when_kept(db: Engine) -> None:
    c6 = call_detail(db, "c6")
    assert [
        (t["tool_call_id"], t["kind"], t["result_failed"], t["result_reason"]) for t in c6["tool_call_rows"]
    ] == [("call_6a", "ok", False, None), ("call_6b", "ok", True, "exit code 1")]
    c5 = call_detail(db, "c5")
    assert c5["request_body"] == '{"x":1}' and "response_body" not in c5
    assert c5["fallback"] == []


def test_detail_of_a_missing_call_says_so(db: Engine) -> None:
    with pytest.raises(LookupError, match="call 999 is not in the log"):
        call_detail(db, 999)


@pytest.mark.both_backends
def test_a_corrupt_fallback_chain_is_reported_not_raised(own_db: Engine) -> None:
    with own_db.begin() as conn:
        conn.exec_driver_sql("UPDATE calls SET fallback_chain = '[{oops' WHERE call_id = 'c1'")
    (attempt,) = call_detail(own_db, "c1")["fallback"]
    assert attempt["error_message"].startswith("unreadable fallback chain")


# --------------------------------------------------------------------------------------- query plans


def plans(engine: Engine, run) -> list[str]:  # type: ignore[no-untyped-def]
    """The SQLite plan of every SELECT on `calls` that `run` executes."""
    seen: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and "ORDER BY" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    out = []
    with engine.connect() as conn:
        for statement, parameters in seen:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()  # type: ignore[arg-type]
            out.append(" / ".join(r[3] for r in rows))
    return out


@pytest.mark.parametrize(
    "flt",
    [
        CallFilter(),
        CallFilter(since=T0),
        CallFilter(model="qwen/qwen3-coder"),
        CallFilter(provider="backup"),
        CallFilter(outcome="ok"),
        CallFilter(failures_only=True),
        CallFilter(search="haiku"),
        CallFilter(model="qwen/qwen3-coder", outcome="ok", since=T0),
    ],
    ids=repr,
)
def test_pages_are_read_from_an_index_in_order_never_sorted(sqlite_db: Engine, flt: CallFilter) -> None:
    """A sort would read every matching row for each page: seconds at a million rows."""
    db = sqlite_db
    (plan,) = plans(db, lambda: calls_page(db, flt, before_id=4))
    assert "TEMP B-TREE" not in plan, plan
    assert "INDEX" in plan, plan


def test_rare_outcomes_use_their_index_and_common_ones_the_time_index(
    sqlite_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = sqlite_db
    (plan,) = plans(db, lambda: calls_page(db, CallFilter(outcome="error")))
    assert "ix_calls_outcome" in plan  # one error: read it from its index, sorting one row is free
    monkeypatch.setattr(q, "RARE_OUTCOME_ROWS", 0)  # as if errors were a large part of the log
    (plan,) = plans(db, lambda: calls_page(db, CallFilter(outcome="error")))
    assert "ix_calls_started_at" in plan and "TEMP B-TREE" not in plan
    assert ids(calls_page(db, CallFilter(outcome="error"))) == ["c2"]


# ------------------------------------------------------------------------------------ synthetic log

_MODELS = (
    ("cheapco", "qwen/qwen3-coder", 40),
    ("cheapco", "qwen/qwen3-coder-30b", 20),
    ("backup", "deepseek/deepseek-chat", 20),
    ("groq", "moonshotai/kimi-k2", 10),
    ("premium", "claude-sonnet-4-5", 9),
    ("local", "rare/model-x", 1),
)


def fill_synthetic_calls(
    path: Path,
    n: int,
    *,
    end: float,
    span: float = 30 * 86400,
    tasks: int | None = None,
    tool_rows: bool = False,
) -> None:
    """Create the call log at `path` (which must not exist) holding `n` realistic calls spread evenly over
    `span` seconds before `end`, a task per 50 calls and, with `tool_rows`, their tool-call rows.

    Generated inside SQLite with a recursive CTE on the first schema revision, with indexes dropped and
    rebuilt around the insert and no journal; the upgrade to the current schema then derives whatever
    later revisions keep (the hourly and per-task totals) exactly as it does for a user's old log. A
    million rows take about 20 s instead of many minutes through the writer. The mix is the same on every
    run (a multiplicative hash of the row number, not random()): models weighted 40/20/20/10/9/1 %,
    3 % rate limited, 1 % upstream errors, 0.5 % cancelled, 1 % unpriced, 40 % of ok calls with tool
    calls, of which about 1 in 30 failed a check.
    """
    if path.exists():
        raise FileExistsError(path)
    url = f"sqlite:///{path}"
    engine = create_db_engine(url)
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        alembic.attributes["connection"] = conn
        command.upgrade(alembic, "0001")
    engine.dispose()
    tasks = tasks or max(1, n // 50)
    acc, cases = 0, []
    for provider, model, weight in _MODELS:
        acc += weight
        cases.append((acc, provider, model))
    model_case = "CASE " + " ".join(f"WHEN m < {a} THEN '{model}'" for a, _, model in cases) + " END"
    provider_case = "CASE " + " ".join(f"WHEN m < {a} THEN '{p}'" for a, p, _ in cases) + " END"
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        indexes = [
            sql
            for (sql,) in con.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('calls', 'tool_calls')"
                " AND sql IS NOT NULL"
            )
        ]
        for sql in indexes:
            con.execute("DROP INDEX " + sql.split()[2])
        params = {"n": n, "t": tasks, "t0": end - span, "span": span}
        con.execute(
            """
            WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :t)
            INSERT INTO tasks (id, key, source, label, started_at, last_at, outcome)
            SELECT i, 'synthetic-' || i, 'session', 'task ' || i, :t0 + (i - 1) * :span / :t, :t0 + i * :span / :t,
                   CASE i % 4 WHEN 0 THEN 'abandoned' WHEN 1 THEN NULL ELSE 'finished' END FROM s""",
            params,
        )
        con.execute(
            f"""
            WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n),
            h AS (SELECT i, (i * 2654435761) % 4294967296 AS x FROM s),
            r AS (SELECT i, x % 100 AS m, x / 100 % 1000 AS o, x / 100000 % 20 AS tc FROM h)
            INSERT INTO calls (call_id, started_at, ttfb_ms, duration_ms, client_api, endpoint, requested_model,
                preset, role, provider, upstream_api, upstream_model, streamed, status, outcome, error_kind,
                error_message, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                cache_write_1h_tokens, reasoning_tokens, cost_usd, cost_source, estimated_cost_usd, premium_cost_usd,
                unpriced, attempts, bytes_in, bytes_out, task_id, tool_calls, tool_failures, escalated)
            SELECT printf('syn%029x', i), :t0 + i * :span / :n, 200 + o, 800 + o * 5, 'openai',
                '/v1/chat/completions',
                CASE WHEN m % 7 = 0 THEN 'claude-3-5-haiku-latest' ELSE 'claude-sonnet-4-5' END, 'cheap',
                CASE WHEN m % 7 = 0 THEN 'background' ELSE 'default' END,
                {provider_case}, 'openai', {model_case}, m % 2,
                CASE WHEN o < 30 THEN 429 WHEN o < 40 THEN 500 WHEN o < 45 THEN NULL ELSE 200 END,
                CASE WHEN o < 40 THEN 'error' WHEN o < 45 THEN 'cancelled' ELSE 'ok' END,
                CASE WHEN o < 30 THEN 'rate_limited' WHEN o < 40 THEN 'upstream_error' END,
                CASE WHEN o < 40 THEN 'the upstream refused the call' END,
                1000 + o * 20, 50 + o, o * 10, 0, 0, 0,
                CASE WHEN m = 99 OR o < 45 THEN NULL ELSE (1000 + o * 20) * 3e-7 + (50 + o) * 1.2e-6 END,
                CASE WHEN m = 99 THEN 'unpriced' WHEN o < 45 THEN NULL ELSE 'table' END,
                CASE WHEN m = 99 OR o < 45 THEN NULL ELSE (1000 + o * 20) * 3e-7 + (50 + o) * 1.2e-6 END,
                CASE WHEN o < 45 THEN NULL ELSE (1000 + o * 20) * 3e-6 + (50 + o) * 1.5e-5 END,
                m = 99, 1, 2000 + o, 500 + o, 1 + (i - 1) * :t / :n,
                CASE WHEN o < 45 OR tc < 12 THEN 0 WHEN tc < 18 THEN 1 ELSE 2 END,
                CASE WHEN o >= 45 AND tc = 19 AND o % 3 = 0 THEN 1 ELSE 0 END, 0
            FROM r""",
            params,
        )
        if tool_rows:
            con.execute("""
                INSERT INTO tool_calls (call_id, tool_call_id, name, kind, detail, result_failed, started_at,
                                        upstream_model)
                SELECT c.call_id, 'tc' || c.id || '-' || k.k, CASE k.k WHEN 1 THEN 'read_file' ELSE 'bash' END,
                       CASE WHEN k.k <= c.tool_failures THEN 'schema' ELSE 'ok' END,
                       CASE WHEN k.k <= c.tool_failures THEN '$.path: 5 is not of type string' END,
                       0, c.started_at, c.upstream_model
                FROM calls c JOIN (SELECT 1 AS k UNION ALL SELECT 2) k ON k.k <= c.tool_calls""")
        for sql in indexes:
            con.execute(sql)
        con.commit()
    finally:
        con.close()
    open_database(url).dispose()  # to the current schema: later revisions derive their totals here
    for backup in path.parent.glob(f"{path.name}.before-*.bak"):
        backup.unlink()


def test_synthetic_log_is_consistent(tmp_path: Path) -> None:
    path = tmp_path / "syn.db"
    fill_synthetic_calls(path, 2000, end=T0, span=2000.0, tool_rows=True)
    engine = open_database(f"sqlite:///{path}")
    try:
        rows = calls_page(engine, limit=5000)
        assert len(rows) == count_calls(engine) == 2000
        assert rows[0]["started_at"] == T0 and rows[-1]["started_at"] == T0 - 1999
        assert [count_calls(engine, CallFilter(outcome=o)) for o in ("ok", "error", "cancelled")] == [
            1914,
            77,
            9,
        ]
        assert all(r["cost_usd"] is None for r in calls_page(engine, CallFilter(outcome="error"), limit=5000))
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM tasks").scalar() == 40
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert (
                conn.exec_driver_sql(
                    "SELECT count(*) FROM calls WHERE task_id NOT IN (SELECT id FROM tasks)"
                ).scalar()
                == 0
            )
            emitted, failed = conn.exec_driver_sql(
                "SELECT sum(tool_calls), sum(tool_failures) FROM calls"
            ).one()
            assert conn.exec_driver_sql("SELECT count(*), sum(kind != 'ok') FROM tool_calls").one() == (
                emitted,
                failed,
            )
            assert 0 < failed < emitted
            indexes = {
                r for (r,) in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='index'")
            }
        assert {
            "ix_calls_started_at",
            "ix_calls_model_time",
            "ix_calls_outcome",
            "ix_tool_calls_call",
        } <= indexes
        assert not list(tmp_path.glob("*.bak"))
    finally:
        engine.dispose()

"""Dashboard queries over a log of 1,000,000 realistic calls, plus the analytics' per-call costs.

    python -m bench.analytics_queries [--calls 1000000] [--days 30] [--db FILE] [--json]

Fill: 30 days of calls (busier in working hours) from sessions of ~50 calls, over 8 models on 4
providers and the four roles, ~1.3 tool calls per call with realistic failure kinds and failed results,
executemany in transactions of 50,000 rows. Detail rows are written directly; the hourly and per-task
totals go through the production code (`BatchTotals`), so the queries read what the writer hook keeps.
Then each dashboard query runs 5 times (median and worst reported), then the hot-path policy
(`CallPolicy.before` + `after`) and the writer hook are timed per call. Prints a table (or JSON).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from app.core.analytics.executors import ExecutorTotals
from app.core.analytics.executors import key_of as executor_key
from app.core.analytics.executors import prompt_tokens as prompt_of
from app.core.analytics.rollup import BatchTotals, usage_key
from app.core.queries import dashboard, executors
from app.core.queries import tasks as task_queries
from app.core.records import CallRecord, ToolCallResult
from app.core.storage.db import open_database
from app.core.storage.writer import call_row

TARGETS = [  # provider, model, role, weight, $/call scale
    ("openrouter", "qwen/qwen3-coder", "default", 40, 0.004),
    ("openrouter", "moonshotai/kimi-k2", "default", 10, 0.006),
    ("deepseek", "deepseek-chat", "default", 15, 0.002),
    ("deepseek", "deepseek-reasoner", "plan", 5, 0.01),
    ("anthropic", "claude-sonnet-4-6", "plan", 8, 0.05),
    ("anthropic", "claude-haiku-4-5", "background", 12, 0.003),
    ("groq", "openai/gpt-oss-120b", "subagent", 6, 0.002),
    ("ollama", "qwen2.5-coder:7b", "default", 4, 0.0),
]
KINDS = ["ok"] * 90 + ["invalid_json"] * 3 + ["unknown_tool"] * 2 + ["schema"] * 3 + ["text_form"] * 2
CHUNK = 50_000


def _insert(table: str, row: dict[str, Any], verb: str = "") -> str:
    """Plain SQL for executemany on the driver: SQLAlchemy's parameter handling would take most of the fill."""
    return f"INSERT {verb} INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"


def fill(engine: Engine, calls: int, days: float, now: float, seed: int = 1) -> dict[str, float]:
    rng = random.Random(seed)
    cum = list(itertools.accumulate(t[3] for t in TARGETS))
    span = days * 86400
    # busier in working hours: draw times, keep them by an hour-of-day weight
    times: list[float] = []
    while len(times) < calls:
        t = now - span + rng.random() * span
        hour = time.localtime(t).tm_hour
        if rng.random() < (1.0 if 8 <= hour < 20 else 0.25):
            times.append(t)
    times.sort()
    started = time.perf_counter()
    with engine.begin() as conn:  # bulk load without the secondary indexes, then build them once, sorted
        indexes = conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                " AND tbl_name IN ('calls', 'tool_calls')"
            )
        ).all()
        for name, _sql in indexes:
            conn.execute(text(f"DROP INDEX {name}"))
    task_id, task_left, task_rows = 0, 0, []
    outcomes = ["finished"] * 6 + ["abandoned"] * 2 + [None] * 2
    for lo in range(0, calls, CHUNK):
        recs: list[CallRecord] = []
        for t in times[lo : lo + CHUNK]:
            if task_left == 0:
                task_id += 1
                task_left = max(1, int(rng.expovariate(1 / 50)))
                task_rows.append(
                    {
                        "id": task_id,
                        "key": f"session:{task_id}",
                        "source": "session",
                        "label": None,
                        "started_at": t,
                        "last_at": t,
                        "outcome": rng.choice(outcomes),
                    }
                )
            task_left -= 1
            task_rows[-1]["last_at"] = t
            provider, model, role, _w, scale = rng.choices(TARGETS, cum_weights=cum)[0]
            rec = CallRecord(client_api="anthropic", endpoint="/v1/messages", started_at=t)
            rec.provider, rec.upstream_model, rec.role, rec.preset = provider, model, role, "cheap"
            rec.requested_model, rec.session_key, rec.task_id = "default", f"session:{task_id}", task_id
            rec.input_tokens = rng.randrange(200, 4000)
            rec.cache_read_tokens = (
                rng.randrange(0, 60_000) if rng.random() < 0.8 else rng.randrange(60_000, 200_000)
            )
            rec.output_tokens = rng.randrange(20, 1500)
            rec.duration_ms = rng.uniform(300, 20_000)
            rec.ttfb_ms = rec.duration_ms * 0.2
            ok = rng.random() > 0.02
            rec.outcome, rec.status = ("ok", 200) if ok else ("error", 502)
            if ok and provider != "ollama" and rng.random() > 0.01:
                rec.cost_usd, rec.cost_source = scale * rng.uniform(0.3, 2.0), "table"
                rec.premium_cost_usd = 0.05 * rng.uniform(0.5, 2.0)
            elif ok:
                rec.cost_usd, rec.cost_source = (0.0, "local") if provider == "ollama" else (None, "unpriced")
            n_tools = rng.choice((0, 0, 1, 1, 1, 2, 2, 3)) if ok else 0
            rec.tool_calls = [
                ToolCallResult(f"toolu_{t:.6f}_{j}", "bash", rng.choice(KINDS)) for j in range(n_tools)
            ]
            recs.append(rec)
        rows = [call_row(r) for r in recs]
        tool_rows = [
            {
                "call_id": r.call_id,
                "tool_call_id": tc.tool_call_id,
                "name": tc.name,
                "kind": tc.kind,
                "detail": None,
                "result_failed": tc.kind == "ok" and rng.random() < 0.04,
                "result_reason": None,
                "started_at": r.started_at,
                "upstream_model": r.upstream_model,
            }
            for r in recs
            for tc in r.tool_calls
        ]
        totals, by_context = BatchTotals(), ExecutorTotals()
        for r in recs:
            totals.add_call(r)
            by_context.add_call(r)
        by_call = {r.call_id: r for r in recs}
        for row in tool_rows:
            if row["result_failed"]:  # as the writer hook counts a failed result reported later
                r = by_call[row["call_id"]]
                totals.add_result_failure(
                    usage_key(r.started_at, r.provider, r.upstream_model, r.role, r.member), r.task_id
                )
                by_context.add_result_failure(
                    executor_key(r.started_at, r.provider, r.upstream_model, prompt_of(r))
                )
        with engine.begin() as conn:
            raw = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            raw.executemany(_insert("tasks", task_rows[0], "OR REPLACE"), task_rows)
            task_rows = task_rows[-1:]
            raw.executemany(_insert("calls", rows[0]), rows)
            if tool_rows:
                raw.executemany(_insert("tool_calls", tool_rows[0]), tool_rows)
            totals.write(conn)
            by_context.write(conn)
    with engine.begin() as conn:
        for _name, sql in indexes:
            conn.execute(text(sql))
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return {"fill_s": time.perf_counter() - started, "tasks": task_id}


def timed(fn: Callable[[], Any], runs: int = 5) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), max(samples)


def queries(engine: Engine, now: float) -> list[tuple[str, Callable[[], Any]]]:
    d, h = 86400, 3600
    with engine.connect() as conn:
        some_task = conn.execute(text("SELECT task_id FROM task_totals ORDER BY calls DESC LIMIT 1")).scalar()
    return [
        ("tiles (24h)", lambda: dashboard.tiles(engine, since=now - d, now=now)),
        ("tiles (30d)", lambda: dashboard.tiles(engine, since=now - 30 * d, now=now)),
        (
            "spend_over_time 1h / 1-min buckets",
            lambda: dashboard.spend_over_time(engine, since=now - h, until=now, bucket_s=60),
        ),
        (
            "spend_over_time 24h / 15-min",
            lambda: dashboard.spend_over_time(engine, since=now - d, until=now, bucket_s=900),
        ),
        (
            "spend_over_time 7d / hourly",
            lambda: dashboard.spend_over_time(engine, since=now - 7 * d, until=now, bucket_s=h),
        ),
        (
            "spend_over_time 30d / daily",
            lambda: dashboard.spend_over_time(engine, since=now - 30 * d, until=now, bucket_s=d),
        ),
        (
            "spend_over_time 30d / daily by role",
            lambda: dashboard.spend_over_time(engine, since=now - 30 * d, until=now, bucket_s=d, by="role"),
        ),
        (
            "failure_rate_over_time 1h / 1-min",
            lambda: dashboard.failure_rate_over_time(engine, since=now - h, until=now, bucket_s=60),
        ),
        (
            "failure_rate_over_time 24h / 15-min",
            lambda: dashboard.failure_rate_over_time(engine, since=now - d, until=now, bucket_s=900),
        ),
        (
            "failure_rate_over_time 7d / hourly",
            lambda: dashboard.failure_rate_over_time(engine, since=now - 7 * d, until=now, bucket_s=h),
        ),
        (
            "failure_rate_over_time 30d / daily",
            lambda: dashboard.failure_rate_over_time(engine, since=now - 30 * d, until=now, bucket_s=d),
        ),
        ("savings 30d by day", lambda: dashboard.savings(engine, since=now - 30 * d, until=now, by="day")),
        (
            "savings 30d by model",
            lambda: dashboard.savings(engine, since=now - 30 * d, until=now, by="model"),
        ),
        ("reliability 30d", lambda: dashboard.reliability(engine, since=now - 30 * d, until=now)),
        ("cost_per_task 30d", lambda: task_queries.cost_per_task(engine, since=now - 30 * d)),
        ("list_tasks (500)", lambda: task_queries.list_tasks(engine)),
        ("task_calls (largest task)", lambda: task_queries.task_calls(engine, int(some_task or 0))),
        ("executor scorecard 30d", lambda: executors.scorecard(engine, since=now - 30 * d, until=now)),
        ("executor scorecard 7d", lambda: executors.scorecard(engine, since=now - 7 * d, until=now)),
        ("evaluation spend 30d", lambda: executors.evaluation_spend(engine, since=now - 30 * d, until=now)),
    ]


def hot_path(db_url: str, n: int = 20_000) -> dict[str, float]:
    """Per-call cost of CallPolicy.before + after (in memory) and of the writer hook (per call, batched)."""
    from app.core.engine import Core

    with tempfile.TemporaryDirectory() as tmp:
        core = Core(Path(tmp) / "config.toml", db_url)
        config = core.config
        system = [{"type": "text", "text": "You are an agent. " * 300}]
        bodies = {
            "session id (Claude Code)": lambda i: (
                {"model": "default", "system": system, "messages": [{"role": "user", "content": "fix it"}]},
                f"session:{i % 50}",
            ),
            "fingerprint (no session id)": lambda i: (
                {
                    "model": "default",
                    "system": system,
                    "messages": [{"role": "user", "content": f"job {i % 50}"}],
                },
                None,
            ),
        }
        out: dict[str, float] = {}
        for label, make in bodies.items():
            recs = []
            for i in range(n):
                rec = CallRecord(client_api="anthropic", endpoint="/v1/messages")
                data, rec.session_key = make(i)
                recs.append((rec, data))
            t0 = time.perf_counter()
            for rec, data in recs:
                core.policy.before(rec, data, config)
                rec.role, rec.provider, rec.upstream_model, rec.cost_usd = "default", "ollama", "m", 0.001
                rec.tool_calls = [ToolCallResult(f"{rec.call_id}_1", "bash", "ok")]
                rec.finish("ok", 200)
                core.policy.after(rec)
            out[f"policy before+after, {label} (us/call)"] = (time.perf_counter() - t0) / n * 1e6
        batch = [rec for rec, _data in recs[:1000]]
        t0 = time.perf_counter()
        with core.db.begin() as conn:
            core.policy.writer_hook(conn, batch)
        out["writer hook, batch of 1000 (us/call)"] = (time.perf_counter() - t0) / len(batch) * 1e6
        from app.core.analytics import executors as executor_totals

        t0 = time.perf_counter()
        with core.db.begin() as conn:
            executor_totals.writer_hook(conn, batch)
        out["executor totals hook, batch of 1000 (us/call)"] = (time.perf_counter() - t0) / len(batch) * 1e6
        core.close()
    return out


def _filled(engine: Engine) -> dict[str, float] | None:
    """What an earlier fill left (for --reuse), or None when the database holds no calls."""
    with engine.connect() as conn:
        if not conn.execute(text("SELECT count(*) FROM calls")).scalar():
            return None
        return {"fill_s": 0.0, "tasks": conn.execute(text("SELECT count(*) FROM tasks")).scalar() or 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--db", help="SQLite file to fill (default: a temporary one, deleted after)")
    parser.add_argument(
        "--reuse", action="store_true", help="time the queries on --db as it is, if it holds calls"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.db) if args.db else Path(tmp) / "bench.db"
        if not (args.reuse and path.exists()):
            path.unlink(missing_ok=True)
        engine = open_database(f"sqlite:///{path}")
        now = time.time()
        info = (_filled(engine) if args.reuse else None) or fill(engine, args.calls, args.days, now)
        results = [(name, *timed(fn)) for name, fn in queries(engine, now)]
        size_mb = path.stat().st_size / 1e6
        engine.dispose()
        hot = hot_path(f"sqlite:///{Path(tmp) / 'hot.db'}")
    if args.json:
        print(
            json.dumps(
                {
                    "calls": args.calls,
                    **info,
                    "db_mb": size_mb,
                    "hot_path": hot,
                    "queries_ms": {name: {"median": med, "max": worst} for name, med, worst in results},
                },
                indent=2,
            )
        )
        return 0
    print(
        f"{args.calls:,} calls, {info['tasks']:,} tasks over {args.days:g} days; filled in {info['fill_s']:.1f} s;"
        f" database {size_mb:,.0f} MB"
    )
    width = max(len(r[0]) for r in results)
    print(f"{'query'.ljust(width)}  median ms  max ms")
    for name, med, worst in results:
        print(f"{name.ljust(width)}  {med:9.1f}  {worst:6.1f}")
    for name, value in hot.items():
        print(f"{name}: {value:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Team mode on PostgreSQL: how fast the ledger takes rows, how far shipping lags, how fast the dashboard reads.

    python -m bench.team_ledger [--writers 4] [--rows 25000] [--ship-rate 100] [--ship-seconds 30]
                                [--dashboard-rows 10000000] [--skip ...]

Starts a throw-away PostgreSQL 15 (app.testing.pgserver; durability off, as in the tests) and measures:
1. ingest: N writer processes (the real log writer and its analytics hook: tasks, slot and task totals) each
   logging `--rows` calls into one ledger as fast as they can; rows per second from the start signal to the
   last commit.
2. shipping lag: one proxy's core with `[team] ledger`, calls handed to its writer at `--ship-rate` a second;
   lag = ledger commit - the moment the call ended (local writer batch + outbox + shipping), p50/p99/max.
3. proxy latency: a real local proxy over the mock upstream with shipping off, on (from a process of its own)
   and from a thread of the proxy's process (as first built), interleaved rounds of sequential calls; the
   median and p90 ratios to off, and the bench process's CPU per call.
4. dashboard: `--dashboard-rows` calls generated inside PostgreSQL (generate_series, 30 days, 3 members), the
   slot and task totals built by SQL, then every dashboard query timed (best of 3 after one warm-up).
Prints one JSON object; docs/benchmarks.md has the figures of a run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def ingest(server: Any, writers: int, rows: int) -> dict[str, Any]:
    from app.core.analytics.rollup import slot_of
    from app.core.storage.db import open_database
    from app.testing.ledger_load import spawn

    url = server.create_database("ingest")
    open_database(url).dispose()
    work = Path(tempfile.mkdtemp(prefix="ingest-"))
    start = work / "go"
    t0 = slot_of(time.time()) - 6 * 3600
    procs = spawn(url, writers, rows, t0, start, work)
    time.sleep(3.0)  # every writer started and waiting (imports, schema check)
    began = time.perf_counter()
    start.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        if p.returncode:
            raise RuntimeError(err.decode()[-2000:])
        outs.append(json.loads(out.splitlines()[-1]))
    wall = time.perf_counter() - began
    total = writers * rows
    return {
        "writers": writers,
        "rows": total,
        "seconds": round(wall, 2),
        "rows_per_s": round(total / wall),
        "per_writer_rows_per_s": [round(o["calls"] / o["seconds"]) for o in outs],
    }


def shipping_lag(server: Any, rate: float, seconds: float) -> dict[str, Any]:
    from app.core.engine import Core
    from app.testing.ledger_load import make_record

    url = server.create_database("ship")
    work = Path(tempfile.mkdtemp(prefix="ship-"))
    config = work / "config.toml"
    config.write_text(f'[team]\nmember = "ann"\nledger = "{url}"\n')
    core = Core(config, f"sqlite:///{work / 'local.db'}")
    core.start_team_shipping()
    shipper = core.shipper
    assert shipper is not None
    began = time.perf_counter()
    assert shipper.ready.wait(60)  # a proxy starts its shipping process when it starts, before any call
    startup_s = time.perf_counter() - began
    ended: dict[str, float] = {}
    lags: list[float] = []
    lock = threading.Lock()

    def shipped(ids: list[str], done: float) -> None:
        with lock:
            lags.extend(done - ended[i] for i in ids if i in ended)

    shipper.on_shipped = shipped
    n = int(rate * seconds)
    t_start = time.time()
    for i in range(n):
        target = t_start + i / rate
        delay = target - time.time()
        if delay > 0:
            time.sleep(delay)
        rec = make_record(0, i, time.time() - 1.0, "ann")
        ended[rec.call_id] = time.time()
        core.writer.finished(rec)
    core.writer.flush()
    shipper.wait_empty(60)
    core.close()
    lags.sort()
    q = statistics.quantiles(lags, n=100)
    return {
        "rate_per_s": rate,
        "calls": n,
        "shipped": len(lags),
        "lag_p50_ms": round(q[49] * 1000),
        "lag_p99_ms": round(q[98] * 1000),
        "lag_max_ms": round(lags[-1] * 1000),
        "shipper_start_s": round(startup_s, 2),
    }


MODES = ("off", "thread", "on")


def _start_thread_shipper(core: Any) -> None:
    """Shipping from a thread of the proxy's own process: how it was built first (the comparison in the same
    run; `[team] ledger` makes `Core` ship from a process of its own)."""
    from app.core.team_ship import TeamShipper, ledger_url

    config = core.config
    core.shipper = TeamShipper(core.db, ledger_url(config.team.ledger, core.secrets), process=None)
    core.writer.hooks.append(core.shipper.outbox_hook)
    core.shipper.start()


def proxy_latency(server: Any, calls: int, rounds: int = 3) -> dict[str, Any]:
    """The local proxy's latency per call with shipping off and on, same run, interleaved rounds; `thread` is
    shipping from a thread of the proxy's process (as first built), `on` from a process of its own (as now)."""
    import httpx

    from app.core.engine import Core
    from app.proxy.server import ProxyThread
    from app.testing.mock_upstream import MockUpstream

    url = server.create_database("latency")
    results: dict[str, list[float]] = {m: [] for m in MODES}
    by_round: list[dict[str, list[float]]] = []  # the same per round: noise from other jobs drifts slowly
    cpu = dict.fromkeys(MODES, 0.0)  # this process's CPU (proxy, its writer, the client; the thread shipper)
    with MockUpstream() as mock:
        for _round in range(rounds):
            by_round.append({m: [] for m in MODES})
            for mode in MODES:
                work = Path(tempfile.mkdtemp(prefix=f"lat-{mode}-"))
                config = work / "config.toml"
                team = f'\n[team]\nmember = "ann"\nledger = "{url}"\n' if mode != "off" else ""
                config.write_text(f"""
[[providers]]
name = "cheapco"
base_url = "{mock.base_url}/v1"
api_key_env = "BENCH_KEY"

[[presets]]
name = "cheap"
default = "cheapco/qwen/qwen3-coder"

[routing]
active = "cheap"
{team}""")
                os.environ["BENCH_KEY"] = "sk-bench-0123456789abcdef"
                core = Core(config, f"sqlite:///{work / 'log.db'}")
                if mode == "thread":
                    _start_thread_shipper(core)
                with ProxyThread(core, port=0) as proxy, httpx.Client(timeout=20) as client:
                    if core.shipper is not None:
                        assert core.shipper.ready.wait(60)
                    headers = {"Authorization": f"Bearer {core.token()}"}
                    body = {"model": "default", "messages": [{"role": "user", "content": "x" * 2000}]}
                    cpu0 = 0.0
                    for i in range(calls + 20):
                        if i == 20:  # warm-up left out
                            cpu0 = time.process_time()
                        t = time.perf_counter()
                        r = client.post(f"{proxy.url}/v1/chat/completions", json=body, headers=headers)
                        if i >= 20:
                            results[mode].append(time.perf_counter() - t)
                            by_round[-1][mode].append(results[mode][-1])
                        assert r.status_code == 200, r.text
                    core.writer.flush()  # the log rows (and the outbox rows) written: their CPU counted
                    if core.shipper is not None:
                        assert core.shipper.wait_empty(30)
                    cpu[mode] += time.process_time() - cpu0
                core.close()
    med = {m: statistics.median(v) * 1000 for m, v in results.items()}
    p90 = {m: statistics.quantiles(v, n=10)[8] * 1000 for m, v in results.items()}
    return {
        "calls_per_mode": len(results["on"]),
        "median_ms": {m: round(v, 2) for m, v in med.items()},
        "p90_ms": {m: round(v, 2) for m, v in p90.items()},
        "median_ratio": {m: round(med[m] / med["off"], 3) for m in MODES[1:]},
        # each round's p90 against the same round's "off", the median over rounds: the paired comparison
        "p90_ratio_paired": {
            m: round(statistics.median(_p90(r[m]) / _p90(r["off"]) for r in by_round), 3) for m in MODES[1:]
        },
        "p90_ratio": {m: round(p90[m] / p90["off"], 3) for m in MODES[1:]},
        # CPU of the bench process (proxy, log writer, a thread shipper, and the HTTP client) per call
        "cpu_ms_per_call": {m: round(v * 1000 / len(results[m]), 3) for m, v in cpu.items()},
    }


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[8]


_GENERATE = """
INSERT INTO calls (call_id, started_at, duration_ms, client_api, endpoint, requested_model, role, provider,
    upstream_api, upstream_model, streamed, status, outcome, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, cache_write_1h_tokens, reasoning_tokens, cost_usd, cost_source, premium_cost_usd, unpriced,
    attempts, bytes_in, bytes_out, task_id, tool_calls, tool_failures, escalated, member, machine)
SELECT 'g' || g, %(t0)s + g * %(step)s, 900, 'openai', '/v1/chat/completions', 'claude-sonnet-4-5',
    (ARRAY['default','background','plan'])[1 + g %% 3], (ARRAY['cheapco','backup'])[1 + g %% 2], 'openai',
    (ARRAY['qwen/qwen3-coder','deepseek/deepseek-chat','qwen/qwen3-coder-30b','moonshotai/kimi-k2'])[1 + g %% 4],
    false, CASE WHEN g %% 31 = 0 THEN 500 ELSE 200 END, CASE WHEN g %% 31 = 0 THEN 'error' ELSE 'ok' END,
    1000 + g %% 5000, 100 + g %% 700, g %% 3000, 0, 0, 0, (g %% 1000) / 100000.0, 'table', (g %% 1000) / 20000.0,
    false, 1, 2000, 800, 1 + g / 40, g %% 3, CASE WHEN g %% 17 = 0 THEN 1 ELSE 0 END, false,
    (ARRAY['ann','bob','cem'])[1 + g %% 3], 'gw-1'
FROM generate_series(%(lo)s, %(hi)s) AS g
"""


def dashboard_queries(server: Any, rows: int) -> dict[str, Any]:
    import psycopg

    from app.core.queries import dashboard, tasks
    from app.core.queries.calls import CallFilter, calls_page, count_calls
    from app.core.storage.db import open_database

    url = server.create_database("dash")
    engine = open_database(url)
    now = time.time()
    span = 30 * 86400
    t0 = now - span
    began = time.perf_counter()
    dsn = f"host=127.0.0.1 port={server.port} user={server.user} dbname={url.rsplit('/', 1)[1]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        n_tasks = rows // 40 + 2
        conn.execute(
            "INSERT INTO tasks (id, key, source, started_at, last_at, outcome, member) "
            "SELECT t, 'session:' || t, 'session', %(t0)s + (t - 1) * 40 * %(step)s, %(t0)s + t * 40 * %(step)s,"
            " CASE WHEN t %% 3 = 0 THEN 'finished' END, (ARRAY['ann','bob','cem'])[1 + t %% 3]"
            " FROM generate_series(1, %(n)s) AS t",
            {"t0": t0, "step": span / rows, "n": n_tasks},
        )
        conn.execute("SELECT setval('tasks_id_seq', %s)", (n_tasks,))
        chunk = 1_000_000
        for lo in range(0, rows, chunk):
            conn.execute(
                _GENERATE, {"t0": t0, "step": span / rows, "lo": lo, "hi": min(rows, lo + chunk) - 1}
            )
        conn.execute("""
            INSERT INTO usage_slots (slot, provider, model, role, member, calls, errors, input_tokens, output_tokens,
                cache_read_tokens, cache_write_tokens, cost_usd, unpriced_calls, premium_usd, savings_usd, escalated,
                duration_ms, tool_calls, tool_invalid_json, tool_unknown_tool, tool_schema, tool_text_form, tool_result_failed)
            SELECT CAST(floor(started_at / 900) AS BIGINT) * 900, provider, upstream_model, role, member, count(*),
                sum(CASE WHEN outcome != 'ok' THEN 1 ELSE 0 END), sum(input_tokens), sum(output_tokens),
                sum(cache_read_tokens), 0, sum(cost_usd), 0, sum(premium_cost_usd), sum(premium_cost_usd - cost_usd), 0,
                sum(duration_ms), sum(tool_calls), sum(tool_failures), 0, 0, 0, 0
            FROM calls GROUP BY 1, 2, 3, 4, 5""")
        conn.execute("""
            INSERT INTO task_totals (task_id, calls, errors, input_tokens, output_tokens, cost_usd, unpriced_calls,
                premium_usd, savings_usd, tool_calls, tool_failures, escalated, models)
            SELECT task_id, count(*), sum(CASE WHEN outcome != 'ok' THEN 1 ELSE 0 END), sum(input_tokens),
                sum(output_tokens), sum(cost_usd), 0, sum(premium_cost_usd), sum(premium_cost_usd - cost_usd),
                sum(tool_calls), sum(tool_failures), 0, '' FROM calls GROUP BY task_id""")
        conn.execute("VACUUM ANALYZE")
        size = conn.execute(
            "SELECT pg_total_relation_size('calls') + pg_total_relation_size('tool_calls')"
        ).fetchone()
    fill_s = time.perf_counter() - began
    day, hour = 86400, 3600
    until = now
    queries = {
        "tiles, 30 days": lambda: dashboard.tiles(engine, since=now - 30 * day, now=until),
        "tiles, 24 h, one member": lambda: dashboard.tiles(engine, since=now - day, now=until, member="bob"),
        "spend by model, 30 days / day": lambda: dashboard.spend_over_time(
            engine, since=now - 30 * day, until=until, bucket_s=day
        ),
        "spend by member, 7 days / 3 h": lambda: dashboard.spend_over_time(
            engine, since=now - 7 * day, until=until, bucket_s=3 * hour, by="member"
        ),
        "spend by model, 1 h / 1 min (detail rows)": lambda: dashboard.spend_over_time(
            engine, since=now - hour, until=until, bucket_s=60
        ),
        "failure rate, 24 h / 30 min": lambda: dashboard.failure_rate_over_time(
            engine, since=now - day, until=until, bucket_s=1800
        ),
        "reliability, 30 days": lambda: dashboard.reliability(engine, since=now - 30 * day, until=until),
        "savings by day, 30 days": lambda: dashboard.savings(engine, since=now - 30 * day, until=until),
        "members table, 30 days": lambda: dashboard.members(engine, since=now - 30 * day, until=until),
        "cost per task, 24 h": lambda: tasks.cost_per_task(engine, since=now - day),
        "task list (500)": lambda: tasks.list_tasks(engine, limit=500),
        "calls page, one member": lambda: calls_page(engine, CallFilter(member="ann")),
        "calls count, one model": lambda: count_calls(engine, CallFilter(model="deepseek/deepseek-chat")),
    }
    timings = {}
    for name, run in queries.items():
        run()
        best = min(_timed(run) for _ in range(3))
        timings[name] = round(best * 1000, 1)
    engine.dispose()
    return {
        "rows": rows,
        "fill_s": round(fill_s, 1),
        "bytes_per_call": round(size[0] / rows),
        "ms": timings,
        "slowest_ms": max(timings.values()),
    }


def _timed(run: Any) -> float:
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--rows", type=int, default=25_000, help="calls per writer")
    p.add_argument("--ship-rate", type=float, default=100.0)
    p.add_argument("--ship-seconds", type=float, default=30.0)
    p.add_argument("--dashboard-rows", type=int, default=10_000_000)
    p.add_argument("--latency-calls", type=int, default=300, help="calls per mode and round")
    p.add_argument("--latency-rounds", type=int, default=3)
    p.add_argument("--skip", nargs="*", default=[], choices=("ingest", "shipping", "latency", "dashboard"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from app.testing.pgserver import PgServer

    out: dict[str, Any] = {}
    with PgServer() as server:
        if "ingest" not in args.skip:
            out["ingest"] = ingest(server, args.writers, args.rows)
            print(json.dumps({"ingest": out["ingest"]}), flush=True)
        if "shipping" not in args.skip:
            out["shipping"] = shipping_lag(server, args.ship_rate, args.ship_seconds)
            print(json.dumps({"shipping": out["shipping"]}), flush=True)
        if "latency" not in args.skip:
            out["latency"] = proxy_latency(server, args.latency_calls, args.latency_rounds)
            print(json.dumps({"latency": out["latency"]}), flush=True)
        if "dashboard" not in args.skip:
            out["dashboard"] = dashboard_queries(server, args.dashboard_rows)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Call-log throughput through the real `LogWriter`: realistic records in, rows counted out.

Run as its own process (pinned to the proxy's core, where the writer thread lives in production):

    python -m bench.logbench --db-dir DIR --burst 30000 --rate 5000 --seconds 4

Two phases on a fresh database migrated by the app's own Alembic scripts:
- burst: records are announced (`started`) and completed (`finished`) as fast as one producer thread can,
  32 calls in flight like 32 concurrent agents, then `flush()`: the writer's sustained ceiling.
- paced: `--rate` calls per second for `--seconds`, the queue depth sampled every 10 ms: does the writer
  keep up at the target rate, and how long after the last call is everything on disk.
Rows lost = records submitted - rows found in `calls` (and the writer's own `dropped` count), which must be 0.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text

from app.core.records import Attempt, CallRecord, ToolCallResult
from app.core.storage.db import open_database
from app.core.storage.writer import LogWriter

_MODELS = (
    ("openai", "/v1/chat/completions", "deepseek/deepseek-chat-v3.1", "qwen/qwen3-coder"),
    ("anthropic", "/v1/messages", "claude-sonnet-4-6", "qwen/qwen3-coder"),
    ("anthropic", "/v1/messages", "claude-haiku-4-5", "deepseek/deepseek-chat-v3.1"),
)
_TOOLS = ("read_file", "edit_file", "bash", "grep", "glob", "todo_write")


def make_record(i: int, rng: random.Random) -> CallRecord:
    """A finished agent turn as the proxy logs it: routed, priced, usually with a checked tool call."""
    api, endpoint, requested, upstream = _MODELS[i % len(_MODELS)]
    rec = CallRecord(client_api=api, endpoint=endpoint)
    rec.user_agent = "claude-cli/2.0.14 (external, cli)" if api == "anthropic" else "aider/0.86.1"
    rec.requested_model = requested
    rec.preset, rec.role = "cheap", "default"
    rec.provider, rec.upstream_api, rec.upstream_model = "openrouter", "openai", upstream
    rec.streamed = i % 4 != 0
    rec.session_key = f"session:{i // 40:08x}-bench"
    rec.task_key = rec.session_key  # what the proxy's policy sets before routing
    rec.bytes_in = 30_000 + rng.randrange(20_000)
    rec.bytes_out = 900 + rng.randrange(3_000)
    rec.input_tokens = 1_500 + rng.randrange(4_000)
    rec.cache_read_tokens = 6_000 + rng.randrange(20_000)
    rec.output_tokens = 50 + rng.randrange(800)
    rec.reasoning_tokens = rng.randrange(200)
    rec.cost_usd = rec.input_tokens * 3e-7 + rec.cache_read_tokens * 3e-8 + rec.output_tokens * 1.2e-6
    rec.cost_source = "table"
    rec.estimated_cost_usd = rec.cost_usd
    rec.premium_cost_usd = rec.cost_usd * 11
    rec.attempts = [Attempt(f"openrouter/{upstream}", 200, duration_ms=400.0 + rng.randrange(3000))]
    calls = 1 if rng.random() < 0.7 else (2 if rng.random() < 0.4 else 0)
    rec.tool_calls = [ToolCallResult(f"call_{i:08d}_{k}", rng.choice(_TOOLS), "ok") for k in range(calls)]
    rec.ttfb_ms = 300.0 + rng.randrange(900)
    return rec


def _thread_cpu(native_id: int | None) -> float:
    """CPU seconds of one thread of this process: the scheduler's nanoseconds, else psutil's ticks."""
    if native_id is None:
        return 0.0
    try:
        with open(f"/proc/self/task/{native_id}/schedstat", "rb") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    for t in psutil.Process().threads():
        if t.id == native_id:
            return t.user_time + t.system_time
    return 0.0


def run(
    db_dir: Path, burst: int, rate: int, seconds: float, inflight: int = 32, mode: str = "core"
) -> dict[str, Any]:
    """`mode` "core": the writer as `Core` wires it for the proxy (analytics hooks: tasks, hourly and task
    totals, inside the writer's transaction); "writer": a bare LogWriter (just the call and tool rows)."""
    db_dir = db_dir / mode
    db_dir.mkdir(parents=True, exist_ok=True)
    db_path = db_dir / "logbench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    core = None
    if mode == "core":
        from app.core.engine import Core

        core = Core(db_dir / "config.toml", f"sqlite:///{db_path}")
        engine, writer = core.db, core.writer
    else:
        engine = open_database(f"sqlite:///{db_path}")
        writer = LogWriter(engine)
    writer_tid = writer._thread.native_id  # the writer's CPU is reported apart from the producer's
    rng = random.Random(7)
    proc = psutil.Process()
    submitted = 0
    tool_rows = 0
    out: dict[str, Any] = {"inflight": inflight, "mode": mode, "hooks": len(writer.hooks)}

    def submit(count: int, window: deque[CallRecord]) -> None:
        nonlocal submitted, tool_rows
        for _ in range(count):
            rec = make_record(submitted, rng)
            submitted += 1
            tool_rows += len(rec.tool_calls)
            writer.started(rec)
            window.append(rec)
            if len(window) > inflight:
                done = window.popleft()
                done.finish("ok", 200)
                writer.finished(done)

    def drain(window: deque[CallRecord]) -> None:
        while window:
            done = window.popleft()
            done.finish("ok", 200)
            writer.finished(done)

    # -- burst: as fast as one producer can hand records over
    cpu0, wcpu0 = proc.cpu_times(), _thread_cpu(writer_tid)
    t0 = time.perf_counter()
    window: deque[CallRecord] = deque()
    submit(burst, window)
    drain(window)
    t_submitted = time.perf_counter()
    flushed = writer.flush(timeout=300)
    t1 = time.perf_counter()
    cpu1, wcpu1 = proc.cpu_times(), _thread_cpu(writer_tid)
    out["burst"] = {
        "calls": burst,
        "flushed": flushed,
        "submit_s": t_submitted - t0,
        "total_s": t1 - t0,
        "rows_per_s": burst / (t1 - t0),
        "process_cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "writer_cpu_s": wcpu1 - wcpu0,
        "writer_cpu_ms_per_1000_rows": (wcpu1 - wcpu0) * 1e6 / burst if burst else None,
    }

    # -- paced: the target rate, in 10 ms slices, watching the queue
    paced_start = submitted
    max_pending = 0
    depth: list[int] = []
    slice_s = 0.01
    per_slice = rate * slice_s
    owed = 0.0
    window = deque()
    wcpu0 = _thread_cpu(writer_tid)
    t0 = time.perf_counter()
    next_tick = t0
    while True:
        now = time.perf_counter()
        if now - t0 >= seconds:
            break
        owed += per_slice
        n = int(owed)
        owed -= n
        submit(n, window)
        pending = writer.pending
        max_pending = max(max_pending, pending)
        depth.append(pending)
        next_tick += slice_s
        delay = next_tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    drain(window)
    t_end = time.perf_counter()
    flushed = writer.flush(timeout=300)
    t_flushed = time.perf_counter()
    paced_calls = submitted - paced_start
    wcpu1 = _thread_cpu(writer_tid)
    last_second = depth[-100:] or [0]
    out["paced"] = {
        "target_rate": rate,
        "seconds": t_end - t0,
        "calls": paced_calls,
        "achieved_submit_rate": paced_calls / (t_end - t0),
        "rows_per_s": paced_calls / (t_flushed - t0),
        "flushed": flushed,
        "drain_after_end_ms": (t_flushed - t_end) * 1000,
        "max_queue_depth": max_pending,
        "mean_queue_depth_last_second": sum(last_second) / len(last_second),
        "writer_cpu_s": wcpu1 - wcpu0,
        "writer_utilisation": (wcpu1 - wcpu0) / (t_flushed - t0),
    }

    # -- agent pace: one call at a time, 40 ms long, 20 a second (a streamed turn at c=1). Start and end land
    # in different writer batches, so this is the per-batch cost a real, unhurried agent pays on every call.
    trickle_calls = max(4, int(seconds * 10))
    wcpu0 = _thread_cpu(writer_tid)
    t0 = time.perf_counter()
    for _ in range(trickle_calls):
        rec = make_record(submitted, rng)
        submitted += 1
        tool_rows += len(rec.tool_calls)
        writer.started(rec)
        time.sleep(0.04)
        rec.finish("ok", 200)
        writer.finished(rec)
        time.sleep(0.01)
    writer.flush(timeout=60)
    wcpu1 = _thread_cpu(writer_tid)
    out["agent_pace"] = {
        "calls": trickle_calls,
        "seconds": time.perf_counter() - t0,
        "writer_cpu_ms_per_call": (wcpu1 - wcpu0) * 1000 / trickle_calls,
    }

    writer.close(timeout=60)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM calls")).scalar_one()
        ok_rows = conn.execute(text("SELECT count(*) FROM calls WHERE outcome = 'ok'")).scalar_one()
        in_flight = conn.execute(text("SELECT count(*) FROM calls WHERE outcome = 'in_flight'")).scalar_one()
        tool_found = conn.execute(text("SELECT count(*) FROM tool_calls")).scalar_one()
    if core is not None:
        core.close()
    engine.dispose()
    out.update(
        {
            "submitted": submitted,
            "rows": rows,
            "ok_rows": ok_rows,
            "in_flight_rows": in_flight,
            "rows_lost": submitted - ok_rows,
            "tool_rows_expected": tool_rows,
            "tool_rows": tool_found,
            "writer_dropped": writer.stats.dropped,
            "writer_failures": writer.stats.failures,
            "db_bytes": os.path.getsize(db_path),
        }
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.logbench")
    parser.add_argument("--db-dir", type=Path, required=True)
    parser.add_argument("--burst", type=int, default=30_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--mode", choices=("core", "writer"), default="core")
    args = parser.parse_args(argv)
    result = run(args.db_dir, args.burst, args.rate, args.seconds, mode=args.mode)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "producer"
    raise SystemExit(main())

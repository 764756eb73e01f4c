"""A writer process for the team-ledger tests and benchmarks: logs a deterministic stream of ended calls into
one database through the real log writer and its analytics hook (tasks, slot and task totals).

    python -m app.testing.ledger_load URL WRITER_NO N --t0 UNIX_SECONDS [--start-file PATH] [--member NAME]

Every writer uses the same task keys and the same 15-minute slots, so several of them at once contend for
the same rows: what the "never double-count" tests need. Prints one JSON line: calls handed over, seconds.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from app.core.records import CallRecord, ToolCallResult

TARGETS = (
    ("cheapco", "qwen/qwen3-coder", "default"),
    ("backup", "deepseek/deepseek-chat", "plan"),
    ("cheapco", "qwen/qwen3-coder-30b", "background"),
)
KINDS = ("ok", "ok", "ok", "invalid_json", "schema")


def make_record(writer_no: int, i: int, t0: float, member: str | None = None) -> CallRecord:
    """Call `i` of writer `writer_no`: fields drawn from a generator seeded by both, so a test can rebuild it.
    `t0` is shared by the writers (so their calls land in the same slots) and recent (retention keeps them)."""
    rng = random.Random(writer_no * 1_000_003 + i)
    provider, model, role = TARGETS[i % len(TARGETS)]
    rec = CallRecord(
        client_api="openai",
        endpoint="/v1/chat/completions",
        call_id=f"w{writer_no}-{i}",
        started_at=t0 + i * 0.7 + rng.random() * 0.1,
    )
    rec.provider, rec.upstream_model, rec.role = provider, model, role
    rec.task_key = f"session:s{i % 7}"
    rec.input_tokens, rec.output_tokens, rec.cache_read_tokens = (
        rng.randrange(5000),
        rng.randrange(800),
        rng.randrange(2000),
    )
    rec.cost_usd = round(rng.random() / 100, 6)
    rec.cost_source = "table"
    rec.premium_cost_usd = round(rng.random() / 20, 6)
    rec.tool_calls = [
        ToolCallResult(f"w{writer_no}t{i}_{j}", "read_file", rng.choice(KINDS))
        for j in range(rng.randrange(3))
    ]
    if member is not None and hasattr(rec, "member"):
        rec.member = member
    rec.finish("error" if i % 13 == 0 else "ok", 500 if i % 13 == 0 else 200)
    rec.duration_ms = 100.0 + i % 50
    return rec


ROOT = Path(__file__).resolve().parents[2]  # where `app` is imported from, for the writer processes too


def spawn(
    url: str, writers: int, rows: int, t0: float, start_file: Path, home: Path
) -> list[subprocess.Popen[bytes]]:
    """`writers` writer processes, each waiting for `start_file` to exist, in a home of their own (no keyring)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }
    argv = [sys.executable, "-m", "app.testing.ledger_load", url]
    tail = [str(rows), "--t0", str(t0), "--start-file", str(start_file)]
    return [
        subprocess.Popen(
            [*argv, str(w), *tail], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT
        )
        for w in range(writers)
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("writer_no", type=int)
    p.add_argument("n", type=int)
    p.add_argument("--start-file", help="wait until this file exists (so several writers start together)")
    p.add_argument("--t0", type=float, required=True, help="unix seconds of the first call")
    p.add_argument("--member")
    p.add_argument("--pace", type=float, default=0.0, help="seconds between calls (0: as fast as possible)")
    args = p.parse_args(argv)

    from app.core.engine import Core

    home = Path(tempfile.mkdtemp(prefix="ledger-load-"))
    core = Core(home / "config.toml", args.url)
    recs = [make_record(args.writer_no, i, args.t0, args.member) for i in range(args.n)]
    if args.start_file:
        while not Path(args.start_file).exists():
            time.sleep(0.005)
    t = time.perf_counter()
    for i, rec in enumerate(recs):
        core.writer.finished(rec)
        if args.pace:
            time.sleep(args.pace)
        elif i % 50 == 49:
            time.sleep(0.002)  # hand over in bursts, so the writers' batches interleave
    ok = core.writer.flush(120)
    elapsed = time.perf_counter() - t
    stats = core.writer.stats
    core.close()
    sys.stdout.write(
        orjson.dumps(
            {
                "calls": args.n,
                "seconds": elapsed,
                "flushed": ok,
                "written": stats.written,
                "dropped": stats.dropped,
                "failures": stats.failures,
            }
        ).decode()
        + "\n"
    )
    return 0 if ok and stats.dropped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

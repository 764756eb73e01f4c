"""The benchmark suite's smoke mode runs end to end and writes well-formed results.

No timing is asserted here (CI machines vary too much): only that every part ran or said why it could not,
that every proxied call succeeded, and that the figures the report is built from are there.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_run(res: dict, stream: bool) -> None:
    assert res["calls"] >= 1
    assert res["errors"] == 0, res["first_error"]
    for metric in ("latency_ms", "ttfb_ms"):
        assert res[metric]["n"] >= 1
        assert all(_number(res[metric][k]) for k in ("p50", "p99", "mean", "max"))
    assert _number(res["cpu_ms_per_call"]["target"]) and res["cpu_ms_per_call"]["target"] >= 0
    assert _number(res["throughput_rps"])
    if stream:
        assert res["gap_ms"] is not None and res["reads_per_call"] >= 1
    else:
        assert res["gap_ms"] is None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_smoke_run_writes_well_formed_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    docs = tmp_path / "benchmarks.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--docs", str(docs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    results = json.loads((out / "latest.json").read_text())
    assert results["mode"] == "smoke"
    machine = results["machine"]
    for key in ("cpu", "cores", "python", "packages", "date"):
        assert machine[key]

    # Every client path either ran or was skipped with a reason; the ones that ran cover every answer shape.
    skipped = {s["what"]: s["reason"] for s in results["skips"]}
    assert all(reason for reason in skipped.values())
    paths = {s["case"]["path"] for s in results["scenarios"]}
    assert "openai" in paths
    for path in ("anthropic", "gateway", "responses"):
        assert path in paths or f"downshift {path} path" in skipped
    shapes = {(s["case"]["path"], s["case"]["size_kb"], s["case"]["shape"]) for s in results["scenarios"]}
    for size in (30, 300):
        for shape in ("ns", "s20", "s200"):
            assert ("openai", size, shape) in shapes
    assert {s["case"]["concurrency"] for s in results["scenarios"]} >= {1, 8, 32}
    for s in results["scenarios"]:
        stream = s["case"]["shape"].startswith("s")
        _check_run(s["direct"], stream)
        _check_run(s["downshift"], stream)

    assert results["statusline"] is not None, skipped  # the status line over a small log
    assert results["statusline"]["process_ms"]["p50"] > 0 and "## Status line" in docs.read_text()

    assert results["logging"] is not None, skipped
    for mode in ("core", "writer"):  # the writer as the proxy runs it, and bare
        log = results["logging"][mode]
        assert log["submitted"] > 0 and log["rows_lost"] == 0 and log["writer_dropped"] == 0
        assert log["tool_rows"] == log["tool_rows_expected"]
        assert _number(log["burst"]["rows_per_s"]) and _number(log["paced"]["rows_per_s"])

    startup = results["startup"]
    assert startup["serve"] or "serve start" in skipped
    assert startup["gui"] is not None or "gui start" in skipped

    targets = results["targets"]
    assert targets and all({"what", "value", "budget", "met", "margin"} <= set(t) for t in targets)

    text = docs.read_text()
    for heading in (
        "# Benchmarks",
        "## Machine",
        "## Targets",
        "## Call log writer",
        "## Start-up and memory",
        "## Method",
    ):
        assert heading in text


def test_statusline_bench_runs_on_a_small_log(tmp_path: Path) -> None:
    """bench/statusline.py end to end on 2,000 calls: the installed command answers for the newest session."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.statusline",
            "--calls",
            "2000",
            "--runs",
            "3",
            "--json",
            "--db",
            str(tmp_path / "log.db"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["calls"] == 2000 and result["session_calls"] >= 1
    assert result["command"].split()[1:3] == ["-I", "-S"]
    for name in ("process_ms", "python_m_app_ms", "in_process_ms", "python_startup_ms"):
        assert all(_number(result[name][k]) for k in ("p50", "p99", "max")), name
    assert result["line"].startswith("⇣ cheap · ") and " · session $" in result["line"], result["line"]

"""Soak at CI size: the real proxy process under a mix of streamed, translated, failed, fallback and cancelled
calls at concurrency 64. Every call has exactly one row with the right outcome, the proxy's memory stays flat
after warm-up, no file descriptor leaks, no upstream request is left running. The full size (20,000 calls)
is one command: `python bench/soak.py --full`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import SCENARIOS, run_soak


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_soak_every_call_one_row_flat_memory_no_fd_leak(tmp_path: Path) -> None:
    report = run_soak(
        calls=2000, concurrency=64, workdir=tmp_path, rss_growth_limit_mb=8.0, fd_slack=16, log=print
    )
    print(report)
    assert report.ok, report.problems
    assert report.rows == report.calls == 2000 and report.missing == report.duplicates == 0
    assert report.wrong_outcome == 0 and report.in_flight_left == 0
    # the mix really was mixed: every kind of ending happened, in the proportions of the scenario table
    expected = {outcome: 0 for _, _, outcome in SCENARIOS.values()}
    for i in range(report.calls):
        expected[list(SCENARIOS.values())[i % len(SCENARIOS)][2]] += 1
    assert report.outcomes == expected
    assert report.rss_growth_mb <= 8.0 and report.fd_growth <= 16
    assert report.upstream_left_running == 0 and report.proxy_exit_code == 0

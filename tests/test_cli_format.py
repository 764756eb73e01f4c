"""One formatter per kind of figure in the CLI (app.cli.format): the same dollar value prints the same in
`stats`, `tasks`, `executors` and `calls` (they used to print $0.01235 in one and $0.0123 in another)."""

from __future__ import annotations

from pathlib import Path

import httpx
from conftest import logged_calls

from app.cli import main as cli
from app.cli.format import money, rate, table, when
from app.core.queries import tasks as task_queries
from app.testing.script import Reply, Usage

COST = (
    0.0123456  # billed by the mock for the one call: the call's, the model's, the task's and the total cost
)
SHOWN = "$0.0123"


def test_money_is_four_decimals_without_a_false_zero() -> None:
    assert [money(v) for v in (0.0123456, 0.00042, 1234.5, 0.0)] == [
        "$0.0123",
        "$0.0004",
        "$1234.5000",
        "$0.0000",
    ]
    assert money(0.0000423) == "$0.000042"  # under a hundredth of a cent: two significant digits, not $0.0000
    assert money(-0.5) == "-$0.5000" and money(COST, 2) == "~" + SHOWN and money(COST, True) == "~" + SHOWN
    assert money(None) == "-" and money(None, unpriced=True) == "unpriced"


def test_rates_times_and_tables() -> None:
    assert (rate(0.125), rate(0.125, 0), rate(None)) == ("12.5%", "12%", "-")
    assert (
        when(None) == "-" and len(when(1_800_000_000)) == 16 and len(when(1_800_000_000, seconds=True)) == 19
    )
    text = table([{"a": "x\x1b[31m", "b": None}], [("a", "A"), ("b", "B")])
    assert text.splitlines() == ["A       B", "------  -", "x?[31m  -"]


def test_the_same_cost_prints_the_same_in_every_command(
    capsys, proxy, mock, token, core, config_path: Path
) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="hi", usage=Usage(prompt=500, completion=50), cost=COST))
    httpx.post(
        f"{proxy.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}", "X-Downshift-Task": "one"},
        json={"model": "default", "messages": [{"role": "user", "content": "x"}]},
    ).raise_for_status()
    (call,) = logged_calls(core)
    assert call["cost_usd"] == COST
    (task,) = task_queries.list_tasks(core.db)
    task_queries.set_outcome(core.db, task["id"], "finished")
    common = ["--config", str(config_path), "--db", core.db_url]
    printed = {}
    for command in ("stats", "tasks", "executors", "calls"):
        capsys.readouterr()
        assert cli([command, *common]) == 0
        printed[command] = capsys.readouterr().out
    for command, out in printed.items():
        assert SHOWN in out and "$0.01235" not in out, f"{command}:\n{out}"
    per_model = next(line for line in printed["stats"].splitlines() if "qwen/qwen3-coder" in line)
    per_call = next(line for line in printed["calls"].splitlines() if "qwen/qwen3-coder" in line)
    assert SHOWN in per_model and SHOWN in per_call


def test_money_prints_a_figure_that_is_not_a_number_instead_of_failing() -> None:
    """A NaN cost (a `nan` price in a member's config, summed on a PostgreSQL team ledger, which stores NaN
    where SQLite stores NULL) used to print as $nan; the shared formatter must not make `stats` crash on it."""
    assert money(float("nan")) == "$nan"
    assert money(float("inf"), 1) == "~$inf" and money(float("-inf")) == "-$inf"

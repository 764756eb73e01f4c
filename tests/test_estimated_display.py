"""A guess says it is a guess: calls whose provider reported no usage are marked estimated in the log, in
`downshift calls/stats/tasks` (text and --json), in exports, on the Calls page, the call detail and the
dashboard tiles; totals say how many of their calls were estimated or unpriced, and the CLI, the tiles and
the export agree on the same figures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import logged_calls
from test_usage_shapes import MESSAGES, TEXT, USAGE, shapes_config

from app.cli import main as cli
from app.core.queries import dashboard
from app.core.queries import tasks as task_queries
from app.core.queries.calls import call_detail
from app.testing.script import Fault, Reply

TASK = "estimates"
pytest_plugins = ["ui_support"]


@pytest.fixture
def config_path(tmp_path: Path, mock) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(shapes_config(mock.base_url))
    return path


def stream(proxy, token: str, model: str) -> None:  # type: ignore[no-untyped-def]
    body = {"model": model, "messages": MESSAGES, "stream": True}
    headers = {"Authorization": f"Bearer {token}", "X-Downshift-Task": TASK}
    with httpx.stream(
        "POST", f"{proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=20
    ) as r:
        r.read()


@pytest.fixture
def log(proxy, mock, token, core) -> Iterator[list[dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """Three calls of one finished task: reported usage, no usage at all (estimated), and a stream cut short on
    a model with no known price (estimated and unpriced)."""
    mock.enqueue(Reply(text=TEXT, usage=USAGE))
    stream(proxy, token, "openai/m-openai")
    mock.enqueue(Reply(text=TEXT, usage=USAGE, usage_shape="none"))
    stream(proxy, token, "lmstudio/m-lmstudio")
    mock.enqueue(Fault("reset_mid_stream", after_chunks=5, reply=Reply(text=TEXT, chunk_delay=0.05)))
    stream(proxy, token, "openai/no-price-known")
    rows = logged_calls(core)
    (task,) = task_queries.list_tasks(core.db)
    task_queries.set_outcome(core.db, task["id"], "finished")
    yield rows


def run(capsys, *args: str) -> str:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    assert cli(list(args)) == 0
    return capsys.readouterr().out


def test_the_log_marks_each_estimate(log) -> None:  # type: ignore[no-untyped-def]
    reported, guessed, cut = log
    assert (reported["usage_estimated"], reported["cost_source"]) == (False, "override")
    assert (guessed["usage_estimated"], guessed["cost_source"]) == (True, "estimated") and guessed[
        "cost_usd"
    ] > 0
    assert (cut["usage_estimated"], cut["cost_source"], cut["cost_usd"]) == (True, "unpriced", None)
    assert cut["outcome"] == "error" and cut["unpriced"]


def test_cli_says_which_figures_are_estimates(log, core, config_path, capsys) -> None:  # type: ignore[no-untyped-def]
    where = ("--config", str(config_path), "--db", core.db_url)
    listing = run(capsys, "calls", *where)
    lines = {line.split()[3]: line for line in listing.splitlines()[1:]}  # by SERVED BY
    assert "~$" in lines["lmstudio/m-lmstudio"] and "~" in lines["lmstudio/m-lmstudio"].split("$")[0]
    assert "~" not in lines["openai/m-openai"]
    assert "unpriced" in lines["openai/no-price-known"]
    rows = json.loads(run(capsys, "calls", "--json", *where))
    assert sorted((r["upstream_model"], r["usage_estimated"], r["cost_source"]) for r in rows) == [
        ("m-lmstudio", True, "estimated"),
        ("m-openai", False, "override"),
        ("no-price-known", True, "unpriced"),
    ]

    stats = run(capsys, "stats", *where)
    assert "~ 2 calls' tokens are estimated" in stats
    assert "1 calls have no known price" in stats
    assert "cost per finished task: ~$" in stats and "(1 call unpriced, 2 estimated)" in stats
    data = json.loads(run(capsys, "stats", "--json", *where))
    assert (data["total"]["estimated_calls"], data["total"]["unpriced_calls"]) == (2, 1)
    assert (
        data["cost_per_finished_task_unpriced_calls"],
        data["cost_per_finished_task_estimated_calls"],
    ) == (1, 2)

    tasks = run(capsys, "tasks", *where)
    assert "~$" in tasks and "(1 call unpriced, 2 estimated)" in tasks
    (task,) = json.loads(run(capsys, "tasks", "--json", *where))
    assert (task["unpriced_calls"], task["estimated_calls"]) == (1, 2)


def test_stats_tiles_and_export_agree(log, core, config_path, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    where = ("--config", str(config_path), "--db", core.db_url)
    stats = json.loads(run(capsys, "stats", "--json", *where))["total"]
    tiles = dashboard.tiles(core.db, since=0)
    out = tmp_path / "export.json"
    assert cli(["export", "calls", "--format", "json", "--out", str(out), *where]) == 0
    exported = json.loads(out.read_text())
    spend = sum(r["cost_usd"] or 0 for r in exported)
    assert stats["cost_usd"] == pytest.approx(tiles["spend_range"]) == pytest.approx(spend)
    assert stats["calls"] == tiles["calls"] == len(exported) == 3
    assert stats["unpriced_calls"] == tiles["unpriced_calls"] == sum(r["unpriced"] for r in exported) == 1
    assert (
        stats["estimated_calls"]
        == tiles["estimated_calls"]
        == sum(r["usage_estimated"] for r in exported)
        == 2
    )
    assert (tiles["finished_task_unpriced_calls"], tiles["finished_task_estimated_calls"]) == (1, 2)


def test_the_gui_shows_estimates_with_a_tilde(log, qtbot, ctx, core) -> None:  # type: ignore[no-untyped-def]
    from app.ui.models import CALL_COLUMNS
    from app.ui.pages.calls import CallsPage, detail_html
    from app.ui.pages.dashboard import DashboardPage

    calls = CallsPage(ctx)
    qtbot.addWidget(calls)
    calls.resize(1280, 700)
    calls.show()
    qtbot.waitUntil(lambda: calls.model.rowCount() == 3, timeout=5000)
    cost_col = [c.key for c in CALL_COLUMNS].index("cost_usd")
    cells = {calls.model.row(i)["upstream_model"]: calls.model.index(i, cost_col).data() for i in range(3)}
    assert cells["m-lmstudio"].startswith("~$") and cells["m-openai"].startswith("$")
    assert cells["no-price-known"] == "unpriced"
    guessed = next(r for r in log if r["upstream_model"] == "m-lmstudio")
    html = detail_html(call_detail(core.db, guessed["call_id"]))
    assert "~ estimated" in html and "estimated tokens x price" in html and "~$" in html
    assert calls.grab().save("/tmp/h13u-calls-estimated.png")

    dash = DashboardPage(ctx)
    qtbot.addWidget(dash)
    dash.resize(1280, 800)
    dash.show()
    qtbot.waitUntil(lambda: dash.refreshes >= 1 and dash.tiles["calls"].value.text() == "3", timeout=8000)
    assert dash.tiles["today"].value.text().startswith("~$")
    assert "2 estimated" in dash.tiles["today"].note.text()
    assert dash.tiles["per_task"].value.text().startswith("~$")
    assert dash.tiles["per_task"].note.text() == "1 call unpriced, 2 estimated"
    assert dash.tiles["calls"].note.text() == "1 without a known price, ~ 2 estimated"
    time.sleep(0.2)
    assert dash.grab().save("/tmp/h13u-dashboard-estimated.png")


def test_call_detail_lists_what_a_failed_attempt_cost(proxy, mock, token, core, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QTextBrowser

    from app.ui.pages.calls import detail_html

    words = " ".join(f"w{i}" for i in range(40))
    mock.enqueue(
        Fault("error_event", after_chunks=3, reply=Reply(text=words, usage=USAGE, usage_shape="moonshot")),
        Reply(text=TEXT, usage=USAGE, usage_shape="groq"),
    )
    stream(proxy, token, "default")
    (row,) = logged_calls(core)
    html = detail_html(call_detail(core.db, row["call_id"]))
    assert "moonshot/m-moonshot" in html and "tokens it produced" in html and "~$" in html
    view = QTextBrowser()
    qtbot.addWidget(view)
    view.resize(520, 900)
    view.setHtml(html)
    view.show()
    assert view.grab().save("/tmp/h13u-detail-fallback.png")


def test_tasks_page_marks_an_estimated_cost(log, qtbot, ctx) -> None:  # type: ignore[no-untyped-def]
    from app.ui.pages.tasks import TASK_COLUMNS, TasksPage

    page = TasksPage(ctx)
    qtbot.addWidget(page)
    page.resize(1280, 600)
    page.show()
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=5000)
    col = [c.key for c in TASK_COLUMNS].index("cost_usd")
    assert page.model.index(0, col).data().startswith("~$")
    assert "~$" in page.summary.text()

"""The data pages (Dashboard, Calls, Tasks) driven offscreen with pytest-qt over a real core, proxy and mock
upstream: calls made through the proxy show up live, filters narrow the table, the detail pane explains a
failed tool call, a million-row log pages in, and each page is rendered to docs/screenshots/."""

from __future__ import annotations

import hashlib
import inspect
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import BACKUP_KEY, PREMIUM_KEY, PROVIDER_KEY, proxy_config_text
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QKeySequence, QPalette
from PySide6.QtWidgets import QApplication, QMenu, QWidget
from test_queries_calls import fill_synthetic_calls

from app.core.engine import Core
from app.core.queries import dashboard as dashboard_queries
from app.core.queries import tasks as task_queries
from app.core.storage.db import MIGRATIONS
from app.proxy.server import ProxyThread
from app.testing.script import Reply, ToolCall, Usage
from app.ui.background import Background
from app.ui.bridge import CoreBridge
from app.ui.context import UiContext
from app.ui.models import fmt_money
from app.ui.pages.calls import CallsPage
from app.ui.pages.dashboard import DASHBOARD_RANGES, DashboardPage, fitting_range
from app.ui.pages.tasks import TasksPage

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "Run a command",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
            },
        },
    },
]


def chat(
    ctx: UiContext,
    model: str = "default",
    *,
    task: str | None = None,
    tools: bool = False,
    text: str = "list the files",
) -> httpx.Response:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if tools:
        body["tools"] = TOOLS
    headers = {"Authorization": f"Bearer {ctx.core.token()}"}
    if task:
        headers["X-Downshift-Task"] = task
    assert ctx.proxy is not None
    return httpx.post(f"{ctx.proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=20)


class Stack:
    """A core, a proxy in front of the mock upstream and the UI context, on a chosen call log."""

    def __init__(self, tmp_path: Path, mock_url: str, db: Path) -> None:
        config = tmp_path / "config.toml"
        config.write_text(proxy_config_text(mock_url))
        self.core = Core(config, f"sqlite:///{db}")
        for name, key in (("cheapco", PROVIDER_KEY), ("backup", BACKUP_KEY), ("premium", PREMIUM_KEY)):
            self.core.set_provider_key(name, key)
        self.proxy = ProxyThread(self.core, port=0).start()
        self.ctx = UiContext(self.core, self.proxy, CoreBridge(self.core.events), Background())
        self.pages: list[QWidget] = []
        self.logged = 0
        self.core.events.subscribe("calls_logged", self._count)

    def _count(self, records: list[Any]) -> None:
        self.logged += len(records)

    def wait_logged(self, n: int, timeout: float = 10.0) -> None:
        """Until `n` calls were written in their final form: a client has its answer before the proxy
        settles the call's tokens, cost and tool checks, so a row read right after may be incomplete."""
        deadline = time.monotonic() + timeout
        while self.logged < n:
            assert time.monotonic() < deadline, f"{self.logged} calls logged, expected {n}"
            time.sleep(0.02)

    def open(self, qtbot: Any, cls: type[QWidget], size: tuple[int, int] = (1280, 800)) -> Any:
        page = cls(self.ctx)
        qtbot.addWidget(page)
        page.resize(*size)
        page.show()
        self.pages.append(page)
        return page

    def close(self) -> None:
        for page in self.pages:
            page.hide()  # stops the live timers before the database goes away
        self.ctx.background.wait(10_000)
        self.ctx.bridge.close()
        self.proxy.stop()
        self.core.close()


@pytest.fixture
def stack(tmp_path: Path, mock) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    s = Stack(tmp_path, mock.base_url, tmp_path / "log.db")
    yield s
    s.close()


def settle(qtbot: Any, model: Any) -> None:
    qtbot.waitUntil(lambda: not model.loading, timeout=5000)


def served_by(page: CallsPage) -> list[tuple[str, str]]:
    return [(r["requested_model"], r["upstream_model"]) for r in page.model.rows]


# ---------------------------------------------------------------------------------------------- live


def test_a_proxied_call_shows_in_the_calls_table_and_the_dashboard_tiles_within_two_seconds(
    qtbot: Any, stack: Stack, mock: Any
) -> None:  # type: ignore[no-untyped-def]
    calls = stack.open(qtbot, CallsPage)
    dash = stack.open(qtbot, DashboardPage)
    qtbot.waitUntil(lambda: not calls.model.loading and dash.refreshes >= 1, timeout=5000)
    assert calls.model.rowCount() == 0 and dash.tiles["calls"].value.text() == "0"

    mock.enqueue(Reply(text="done", usage=Usage(prompt=120_000, completion=8000)))
    assert chat(stack.ctx).status_code == 200
    answered = time.monotonic()
    qtbot.waitUntil(lambda: calls.model.rowCount() == 1, timeout=2000)
    in_table = time.monotonic() - answered
    qtbot.waitUntil(
        lambda: dash.tiles["calls"].value.text() == "1", timeout=max(1, int(2000 - in_table * 1000))
    )
    in_tiles = time.monotonic() - answered
    print(
        f"\ncall visible in the Calls table after {in_table * 1000:.0f} ms, in the tiles after {in_tiles * 1000:.0f} ms"
    )

    row = calls.model.row(0)
    assert (row["provider"], row["upstream_model"], row["outcome"]) == ("cheapco", "qwen/qwen3-coder", "ok")
    assert row["cost_usd"] > 0
    assert dash.tiles["today"].value.text() == fmt_money(row["cost_usd"])
    assert dash.tiles["month"].value.text() == fmt_money(row["cost_usd"])
    assert calls.count_label.text() in ("0 calls", "1 call")  # recounted at most every 3 s
    qtbot.waitUntil(lambda: calls.count_label.text() == "1 call", timeout=5000)


def test_new_calls_are_inserted_without_a_reset_and_the_row_being_read_stays_put(
    qtbot: Any, tmp_path: Path, mock: Any
) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "log.db"
    fill_synthetic_calls(db, 3000, end=time.time() - 60, span=3000.0)
    s = Stack(tmp_path, mock.base_url, db)
    try:
        page = s.open(qtbot, CallsPage)
        settle(qtbot, page.model)
        assert page.model.rowCount() == 500
        resets, inserted = [], []
        page.model.modelReset.connect(lambda: resets.append(1))
        page.model.rowsInserted.connect(lambda _p, first, last: inserted.append((first, last)))
        page.table.scrollTo(page.model.index(120, 0), page.table.ScrollHint.PositionAtTop)
        top_before = page.model.row(page.table.rowAt(0))["call_id"]

        for _ in range(3):
            assert chat(s.ctx).status_code == 200
        qtbot.waitUntil(lambda: page.model.rowCount() == 503, timeout=3000)
        assert resets == [] and all(first == 0 for first, _ in inserted)
        assert [r["provider"] for r in page.model.rows[:3]] == ["cheapco"] * 3
        assert page.model.row(page.table.rowAt(0))["call_id"] == top_before
        times = [r["started_at"] for r in page.model.rows]
        assert times == sorted(times, reverse=True)
    finally:
        s.close()


# ------------------------------------------------------------------------------------------- filters


def test_filters_narrow_the_table(qtbot: Any, stack: Stack, mock: Any) -> None:  # type: ignore[no-untyped-def]
    assert chat(stack.ctx, "default").status_code == 200
    assert chat(stack.ctx, "plan", task="write-the-plan").status_code == 200
    assert chat(stack.ctx, "claude-3-5-haiku-latest").status_code == 200
    mock.enqueue(Reply(status=400, error="bad tool schema"))
    assert chat(stack.ctx, "default").status_code == 400
    mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": 5})]))
    assert chat(stack.ctx, "gpt-4o", tools=True).status_code == 200
    stack.wait_logged(5)

    page = stack.open(qtbot, CallsPage)
    settle(qtbot, page.model)
    assert page.model.rowCount() == 5
    qtbot.waitUntil(lambda: page.model_box.count() == 4 and page.provider_box.count() == 3, timeout=3000)
    qtbot.waitUntil(lambda: page.count_label.text() == "5 calls", timeout=3000)

    def check(expected: list[tuple[str, str]], count: int | None = None) -> None:
        settle(qtbot, page.model)
        assert served_by(page) == expected
        n = len(expected) if count is None else count
        qtbot.waitUntil(lambda: page.count_label.text() == f"{n} call{'s' if n != 1 else ''}", timeout=3000)

    page.model_box.setCurrentIndex(page.model_box.findData("qwen/qwen3-coder"))
    check([("gpt-4o", "qwen/qwen3-coder"), ("default", "qwen/qwen3-coder"), ("default", "qwen/qwen3-coder")])
    page.failures_box.setChecked(True)  # the 400 and the schema violation
    check([("gpt-4o", "qwen/qwen3-coder"), ("default", "qwen/qwen3-coder")])
    page.outcome_box.setCurrentIndex(page.outcome_box.findData("error"))
    check([("default", "qwen/qwen3-coder")])
    assert page.model.row(0)["status"] == 400
    page.outcome_box.setCurrentIndex(0)
    page.failures_box.setChecked(False)
    page.model_box.setCurrentIndex(0)
    page.provider_box.setCurrentIndex(page.provider_box.findData("backup"))
    check([("plan", "deepseek/deepseek-chat")])
    task_id = page.model.row(0)["task_id"]
    assert task_id is not None
    page.provider_box.setCurrentIndex(0)
    page.show_task(task_id)  # the background call (a title) joined the task that caused it
    check([("claude-3-5-haiku-latest", "qwen/qwen3-coder-30b"), ("plan", "deepseek/deepseek-chat")])
    page.task_edit.clear()
    qtbot.keyClicks(page.search_edit, "HAIKU")
    qtbot.waitUntil(lambda: page.model.filter.search == "HAIKU", timeout=2000)
    check([("claude-3-5-haiku-latest", "qwen/qwen3-coder-30b")])
    page.search_edit.clear()
    page.time_box.setCurrentIndex(1)  # last hour: everything here is seconds old
    qtbot.waitUntil(
        lambda: page.model.filter.since is not None and page.model.filter.search is None, timeout=2000
    )
    settle(qtbot, page.model)
    assert page.model.rowCount() == 5


def test_the_detail_pane_explains_a_schema_failure_and_the_fallback(
    qtbot: Any, stack: Stack, mock: Any
) -> None:  # type: ignore[no-untyped-def]
    page = stack.open(qtbot, CallsPage)
    settle(qtbot, page.model)
    mock.enqueue(
        Reply(status=500),
        Reply(tool_calls=[ToolCall("read_file", {"path": 5}), ToolCall("bash", {"command": "ls"})]),
    )
    assert chat(stack.ctx, tools=True).status_code == 200
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=3000)
    assert page.model.data(page.model.index(0, 8)) == "2 (1 failed)"
    page.select_row(0)
    qtbot.waitUntil(lambda: page.detail.data is not None, timeout=3000)
    text = page.detail.toPlainText()
    assert "Tool calls (2, 1 failed)" in text
    assert "arguments violate the tool's schema" in text
    assert "is not of type 'string'" in text or "must be string" in text
    assert "Fallback chain" in text
    assert "cheapco/qwen/qwen3-coder: HTTP 500" in text and "backup/deepseek/deepseek-chat: HTTP 200" in text
    assert "first byte" in text and "price table" in text


# ----------------------------------------------------------------------------------------- 1M rows


def _synthetic_key() -> str:
    """Changes with the generator and with any schema migration (even one edited in place)."""
    digest = hashlib.blake2b(inspect.getsource(fill_synthetic_calls).encode(), digest_size=8)
    for migration in sorted((MIGRATIONS / "versions").glob("*.py")):
        digest.update(migration.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def million_row_log(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of a generated 1,000,000-call log. Generating takes ~25 s, so the generated file is kept in
    pytest's cache (keyed by the generator's source and the schema revision) for the next run."""
    dest = tmp_path_factory.mktemp("million") / "log.db"
    cache = getattr(request.config, "cache", None)
    if cache is None:
        fill_synthetic_calls(dest, 1_000_000, end=time.time())
        return dest
    folder = Path(cache.mkdir("downshift-synthetic"))
    cached = folder / f"calls-1m-{_synthetic_key()}.db"
    if not cached.exists():
        for old in folder.glob("calls-1m-*"):
            old.unlink()
        partial = folder / "partial.db"
        partial.unlink(missing_ok=True)
        fill_synthetic_calls(partial, 1_000_000, end=time.time())
        partial.rename(cached)
    shutil.copyfile(cached, dest)
    return dest


@pytest.mark.slow
def test_a_million_calls_open_at_once_and_scrolling_fetches_pages(
    qtbot: Any, tmp_path: Path, million_row_log: Path
) -> None:
    core = Core(tmp_path / "config.toml", f"sqlite:///{million_row_log}")
    ctx = UiContext(core, None, CoreBridge(core.events), Background())
    try:
        started = time.perf_counter()
        page = CallsPage(ctx)
        qtbot.addWidget(page)
        page.resize(1280, 800)
        page.show()
        qtbot.waitUntil(lambda: page.model.rowCount() == 500, timeout=10_000)
        first_page = time.perf_counter() - started
        qtbot.waitUntil(lambda: page.count_label.text() == "1,000,000 calls", timeout=10_000)
        counted = time.perf_counter() - started
        assert page.model.rowCount() == 500 and page.model.canFetchMore()  # one page, not the log

        pages = []
        for expected in (1000, 1500, 2000):
            t = time.perf_counter()
            page.table.scrollToBottom()
            assert page.model.loading and not page.model.canFetchMore()  # no second request while one runs
            qtbot.waitUntil(lambda n=expected: page.model.rowCount() == n, timeout=10_000)
            pages.append(time.perf_counter() - t)
        rows = page.model.rows
        assert all(a["started_at"] >= b["started_at"] for a, b in zip(rows, rows[1:], strict=False))
        assert len({r["id"] for r in rows}) == 2000

        page.failures_box.setChecked(True)
        t = time.perf_counter()
        settle(qtbot, page.model)
        filtered = time.perf_counter() - t
        assert page.model.rowCount() == 500
        assert all(r["outcome"] != "ok" or r["tool_failures"] for r in page.model.rows)
        print(
            f"\n1M calls: first page shown {first_page * 1000:.0f} ms, counted {counted * 1000:.0f} ms, next pages "
            + ", ".join(f"{p * 1000:.0f}" for p in pages)
            + f" ms, failures-only page {filtered * 1000:.0f} ms"
        )
        # generous: a full load of the log takes tens of seconds, a page tens of milliseconds
        assert first_page < 3.0 and max(pages) < 3.0
        page.hide()
    finally:
        ctx.background.wait(10_000)
        ctx.bridge.close()
        core.close()


# ------------------------------------------------------------------------------------------- tasks


def test_tasks_page_lists_tasks_shows_their_calls_and_sets_outcomes(
    qtbot: Any, stack: Stack, mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": "a.py"})]))
        assert chat(stack.ctx, task="fix-login", tools=True).status_code == 200
    mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"file": "a.py"})]))
    assert chat(stack.ctx, task="add-export", tools=True).status_code == 200
    stack.wait_logged(4)

    page = stack.open(qtbot, TasksPage)
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=3000)
    by_label = {r["label"]: r for r in page.model.rows}
    assert by_label["fix-login"]["calls"] == 3 and by_label["add-export"]["calls"] == 1
    assert by_label["add-export"]["tool_failures"] == 1
    index = page.model.find(by_label["fix-login"]["id"])
    cell = page.model.index(index, 5)
    assert page.model.data(cell) == "0 / 3 (0%)"

    page.table.selectRow(page.proxy.mapFromSource(page.model.index(index, 0)).row())
    qtbot.waitUntil(lambda: page.calls.rowCount() == 3, timeout=3000)
    assert {r["task_id"] for r in page.calls.rows} == {by_label["fix-login"]["id"]}
    assert page.outcome_box.isEnabled() and page.outcome_box.currentText() == "Open"

    page.outcome_box.setCurrentIndex(1)
    page.outcome_box.activated.emit(1)  # what a user's pick emits
    task_id = by_label["fix-login"]["id"]
    qtbot.waitUntil(lambda: page.model.rows[page.model.find(task_id)]["outcome"] == "finished", timeout=3000)
    assert task_queries.get_task(stack.core.db, task_id)["outcome"] == "finished"
    assert page.selected_task()["id"] == task_id  # the selection survived the refresh

    row = page.proxy.mapFromSource(page.model.index(page.model.find(task_id), 0)).row()
    page._context_menu(page.table.visualRect(page.proxy.index(row, 0)).center())
    menu = page.findChildren(QMenu)[-1]
    actions = [a for a in menu.actions() if not a.isSeparator()]
    assert [a.text() for a in actions] == ["Rename…", "Reopen", "Mark finished", "Mark abandoned"]
    assert [a.isChecked() for a in actions[1:]] == [False, True, False]
    actions[1].trigger()
    qtbot.waitUntil(lambda: page.model.rows[page.model.find(task_id)]["outcome"] is None, timeout=3000)
    menu.close()

    from app.ui import dialogs

    asked: list[str] = []
    monkeypatch.setattr(
        dialogs, "ask_text", lambda _p, _t, _l, text="": asked.append(text) or "  Fix the   login page "
    )
    row = page.proxy.mapFromSource(page.model.index(page.model.find(task_id), 0)).row()
    page.table.doubleClicked.emit(page.proxy.index(row, 0))  # a double-click on the name renames
    assert asked == ["fix-login"]
    qtbot.waitUntil(
        lambda: page.model.rows[page.model.find(task_id)]["label"] == "Fix the login page", timeout=3000
    )
    assert task_queries.get_task(stack.core.db, task_id)["label"] == "Fix the login page"

    page.set_outcome(by_label["add-export"]["id"], "abandoned")
    qtbot.waitUntil(
        lambda: page.model.rows[page.model.find(by_label["add-export"]["id"])]["outcome"] == "abandoned",
        timeout=3000,
    )
    page.set_outcome(999_999, "finished")
    qtbot.waitUntil(lambda: page.message.kind == "error", timeout=3000)
    assert "no task with id 999999" in page.message.text()

    page.set_outcome(task_id, "finished")
    qtbot.waitUntil(lambda: page.model.rows[page.model.find(task_id)]["outcome"] == "finished", timeout=3000)
    dash = stack.open(qtbot, DashboardPage)
    cost = by_label["fix-login"]["cost_usd"]
    qtbot.waitUntil(lambda: dash.refreshes >= 1, timeout=3000)
    assert dash.tiles["per_task"].value.text() == fmt_money(cost)
    assert set(dash.cost_per_task.categories) == {"finished", "abandoned"}


# --------------------------------------------------------------------------------------- dashboard


def test_tasks_page_compares_cost_per_finished_task_by_preset(qtbot: Any, stack: Stack, mock: Any) -> None:  # type: ignore[no-untyped-def]
    """ "cheap: $x per finished task at 50% tool failures; premium: $y at 0%": the preset choice in one line."""
    mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"file": "a.py"})]))  # a schema failure
    assert chat(stack.ctx, task="cheap-job", tools=True).status_code == 200
    mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": "a.py"})]))
    assert chat(stack.ctx, task="cheap-job", tools=True).status_code == 200
    assert chat(stack.ctx, task="cheap-open").status_code == 200  # not finished: not counted
    stack.wait_logged(3)
    stack.core.config_store.update(lambda c: c.with_active("premium"))
    mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": "a.py"})]))
    assert chat(stack.ctx, task="premium-job", tools=True).status_code == 200
    stack.wait_logged(4)
    ids = {t["label"]: t["id"] for t in task_queries.list_tasks(stack.core.db)}
    for label in ("cheap-job", "premium-job"):
        task_queries.set_outcome(stack.core.db, ids[label], "finished")

    rows = task_queries.finished_cost_by_preset(stack.core.db, since=0.0)
    by = {r["preset"]: r for r in rows}
    assert set(by) == {"cheap", "premium"}
    assert (by["cheap"]["tasks"], by["cheap"]["tool_calls"], by["cheap"]["failure_rate"]) == (1, 2, 0.5)
    assert (by["premium"]["tasks"], by["premium"]["failure_rate"]) == (1, 0.0)
    assert by["premium"]["per_task"] > by["cheap"]["per_task"] > 0  # cheapest first
    assert [r["preset"] for r in rows] == ["cheap", "premium"]

    page = stack.open(qtbot, TasksPage)
    qtbot.waitUntil(lambda: "premium:" in page.by_preset.text(), timeout=3000)
    text = page.by_preset.text()
    assert (
        text.startswith("cheap: $") and " per finished task at 50% tool failures (1 task); premium: $" in text
    )
    assert text.endswith(" at 0% tool failures (1 task)")


def test_dashboard_charts_update_in_place_switch_stacking_and_hover(
    qtbot: Any, stack: Stack, mock: Any
) -> None:  # type: ignore[no-untyped-def]
    assert chat(stack.ctx, "default").status_code == 200
    assert chat(stack.ctx, "plan").status_code == 200
    mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": 1})]))
    assert chat(stack.ctx, "default", tools=True).status_code == 200
    dash = stack.open(qtbot, DashboardPage)
    dash.range_box.setCurrentIndex(1)  # last hour, minute buckets
    qtbot.waitUntil(
        lambda: (
            dash.last_data is not None
            and dash.last_data["range"].span_s == 3600
            and dash.tiles["calls"].value.text() == "3"
        ),
        timeout=5000,
    )
    assert set(dash.spend.series) == {"qwen/qwen3-coder", "deepseek/deepseek-chat"}
    bars = dict(dash.spend.bars)
    assert dash.tiles["failure"].value.text() == "100.0%"
    assert set(dash.failures.series) == {"qwen/qwen3-coder"}

    refreshes = dash.refreshes
    assert chat(stack.ctx, "default").status_code == 200
    qtbot.waitUntil(
        lambda: dash.refreshes > refreshes and dash.tiles["calls"].value.text() == "4", timeout=3000
    )
    assert dash.spend.bars == bars  # the same plot items, updated with setOpts

    dash.by_box.setCurrentIndex(dash.by_box.findData("provider"))
    qtbot.waitUntil(lambda: dash.last_data["by"] == "provider", timeout=3000)
    assert set(dash.spend.series) == {"cheapco", "backup"}
    assert not bars["qwen/qwen3-coder"].isVisible()

    # the newest bucket the calls fell in (the query's "now" may already be in the next minute's bucket)
    i = max(j for j in range(len(dash.spend.buckets)) if any(float(v[j]) for v in dash.spend.series.values()))
    x = float(dash.spend.buckets[i] + dash.spend.bucket_s / 2)
    dash.spend.show_hover_at(dash.spend.plotItem.vb.mapViewToScene(QPointF(x, 0)))
    assert dash.spend.hover.isVisible()
    spent = sum(float(v[i]) for v in dash.spend.series.values())
    assert "cheapco: $" in dash.spend.hover.text() and f"total: {fmt_money(spent)}" in dash.spend.hover.text()
    dash.spend.show_hover_at(QPointF(-50, -50))
    assert not dash.spend.hover.isVisible()

    dash.range_box.setCurrentIndex(4)
    qtbot.waitUntil(lambda: dash.last_data["range"].span_s == 30 * 86400, timeout=3000)
    assert dash.spend.bucket_s == 86400 and len(dash.spend.buckets) in (30, 31)


def test_dashboard_range_fits_the_data_has_15_minutes_y_from_0_and_counts_in_tooltips(
    qtbot: Any, stack: Stack, mock: Any
) -> None:  # type: ignore[no-untyped-def]
    """A fresh install's first calls fill the chart (not a sliver at the right of 24 hours); the axes start at 0;
    a bar's tooltip says how many calls it stands on, a failure-rate point how many tool calls."""
    assert [dash_range.label for dash_range in DASHBOARD_RANGES][:2] == ["Last 15 minutes", "Last hour"]
    assert fitting_range(None, 1e9) is None
    assert [fitting_range(1e9 - age, 1e9) for age in (60, 1800, 3 * 3600, 3 * 86400, 90 * 86400)] == [
        0,
        1,
        2,
        3,
        4,
    ]

    empty = stack.open(qtbot, DashboardPage)
    qtbot.waitUntil(lambda: empty.last_data is not None, timeout=5000)
    assert empty.time_range.span_s == 86400 and not empty.range_fitted  # no data: 24 hours, fitted later
    for chart in (empty.spend, empty.failures, empty.cost_per_task):
        assert chart.plotItem.vb.viewRange()[1][0] == 0, chart.title

    mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": 1})]))
    assert chat(stack.ctx, "default", tools=True).status_code == 200
    mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": "a.py"})]))
    assert chat(stack.ctx, "default", tools=True).status_code == 200
    assert chat(stack.ctx, "default").status_code == 200
    stack.wait_logged(3)
    assert dashboard_queries.first_activity(stack.core.db, since=time.time() - 86400) > time.time() - 60

    dash = stack.open(qtbot, DashboardPage)
    qtbot.waitUntil(
        lambda: dash.last_data is not None and dash.last_data["range"].span_s == 900, timeout=5000
    )
    assert dash.range_box.currentText() == "Last 15 minutes" and dash.spend.bucket_s == 30
    for chart in (dash.spend, dash.failures, dash.cost_per_task):
        assert chart.plotItem.vb.viewRange()[1][0] == 0, chart.title
    dash.range_box.setCurrentIndex(1)  # a pick by hand stays
    qtbot.waitUntil(lambda: dash.last_data["range"].span_s == 3600, timeout=3000)
    assert dash.range_fitted

    i = int((dash.last_data["now"] - dash.spend.buckets[0]) // dash.spend.bucket_s)
    if sum(float(v[i]) for v in dash.spend.series.values()) == 0:
        i -= 1  # the calls fell in the minute before
    x = float(dash.spend.buckets[i] + dash.spend.bucket_s / 2)
    dash.spend.show_hover_at(dash.spend.plotItem.vb.mapViewToScene(QPointF(x, 0)))
    calls = dash.last_data["spend"]["calls"]
    assert sum(calls) == 3 and calls[i] > 0
    assert f"from {calls[i]} call" in dash.spend.hover.text(), dash.spend.hover.text()
    counts = dash.last_data["failures"]["tool_calls"]["qwen/qwen3-coder"]
    assert sum(counts) == 2
    j = max(range(len(counts)), key=lambda k: counts[k])
    x = float(dash.failures.buckets[j] + dash.failures.bucket_s / 2)
    dash.failures.show_hover_at(dash.failures.plotItem.vb.mapViewToScene(QPointF(x, 0)))
    rate = dash.failures.series["qwen/qwen3-coder"][j]
    want = f"qwen/qwen3-coder: {rate:.1f}% of {counts[j]} tool call"
    assert want in dash.failures.hover.text(), dash.failures.hover.text()


def test_dashboard_queries_never_overlap(qtbot: Any, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick while a query runs is skipped, not queued: slow figures must not pile up work."""
    from app.ui.pages import dashboard as dashboard_page

    running, most = [0], [0]
    real = dashboard_page.snapshot

    def slow(*args: Any, **kwargs: Any) -> dict[str, Any]:
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.35)
        try:
            return real(*args, **kwargs)
        finally:
            running[0] -= 1

    monkeypatch.setattr(dashboard_page, "snapshot", slow)
    monkeypatch.setattr(dashboard_page, "REFRESH_MS", 50)  # ticks 7 times faster than a query answers
    dash = stack.open(qtbot, DashboardPage)
    assert dash.timer.interval() == 50
    for _ in range(20):
        dash.dirty = True
        qtbot.wait(50)
    qtbot.waitUntil(lambda: not dash.flight.running, timeout=3000)
    assert most[0] == 1 and dash.flight.skipped > 5 and dash.refreshes >= 2


# -------------------------------------------------------------------------------------- screenshots


def drive_realistic_traffic(s: Stack, mock: Any) -> None:
    """A morning of three agent tasks through the real proxy: plans, edits, background titles, a flaky
    tool call or two, a rate limit answered by the fallback, and an upstream error."""
    ctx = s.ctx
    big = Usage(prompt=38_000, completion=1400, cached=24_000)
    for i in range(6):
        mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": f"src/auth/login_{i}.py"})], usage=big))
        chat(ctx, "default", task="fix-login-redirect", tools=True)
    mock.enqueue(
        Reply(
            text="Plan: 1. reproduce 2. fix the redirect 3. add a test",
            usage=Usage(prompt=9000, completion=900),
        )
    )
    chat(ctx, "plan", task="fix-login-redirect")
    mock.enqueue(Reply(text_tool_call=ToolCall("bash", {"command": "pytest -q"}), usage=big))
    chat(ctx, "default", task="fix-login-redirect", tools=True)
    mock.enqueue(Reply(text="Fix login redirect", usage=Usage(prompt=400, completion=8)))
    chat(ctx, "claude-3-5-haiku-latest", task="fix-login-redirect")
    for i in range(4):
        mock.enqueue(Reply(tool_calls=[ToolCall("bash", {"command": f"grep -rn export src/{i}"})], usage=big))
        chat(ctx, "default", task="add-csv-export", tools=True)
    mock.enqueue(Reply(status=429, headers={"Retry-After": "1"}), Reply(text="done", usage=big))
    chat(ctx, "default", task="add-csv-export")
    mock.enqueue(Reply(tool_calls=[ToolCall("read_file", {"path": 42})], usage=big))
    chat(ctx, "default", task="add-csv-export", tools=True)
    mock.enqueue(Reply(tool_calls=[ToolCall("read_file", '{"path": "src/export.py"')], usage=big))
    chat(ctx, "default", task="add-csv-export", tools=True)
    for i in range(3):
        mock.enqueue(Reply(text=f"step {i}", usage=Usage(prompt=22_000, completion=2200)))
        chat(ctx, "plan", task="refactor-session-store")
    mock.enqueue(Reply(status=400, error="context length exceeded"))
    chat(ctx, "default", task="refactor-session-store")
    mock.enqueue(
        Reply(
            tool_calls=[ToolCall("bash", {"command": "ls"}), ToolCall("read_file", {"path": "x.py"})],
            usage=big,
        )
    )
    chat(ctx, "default", task="refactor-session-store", tools=True)
    s.wait_logged(21)


def dark_palette() -> QPalette:
    """A dark theme as a desktop would set it: the charts must follow it without a restart."""
    pal = QPalette()
    for role, colour in (
        (QPalette.ColorRole.Window, "#2b2b2b"),
        (QPalette.ColorRole.WindowText, "#e6e6e6"),
        (QPalette.ColorRole.Base, "#1e1e1e"),
        (QPalette.ColorRole.AlternateBase, "#262626"),
        (QPalette.ColorRole.Text, "#e6e6e6"),
        (QPalette.ColorRole.Button, "#353535"),
        (QPalette.ColorRole.ButtonText, "#e6e6e6"),
        (QPalette.ColorRole.Mid, "#5a5a5a"),
        (QPalette.ColorRole.Highlight, "#3d7ab8"),
        (QPalette.ColorRole.ToolTipBase, "#333333"),
        (QPalette.ColorRole.ToolTipText, "#e6e6e6"),
        (QPalette.ColorRole.PlaceholderText, "#9a9a9a"),
    ):
        pal.setColor(role, QColor(colour))
    return pal


def test_render_pages_to_png(qtbot: Any, tmp_path: Path, mock: Any) -> None:  # type: ignore[no-untyped-def]
    """Screenshots for the README: a day of synthetic history under a morning of real proxied traffic."""
    db = tmp_path / "log.db"
    fill_synthetic_calls(db, 6000, end=time.time() - 3600, span=23 * 3600.0, tasks=60, tool_rows=True)
    s = Stack(tmp_path, mock.base_url, db)
    try:
        drive_realistic_traffic(s, mock)
        with s.core.db.connect() as conn:
            ids = dict(conn.exec_driver_sql("SELECT label, id FROM tasks WHERE source = 'header'").all())
        task_queries.set_outcome(s.core.db, ids["fix-login-redirect"], "finished")
        task_queries.set_outcome(s.core.db, ids["refactor-session-store"], "abandoned")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

        dash = s.open(qtbot, DashboardPage, (1400, 900))
        qtbot.waitUntil(lambda: dash.last_data is not None, timeout=10_000)
        assert dash.tiles["calls"].value.text() != "0"
        qtbot.wait(200)
        assert dash.grab().save(str(SCREENSHOTS / "dashboard.png"))
        light = QApplication.palette()
        try:
            QApplication.setPalette(dark_palette())
            qtbot.waitUntil(lambda: dash.spend.backgroundBrush().color().lightness() < 80, timeout=3000)
            assert dash.grab().save(str(SCREENSHOTS / "dashboard-dark.png"))
        finally:
            QApplication.setPalette(light)

        calls = s.open(qtbot, CallsPage, (1400, 800))
        settle(qtbot, calls.model)
        with s.core.db.connect() as conn:
            schema_call = conn.exec_driver_sql(
                "SELECT call_id FROM tool_calls WHERE kind = 'schema' AND call_id NOT LIKE 'syn%'"
            ).scalar()
        calls.select_row(next(i for i, r in enumerate(calls.model.rows) if r["call_id"] == schema_call))
        qtbot.waitUntil(lambda: calls.detail.data is not None, timeout=5000)
        assert "arguments violate the tool's schema" in calls.detail.toPlainText()
        qtbot.waitUntil(lambda: calls.count_label.text().endswith("calls"), timeout=5000)
        assert calls.grab().save(str(SCREENSHOTS / "calls.png"))

        tasks = s.open(qtbot, TasksPage, (1400, 800))
        tasks.since_box.setCurrentIndex(0)
        qtbot.waitUntil(lambda: tasks.model.find(ids["add-csv-export"]) >= 0, timeout=5000)
        row = tasks.proxy.mapFromSource(tasks.model.index(tasks.model.find(ids["add-csv-export"]), 0)).row()
        tasks.table.selectRow(row)
        qtbot.waitUntil(lambda: tasks.calls.rowCount() > 0 and not tasks.calls.loading, timeout=5000)
        tasks.calls_table.selectRow(0)
        qtbot.waitUntil(lambda: tasks.detail.data is not None, timeout=5000)
        assert tasks.grab().save(str(SCREENSHOTS / "tasks.png"))
        from dataclasses import replace

        from app.core.config import Budget
        from app.ui.pages.budgets import BudgetsPage

        s.core.config_store.update(
            lambda c: replace(
                c,
                budgets=(
                    Budget("day", 20.0, action="switch", switch_to="cheap"),
                    Budget("month", 150.0),
                    Budget("day", 5.0, action="block", provider="premium"),
                ),
            )
        )
        budgets = s.open(qtbot, BudgetsPage, (900, 600))
        qtbot.waitUntil(lambda: len(budgets.bars) == 3, timeout=5000)
        qtbot.wait(100)
        assert budgets.grab().save(str(SCREENSHOTS / "budgets-page.png"))
        for name in ("dashboard", "dashboard-dark", "calls", "tasks", "budgets-page"):
            assert (SCREENSHOTS / f"{name}.png").stat().st_size > 20_000
    finally:
        s.close()


# ------------------------------------------------------------------------------------------- bench


@pytest.mark.slow
def test_gui_responsiveness_bench_quick_run() -> None:
    """The benchmark's quick mode end to end (its own processes: mock, load, GUI). Timing is printed, not
    asserted (it says more about the machine than the code); that the load was served and logged and the
    dashboard kept refreshing under it is asserted."""
    import json
    import subprocess
    import sys

    bench = Path(__file__).resolve().parent.parent / "bench" / "gui_responsiveness.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--quick", "--json"], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"\nquick bench: {result['load']['calls']} calls, max GUI gap {result['gui']['max_gap_ms']:.0f} ms, "
        f"p99 {result['gui']['p99_gap_ms']:.0f} ms, {result['dashboard']['refreshes']} dashboard refreshes"
    )
    assert result["load"]["calls"] > 0 and result["load"]["errors"] == 0
    assert result["logged"] == result["load"]["calls"] and result["writer_dropped"] == 0
    assert result["dashboard"]["refreshes"] >= 2
    assert result["gui"]["ticks"] > 50


# ------------------------------------------------------------------------------------------ pieces


def test_throttle_runs_at_once_then_folds_calls_into_one_with_the_latest_arguments(qtbot: Any) -> None:
    from app.ui.throttle import Throttle

    seen: list[int] = []
    throttle = Throttle(seen.append, 200)
    throttle(1)
    throttle(2)
    throttle(3)
    assert seen == [1] and throttle.pending
    qtbot.waitUntil(lambda: seen == [1, 3], timeout=2000)
    assert not throttle.pending
    throttle(4)
    throttle.cancel()
    qtbot.wait(300)
    assert seen == [1, 3]


def test_single_flight_skips_or_queues_while_a_job_runs(qtbot: Any) -> None:
    from app.ui.throttle import SingleFlight

    background = Background()
    flight = SingleFlight(background)
    done: list[str] = []
    assert flight.run(lambda: time.sleep(0.2) or "first", done.append)
    assert not flight.run(lambda: "skipped", done.append)
    assert not flight.run(lambda: "older", done.append, queue_latest=True)
    assert not flight.run(lambda: "latest", done.append, queue_latest=True)
    qtbot.waitUntil(lambda: done == ["first", "latest"], timeout=3000)
    assert flight.skipped == 1
    failures: list[str] = []
    flight.run(lambda: 1 / 0, done.append, lambda exc: failures.append(type(exc).__name__))
    qtbot.waitUntil(lambda: failures == ["ZeroDivisionError"], timeout=3000)
    assert not flight.running
    background.wait()


def test_axis_tops_are_round_numbers() -> None:
    from app.ui.charts import nice_ceiling

    assert [nice_ceiling(v) for v in (0.756, 0.55, 13.2, 100, 0.0123, 7.9, 9.5, 0)] == [
        0.8,
        0.6,
        15.0,
        100,
        0.015,
        8,
        10,
        1.0,
    ]


# ------------------------------------------------------------------------------------ calls page layout


def _visible_columns(page: CallsPage) -> list[str]:
    """Column titles whose whole section is inside the table's viewport."""
    header, width = page.table.horizontalHeader(), page.table.viewport().width()
    out = []
    for logical in range(page.model.columnCount()):
        x = header.sectionViewportPosition(logical)
        if x >= 0 and x + header.sectionSize(logical) <= width:
            out.append(page.model.headerData(logical, Qt.Orientation.Horizontal))
    return out


def test_calls_page_shows_what_matters_explains_red_rows_and_marks_fallbacks(
    qtbot: Any, stack: Stack, mock: Any
) -> None:  # type: ignore[no-untyped-def]
    page = stack.open(qtbot, CallsPage, size=(1100, 700))  # the window's default size, splitter as it comes
    settle(qtbot, page.model)
    assert {"Outcome", "Cost", "Duration", "Tool calls"} <= set(_visible_columns(page)), _visible_columns(
        page
    )
    mock.enqueue(Reply(status=500), Reply(tool_calls=[ToolCall("read_file", {"path": 5})]))
    assert chat(stack.ctx, tools=True).status_code == 200  # fallback served it; its tool call is broken
    mock.enqueue(Reply(text="fine"))
    assert chat(stack.ctx).status_code == 200
    stack.wait_logged(2)
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=3000)
    col = {page.model.headerData(c, Qt.Orientation.Horizontal): c for c in range(page.model.columnCount())}
    red, fine = page.model.index(1, col["Outcome"]), page.model.index(0, col["Outcome"])
    assert red.data() == "ok, 1 tool call failed" and fine.data() == "ok"
    assert "tool call was broken" in red.data(Qt.ItemDataRole.ToolTipRole)
    served = page.model.index(1, col["Served by"])
    assert served.data().startswith("↪ backup/") and "fallback after 1 failed attempt" in served.data(
        Qt.ItemDataRole.ToolTipRole
    )
    assert not page.model.index(0, col["Served by"]).data().startswith("↪")


def test_the_selected_call_stays_still_while_live_rows_arrive_and_ctrl_f_finds(
    qtbot: Any, tmp_path: Path, mock: Any
) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtTest import QTest

    db = tmp_path / "log.db"
    fill_synthetic_calls(db, 200, end=time.time() - 60, span=600.0)
    stack = Stack(tmp_path, mock.base_url, db)
    try:
        _selected_row_stays(qtbot, stack, QTest)
    finally:
        stack.close()


def _selected_row_stays(qtbot: Any, stack: Stack, QTest: Any) -> None:  # noqa: N803
    page = stack.open(qtbot, CallsPage)
    settle(qtbot, page.model)
    assert page.table.verticalScrollBar().value() == 0
    page.select_row(1)  # at the top of the list, reading the second call
    chosen = page.model.row(1)["call_id"]
    y = page.table.rowViewportPosition(1)
    for _ in range(2):
        assert chat(stack.ctx).status_code == 200
    qtbot.waitUntil(lambda: page.model.rowCount() == 202, timeout=3000)
    row = page.table.currentIndex().row()
    assert page.model.row(row)["call_id"] == chosen
    assert page.table.rowViewportPosition(row) == y  # not pushed down by the two new rows
    page.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is page, timeout=3000)
    page.table.setFocus()
    QTest.keySequence(page, QKeySequence(QKeySequence.StandardKey.Find))
    assert page.search_edit.hasFocus()


def test_empty_states_say_what_to_do_next_and_go_away_with_the_first_call(qtbot: Any, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    calls = stack.open(qtbot, CallsPage)
    dash = stack.open(qtbot, DashboardPage)
    qtbot.waitUntil(lambda: calls.empty.isVisible() and dash.empty.isVisible(), timeout=5000)
    assert calls.empty.label.text().startswith("No calls yet: connect an agent")
    assert "connect an agent" in dash.empty.label.text()
    qtbot.wait(100)
    assert dash.grab().save(str(SCREENSHOTS / "empty-dashboard.png"))
    with qtbot.waitSignal(stack.ctx.bridge.navigate, timeout=2000) as nav:
        calls.empty.button.click()
    assert nav.args == ["export"]
    with qtbot.waitSignal(stack.ctx.bridge.navigate, timeout=2000) as nav:
        dash.empty.button.click()
    assert nav.args == ["export"]
    calls.failures_box.setChecked(True)  # filtered to nothing is not "no calls"
    assert chat(stack.ctx).status_code == 200
    stack.wait_logged(1)
    qtbot.waitUntil(lambda: not dash.empty.isVisible(), timeout=10_000)
    calls.failures_box.setChecked(False)
    qtbot.waitUntil(lambda: calls.total == 1, timeout=5000)
    assert not calls.empty.isVisible()
    assert " ms" not in dash.updated.text()  # the query timing left the header (it is in the tooltip)


def test_the_health_row_shows_errors_fallbacks_tool_failures_and_budgets_and_links_to_the_calls(
    qtbot: Any, stack: Stack, mock: Any
) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from app.core.config import Budget

    stack.core.config_store.save(replace(stack.core.config, budgets=(Budget("day", 1.0),)))
    mock.enqueue(Reply(status=500), Reply(tool_calls=[ToolCall("read_file", {"path": 5})]))
    assert chat(stack.ctx, tools=True).status_code == 200  # served by the fallback, a schema failure
    mock.enqueue(Reply(text="fine"))
    assert chat(stack.ctx).status_code == 200
    stack.wait_logged(2)
    dash = stack.open(qtbot, DashboardPage)
    qtbot.waitUntil(lambda: dash.health.errors.text() != "", timeout=10_000)
    row = dash.health
    assert row.errors.text() == "Errors 0.0%" and row.fallbacks.text() == "Fallbacks 50.0%"
    assert row.kinds.text() == "Tool failures: schema 1"
    assert "arguments violate the tool's schema" in row.kinds.toolTip()
    assert len(row.budget_bars) == 1 and row.budget_bars[0].format().endswith("of $1.00")
    assert "daily budget of $1.00" in row.budget_bars[0].toolTip()
    with qtbot.waitSignal(stack.ctx.bridge.navigate, timeout=2000) as nav:
        row.errors.click()
    assert nav.args == ["calls?outcome=error"]
    calls = stack.open(qtbot, CallsPage)
    settle(qtbot, calls.model)
    calls.apply_query("failures=1")
    settle(qtbot, calls.model)
    assert calls.failures_box.isChecked() and calls.model.rowCount() == 1
    calls.apply_query("outcome=error")
    settle(qtbot, calls.model)
    assert calls.outcome_box.currentData() == "error" and not calls.failures_box.isChecked()
    assert calls.model.rowCount() == 0


# ------------------------------------------------------------------------------------------- budgets


def test_budgets_page_shows_progress_and_a_reached_limit_warns_until_dismissed(
    qtbot: Any, stack: Stack, mock: Any
) -> None:  # type: ignore[no-untyped-def]
    """Budgets apply to all presets: their own page, a bar per budget, and a warning that stays up once a
    limit is reached, until dismissed (for that period)."""
    from dataclasses import replace

    from app.core.config import Budget
    from app.ui.main_window import PAGES
    from app.ui.pages.budgets import BudgetsPage

    assert "budgets" in [p.key for p in PAGES]
    page = stack.open(qtbot, BudgetsPage)
    qtbot.waitUntil(lambda: page.empty.isVisible(), timeout=3000)
    assert not page.bars and not page.warning.isVisible()

    stack.core.config_store.update(
        lambda c: replace(
            c, budgets=(Budget("day", 1000.0), Budget("month", 0.001, action="warn", provider="cheapco"))
        )
    )
    mock.enqueue(Reply(usage=Usage(1000, 100), cost=0.002))
    assert chat(stack.ctx).status_code == 200
    stack.wait_logged(1)
    page.refresh()
    qtbot.waitUntil(lambda: len(page.bars) == 2, timeout=3000)
    daily, monthly = page.rows
    assert daily["spent"] > 0 and not daily["reached"] and page.bars[0].value() == 0
    assert page.bars[0].format().endswith(" of $1,000 (0%)")
    assert monthly["reached"] and page.bars[1].value() == 100
    assert (
        page.warning.isVisible()
        and "Monthly budget of $0.00 for cheapco reached" in page.warning_text.label.text()
    )

    page.refresh()  # still reached on the next refresh: the warning stays
    qtbot.waitUntil(lambda: page.flight.running is False, timeout=3000)
    qtbot.wait(50)
    assert page.warning.isVisible()
    page.dismiss_button.click()
    assert not page.warning.isVisible()
    page.refresh()
    qtbot.wait(200)
    assert not page.warning.isVisible() and len(page.bars) == 2  # dismissed for this month

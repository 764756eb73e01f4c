"""The live dashboard: spend, savings and tool-call reliability at a glance, refreshed about every second.

All figures come from the analytics queries (`app.core.queries.dashboard` and `.tasks`) run as one job
on the background pool. A tick only queries when calls were logged since the last query (or the figures
are getting old), and never while the previous query is still running: under a heavy load the page
falls behind by at most one refresh instead of piling up work, and an idle app does no work at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QHideEvent, QPalette, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import Engine

from app.core import premium_split
from app.core.config import Config
from app.core.pricing import caveat_text
from app.core.queries import dashboard, health, tasks
from app.ui import startup
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.models import estimated_note, fmt_money, fmt_rate
from app.ui.pages import EmptyState, MessageLine, heading
from app.ui.pages.health_row import HealthRow
from app.ui.throttle import SingleFlight, Throttle

if TYPE_CHECKING:  # pyqtgraph and numpy load with the first chart, not with the page
    from app.ui.charts import CostPerTaskChart, FailureRateChart, SpendChart

CHART_MIN_HEIGHT = 180  # what a chart asks for (app.ui.charts.Chart), kept by its stand-in


@dataclass(frozen=True, slots=True)
class TimeRange:
    label: str
    span_s: float
    bucket_s: int  # about 30-60 bars whatever the range (whole seconds: the queries bucket by them)


RANGES: tuple[TimeRange, ...] = (
    TimeRange("Last hour", 3600, 60),
    TimeRange("Last 24 hours", 86400, 1800),
    TimeRange("Last 7 days", 7 * 86400, 3 * 3600),
    TimeRange("Last 30 days", 30 * 86400, 86400),
)
# The dashboard's ranges: a 15-minute one for watching a session live, then the ones the Team page shares.
DASHBOARD_RANGES: tuple[TimeRange, ...] = (TimeRange("Last 15 minutes", 900, 30), *RANGES)
DEFAULT_RANGE = 2  # last 24 hours, until the first figures say how old the data is
STACK_BY = (("Model", "model"), ("Provider", "provider"), ("Role", "role"))
REFRESH_MS = 1000
STALE_S = 15.0  # re-query at least this often, for calls logged by another process and the moving window


SAVINGS_METHOD = (
    "Each call's tokens are priced on the premium preset's model for the same role (a background call on its "
    "background model, a plan call on its plan model), minus what the call cost. The premium side's prompt is "
    "split between cache reads, writes and plain input as measured on your own premium calls once the log holds "
    "{min_calls} of them, and as the call's own split before that."
)
LOCAL_NOTE = (
    "Local providers cost $0 per token; one with an hourly_cost has its rate subtracted for every clock hour "
    "in which it served a call (see `downshift breakeven`)."
)


def fitting_range(first: float | None, now: float) -> int | None:
    """The smallest range that holds all the data (None: no data in 30 days), so a fresh install's hour of
    calls fills the chart instead of being a sliver at the right edge of 24 hours."""
    if first is None:
        return None
    age = now - first
    return next((i for i, r in enumerate(DASHBOARD_RANGES) if r.span_s >= age), len(DASHBOARD_RANGES) - 1)


def snapshot(
    engine: Engine, rng: TimeRange, by: str, now: float, config: Config | None = None, *, fit: bool = False
) -> dict[str, Any]:
    """Every figure the page shows, in one background job (with `fit`, also the range that fits the data)."""
    t0 = time.perf_counter()
    since = now - rng.span_s
    hourly = dashboard.hourly_rates(config) if config is not None else None
    data: dict[str, Any] = {
        "health": health.health(engine, config.budgets if config is not None else (), since=since, now=now),
        "tiles": dashboard.tiles(engine, since=since, now=now, hourly=hourly),
        "spend": dashboard.spend_over_time(engine, since=since, until=now, bucket_s=rng.bucket_s, by=by),
        "failures": dashboard.failure_rate_over_time(engine, since=since, until=now, bucket_s=rng.bucket_s),
        "tasks": tasks.cost_per_task(engine, since=since),
    }
    if fit:
        data["fit"] = fitting_range(
            dashboard.first_activity(engine, since=now - DASHBOARD_RANGES[-1].span_s), now
        )
    if config is not None:
        data["savings_method"] = premium_split.describe(*premium_split.measured(engine, config, now))
    data.update(since=since, now=now, range=rng, by=by, query_ms=(time.perf_counter() - t0) * 1000)
    return data


class Tile(QFrame):
    """One headline figure: a caption, the value in large type, and a line of context under it."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(2)
        self.title = QLabel(title)
        self.title.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.value = QLabel("–")
        font = self.value.font()
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        self.value.setFont(font)
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.note = QLabel(" ")
        self.note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        for w in (self.title, self.value, self.note):
            layout.addWidget(w)

    def set(self, value: str, note: str = "") -> None:
        self.value.setText(value)
        self.note.setText(note or " ")


class DashboardPage(QWidget):
    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.flight = SingleFlight(ctx.background, self)
        self.dirty = True  # calls were logged since the last query (or nothing was queried yet)
        self.last_query = 0.0
        self.last_data: dict[str, Any] | None = None
        self.refreshes = 0

        self.range_box = QComboBox()
        self.range_box.setAccessibleName("Time range")
        for r in DASHBOARD_RANGES:
            self.range_box.addItem(r.label, r)
        self.range_box.setCurrentIndex(DEFAULT_RANGE)
        self.range_fitted = False  # the default range was fitted to the data (or the user picked one first)
        self.by_box = QComboBox()
        self.by_box.setAccessibleName("Stack spend by")
        for label, key in STACK_BY:
            self.by_box.addItem(label, key)
        self.updated = QLabel()
        self.updated.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Range:"))
        bar.addWidget(self.range_box)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Stack spend by:"))
        bar.addWidget(self.by_box)
        bar.addStretch(1)
        bar.addWidget(self.updated)

        self.tiles = {
            "today": Tile("Spend today"),
            "month": Tile("Spend this month"),
            "savings": Tile("Saved vs premium"),
            "failure": Tile("Tool-call failure rate"),
            "per_task": Tile("Cost per finished task"),
            "calls": Tile("Calls"),
        }
        self.tiles["savings"].setToolTip(
            f"{SAVINGS_METHOD.format(min_calls=premium_split.MIN_PREMIUM_CALLS)} {LOCAL_NOTE}"
        )
        tiles = QGridLayout()
        tiles.setSpacing(8)
        for i, tile in enumerate(self.tiles.values()):
            tiles.addWidget(tile, 0, i)

        # The charts (pyqtgraph, numpy: ~0.5 s of imports) go in stand-ins first. While the app is starting
        # (app.ui.startup holds), they are built after the window's first frame, their imports done on a
        # worker thread; otherwise right here. `spend`, `failures` and `cost_per_task` build them on use.
        charts = self._chart_grid = QGridLayout()
        self._charts: tuple[SpendChart, FailureRateChart, CostPerTaskChart] | None = None
        self._stand_ins: list[QWidget] = []
        for row, col, span in ((0, 0, 2), (1, 0, 1), (1, 1, 1)):
            stand_in = QFrame()
            stand_in.setMinimumHeight(CHART_MIN_HEIGHT)
            stand_in.setBackgroundRole(QPalette.ColorRole.Base)
            stand_in.setAutoFillBackground(True)
            charts.addWidget(stand_in, row, col, 1, span)
            self._stand_ins.append(stand_in)
        charts.setRowStretch(0, 3)
        charts.setRowStretch(1, 2)

        self.message = MessageLine()
        layout = QVBoxLayout(self)
        layout.addWidget(
            heading(
                "Dashboard",
                "What your agents cost, what they saved, and how reliably the models drive their tools.",
            )
        )
        layout.addLayout(bar)
        layout.addLayout(tiles)
        self.health = HealthRow(ctx)
        layout.addWidget(self.health)
        layout.addWidget(self.message)
        self.empty = EmptyState(
            "No calls in this range yet: connect an agent to Downshift (or run `downshift "
            "demo` to see the dashboard at work).",
            "Connect an agent…",
        )
        self.empty.button.clicked.connect(lambda: ctx.bridge.navigate.emit("export"))
        layout.addWidget(self.empty)
        layout.addLayout(charts, 1)

        self._steps: list[Callable[[], None]] = []
        self._step_timer = QTimer(self)
        self._step_timer.setSingleShot(True)
        self._step_timer.setInterval(0)
        self._step_timer.timeout.connect(self._next_step)
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.tick)
        self._tick_soon = Throttle(self.tick, REFRESH_MS, self)  # new calls: now, unless a query just ran
        self.range_box.currentIndexChanged.connect(self._range_changed)
        self.by_box.currentIndexChanged.connect(self.invalidate)
        ctx.bridge.callsLogged.connect(self._calls_logged)
        self._started = not startup.held()
        if self._started:
            self._build_charts()
        else:
            startup.after_start(self._start)

    # ---- the charts
    def _start(self) -> None:
        """Start-up is over: load the chart library off the GUI thread, then build the charts and query."""
        startup.preload(self.ctx.background, ["app.ui.charts"], self._started_now)

    def _started_now(self) -> None:
        self._build_charts()
        self._started = True
        if self.isVisible():
            self.tick(force=True)

    def _build_charts(self) -> tuple[SpendChart, FailureRateChart, CostPerTaskChart]:
        if self._charts is None:
            from app.ui.charts import CostPerTaskChart, FailureRateChart, SpendChart

            self._charts = (SpendChart(), FailureRateChart(), CostPerTaskChart())
            for stand_in, chart in zip(self._stand_ins, self._charts, strict=True):
                self._chart_grid.replaceWidget(stand_in, chart)
                stand_in.hide()
                stand_in.deleteLater()
            self._stand_ins.clear()
            startup.mark("dashboard-charts")
        return self._charts

    @property
    def spend(self) -> SpendChart:
        return self._build_charts()[0]

    @property
    def failures(self) -> FailureRateChart:
        return self._build_charts()[1]

    @property
    def cost_per_task(self) -> CostPerTaskChart:
        return self._build_charts()[2]

    # ---- when to query
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.timer.start()
        self.tick()

    def hideEvent(self, event: QHideEvent) -> None:
        self.timer.stop()
        self._tick_soon.cancel()
        super().hideEvent(event)

    def _calls_logged(self, _records: object) -> None:
        self.dirty = True
        self._tick_soon()

    def _range_changed(self) -> None:
        self.range_fitted = True  # a range picked by hand (or by the fit) is never overridden
        self.invalidate()

    def invalidate(self) -> None:
        """Settings changed: query now if possible (else on the next tick)."""
        self.dirty = True
        self.tick(force=True)

    @property
    def time_range(self) -> TimeRange:
        chosen: TimeRange = self.range_box.currentData()
        return chosen

    def tick(self, force: bool = False) -> None:
        if not self.isVisible() or not self._started:
            return  # hidden, or the app is still starting: `_started_now` queries
        since_last = time.monotonic() - self.last_query
        if not force and (since_last < REFRESH_MS / 1000 * 0.8 or (not self.dirty and since_last < STALE_S)):
            return  # at most about one refresh a second, however the timer and new calls interleave
        rng, by, engine, config = (
            self.time_range,
            self.by_box.currentData(),
            self.ctx.core.db,
            self.ctx.core.config,
        )
        fit = not self.range_fitted
        if self.flight.run(
            lambda: snapshot(engine, rng, by, time.time(), config, fit=fit), self.apply, self._failed
        ):
            self.dirty = False
            self.last_query = time.monotonic()

    # ---- showing results
    def _failed(self, exc: Exception) -> None:
        self.dirty = True  # try again on a later tick
        self.message.error(plain_error("Could not read the figures", exc))

    def apply(self, data: dict[str, Any]) -> None:
        """Show a snapshot: tiles at once, then one chart per turn of the event loop, so the GUI thread
        never spends more than one chart's update and repaint in a row (a new model or a new bucket
        re-renders a chart's axes and legend: tens of milliseconds each on a busy machine)."""
        if data["range"] != self.time_range or data["by"] != self.by_box.currentData():
            self.dirty = True  # settings changed while this ran; the next tick brings the right figures
            return
        fit = data.get("fit")
        if not self.range_fitted and fit is not None:
            if fit != self.range_box.currentIndex():
                self.range_box.setCurrentIndex(fit)  # re-queries at once for the fitted range
                return
            self.range_fitted = True
        if self.message.kind == "error":
            self.message.clear()
        self._apply_tiles(data["tiles"], data["range"])
        self.health.set(data["health"])
        rng, since, now = data["range"], data["since"], data["now"]
        spend, failures = data["spend"], data["failures"]
        self._steps = [
            lambda: self.spend.set_data(
                spend["buckets"],
                spend["series"],
                bucket_s=rng.bucket_s,
                since=since,
                until=now,
                calls=spend.get("calls"),
            ),
            lambda: self.failures.set_data(
                failures["buckets"],
                failures["series"],
                bucket_s=rng.bucket_s,
                since=since,
                until=now,
                tool_calls=failures.get("tool_calls"),
            ),
            lambda: self.cost_per_task.set_data(data["tasks"]["by_outcome"], data["tasks"]["tasks"]),
            lambda: self._applied(data),
        ]
        self._step_timer.start()

    def _next_step(self) -> None:
        if self._steps:
            self._steps.pop(0)()
        if self._steps:
            self._step_timer.start()

    def _applied(self, data: dict[str, Any]) -> None:
        self.last_data = data
        method = SAVINGS_METHOD.format(min_calls=premium_split.MIN_PREMIUM_CALLS)
        now_used = data.get("savings_method")
        self.tiles["savings"].setToolTip(f"{method} {LOCAL_NOTE}" + (f"\n\n{now_used}" if now_used else ""))
        self.refreshes += 1
        startup.mark("dashboard-figures")
        self.updated.setText(f"Updated {time.strftime('%H:%M:%S', time.localtime(data['now']))}")
        self.updated.setToolTip(f"The figures took {data['query_ms']:.0f} ms to query")

    def _apply_tiles(self, t: dict[str, Any], rng: TimeRange) -> None:
        span = rng.label.lower()
        today, month = t.get("spend_today_estimated_calls", 0), t.get("spend_month_estimated_calls", 0)
        self.tiles["today"].set(
            fmt_money(t["spend_today"] or 0.0, estimated=bool(today)), estimated_note(today)
        )
        self.tiles["month"].set(
            fmt_money(t["spend_month"] or 0.0, estimated=bool(month)), estimated_note(month)
        )
        spent, saved = t["spend_range"] or 0.0, t["savings_range"]
        hourly = t.get("hourly_cost_usd") or 0.0
        premium = spent + (t.get("savings_gross", saved) or 0.0)
        guessed = t.get("estimated_calls", 0)
        note = f"{fmt_money(spent, estimated=bool(guessed))} spent" + (
            f" + {fmt_money(hourly)} hourly" if hourly else ""
        )
        self.tiles["savings"].set(
            fmt_money(saved, estimated=bool(guessed)),
            "" if saved is None else f"{note}, premium {fmt_money(premium)}",
        )
        rate = t["tool_failure_rate"]
        self.tiles["failure"].set(fmt_rate(rate), "no tool calls" if rate is None else span)
        per_task = t["cost_per_finished_task"]
        task_unpriced, task_guessed = (
            t.get("finished_task_unpriced_calls", 0),
            t.get("finished_task_estimated_calls", 0),
        )
        caveats = caveat_text(task_unpriced, task_guessed)
        self.tiles["per_task"].set(
            fmt_money(per_task, estimated=bool(task_guessed)),
            "no finished tasks" if per_task is None else caveats or span,
        )
        unpriced = t["unpriced_calls"]
        self.empty.setVisible(not t["calls"])
        notes = ", ".join(
            x
            for x in (
                f"{unpriced} without a known price" if unpriced else "",
                f"~ {guessed} estimated" if guessed else "",
            )
            if x
        )
        self.tiles["calls"].set(f"{t['calls']:,}", notes or span)

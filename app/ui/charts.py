"""The dashboard's pyqtgraph charts: stacked spend, tool-call failure rate by model, cost per task.

Each chart creates its plot items once per series name and updates them with setOpts/setData on every
refresh (the pyqtgraph scrollingPlots pattern), so a live refresh costs a redraw, not a rebuild.
Background, axes and the hover label take their colours from the widget palette and follow a palette
change, so a dark theme works; series colours come from one categorical set chosen to read on both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QLabel, QWidget

from app.ui.models import fmt_money

# Tableau 10: mid-lightness hues that stay distinct on white and on near-black backgrounds.
SERIES_COLOURS = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
OUTCOME_ORDER = ("finished", "abandoned", "open")


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


class ColourBook:
    """A series keeps its colour for the life of the chart, so a model does not change colour when
    another one appears or drops out of the range."""

    def __init__(self) -> None:
        self._assigned: dict[str, int] = {}

    def colour(self, name: str, *, dark: bool = False) -> QColor:
        index = self._assigned.setdefault(name, len(self._assigned))
        colour = QColor(SERIES_COLOURS[index % len(SERIES_COLOURS)])
        return colour.lighter(115) if dark else colour


def nice_ceiling(value: float) -> float:
    """The next round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) at or above
    `value`: axis tops that read well and stay put while a total creeps up."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * power >= value * (1 - 1e-9):
            return round(step * power, 12)
    return 10 * power


def _bucket_label(start: float, width: float) -> str:
    fmt = "%H:%M" if width < 86400 else "%b %d"
    first = time.strftime(("%b %d " if width < 86400 else "") + fmt, time.localtime(start))
    return f"{first} – {time.strftime(fmt, time.localtime(start + width))}"


class Chart(pg.PlotWidget):  # type: ignore[misc]  # pyqtgraph has no type information (no py.typed): Any to mypy
    """Shared behaviour: palette colours, a fixed view (a glanceable dashboard, not an explorer), and a
    label that follows the mouse with the values under it (`hover_text`, given data coordinates)."""

    def __init__(
        self, title: str, *, time_axis: bool = True, legend_columns: int = 2, parent: QWidget | None = None
    ) -> None:
        axes = {"bottom": pg.DateAxisItem(orientation="bottom")} if time_axis else {}
        self._ready = False  # palette changes arrive while the base class is still being built
        super().__init__(parent=parent, axisItems=axes)
        self.title = title
        self.colours = ColourBook()
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setMinimumHeight(180)
        self.plotItem.showGrid(x=False, y=True, alpha=0.25)
        self.getAxis("left").enableAutoSIPrefix(False)
        self.legend = self.plotItem.addLegend(offset=(8, 4), labelTextSize="8pt", colCount=legend_columns)
        self.cursor = pg.InfiniteLine(angle=90, movable=False)
        self.cursor.setVisible(False)
        self.plotItem.addItem(self.cursor, ignoreBounds=True)
        self.hover = QLabel(self)
        self.hover.setTextFormat(Qt.TextFormat.RichText)
        self.hover.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hover.hide()
        self._mouse = pg.SignalProxy(self.scene().sigMouseMoved, rateLimit=30, slot=self._mouse_moved)
        self._x_window: tuple[float, float] | None = None
        self._y_top: float | None = None
        self._shown: object = None  # what the items show now; an identical refresh redraws nothing
        self._ready = True
        self._apply_base_palette()

    # ---- colours
    def changeEvent(self, event: QEvent) -> None:
        if self._ready and event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.apply_palette()
        super().changeEvent(event)

    @property
    def dark(self) -> bool:
        return is_dark(self.palette())

    def apply_palette(self) -> None:
        self._apply_base_palette()
        self.recolour()

    def _apply_base_palette(self) -> None:
        pal = self.palette()
        fg = pal.color(QPalette.ColorRole.Text)
        self.setBackground(pal.color(QPalette.ColorRole.Base))
        for name in ("left", "bottom"):
            axis = self.getAxis(name)
            axis.setPen(pg.mkPen(pal.color(QPalette.ColorRole.Mid)))
            axis.setTextPen(pg.mkPen(fg))
        self.plotItem.setTitle(self.title, color=fg.name(), size="10pt")
        self.legend.setLabelTextColor(fg)
        for _sample, label in self.legend.items:
            label.setText(label.text)  # setLabelTextColor stores the colour; only setText renders it
        muted = QColor(fg)
        muted.setAlpha(90)
        self.cursor.setPen(pg.mkPen(muted, width=1, style=Qt.PenStyle.DashLine))
        bg, text = pal.color(QPalette.ColorRole.ToolTipBase), pal.color(QPalette.ColorRole.ToolTipText)
        self.hover.setStyleSheet(
            f"QLabel {{ background: {bg.name()}; color: {text.name()}; border: 1px solid "
            f"{pal.color(QPalette.ColorRole.Mid).name()}; padding: 4px; }}"
        )

    def recolour(self) -> None:
        """Re-apply series colours after a palette change (subclasses hold the items)."""

    # ---- ranges: changed only when they must, since each change re-renders both axes
    def set_x_window(self, lo: float, hi: float) -> None:
        if self._x_window != (lo, hi):
            self._x_window = (lo, hi)
            self.setXRange(lo, hi, padding=0)

    def fit_y(
        self, top: float, *, headroom: float = 1.4, floor: float = 0.01, cap: float | None = None
    ) -> None:
        """Grow the y range at once when data would not fit, shrink it only when data uses under 40%
        of it: a live total creeping up must not make the axis (and its labels) change every second."""
        wanted = max(floor, top * headroom)
        if cap is not None:
            wanted = min(cap, wanted)
        current = self._y_top
        if current is None or wanted > current or wanted < current * 0.4:
            self._y_top = nice_ceiling(wanted) if cap is None else min(cap, nice_ceiling(wanted))
            self.setYRange(0, self._y_top, padding=0)

    # ---- hover
    def hover_text(self, x: float, y: float) -> str | None:
        """Rich text describing the data at (x, y), or None when there is nothing there."""
        return None

    def hover_x(self, x: float) -> float | None:
        """Where the cursor line goes for data x (the bucket's centre), or None for no line."""
        return None

    def _mouse_moved(self, args: tuple[Any, ...]) -> None:
        self.show_hover_at(args[0])

    def show_hover_at(self, scene_pos: QPointF) -> None:
        vb = self.plotItem.vb
        if not vb.sceneBoundingRect().contains(scene_pos):
            self.hide_hover()
            return
        point = vb.mapSceneToView(scene_pos)
        text = self.hover_text(point.x(), point.y())
        if not text:
            self.hide_hover()
            return
        line_x = self.hover_x(point.x())
        self.cursor.setVisible(line_x is not None)
        if line_x is not None:
            self.cursor.setPos(line_x)
        self.hover.setText(text)
        self.hover.adjustSize()
        at = self.mapFromScene(scene_pos)
        x = (
            at.x() + 14
            if at.x() + 14 + self.hover.width() < self.width()
            else at.x() - 14 - self.hover.width()
        )
        y = min(max(0, at.y() - self.hover.height() // 2), max(0, self.height() - self.hover.height()))
        self.hover.move(QPoint(max(0, x), y))
        self.hover.show()
        self.hover.raise_()

    def hide_hover(self) -> None:
        self.hover.hide()
        self.cursor.setVisible(False)

    def leaveEvent(self, event: QEvent) -> None:
        self.hide_hover()
        super().leaveEvent(event)

    def set_legend(self, items: Sequence[tuple[Any, str]]) -> None:
        """Show exactly these (item, name) entries; untouched when they did not change."""
        wanted = [name for _, name in items]
        if wanted == [label.text for _, label in self.legend.items]:
            return
        self.legend.clear()
        for item, name in items:
            self.legend.addItem(item, name)


class BucketChart(Chart):
    """A chart over time buckets: the window is whole buckets, so it moves once per bucket, not per second."""

    buckets: np.ndarray
    bucket_s: float

    def _window(self, since: float, until: float) -> tuple[float, float]:
        if not len(self.buckets):
            return since, until
        first = float(self.buckets[0])
        return first, max(until, float(self.buckets[-1]) + self.bucket_s)

    def _bucket_at(self, x: float) -> int | None:
        if not len(self.buckets):
            return None
        i = int(math.floor((x - self.buckets[0]) / self.bucket_s))
        return i if 0 <= i < len(self.buckets) else None

    def hover_x(self, x: float) -> float | None:
        i = self._bucket_at(x)
        return None if i is None else float(self.buckets[i] + self.bucket_s / 2)


class SpendChart(BucketChart):
    """Spend per time bucket, stacked by model, provider or role; the biggest series at the bottom."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Spend over time (USD)", legend_columns=3, parent=parent)
        self.bars: dict[str, pg.BarGraphItem] = {}
        self.buckets = np.zeros(0)
        self.bucket_s = 60.0
        self.series: dict[str, np.ndarray] = {}
        self.calls: list[int] = []  # calls per bucket: what a bar stands on

    def _bar(self, name: str) -> pg.BarGraphItem:
        bar = self.bars.get(name)
        if bar is None:
            colour = self.colours.colour(name, dark=self.dark)
            bar = pg.BarGraphItem(
                x0=np.zeros(0), width=1.0, height=np.zeros(0), brush=colour, pen=None, name=name
            )
            self.plotItem.addItem(bar)
            self.bars[name] = bar
        return bar

    def recolour(self) -> None:
        for name, bar in self.bars.items():
            bar.setOpts(brush=self.colours.colour(name, dark=self.dark))

    def set_data(
        self,
        buckets: Sequence[float],
        series: Mapping[str, Sequence[float | None]],
        *,
        bucket_s: float,
        since: float,
        until: float,
        calls: Sequence[int] | None = None,
    ) -> None:
        self.calls = list(calls or ())
        key = (tuple(buckets), bucket_s, tuple((n, tuple(v)) for n, v in sorted(series.items())))
        if key == self._shown:
            return
        self._shown = key
        self.buckets = np.asarray(buckets, dtype=float)
        self.bucket_s = float(bucket_s)
        values = {name: np.nan_to_num(np.asarray(v, dtype=float)) for name, v in series.items()}
        order = sorted(values, key=lambda n: -float(values[n].sum()))
        order = [n for n in order if values[n].sum() > 0]
        self.series = {n: values[n] for n in order}
        base = np.zeros(len(self.buckets))
        shown = []
        for name in order:
            bar = self._bar(name)
            bar.setOpts(
                x0=self.buckets + self.bucket_s * 0.06,
                width=self.bucket_s * 0.88,
                y0=base.copy(),
                height=values[name],
            )
            bar.setVisible(True)
            base = base + values[name]
            shown.append((bar, name))
        for name, bar in self.bars.items():
            if name not in self.series:
                bar.setVisible(False)
                bar.setOpts(x0=np.zeros(0), width=1.0, y0=np.zeros(0), height=np.zeros(0))
        self.set_legend(shown)
        self.set_x_window(*self._window(since, until))
        self.fit_y(float(base.max()) if len(base) else 0.0)  # headroom for the legend

    def hover_text(self, x: float, y: float) -> str | None:
        i = self._bucket_at(x)
        if i is None:
            return None
        lines = [f"<b>{_bucket_label(self.buckets[i], self.bucket_s)}</b>"]
        total = 0.0
        for name, vals in self.series.items():
            if vals[i] > 0:
                lines.append(f"{name}: {fmt_money(float(vals[i]))}")
                total += float(vals[i])
        lines.append(f"total: {fmt_money(total)}" if total else "no spend")
        if i < len(self.calls):
            n = self.calls[i]
            lines.append(f"from {n:,} call{'' if n == 1 else 's'}" if n else "no calls")
        return "<br>".join(lines)


class FailureRateChart(BucketChart):
    """Tool-call failure rate (%) per model and bucket; gaps where a model made no tool calls."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Tool-call failure rate by model (%)", legend_columns=3, parent=parent)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.buckets = np.zeros(0)
        self.bucket_s = 60.0
        self.series: dict[str, np.ndarray] = {}
        self.tool_calls: Mapping[str, Sequence[int]] = {}  # per model and bucket: what a point stands on

    def _curve(self, name: str) -> pg.PlotDataItem:
        curve = self.curves.get(name)
        if curve is None:
            curve = self.plotItem.plot([], [], name=name, connect="finite", symbol="o", symbolSize=4)
            self._style(name, curve)
            self.curves[name] = curve
        return curve

    def _style(self, name: str, curve: pg.PlotDataItem) -> None:
        colour = self.colours.colour(name, dark=self.dark)
        curve.setPen(pg.mkPen(colour, width=1.5))
        curve.setSymbolBrush(colour)
        curve.setSymbolPen(pg.mkPen(colour))

    def recolour(self) -> None:
        for name, curve in self.curves.items():
            self._style(name, curve)

    def set_data(
        self,
        buckets: Sequence[float],
        series: Mapping[str, Sequence[float | None]],
        *,
        bucket_s: float,
        since: float,
        until: float,
        tool_calls: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        self.tool_calls = tool_calls or {}
        key = (tuple(buckets), bucket_s, tuple((n, tuple(v)) for n, v in sorted(series.items())))
        if key == self._shown:
            return
        self._shown = key
        self.buckets = np.asarray(buckets, dtype=float)
        self.bucket_s = float(bucket_s)
        centres = self.buckets + self.bucket_s / 2
        self.series = {}
        shown = []
        top = 0.0
        for name in sorted(series):
            pct = np.array([np.nan if v is None else 100.0 * v for v in series[name]], dtype=float)
            if np.isnan(pct).all():
                continue
            self.series[name] = pct
            curve = self._curve(name)
            curve.setData(centres, pct, connect="finite")
            curve.setVisible(True)
            shown.append((curve, name))
            top = max(top, float(np.nanmax(pct)))
        for name, curve in self.curves.items():
            if name not in self.series:
                curve.setData([], [])
                curve.setVisible(False)
        self.set_legend(shown)
        self.set_x_window(*self._window(since, until))
        self.fit_y(top, floor=10.0, cap=100.0)

    def hover_text(self, x: float, y: float) -> str | None:
        i = self._bucket_at(x)
        if i is None:
            return None
        rows = [
            f"{name}: {vals[i]:.1f}%{self._of(name, i)}"
            for name, vals in self.series.items()
            if not np.isnan(vals[i])
        ]
        head = f"<b>{_bucket_label(self.buckets[i], self.bucket_s)}</b>"
        return "<br>".join([head, *rows]) if rows else f"{head}<br>no tool calls"

    def _of(self, name: str, i: int) -> str:
        counts = self.tool_calls.get(name)
        if counts is None or i >= len(counts):
            return ""
        return f" of {counts[i]:,} tool call{'' if counts[i] == 1 else 's'}"


class CostPerTaskChart(Chart):
    """Cost per task by outcome: each task as a dot, with bars for the mean and a line for the median,
    so both the typical cost and the spread show (a finished task is the figure that matters)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Cost per task (USD)", time_axis=False, legend_columns=3, parent=parent)
        self.mean_bars = pg.BarGraphItem(x=np.zeros(0), width=0.6, height=np.zeros(0), pen=None, name="mean")
        self.medians = pg.PlotDataItem([], [], connect="pairs", name="median")
        self.dots = pg.ScatterPlotItem(size=5, pen=None, name="tasks")
        for item in (self.mean_bars, self.medians, self.dots):
            self.plotItem.addItem(item)
        self.set_legend([(self.mean_bars, "mean"), (self.medians, "median"), (self.dots, "a task")])
        self.categories: list[str] = []
        self.stats: dict[str, dict[str, Any]] = {}
        self.recolour()

    def recolour(self) -> None:
        accent = self.palette().color(QPalette.ColorRole.Highlight)
        mean = QColor(accent)
        mean.setAlpha(110)
        self.mean_bars.setOpts(brush=mean)
        self.medians.setPen(pg.mkPen(self.palette().color(QPalette.ColorRole.Text), width=3))
        dot = QColor(self.palette().color(QPalette.ColorRole.Text))
        dot.setAlpha(120)
        self.dots.setBrush(pg.mkBrush(dot))

    def set_data(
        self, by_outcome: Mapping[str | None, Mapping[str, Any]], tasks: Sequence[Mapping[str, Any]]
    ) -> None:
        key = (
            tuple(sorted((str(k), tuple(sorted(v.items()))) for k, v in by_outcome.items())),
            tuple((t.get("outcome"), t.get("cost_usd")) for t in tasks),
        )
        if key == self._shown:
            return
        self._shown = key
        stats = {("open" if k in (None, "", "null") else str(k)): dict(v) for k, v in by_outcome.items()}
        self.categories = [c for c in OUTCOME_ORDER if c in stats] + sorted(
            c for c in stats if c not in OUTCOME_ORDER
        )
        self.stats = stats
        xs = np.arange(len(self.categories), dtype=float)
        means = np.array([float(stats[c].get("mean") or 0.0) for c in self.categories])
        medians = np.array([float(stats[c].get("median") or 0.0) for c in self.categories])
        self.mean_bars.setOpts(x=xs, width=0.6, height=means)
        # each median a short horizontal line across its bar: x pairs joined with connect="pairs"
        self.medians.setData(np.repeat(xs, 2) + np.tile([-0.3, 0.3], len(xs)), np.repeat(medians, 2))
        index = {c: i for i, c in enumerate(self.categories)}
        px, py = [], []
        rng = np.random.default_rng(7)  # fixed jitter: dots must not dance on every refresh
        for task in tasks:
            cat = "open" if task.get("outcome") in (None, "") else str(task["outcome"])
            if cat in index and task.get("cost_usd") is not None:
                px.append(index[cat] + float(rng.uniform(-0.22, 0.22)))
                py.append(float(task["cost_usd"]))
        self.dots.setData(x=px, y=py)
        axis = self.getAxis("bottom")
        axis.setTicks(
            [[(i, f"{c} ({int(stats[c].get('count') or 0)})") for i, c in enumerate(self.categories)]]
        )
        self.set_x_window(-0.6, max(0.6, len(self.categories) - 0.4))
        self.fit_y(max([*py, *means, 0.0]), headroom=1.3)

    def hover_x(self, x: float) -> float | None:
        return None

    def hover_text(self, x: float, y: float) -> str | None:
        i = int(round(x))
        if not 0 <= i < len(self.categories) or abs(x - i) > 0.45:
            return None
        name = self.categories[i]
        s = self.stats[name]
        return (
            f"<b>{name}</b>: {int(s.get('count') or 0)} tasks<br>mean {fmt_money(s.get('mean'))}<br>"
            f"median {fmt_money(s.get('median'))}"
        )

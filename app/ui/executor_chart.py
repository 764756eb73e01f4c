"""Failure rate against prompt size, one line per model: "the back half of the session" made visible.

Points are the scorecard's fine prompt-size bins (x at each bin's middle, in thousands of tokens); a bin
with fewer than MIN_POINT tool calls is left out rather than drawn as a noisy spike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from app.ui.charts import Chart

MIN_POINT = 5  # tool calls a bin needs to be drawn
OPEN_BIN_WIDTH = 64_000  # where the open last bin's point goes: this far past its low edge


class ContextFailureChart(Chart):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Tool-call failure rate by prompt size (%)", time_axis=False, legend_columns=2, parent=parent
        )
        self.getAxis("bottom").setLabel("prompt tokens (thousands)")
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.points: dict[str, list[tuple[float, float, int]]] = {}

    def _curve(self, name: str) -> pg.PlotDataItem:
        curve = self.curves.get(name)
        if curve is None:
            curve = self.plotItem.plot([], [], name=name, symbol="o", symbolSize=6)
            self._style(name, curve)
            self.curves[name] = curve
        return curve

    def _style(self, name: str, curve: pg.PlotDataItem) -> None:
        colour = self.colours.colour(name, dark=self.dark)
        curve.setPen(pg.mkPen(colour, width=2))
        curve.setSymbolBrush(colour)
        curve.setSymbolPen(pg.mkPen(colour))

    def recolour(self) -> None:
        for name, curve in self.curves.items():
            self._style(name, curve)

    def set_models(self, models: Sequence[Mapping[str, Any]]) -> None:
        """`models`: scorecard rows (target, bins with low/high/tool_calls/failure_rate)."""
        self.points = {}
        shown = []
        top, right = 0.0, 64.0
        for m in models:
            pts = []
            for b in m["bins"]:
                if b["tool_calls"] < MIN_POINT or b["failure_rate"] is None:
                    continue
                high = b["high"] if b["high"] is not None else b["low"] + OPEN_BIN_WIDTH
                pts.append(((b["low"] + high) / 2000, 100.0 * b["failure_rate"], b["tool_calls"]))
            if not pts:
                continue
            name = m["target"]
            self.points[name] = pts
            curve = self._curve(name)
            curve.setData(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
            curve.setVisible(True)
            shown.append((curve, name))
            top = max(top, max(p[1] for p in pts))
            right = max(right, max(p[0] for p in pts) + 8)
        for name, curve in self.curves.items():
            if name not in self.points:
                curve.setData([], [])
                curve.setVisible(False)
        self.set_legend(shown)
        self.set_x_window(0, right)
        self.fit_y(top, floor=10.0, cap=100.0)

    def hover_text(self, x: float, y: float) -> str | None:
        rows = []
        for name, pts in self.points.items():
            near = min(pts, key=lambda p: abs(p[0] - x))
            if abs(near[0] - x) <= 6:
                rows.append(f"{name}: {near[1]:.1f}% of {near[2]} tool calls at ~{near[0]:.0f}K")
        return "<br>".join(rows) or None

"""The dashboard's health row: error rate, fallback rate, the commonest tool-call failures and budget
progress, each a click away from the calls (or budgets) behind it.

Clicking asks the window, through `bridge.navigate`, for a page and a filter ("calls?outcome=error"), so
this widget knows nothing about the Calls page's widgets.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from app.ui.context import UiContext
from app.ui.models import fmt_money, fmt_rate
from app.ui.pages.calls import CHECK_LABELS


class HealthRow(QWidget):
    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("<b>Health</b>"))
        self.errors = self._link(
            "Calls that failed (HTTP errors, timeouts, cancelled): show them", "calls?outcome=error"
        )
        self.fallbacks = self._link(
            "Calls a fallback target served: show calls with failures", "calls?failures=1"
        )
        self.kinds = self._link(
            "The commonest ways tool calls broke: show the calls with failures", "calls?failures=1"
        )
        for widget in (self.errors, self.fallbacks, self.kinds):
            layout.addWidget(widget)
        self.budget_bars: list[QProgressBar] = []
        self._budget_layout = QHBoxLayout()
        layout.addLayout(self._budget_layout)
        layout.addStretch(1)

    def _link(self, tooltip: str, target: str) -> QPushButton:
        button = QPushButton()
        button.setFlat(True)
        button.setToolTip(tooltip)
        button.clicked.connect(lambda: self.ctx.bridge.navigate.emit(target))
        return button

    def set(self, h: dict[str, Any]) -> None:
        self.errors.setText(
            f"Errors {fmt_rate(h['error_rate'])}" + (f" ({h['errors']})" if h["errors"] else "")
        )
        self.fallbacks.setText(f"Fallbacks {fmt_rate(h['fallback_rate'])}")
        kinds = h["tool_failure_kinds"]
        self.kinds.setText("Tool failures: " + (", ".join(f"{k} {n}" for k, n in kinds) if kinds else "none"))
        self.kinds.setToolTip(
            "\n".join(f"{k}: {CHECK_LABELS.get(k, k)} ({n})" for k, n in kinds)
            or "No tool call failed in this range"
        )
        for bar in self.budget_bars:
            bar.deleteLater()
        self.budget_bars = []
        for b in h["budgets"]:
            bar, share = budget_bar(b)
            bar.setToolTip(f"{b['label']}: {share:.0%} spent; at the limit it will {b['action']}")
            bar.setMaximumWidth(180)
            self._budget_layout.addWidget(bar)
            self.budget_bars.append(bar)


def budget_bar(b: dict[str, Any], *, with_share: bool = False) -> tuple[QProgressBar, float]:
    """A budget's progress bar ("$x of $y", with the share when asked) and the share it shows."""
    share = b["spent"] / b["limit"] if b["limit"] else 0.0
    bar = QProgressBar()
    bar.setRange(0, 100)
    bar.setValue(min(100, int(share * 100)))
    text = f"{fmt_money(b['spent'])} of {fmt_money(b['limit'])}"
    bar.setFormat(f"{text} ({share:.0%})" if with_share else text)
    return bar, share

"""The Budgets page: every spending limit with its progress this day or month, and a warning that stays.

Budgets apply to all presets (whichever is active), so they get their own page rather than living under
one preset. A reached limit shows a warning that stays until the user dismisses it; a dismissal lasts for
that budget's current period only, so the next day's (or month's) breach warns again. The limits
themselves are edited in the Presets page's Budgets tab ("Edit budgets").
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.queries.health import budget_status
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.models import fmt_money
from app.ui.pages import MessageLine, heading
from app.ui.pages.health_row import budget_bar
from app.ui.throttle import SingleFlight, Throttle

ACTIONS = {"warn": "warns", "switch": "switches preset", "block": "blocks calls"}


class BudgetsPage(QWidget):
    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.flight = SingleFlight(ctx.background, self)
        self.rows: list[dict[str, Any]] = []
        self.bars: list[QProgressBar] = []
        self.dismissed: set[tuple[str, float]] = set()  # (budget label, period start): quiet until it ends

        self.warning = QFrame()
        self.warning.setFrameShape(QFrame.Shape.StyledPanel)
        self.warning.setAccessibleName("Budget reached")
        self.warning_text = MessageLine()
        self.dismiss_button = QPushButton("&Dismiss")
        self.dismiss_button.setToolTip("Hide this warning until the budget's next day or month")
        self.dismiss_button.clicked.connect(self.dismiss)
        row = QHBoxLayout(self.warning)
        row.addWidget(self.warning_text, 1)
        row.addWidget(self.dismiss_button)
        self.warning.hide()

        self.grid = QGridLayout()
        self.grid.setColumnStretch(1, 1)
        self.empty = QLabel(
            "No budgets yet. A budget caps what all presets may spend in a day or a month, "
            "and warns, switches preset or blocks calls when it is reached."
        )
        self.empty.setWordWrap(True)
        self.message = MessageLine()
        edit = QPushButton("&Edit budgets…")
        edit.setToolTip("Limits, periods and actions are edited in the Presets page's Budgets tab")
        edit.clicked.connect(lambda: self.ctx.bridge.navigate.emit("presets"))
        buttons = QHBoxLayout()
        buttons.addWidget(edit)
        buttons.addStretch(1)

        layout = QVBoxLayout(self)
        layout.addWidget(
            heading(
                "Budgets",
                "Spending limits for all presets, whichever is active: what each has used this day or month.",
            )
        )
        layout.addWidget(self.warning)
        layout.addWidget(self.message)
        layout.addWidget(self.empty)
        layout.addLayout(self.grid)
        layout.addLayout(buttons)
        layout.addStretch(1)

        self._refresh_soon = Throttle(self.refresh, 2000, self)
        ctx.bridge.callsLogged.connect(lambda _records: self._refresh_soon())
        ctx.bridge.configChanged.connect(lambda *_: self._refresh_soon())

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def hideEvent(self, event: QHideEvent) -> None:
        self._refresh_soon.cancel()
        super().hideEvent(event)

    def refresh(self) -> None:
        engine, budgets = self.ctx.core.db, self.ctx.core.config.budgets
        self.flight.run(
            lambda: budget_status(engine, budgets, now=time.time()),
            self.show_rows,
            lambda exc: self.message.error(plain_error("Could not read the budgets' spend", exc)),
            queue_latest=True,
        )

    def show_rows(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        while self.grid.count():
            item = self.grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self.bars = []
        for i, b in enumerate(rows):
            bar, _share = budget_bar(b, with_share=True)
            bar.setAccessibleName(b["label"])
            self.grid.addWidget(QLabel(b["label"][0].upper() + b["label"][1:]), i, 0)
            self.grid.addWidget(bar, i, 1)
            self.grid.addWidget(
                QLabel(
                    ("reached: " if b["reached"] else "at the limit it ")
                    + ACTIONS.get(b["action"], b["action"])
                ),
                i,
                2,
            )
            self.bars.append(bar)
        self.empty.setVisible(not rows)
        self._show_warning()

    def _reached(self) -> list[dict[str, Any]]:
        return [
            b for b in self.rows if b["reached"] and (b["label"], b["period_start"]) not in self.dismissed
        ]

    def _show_warning(self) -> None:
        reached = self._reached()
        if not reached:
            self.warning.hide()
            return
        text = "; ".join(
            f"{b['label'][0].upper() + b['label'][1:]} reached: {fmt_money(b['spent'])} spent, "
            f"so it {ACTIONS.get(b['action'], b['action'])}"
            for b in reached
        )
        self.warning_text.show_message("error", text + ".")
        self.warning.show()

    def dismiss(self) -> None:
        """Quiet the reached budgets for the rest of their period; a new breach warns again."""
        self.dismissed |= {(b["label"], b["period_start"]) for b in self._reached()}
        self._show_warning()

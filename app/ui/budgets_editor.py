"""The budgets editor (the Presets page's Budgets tab): one row per spending limit, saved all at once.

Budgets apply to all presets, whichever is active; the Budgets page shows their progress and links here
to edit them. Each row is a period, a limit, an action (warn, switch preset, block), an optional provider
whose calls alone count, and the preset a "switch" budget moves to.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.config import Budget, Config
from app.core.config_edit import set_budgets
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.pages import MessageLine


@dataclass(frozen=True)
class BudgetRow:
    """The editor widgets of one budget row (typed, so reading the form needs no casts)."""

    period: QComboBox
    limit: QDoubleSpinBox
    action: QComboBox
    provider: QComboBox
    switch: QComboBox

    def budget(self) -> Budget:
        return Budget(
            self.period.currentText(),
            round(self.limit.value(), 2),
            self.action.currentText(),
            self.provider.currentData(),
            self.switch.currentData(),
        )


class BudgetsEditor(QWidget):
    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.rows: list[BudgetRow] = []
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Spending limits for all presets: warn, switch to another preset, or block calls once "
            "spend in the period reaches the limit. Naming a provider counts only its calls."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(
            ["Period", "Limit (USD)", "Action", "Provider", "Switch to preset"]
        )
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        add = QPushButton("Add budget")
        add.clicked.connect(lambda: self.add_budget(Budget("day", 5.0)))
        remove = QPushButton("Remove budget")
        remove.clicked.connect(self.remove_selected)
        self.save_button = QPushButton("Save budgets")
        self.save_button.clicked.connect(self.save)
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        row.addWidget(self.save_button)
        layout.addLayout(row)
        self.message = MessageLine()
        layout.addWidget(self.message)
        self.load(ctx.core.config)

    def load(self, config: Config) -> None:
        self.table.setRowCount(0)
        self.rows = []
        for budget in config.budgets:
            self.add_budget(budget)

    def add_budget(self, budget: Budget) -> None:
        config = self.ctx.core.config
        index = self.table.rowCount()
        self.table.insertRow(index)
        row = BudgetRow(QComboBox(), QDoubleSpinBox(), QComboBox(), QComboBox(), QComboBox())
        row.period.addItems(["day", "month"])
        row.period.setCurrentText(budget.period)
        row.limit.setRange(0.01, 1_000_000)
        row.limit.setDecimals(2)
        row.limit.setPrefix("$")
        row.limit.setValue(budget.limit_usd)
        row.action.addItems(["warn", "switch", "block"])
        row.action.setCurrentText(budget.action)
        row.provider.addItem("all providers", None)
        for name in config.providers:
            row.provider.addItem(name, name)
        row.provider.setCurrentIndex(max(row.provider.findData(budget.provider), 0))
        row.switch.addItem("—", None)
        for name in config.presets:
            row.switch.addItem(name, name)
        row.switch.setCurrentIndex(max(row.switch.findData(budget.switch_to), 0))
        for col, widget in enumerate((row.period, row.limit, row.action, row.provider, row.switch)):
            self.table.setCellWidget(index, col, widget)
        self.rows.append(row)

    def remove_selected(self) -> None:
        chosen = {i.row() for i in self.table.selectedIndexes()} or {self.table.currentRow()}
        for index in sorted(chosen, reverse=True):
            if 0 <= index < len(self.rows):
                self.table.removeRow(index)
                del self.rows[index]

    def form_budgets(self) -> list[Budget]:
        return [row.budget() for row in self.rows]

    def save(self) -> None:
        self.message.clear()
        budgets = self.form_budgets()
        for i, b in enumerate(budgets):
            if b.action == "switch" and not b.switch_to:
                self.message.error(f"Budget {i + 1}: choose the preset to switch to.")
                return
        self.ctx.update_config(
            lambda c: set_budgets(c, budgets),
            lambda _: self.message.ok(f"Saved {len(budgets)} budget{'s' if len(budgets) != 1 else ''}."),
            lambda exc: self.message.error(plain_error("Budgets not saved", exc)),
        )

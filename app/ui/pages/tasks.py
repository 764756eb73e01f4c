"""The Tasks page: units of agent work with their calls, cost, tool failures, duration and outcome.

The outcome is the user's verdict (finished / abandoned, or open): it is what turns spend into "cost per
finished task" on the dashboard, so it can be set from a combo or the row's context menu. Writes and
reads go through the background pool; the list refreshes on logged calls at most every two seconds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, QPoint, QSortFilterProxyModel, Qt
from PySide6.QtGui import QAction, QColor, QHideEvent, QPalette, QShowEvent, QStandardItem
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.core.queries import tasks
from app.core.queries.calls import CallFilter
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.models import (
    MUTED_COLOUR,
    RIGHT,
    CallsModel,
    Column,
    Row,
    RowsModel,
    fmt_duration,
    fmt_money,
    fmt_time,
)
from app.ui.pages import MessageLine, heading
from app.ui.pages.calls import CALL_COLUMN_WIDTHS, CallDetail
from app.ui.throttle import SingleFlight, Throttle

SINCE = (
    ("Last 24 hours", 86400.0),
    ("Last 7 days", 7 * 86400.0),
    ("Last 30 days", 30 * 86400.0),
    ("All time", None),
)
OUTCOMES = (("Open", None), ("Finished", "finished"), ("Abandoned", "abandoned"))


def _failures(row: Row) -> str:
    n, bad = row.get("tool_calls") or 0, row.get("tool_failures") or 0
    return f"{bad} / {n} ({bad / n:.0%})" if n else "–"


TASK_COLUMNS: tuple[Column, ...] = (
    Column(
        "label",
        "Task",
        lambda r: r.get("label") or f"#{r['id']}",
        tooltip=lambda r: f"#{r['id']}, grouped by {r.get('source') or '?'}",
        sort=lambda r: r["id"],
    ),
    Column("started_at", "Started", lambda r: fmt_time(r.get("started_at"))),
    Column("duration_s", "Duration", lambda r: fmt_duration(r.get("duration_s")), RIGHT),
    Column("calls", "Calls", lambda r: f"{r.get('calls') or 0:,}", RIGHT),
    Column(
        "cost_usd",
        "Cost",
        lambda r: fmt_money(r.get("cost_usd"), estimated=bool(r.get("estimated_calls"))),
        RIGHT,
        tooltip=lambda r: (
            ", ".join(
                x
                for x in (
                    f"{r['unpriced_calls']} calls without a known price (not in the cost)"
                    if r.get("unpriced_calls")
                    else "",
                    f"~ {r['estimated_calls']} calls priced on estimated tokens"
                    if r.get("estimated_calls")
                    else "",
                )
                if x
            )
            or None
        ),
        sort=lambda r: r.get("cost_usd") or 0.0,
    ),
    Column(
        "tool_failures",
        "Tool failures",
        _failures,
        RIGHT,
        sort=lambda r: (r.get("tool_failures") or 0) / (r.get("tool_calls") or 1),
    ),
    Column(
        "outcome", "Outcome", lambda r: r.get("outcome") or "open", sort=lambda r: r.get("outcome") or "open"
    ),
    Column(
        "models",
        "Models",
        lambda r: ", ".join(r.get("models") or []) if not isinstance(r.get("models"), str) else r["models"],
        sort=lambda r: str(r.get("models")),
    ),
)


class TasksModel(RowsModel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(TASK_COLUMNS, sortable=True, parent=parent)

    def row_colour(self, row: Row) -> QColor | None:
        return MUTED_COLOUR if row.get("outcome") == "abandoned" else None


class TasksPage(QWidget):
    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.flight = SingleFlight(ctx.background, self)
        self.write_flight = SingleFlight(ctx.background, self)
        self.dirty = True
        self.model = TasksModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(RowsModel.SortRole)

        self.since_box = QComboBox()
        self.since_box.setAccessibleName("Tasks since")
        for label, span in SINCE:
            self.since_box.addItem(label, span)
        self.since_box.setCurrentIndex(1)
        self.outcome_box = QComboBox()
        self.outcome_box.setAccessibleName("Outcome of the selected task")
        for label, value in OUTCOMES:
            self.outcome_box.addItem(label, value)
        self.outcome_box.setEnabled(False)
        self.summary = QLabel()
        self.summary.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        bar = QHBoxLayout()
        bar.addWidget(self.since_box)
        bar.addStretch(1)
        bar.addWidget(self.summary)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for col, width in enumerate((220, 110, 100, 60, 80, 110, 90)):
            self.table.setColumnWidth(col, width)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.doubleClicked.connect(self._double_clicked)

        self.calls = CallsModel(ctx.core.db, ctx.background, flt=CallFilter(task_id=-1), parent=self)
        self.calls_table = QTableView()
        self.calls_table.setModel(self.calls)
        self.calls_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.calls_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.calls_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.calls_table.setAlternatingRowColors(True)
        self.calls_table.setWordWrap(False)
        self.calls_table.verticalHeader().hide()
        self.calls_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.calls_table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.calls_table.horizontalHeader().setStretchLastSection(True)
        for col, width in enumerate(CALL_COLUMN_WIDTHS):
            self.calls_table.setColumnWidth(col, width)
        self.calls_title = QLabel("Select a task to see its calls.")
        self.detail = CallDetail(ctx)
        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(self.calls_table)
        lower.addWidget(self.detail)
        lower.setStretchFactor(0, 2)
        lower.setStretchFactor(1, 1)
        lower_box = QWidget()
        lower_layout = QVBoxLayout(lower_box)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        title_row = QHBoxLayout()
        title_row.addWidget(self.calls_title)
        title_row.addStretch(1)
        title_row.addWidget(QLabel("Outcome:"))
        title_row.addWidget(self.outcome_box)
        lower_layout.addLayout(title_row)
        lower_layout.addWidget(lower, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(lower_box)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)

        self.by_preset = QLabel()
        self.by_preset.setAccessibleName("Cost per finished task by preset")
        self.by_preset.setWordWrap(True)
        self.by_preset.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message = MessageLine()
        layout = QVBoxLayout(self)
        layout.addWidget(
            heading(
                "Tasks",
                "Units of agent work. Mark a task finished or abandoned so the dashboard "
                "can show what a finished task costs.",
            )
        )
        layout.addLayout(bar)
        layout.addWidget(self.by_preset)
        layout.addWidget(self.message)
        layout.addWidget(split, 1)

        self._refresh_soon = Throttle(self.refresh, 2000, self)
        self.since_box.currentIndexChanged.connect(self.refresh)
        self.outcome_box.activated.connect(self._outcome_chosen)
        self.table.selectionModel().currentRowChanged.connect(self._task_selected)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.calls_table.selectionModel().currentRowChanged.connect(self._call_selected)
        self.calls.failed.connect(self.message.error)
        ctx.bridge.callsLogged.connect(self._calls_logged)

    # ---- loading
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.dirty:
            self.refresh()

    def hideEvent(self, event: QHideEvent) -> None:
        self._refresh_soon.cancel()
        super().hideEvent(event)

    def _calls_logged(self, records: Sequence[Any]) -> None:
        self.dirty = True
        if self.isVisible():
            self._refresh_soon()
        task = self.selected_task()
        if task is not None:
            self.calls.add_logged([r.call_id for r in records if getattr(r, "task_id", None) == task["id"]])

    def refresh(self) -> None:
        span, engine = self.since_box.currentData(), self.ctx.core.db
        since = None if span is None else time.time() - span

        def query() -> tuple[float | None, list[Row], list[list[QStandardItem]], str]:
            rows = tasks.list_tasks(engine, since=since, limit=2000)
            presets = tasks.finished_cost_by_preset(engine, since=since or 0.0)
            compare = tasks.preset_comparison_text(presets, fmt_money)
            return span, rows, self.model.make_all(rows), compare  # cells built here, off the GUI thread

        if self.flight.run(query, self._loaded, self._failed, queue_latest=True):
            self.dirty = False

    def _loaded(self, result: tuple[float | None, list[Row], list[list[QStandardItem]], str]) -> None:
        span, rows, cells, compare = result
        self.by_preset.setText(
            compare or "Mark tasks finished to compare what a finished task costs per preset."
        )
        if span != self.since_box.currentData():
            return
        selected = self.selected_task()
        self.model.set_rows(rows, cells)
        if selected is not None:
            row = self.model.find(selected["id"])
            if row >= 0:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                self.table.selectionModel().setCurrentIndex(
                    index,
                    self.table.selectionModel().SelectionFlag.ClearAndSelect
                    | self.table.selectionModel().SelectionFlag.Rows,
                )
            else:
                self._show_task(None)
        else:
            self._sync_outcome(None)
        cost = sum(r.get("cost_usd") or 0.0 for r in rows)
        finished = [r for r in rows if r.get("outcome") == "finished"]
        guessed = any(r.get("estimated_calls") for r in rows)
        self.summary.setText(
            f"{len(rows):,} tasks · {fmt_money(cost, estimated=guessed)} · {len(finished):,} finished"
        )

    def _failed(self, exc: Exception) -> None:
        self.dirty = True
        self.message.error(plain_error("Could not read tasks", exc))

    # ---- selection
    def selected_task(self) -> Row | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.model.row(self.proxy.mapToSource(index).row())

    def _task_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        task = self.model.row(self.proxy.mapToSource(current).row()) if current.isValid() else None
        self._show_task(task)

    def _show_task(self, task: Row | None) -> None:
        self._sync_outcome(task)
        if task is None:
            self.calls_title.setText("Select a task to see its calls.")
            self.calls.set_filter(CallFilter(task_id=-1))
            self.detail.show_placeholder()
            return
        self.calls_title.setText(f"Calls of {task.get('label') or '#' + str(task['id'])}")
        if self.calls.filter.task_id != task["id"]:
            self.calls.set_filter(CallFilter(task_id=task["id"]))
            self.detail.show_placeholder()

    def _sync_outcome(self, task: Row | None) -> None:
        self.outcome_box.setEnabled(task is not None)
        if task is not None:
            self.outcome_box.setCurrentIndex(max(0, self.outcome_box.findData(task.get("outcome"))))

    def _call_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.detail.load(self.calls.row(current.row())["id"])

    # ---- outcome
    def _outcome_chosen(self, index: int) -> None:
        task = self.selected_task()
        if task is not None:
            self.set_outcome(task["id"], self.outcome_box.itemData(index))

    def _context_menu(self, pos: QPoint) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        task = self.model.row(self.proxy.mapToSource(index).row())
        menu = QMenu(self)
        rename = QAction("Rename…", menu)
        rename.triggered.connect(lambda _=False, t=task: self._ask_rename(t))
        menu.addAction(rename)
        menu.addSeparator()
        for label, value in OUTCOMES:
            action = QAction("Reopen" if value is None else f"Mark {label.lower()}", menu)
            action.setCheckable(True)
            action.setChecked(task.get("outcome") == value)
            action.triggered.connect(lambda _=False, v=value, t=task["id"]: self.set_outcome(t, v))
            menu.addAction(action)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def _double_clicked(self, index: QModelIndex) -> None:
        if index.column() == 0:  # the name column: rename, as in a file manager
            self._ask_rename(self.model.row(self.proxy.mapToSource(index).row()))

    def _ask_rename(self, task: Row) -> None:
        from app.ui import dialogs

        label = dialogs.ask_text(self, "Rename task", "Task name:", task.get("label") or "")
        if label is not None:
            self.rename(task["id"], label)

    def rename(self, task_id: int, label: str) -> None:
        """Save a task's new name in the background; the list refreshes when it is stored."""
        engine = self.ctx.core.db
        self.write_flight.run(
            lambda: tasks.rename_task(engine, task_id, label),
            self._outcome_saved,
            lambda exc: self.message.error(plain_error("Could not rename the task", exc)),
            queue_latest=True,
        )

    def set_outcome(self, task_id: int, outcome: str | None) -> None:
        engine = self.ctx.core.db
        self.write_flight.run(
            lambda: tasks.set_outcome(engine, task_id, outcome),
            self._outcome_saved,
            self._outcome_failed,
            queue_latest=True,
        )

    def _outcome_saved(self, _result: object) -> None:
        self.refresh()

    def _outcome_failed(self, exc: Exception) -> None:
        self.message.error(plain_error("Could not save the outcome", exc))
        self.refresh()

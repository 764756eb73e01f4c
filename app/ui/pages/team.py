"""Team: a team ledger on PostgreSQL, read-only: the headline figures for one member or all, and a table of
every member (spend, failure rate, cost per finished task, savings).

The ledger is the database the app was started on (`downshift --db postgresql://...`), else `[team] ledger`
opened read-only (the server refuses writes on those connections). Queries run as one background job at most
every few seconds while the page is shown; the GUI thread never waits on the network.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy import Engine

from app.core.queries import dashboard
from app.core.storage.dialect import display_url
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.models import fmt_money, fmt_rate
from app.ui.pages import MessageLine, heading
from app.ui.pages.dashboard import RANGES, Tile
from app.ui.throttle import SingleFlight

REFRESH_MS = 5000
ALL = "All members"
COLUMNS = ("Member", "Calls", "Failed", "Spend", "Saved", "Tool-call failures", "Per finished task")


def team_snapshot(engine: Engine, span_s: float, member: str | None, now: float) -> dict[str, Any]:
    """Every figure the page shows, in one background job."""
    since = now - span_s
    return {
        "tiles": dashboard.tiles(engine, since=since, now=now, member=member),
        "members": dashboard.members(engine, since=since, until=now + 1e-6),
        "member": member,
    }


class TeamPage(QWidget):
    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._engine: Engine | None = None
        self.flight = SingleFlight(
            ctx.background, self
        )  # one query at a time; a change while it runs is queued
        self.source = self._source()
        layout = QVBoxLayout(self)
        layout.addWidget(
            heading(
                "Team",
                "Spend, tool-call failures and cost per finished task of every member of a "
                "team ledger (PostgreSQL, read-only).",
            )
        )
        self.where = QLabel(f"Ledger: {display_url(self.source)}" if self.source else "")
        self.where.setWordWrap(True)
        layout.addWidget(self.where)
        controls = QHBoxLayout()
        self.range = QComboBox()
        self.range.setAccessibleName("Time range")
        for r in RANGES:
            self.range.addItem(r.label)
        self.range.setCurrentIndex(1)
        self.member = QComboBox()
        self.member.setAccessibleName("Member")
        self.member.addItem(ALL)
        controls.addWidget(self.range)
        controls.addWidget(self.member)
        controls.addStretch(1)
        layout.addLayout(controls)
        tiles = QGridLayout()
        self.tiles = {
            key: Tile(title)
            for key, title in (
                ("spend", "Spend"),
                ("calls", "Calls"),
                ("failures", "Tool-call failure rate"),
                ("per_task", "Cost per finished task"),
                ("savings", "Savings"),
            )
        }
        for i, tile in enumerate(self.tiles.values()):
            tiles.addWidget(tile, 0, i)
        layout.addLayout(tiles)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setAccessibleName("Members")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        self.message = MessageLine()
        layout.addWidget(self.message)
        if not self.source:
            self.message.info(
                "No team ledger. Start the app on one (`downshift --db postgresql://user@host/db`) or set "
                "`[team] ledger` in the config; its password comes from the keyring (`downshift team "
                "password`) or PGPASSWORD."
            )
        self.range.currentIndexChanged.connect(lambda _i: self.refresh())
        self.member.currentIndexChanged.connect(lambda _i: self.refresh())
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)

    def _source(self) -> str:
        core = self.ctx.core
        if core.db.dialect.name == "postgresql":
            return core.db_url
        return core.config.team.ledger

    def engine(self) -> Engine:
        """The ledger (worker thread only: opening it may touch the keyring and the network)."""
        if self._engine is None:
            core = self.ctx.core
            if core.db.dialect.name == "postgresql":
                self._engine = core.db
            else:
                from app.core.storage.db import open_read_only
                from app.core.team_ship import ledger_url

                self._engine = open_read_only(ledger_url(self.source, core.secrets))
        return self._engine

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.source:
            self.refresh()
            self.timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        self.timer.stop()
        super().hideEvent(event)

    def selected_member(self) -> str | None:
        text = self.member.currentText()
        return None if text == ALL else ("" if text == "(none)" else text)

    def refresh(self) -> None:
        if not self.source:
            return
        span, member = RANGES[self.range.currentIndex()].span_s, self.selected_member()
        self.flight.run(
            lambda: team_snapshot(self.engine(), span, member, time.time()),
            self.apply,
            self._failed,
            queue_latest=True,
        )

    def _failed(self, exc: Exception) -> None:
        self.message.error(plain_error("The team ledger cannot be read", exc))

    def apply(self, data: dict[str, Any]) -> None:
        self.message.clear()
        t = data["tiles"]
        self.tiles["spend"].set(
            fmt_money(t["spend_range"]), f"{t['unpriced_calls']} unpriced" if t["unpriced_calls"] else ""
        )
        self.tiles["calls"].set(f"{t['calls']:,}")
        self.tiles["failures"].set(fmt_rate(t["tool_failure_rate"]))
        self.tiles["per_task"].set(fmt_money(t["cost_per_finished_task"]))
        self.tiles["savings"].set(fmt_money(t["savings_range"]))
        rows = data["members"]
        names = [m["member"] or "(none)" for m in rows]
        current = self.member.currentText()
        if sorted(names) != sorted(self.member.itemText(i) for i in range(1, self.member.count())):
            self.member.blockSignals(True)
            self.member.clear()
            self.member.addItems([ALL, *sorted(names)])
            self.member.setCurrentText(current if current in names else ALL)
            self.member.blockSignals(False)
        self.table.setRowCount(len(rows))
        for i, m in enumerate(rows):
            cells = (
                m["member"] or "(none)",
                f"{m['calls']:,}",
                f"{m['errors']:,}",
                fmt_money(m["cost_usd"]),
                fmt_money(m["savings_usd"]),
                fmt_rate(m["tool_failure_rate"]),
                fmt_money(m["cost_per_finished_task"]),
            )
            for j, value in enumerate(cells):
                item = QTableWidgetItem(value)
                if j:  # figures line up on the right
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)

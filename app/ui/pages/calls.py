"""The Calls page: every proxied call, newest first, with filters and a detail pane.

The table is a `CallsModel`: keyset pages fetched in the background as the view scrolls, so a log of a
million calls opens in milliseconds; calls the writer reports are merged in live, and the view keeps the
row under the user's eyes still when new ones land above it. The detail pane renders `call_detail`.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QIntValidator, QKeySequence, QPalette, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.core.queries.calls import CallFilter, call_detail, call_facets, count_calls
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.models import CALL_COLUMNS, ERROR_COLOUR, CallsModel, fmt_money, fmt_ms, fmt_tokens, input_tokens
from app.ui.pages import EmptyState, MessageLine, heading
from app.ui.throttle import SingleFlight, Throttle

TIME_FILTERS = (
    ("All time", None),
    ("Last hour", 3600.0),
    ("Last 24 hours", 86400.0),
    ("Last 7 days", 7 * 86400.0),
    ("Last 30 days", 30 * 86400.0),
)
OUTCOMES = ("ok", "error", "cancelled", "interrupted", "in_flight")
CHECK_LABELS = {
    "ok": "valid",
    "unchecked": "not checked (the tool's schema could not be used)",
    "invalid_json": "arguments are not valid JSON",
    "unknown_tool": "the tool was not declared",
    "schema": "arguments violate the tool's schema",
    "text_form": "written as text instead of a tool call",
}
FAILED_COLOUR = ERROR_COLOUR.name()  # "#dc463c"
RECOUNT_MS = 3000
CALL_COLUMN_WIDTHS = (70, 150, 215, 150, 50, 50, 75, 65, 85, 45)  # by the model's column order
# what the columns show first, left to right, so a narrow table beside the detail pane still shows what
# a call cost, took and did: the model's column keys in display order (the model's order is unchanged)
CALL_COLUMN_ORDER = (
    "started_at",
    "outcome",
    "cost_usd",
    "duration_ms",
    "tools",
    "served_by",
    "requested_model",
    "input",
    "output_tokens",
    "task_id",
)


# ------------------------------------------------------------------------------------------ detail html


def _esc(value: Any) -> str:
    return html.escape("–" if value is None or value == "" else str(value))


def _table(rows: Sequence[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><td style='padding-right:12px'>{_esc(k)}</td><td>{v}</td></tr>" for k, v in rows)
    return f"<table cellspacing='0' cellpadding='1'>{cells}</table>"


def _bad(text: str) -> str:
    return f"<span style='color:{FAILED_COLOUR}'><b>{text}</b></span>"


def _cost_table(d: dict[str, Any], guessed: bool, partial: list[dict[str, Any]]) -> str:
    """The call's cost, its source, and what it leaves out or guesses (attempts billed before a fallback)."""
    cost_rows = [
        ("cost", _esc(fmt_money(d.get("cost_usd"), unpriced=bool(d.get("unpriced")), estimated=guessed))),
        (
            "source",
            _esc(
                {
                    "provider": "billed by the provider",
                    "table": "price table",
                    "override": "price override in config",
                    "local": "local (hourly cost)",
                    "listed": "the provider's listed price",
                    "unpriced": "no known price",
                    "estimated": "estimated tokens x price (no usage reported)",
                }.get(d.get("cost_source") or "", d.get("cost_source"))
            ),
        ),
    ]
    if d.get("unpriced") and d.get("cost_usd") is not None:
        cost_rows.append(
            ("left out", _bad("no known price") + " for an attempt that was billed (fallback chain)")
        )
    if partial:
        billed = sum(a.get("cost_usd") or 0.0 for a in partial)
        cost_rows.append(
            (
                "of which failed attempts",
                _esc(
                    fmt_money(
                        billed,
                        unpriced=any(a["cost_source"] == "unpriced" for a in partial),
                        estimated=any(a["cost_source"] == "estimated" for a in partial),
                    )
                )
                + " (began answering, then failed: see the fallback chain)",
            )
        )
    if d.get("billed_cost_usd") is not None:
        cost_rows.append(("billed", _esc(fmt_money(d["billed_cost_usd"]))))
    if d.get("estimated_cost_usd") is not None:
        cost_rows.append(("estimated from prices", _esc(fmt_money(d["estimated_cost_usd"]))))
    if d.get("premium_cost_usd") is not None:
        cost_rows.append(("on the premium model", _esc(fmt_money(d["premium_cost_usd"]))))
    return _table(cost_rows)


def detail_html(d: dict[str, Any]) -> str:
    """The detail pane for one `call_detail` result, as rich text (escaped: it shows what models wrote)."""
    target = f"{d['provider']}/{d['upstream_model']}" if d.get("provider") else "no upstream"
    outcome = _esc(d["outcome"]) + (f" (HTTP {d['status']})" if d.get("status") else "")
    parts = [
        f"<h3>{_esc(d.get('requested_model'))} → {_esc(target)}</h3>",
        f"<p>{_bad(outcome) if d['outcome'] not in ('ok', 'in_flight') else outcome} · "
        f"{_esc(time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(d['started_at'])))} · "
        f"{_esc(d['client_api'])} {_esc(d['endpoint'])}</p>",
    ]
    if d.get("error_kind") or d.get("error_message"):
        parts.append(
            "<h4>Error</h4>" + f"<p>{_bad(_esc(d.get('error_kind')))}</p>"
            f"<pre style='white-space:pre-wrap'>{_esc(d.get('error_message'))}</pre>"
        )
    parts.append(
        "<h4>Timing</h4>"
        + _table(
            [
                ("first byte", _esc(fmt_ms(d.get("ttfb_ms")))),
                ("duration", _esc(fmt_ms(d.get("duration_ms")))),
                ("streamed", "yes" if d.get("streamed") else "no"),
                ("attempts", _esc(d.get("attempts"))),
            ]
        )
    )
    guessed = bool(d.get("usage_estimated"))
    # an attempt that failed after it began answering is billed too: its estimate is in the cost, not the tokens
    partial = [a for a in d.get("fallback") or [] if a.get("cost_source")]
    tokens_note = guessed and not any(a["cost_source"] == "estimated" for a in partial)
    parts.append(
        "<h4>Tokens</h4>"
        + (
            "<p>" + _bad("~ estimated") + ": the provider reported no usage (or only part"
            " of it); input from the request size, output from the text that went by</p>"
            if tokens_note
            else ""
        )
        + _table(
            [
                ("input (fresh)", _esc(d["input_tokens"])),
                ("cache read", _esc(d["cache_read_tokens"])),
                ("cache write", _esc(d["cache_write_tokens"] + d["cache_write_1h_tokens"])),
                ("output", _esc(d["output_tokens"])),
                ("of which reasoning", _esc(d["reasoning_tokens"])),
                ("total", _esc(fmt_tokens(input_tokens(d) + d["output_tokens"]))),
            ]
        )
    )
    parts.append("<h4>Cost</h4>" + _cost_table(d, guessed, partial))
    tools = d.get("tool_call_rows") or []
    if tools:
        head = "<tr><th align='left'>tool</th><th align='left'>check</th><th align='left'>result</th></tr>"
        body = []
        for t in tools:
            check = CHECK_LABELS.get(t["kind"], t["kind"])
            check = _esc(check) if t["kind"] in ("ok", "unchecked") else _bad(_esc(check))
            if t.get("detail"):
                check += f"<br><small>{_esc(t['detail'])}</small>"
            result = (
                _bad("failed") + f"<br><small>{_esc(t.get('result_reason'))}</small>"
                if t.get("result_failed")
                else "–"
            )
            body.append(
                f"<tr><td valign='top'>{_esc(t['name'])}<br><small>{_esc(t['tool_call_id'])}</small></td>"
                f"<td valign='top'>{check}</td><td valign='top'>{result}</td></tr>"
            )
        failed = sum(1 for t in tools if t["kind"] not in ("ok", "unchecked") or t.get("result_failed"))
        parts.append(
            f"<h4>Tool calls ({len(tools)}, {failed} failed)</h4>"
            f"<table cellspacing='0' cellpadding='3' width='100%'>{head}{''.join(body)}</table>"
        )
    elif d.get("tool_calls"):
        parts.append(f"<h4>Tool calls</h4><p>{d['tool_calls']} (no details kept)</p>")
    if len(d.get("fallback") or []) > 1 or any(a.get("error_kind") for a in d.get("fallback") or []):
        items = []
        for a in d["fallback"]:
            how = f"HTTP {a['status']}" if a.get("status") else _esc(a.get("error_kind"))
            extra = f" – {_esc(a['error_message'])}" if a.get("error_message") else ""
            if a.get("cost_source"):  # began answering before it failed: billed, and in the call's cost
                billed = fmt_money(
                    a.get("cost_usd"),
                    unpriced=a["cost_source"] == "unpriced",
                    estimated=a["cost_source"] == "estimated",
                )
                extra += f" – {_esc(billed)} for {_esc(a.get('output_tokens'))} tokens it produced"
            items.append(
                f"<li>{_esc(a.get('target'))}: {how}{extra} ({_esc(fmt_ms(a.get('duration_ms')))})</li>"
            )
        parts.append("<h4>Fallback chain</h4><ol>" + "".join(items) + "</ol>")
    task = d.get("task")
    parts.append(
        "<h4>Routing</h4>"
        + _table(
            [
                ("preset", _esc(d.get("preset"))),
                ("role", _esc(d.get("role"))),
                (
                    "task",
                    _esc(
                        None
                        if not task
                        else f"#{task['id']} {task.get('label') or ''} ({task.get('outcome') or 'open'})"
                    ),
                ),
                ("session", _esc(d.get("session_key"))),
                ("client", _esc(d.get("user_agent"))),
                ("bytes in / out", _esc(f"{d.get('bytes_in', 0):,} / {d.get('bytes_out', 0):,}")),
                ("call id", _esc(d["call_id"])),
            ]
        )
    )
    for key, title in (("request_body", "Request body"), ("response_body", "Response body")):
        if d.get(key) is not None:
            parts.append(f"<h4>{title}</h4><pre style='white-space:pre-wrap'>{_esc(d[key])}</pre>")
    return "".join(parts)


class CallDetail(QTextBrowser):
    """The detail pane: loads one call in the background; a newer selection wins over an older one."""

    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.flight = SingleFlight(ctx.background, self)
        self.call_id: int | None = None
        self.data: dict[str, Any] | None = None
        self.setOpenLinks(False)
        self.show_placeholder()

    def show_placeholder(self) -> None:
        self.call_id, self.data = None, None
        self.setHtml("<p>Select a call to see its timings, tokens, cost, tool calls and fallback chain.</p>")

    def load(self, call_id: int) -> None:
        self.call_id = call_id
        engine = self.ctx.core.db
        self.flight.run(lambda: call_detail(engine, call_id), self._loaded, self._failed, queue_latest=True)

    def _loaded(self, data: dict[str, Any]) -> None:
        if data["id"] != self.call_id:
            return
        self.data = data
        bar = self.verticalScrollBar().value()
        self.setHtml(detail_html(data))
        self.verticalScrollBar().setValue(bar)

    def _failed(self, exc: Exception) -> None:
        self.data = None
        self.setHtml(
            f"<p style='color:{FAILED_COLOUR}'>{_esc(plain_error('Could not read this call', exc))}</p>"
        )


class LiveTableView(QTableView):
    """A table that keeps the top visible row in place when rows are inserted above it, so reading an
    older call (or the selected one, or the one under the pointer) is not interrupted by new calls
    arriving at the top."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._anchor: QPersistentModelIndex | None = None

    def _about_to_insert(self, parent: QModelIndex, first: int, _last: int) -> None:
        """Rows landing above the top: hold the view still when the user is scrolled down, has a row
        selected (the detail pane shows it) or has the pointer over the table."""
        reading = self.selectionModel() is not None and self.selectionModel().hasSelection()
        if (
            not parent.isValid()
            and first == 0
            and (self.verticalScrollBar().value() > 0 or reading or self.underMouse())
        ):
            top = self.indexAt(self.viewport().rect().topLeft())
            self._anchor = QPersistentModelIndex(top) if top.isValid() else None

    def rowsInserted(self, parent: QModelIndex | QPersistentModelIndex, start: int, end: int) -> None:
        super().rowsInserted(parent, start, end)
        if self._anchor is not None and self._anchor.isValid():
            anchor, self._anchor = self._anchor, None
            self.updateGeometries()
            self.scrollTo(self.model().index(anchor.row(), 0), QAbstractItemView.ScrollHint.PositionAtTop)

    def setModel(self, model: Any) -> None:
        super().setModel(model)
        model.rowsAboutToBeInserted.connect(self._about_to_insert)


class CallsPage(QWidget):
    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.model = CallsModel(ctx.core.db, ctx.background, parent=self)
        self.count_flight = SingleFlight(ctx.background, self)
        self.facet_flight = SingleFlight(ctx.background, self)
        self.total: int | None = None

        self.time_box = QComboBox()
        for label, span in TIME_FILTERS:
            self.time_box.addItem(label, span)
        self.model_box = QComboBox()
        self.model_box.setAccessibleName("Model")
        self.model_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.model_box.addItem("Any model", None)
        self.provider_box = QComboBox()
        self.provider_box.setAccessibleName("Provider")
        self.provider_box.addItem("Any provider", None)
        self.outcome_box = QComboBox()
        self.outcome_box.setAccessibleName("Outcome")
        self.outcome_box.addItem("Any outcome", None)
        for outcome in OUTCOMES:
            self.outcome_box.addItem(outcome, outcome)
        self.task_edit = QLineEdit()
        self.task_edit.setPlaceholderText("task #")
        self.task_edit.setValidator(QIntValidator(1, 2_000_000_000, self))
        self.task_edit.setMaximumWidth(80)
        self.task_edit.setClearButtonEnabled(True)
        self.failures_box = QCheckBox("Failures only")
        self.failures_box.setToolTip("Calls that did not end ok, or with at least one failed tool call")
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Requested model contains…")
        self.search_edit.setClearButtonEnabled(True)
        self.count_label = QLabel()
        self.count_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)

        filters = QHBoxLayout()
        for w in (
            self.time_box,
            self.model_box,
            self.provider_box,
            self.outcome_box,
            self.task_edit,
            self.failures_box,
        ):
            filters.addWidget(w)
        filters.addWidget(self.search_edit, 1)
        filters.addWidget(self.count_label)

        self.table = LiveTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for col, width in enumerate(CALL_COLUMN_WIDTHS):
            self.table.setColumnWidth(col, width)
        keys = [c.key for c in CALL_COLUMNS]
        for visual, key in enumerate(CALL_COLUMN_ORDER):
            header.moveSection(header.visualIndex(keys.index(key)), visual)
        self.detail = CallDetail(ctx)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        split.addWidget(self.detail)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        find = QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self)
        find.activated.connect(self.focus_filter)

        self.message = MessageLine()
        layout = QVBoxLayout(self)
        layout.addWidget(
            heading("Calls", "Every call the proxy served, newest first. Select one for its details.")
        )
        layout.addLayout(filters)
        layout.addWidget(self.message)
        self.empty = EmptyState(
            "No calls yet: connect an agent to Downshift, and its calls show here as they happen.",
            "Connect an agent…",
        )
        self.empty.button.clicked.connect(lambda: ctx.bridge.navigate.emit("export"))
        layout.addWidget(self.empty)
        layout.addWidget(split, 1)

        self._apply_soon = Throttle(self.apply_filter, 300, self)
        self._recount_soon = Throttle(self.recount, RECOUNT_MS, self)
        for box in (self.time_box, self.model_box, self.provider_box, self.outcome_box):
            box.currentIndexChanged.connect(self.apply_filter)
        self.failures_box.toggled.connect(self.apply_filter)
        self.task_edit.textChanged.connect(lambda _t: self._apply_soon())
        self.search_edit.textChanged.connect(lambda _t: self._apply_soon())
        self.table.selectionModel().currentRowChanged.connect(self._row_selected)
        self.model.dataChanged.connect(self._row_updated)
        self.model.failed.connect(self.message.error)
        ctx.bridge.callsLogged.connect(self._calls_logged)
        self.apply_filter()

    # ---- filters
    def current_filter(self) -> CallFilter:
        span = self.time_box.currentData()
        task = self.task_edit.text().strip()
        return CallFilter(
            since=None if span is None else time.time() - span,
            model=self.model_box.currentData(),
            provider=self.provider_box.currentData(),
            outcome=self.outcome_box.currentData(),
            task_id=int(task) if task.isdigit() else None,
            failures_only=self.failures_box.isChecked(),
            search=self.search_edit.text().strip() or None,
        )

    def apply_filter(self) -> None:
        self.message.clear()
        self.detail.show_placeholder()
        self.model.set_filter(self.current_filter())
        self.recount()

    def apply_query(self, query: str) -> None:
        """Filters from a link elsewhere (the dashboard's health row): "outcome=error", "failures=1"."""
        from urllib.parse import parse_qs

        params = {k: v[-1] for k, v in parse_qs(query).items()}
        for box in (self.model_box, self.provider_box):
            box.setCurrentIndex(0)
        self.task_edit.clear()
        self.search_edit.clear()
        self.outcome_box.setCurrentIndex(max(0, self.outcome_box.findData(params.get("outcome"))))
        self.failures_box.setChecked(params.get("failures") == "1")
        self.apply_filter()

    def focus_filter(self) -> None:
        """Ctrl+F: straight to the text filter."""
        self.search_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_edit.selectAll()

    def show_task(self, task_id: int) -> None:
        """Narrow the table to one task's calls (the Tasks page links here)."""
        self.task_edit.setText(str(task_id))
        self.apply_filter()

    def recount(self) -> None:
        flt, engine = self.model.filter, self.ctx.core.db

        def count() -> tuple[CallFilter, int, float]:
            t0 = time.perf_counter()
            return flt, count_calls(engine, flt), time.perf_counter() - t0

        self.count_flight.run(count, self._counted, self._count_failed, queue_latest=True)

    def _counted(self, result: tuple[CallFilter, int, float]) -> None:
        flt, n, took = result
        # while calls stream in, recount at most every 3 s, or less often when counting scans the
        # table (failures only, text search: over a second at a million calls)
        self._recount_soon.set_delay(max(RECOUNT_MS, int(took * 1000 * 20)))
        if flt == self.model.filter:
            self.total = n
            self.count_label.setText(f"{n:,} call{'s' if n != 1 else ''}")
            self.empty.setVisible(
                n == 0 and flt == CallFilter()
            )  # nothing logged at all, not just filtered out

    def _count_failed(self, exc: Exception) -> None:
        self.count_label.setText("")
        self.message.error(plain_error("Could not count calls", exc))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.load_facets()

    def load_facets(self) -> None:
        engine = self.ctx.core.db
        self.facet_flight.run(lambda: call_facets(engine), self._facets_loaded, self._count_failed)

    def _facets_loaded(self, facets: dict[str, list[str]]) -> None:
        for box, values in ((self.model_box, facets["models"]), (self.provider_box, facets["providers"])):
            present = {box.itemData(i) for i in range(1, box.count())}
            for value in values:
                if value not in present:
                    box.addItem(value, value)

    # ---- live
    def _calls_logged(self, records: Sequence[Any]) -> None:
        self.model.add_logged([r.call_id for r in records])
        self._recount_soon()
        known = {self.model_box.itemData(i) for i in range(self.model_box.count())}
        if any(r.upstream_model and r.upstream_model not in known for r in records):
            self.load_facets()

    # ---- detail
    def _row_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.detail.load(self.model.row(current.row())["id"])
        else:
            self.detail.show_placeholder()

    def _row_updated(self, top_left: QModelIndex, bottom_right: QModelIndex, _roles: object = None) -> None:
        current = self.table.currentIndex()
        if current.isValid() and top_left.row() <= current.row() <= bottom_right.row():
            self.detail.load(self.model.row(current.row())["id"])

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)
        self.table.setCurrentIndex(self.model.index(row, 0))

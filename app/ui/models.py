"""Qt item models over the query layer's plain rows: a generic table of dicts and the paged calls log.

The models never query on the GUI thread, and a view never calls into Python to paint them (see
`RowsModel`). `CallsModel` fetches keyset pages through `Background` when the view scrolls near the
end (Qt's canFetchMore/fetchMore), so a log of a million calls opens as fast as one of ten, and
freshly logged calls are inserted where they belong without resetting the view.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel
from sqlalchemy import Engine

from app.core.queries.calls import CallFilter, calls_by_call_id, calls_page
from app.ui.background import Background
from app.ui.errors import plain_error

Row = dict[str, Any]
LIVE_INTERVAL_MS = 200
Index = QModelIndex | QPersistentModelIndex
ERROR_COLOUR = QColor(220, 70, 60)  # readable on light and dark backgrounds alike
MUTED_COLOUR = QColor(128, 128, 128)
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter


# ------------------------------------------------------------------------------------------ formatting


def fmt_money(value: float | None, *, unpriced: bool = False, estimated: bool = False) -> str:
    """Dollars with enough digits to tell cheap calls apart ($0.00042), and no false zero for unpriced.
    `estimated`: the figure rests on tokens the provider did not report, shown as "~$0.00042".
    `unpriced` with a figure: part of the cost has no known price (a billed attempt before the fallback
    that served the call), shown as "$0.020 + unpriced", never as a complete total."""
    if value is None:
        return "unpriced" if unpriced else "–"
    return _dollars(value, "~" if estimated else "") + (" + unpriced" if unpriced else "")


def _dollars(value: float, guess: str) -> str:
    if value == 0:
        return f"{guess}$0"
    if abs(value) >= 100:
        return f"{guess}${value:,.0f}"
    if abs(value) >= 1:
        return f"{guess}${value:,.2f}"
    if abs(value) >= 0.01:
        return f"{guess}${value:.3f}"
    return f"{guess}${value:.5f}"


def estimated_note(count: int) -> str:
    """How a figure says that some of its calls were priced on estimated tokens; "" when none were."""
    return f"~ {count:,} estimated (no usage reported)" if count else ""


def fmt_tokens(n: int | None) -> str:
    if n is None:
        return "–"
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "–"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


def fmt_time(ts: float | None, *, now: float | None = None) -> str:
    """Local time; the date only when it is not today, so the common case stays short."""
    if ts is None:
        return "–"
    now = time.time() if now is None else now
    local, today = time.localtime(ts), time.localtime(now)
    if local[:3] == today[:3]:
        return time.strftime("%H:%M:%S", local)
    if local.tm_year == today.tm_year:
        return time.strftime("%b %d %H:%M", local)
    return time.strftime("%Y-%m-%d %H:%M", local)


def fmt_rate(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.1%}"


def input_tokens(row: Row) -> int:
    """Everything the model read: fresh input plus cache reads and writes (OpenAI's prompt_tokens)."""
    return sum(
        int(row.get(k) or 0)
        for k in ("input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens")
    )


def is_failed_call(row: Row) -> bool:
    return row.get("outcome") not in ("ok", "in_flight") or bool(row.get("tool_failures"))


# ---------------------------------------------------------------------------------------------- columns


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    text: Callable[[Row], str]
    align: Qt.AlignmentFlag = LEFT
    tooltip: Callable[[Row], str | None] | None = None
    sort: Callable[[Row], Any] | None = None  # the value QSortFilterProxyModel compares


FALLBACK_MARK = "↪ "  # before "Served by" when a fallback target answered


def _served_by(row: Row) -> str:
    if not row.get("provider"):
        return "–"
    mark = FALLBACK_MARK if (row.get("attempts") or 1) > 1 else ""
    return f"{mark}{row['provider']}/{row.get('upstream_model') or '?'}"


def _served_by_tip(row: Row) -> str:
    attempts = row.get("attempts") or 1
    how = f"served by a fallback after {attempts - 1} failed attempt(s)" if attempts > 1 else "1 attempt"
    return f"role: {row.get('role') or '–'}, {how}"


def _outcome(row: Row) -> str:
    """The outcome, and for a red row why it is red: the error kind, or the failed tool calls."""
    status, outcome = row.get("status"), str(row.get("outcome"))
    text = f"{outcome} {status}" if status and status != 200 else outcome
    if outcome not in ("ok", "in_flight") and row.get("error_kind"):
        return f"{text}: {row['error_kind']}"
    bad = row.get("tool_failures") or 0
    if bad:
        return f"{text}, {bad} tool call{'s' if bad != 1 else ''} failed"
    return text


def _outcome_tip(row: Row) -> str | None:
    if row.get("outcome") not in ("ok", "in_flight"):
        return f"The call failed ({row.get('error_kind') or 'no reason recorded'}); select it for the error message."
    if row.get("tool_failures"):
        return (
            "The call went through, but the model's tool call was broken (bad JSON, an unknown tool, arguments "
            "against the schema) or its result reported a failure; select it for which and why."
        )
    return None


def _tools(row: Row) -> str:
    n, bad = row.get("tool_calls") or 0, row.get("tool_failures") or 0
    if not n:
        return ""
    return f"{n} ({bad} failed)" if bad else str(n)


def _cost_cell(row: dict[str, Any]) -> str:
    """A call's cost in the narrow table: "$0.020+" when part of it has no known price (the tooltip and the
    detail pane say which part), the figure alone never passing for the whole."""
    cost, unpriced, guessed = row.get("cost_usd"), bool(row.get("unpriced")), bool(row.get("usage_estimated"))
    if cost is not None and unpriced:
        return fmt_money(cost, estimated=guessed) + "+"
    return fmt_money(cost, unpriced=unpriced, estimated=guessed)


def _guess(row: dict[str, Any]) -> str:
    return "~" if row.get("usage_estimated") else ""


CALL_COLUMNS: tuple[Column, ...] = (
    Column(
        "started_at",
        "Time",
        lambda r: fmt_time(r["started_at"]),
        tooltip=lambda r: time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(r["started_at"])),
    ),
    Column("requested_model", "Requested", lambda r: r.get("requested_model") or "–"),
    Column("served_by", "Served by", _served_by, tooltip=_served_by_tip),
    Column("outcome", "Outcome", _outcome, tooltip=_outcome_tip),
    Column(
        "input",
        "In",
        lambda r: _guess(r) + fmt_tokens(input_tokens(r)),
        RIGHT,
        tooltip=lambda r: (
            f"{r.get('input_tokens', 0)} fresh, {r.get('cache_read_tokens', 0)} cached"
            + (" (estimated: the provider reported no usage)" if r.get("usage_estimated") else "")
        ),
    ),
    Column("output_tokens", "Out", lambda r: _guess(r) + fmt_tokens(r.get("output_tokens")), RIGHT),
    Column(
        "cost_usd",
        "Cost",
        lambda r: _cost_cell(r),
        RIGHT,
        tooltip=lambda r: (
            f"source: {r.get('cost_source') or '–'}"
            + (" (tokens estimated: the provider reported no usage)" if r.get("usage_estimated") else "")
            + (
                "; part of the cost has no known price (an attempt before the fallback)"
                if r.get("unpriced") and r.get("cost_usd") is not None
                else ""
            )
        ),
    ),
    Column(
        "duration_ms",
        "Duration",
        lambda r: fmt_ms(r.get("duration_ms")),
        RIGHT,
        tooltip=lambda r: f"first byte after {fmt_ms(r.get('ttfb_ms'))}",
    ),
    Column("tools", "Tool calls", _tools, RIGHT),
    Column("task_id", "Task", lambda r: "" if r.get("task_id") is None else f"#{r['task_id']}", RIGHT),
)


# ------------------------------------------------------------------------------------------ rows model


class RowsModel(QStandardItemModel):
    """A table of dict rows with declared columns, kept as QStandardItems.

    Why not a QAbstractTableModel with a Python data(): a view paints by asking data() about seven roles
    for each visible cell, plus rowCount() and columnCount() for each index: about 2,800 calls from C++
    into Python per repaint of the Calls table, each taking the GIL from the busy proxy thread. In the
    GUI benchmark those repaints took 100-500 ms under load. Items are built once per row (on the
    background thread, see `make_items`); painting them never enters Python. `rows` keeps the dicts.
    """

    SortRole = Qt.ItemDataRole.UserRole + 1

    def __init__(
        self,
        columns: Sequence[Column],
        key: str = "id",
        *,
        sortable: bool = False,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(0, len(columns), parent)
        self.columns = tuple(columns)
        self.key = key
        self.sortable = sortable
        self.rows: list[Row] = []
        self.setHorizontalHeaderLabels([c.title for c in self.columns])
        for i, column in enumerate(self.columns):
            self.setHeaderData(i, Qt.Orientation.Horizontal, column.align, Qt.ItemDataRole.TextAlignmentRole)

    def row_colour(self, row: Row) -> QColor | None:
        """A row's text colour when it must stand out (failed) or recede (closed); None: the palette's."""
        return None

    def make_items(self, row: Row) -> list[QStandardItem]:
        """One row's cells. Pure (reads only the column declarations), so the pages build them on the
        background thread with the query: 500 rows are 5000 items, far too slow for the GUI thread."""
        colour = self.row_colour(row)
        brush = QBrush(colour) if colour is not None else None
        items = []
        for column in self.columns:
            item = QStandardItem(column.text(row))
            if column.align != LEFT:
                item.setTextAlignment(column.align)
            if brush is not None:
                item.setForeground(brush)
            if column.tooltip is not None and (tip := column.tooltip(row)):
                item.setToolTip(tip)
            if (
                self.sortable
                and (value := column.sort(row) if column.sort else row.get(column.key)) is not None
            ):
                item.setData(value, self.SortRole)
            items.append(item)
        return items

    def make_all(self, rows: Sequence[Row]) -> list[list[QStandardItem]]:
        return [self.make_items(row) for row in rows]

    def _filled(self, first: int, cells: Sequence[list[QStandardItem]]) -> None:
        """Put rows of items from `first` on with signals held back, then announce them as one change."""
        if not cells:
            return
        blocked = self.blockSignals(True)
        try:
            for i, items in enumerate(cells, first):
                for c, item in enumerate(items):
                    self.setItem(i, c, item)
        finally:
            self.blockSignals(blocked)
        self.dataChanged.emit(self.index(first, 0), self.index(first + len(cells) - 1, len(self.columns) - 1))

    # ---- content
    def row(self, i: int) -> Row:
        return self.rows[i]

    def insert_rows(
        self, at: int, rows: Sequence[Row], cells: Sequence[list[QStandardItem]] | None = None
    ) -> None:
        """Insert a block of rows with one rowsInserted, so a view scrolls and repaints once."""
        if not rows:
            return
        self.rows[at:at] = rows
        self.insertRows(at, len(rows))
        self._filled(at, cells if cells is not None else self.make_all(rows))

    def update_row(self, i: int, row: Row, items: list[QStandardItem] | None = None) -> None:
        self.rows[i] = row
        self._filled(i, [items if items is not None else self.make_items(row)])

    def set_rows(self, rows: Sequence[Row], cells: Sequence[list[QStandardItem]] | None = None) -> None:
        """Replace the content. The same rows in the same order (the common live refresh) are updated in
        place, only where they changed, which keeps the view's selection and scroll position."""
        new = list(rows)
        if new and [r.get(self.key) for r in new] == [r.get(self.key) for r in self.rows]:
            for i, (old, row) in enumerate(zip(self.rows, new, strict=True)):
                if old != row:
                    self.update_row(i, row, cells[i] if cells is not None else None)
            self.rows = new
            return
        self.clear_rows()
        self.insert_rows(0, new, cells)

    def clear_rows(self) -> None:
        self.rows = []
        self.setRowCount(0)

    def find(self, key: Any) -> int:
        for i, r in enumerate(self.rows):
            if r.get(self.key) == key:
                return i
        return -1


class CallRowsModel(RowsModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(CALL_COLUMNS, parent=parent)

    def row_colour(self, row: Row) -> QColor | None:
        return ERROR_COLOUR if is_failed_call(row) else None


# ----------------------------------------------------------------------------------------- calls model


def _order_key(row: Row) -> tuple[float, int]:
    """Ascending key for newest-first order (the query layer orders by started_at, id descending)."""
    return (-float(row["started_at"]), -int(row["id"]))


class CallsModel(CallRowsModel):
    """The calls log, newest first, one keyset page at a time.

    `set_filter` starts over; scrolling to the end makes the view call fetchMore, which asks the next
    page in the background (canFetchMore is False while a page is on its way, so a fast scroll does not
    stack requests). `add_logged` takes call_ids the writer just stored and inserts or updates those
    rows in place, at most five times a second (a busy proxy logs ten batches a second, and each
    insert at the top repaints the view). Results for an older filter are dropped by generation number.
    """

    pageLoaded = Signal(int)  # rows added by a page
    loadingChanged = Signal(bool)
    failed = Signal(str)

    def __init__(
        self,
        engine: Engine,
        background: Background,
        *,
        page_size: int = 500,
        flt: CallFilter | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.engine, self.background, self.page_size = engine, background, page_size
        self.filter = flt or CallFilter()
        self.exhausted = False
        self.loading = False
        self._generation = 0
        self._keys: list[tuple[float, int]] = []
        self._pending_ids: set[str] = set()
        self._live_running = False
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_INTERVAL_MS)
        self._live_timer.timeout.connect(self._fetch_live)

    # ---- paging
    def set_filter(self, flt: CallFilter) -> None:
        self.filter = flt
        self.reload()

    def reload(self) -> None:
        self._generation += 1
        self._keys = []
        self.clear_rows()
        self.exhausted = False
        self._set_loading(False)
        self.fetchMore(QModelIndex())

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and not self.exhausted and not self.loading

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if not self.canFetchMore(parent):
            return
        self._set_loading(True)
        gen, flt, size = self._generation, self.filter, self.page_size
        last = self.rows[-1] if self.rows else None
        before_id = last["id"] if last else None
        before_at = last["started_at"] if last else None

        def query() -> tuple[int, list[Row], list[list[QStandardItem]]]:
            rows = calls_page(self.engine, flt, before_id=before_id, before_started_at=before_at, limit=size)
            return gen, rows, self.make_all(rows)

        self.background.run(query, self._page_done, self._page_failed)

    def _set_loading(self, value: bool) -> None:
        if value != self.loading:
            self.loading = value
            self.loadingChanged.emit(value)

    def _page_done(self, result: tuple[int, list[Row], list[list[QStandardItem]]]) -> None:
        gen, rows, cells = result
        if gen != self._generation:
            return
        self._set_loading(False)
        if len(rows) < self.page_size:
            self.exhausted = True
        if self._keys and rows and _order_key(rows[0]) <= self._keys[-1]:
            # only a first page can overlap rows shown: calls logged while it was read, merged in live
            tail = self._keys[-1]
            pairs = list(zip(rows, cells, strict=True))
            self.merge(
                [r for r, _ in pairs if _order_key(r) <= tail], [c for r, c in pairs if _order_key(r) <= tail]
            )
            cells = [c for r, c in pairs if _order_key(r) > tail]
            rows = [r for r, _ in pairs if _order_key(r) > tail]
        self._keys.extend(_order_key(r) for r in rows)
        self.insert_rows(len(self.rows), rows, cells)
        self.pageLoaded.emit(len(rows))

    def _page_failed(self, exc: Exception) -> None:
        self._set_loading(False)
        self.exhausted = True  # do not hammer a failing database; the page offers a reload
        self.failed.emit(plain_error("Could not read the call log", exc))

    # ---- live updates
    def add_logged(self, call_ids: Sequence[str]) -> None:
        """Fetch the given freshly logged calls (if they pass the filter) and merge them in. While one
        fetch runs, further ids are collected and fetched together afterwards."""
        self._pending_ids.update(call_ids)
        if self._pending_ids and not self._live_running and not self._live_timer.isActive():
            self._live_timer.start()

    def _fetch_live(self) -> None:
        if self._live_running or not self._pending_ids:
            return
        ids, self._pending_ids = list(self._pending_ids), set()
        self._live_running = True
        gen, flt = self._generation, self.filter

        def query() -> tuple[int, list[Row], list[list[QStandardItem]]]:
            rows = calls_by_call_id(self.engine, ids, flt)
            return gen, rows, self.make_all(rows)

        self.background.run(query, self._live_done, self._live_failed)

    def _live_done(self, result: tuple[int, list[Row], list[list[QStandardItem]]]) -> None:
        self._live_running = False
        gen, rows, cells = result
        if gen == self._generation:
            self.merge(rows, cells)
        self.add_logged(())

    def _live_failed(self, exc: Exception) -> None:
        self._live_running = False
        self.failed.emit(plain_error("Could not read new calls", exc))

    def merge(self, rows: Sequence[Row], cells: Sequence[list[QStandardItem]] | None = None) -> None:
        """Insert rows at their place in newest-first order, or update rows already shown. A row older
        than everything loaded waits for its page, unless the log is fully loaded."""
        cells = cells if cells is not None else self.make_all(rows)
        top: list[tuple[Row, list[QStandardItem]]] = []
        head = self._keys[0] if self._keys else None
        for row, items in sorted(zip(rows, cells, strict=True), key=lambda pair: _order_key(pair[0])):
            key = _order_key(row)
            i = bisect.bisect_left(self._keys, key)
            if i < len(self._keys) and self._keys[i] == key:
                self.update_row(i, row, items)
            elif head is None or key < head:
                top.append((row, items))  # newer than anything shown: one block at the top
            elif i < len(self._keys) or self.exhausted:
                self._keys.insert(i, key)
                self.insert_rows(i, [row], [items])
        if top:
            self._keys[:0] = [_order_key(r) for r, _ in top]
            self.insert_rows(0, [r for r, _ in top], [c for _, c in top])

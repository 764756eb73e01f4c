"""The Executors page: which model can run your loop, up to what prompt size, at what cost per finished task.

A thin view over `app.core.queries.executors.scorecard`: the table (one row per model), the selected
model's verdict with its evidence, and a chart of failure rate against prompt size. The query runs on the
background pool (SingleFlight: never two at once), on show, on a range change, and at most every
REFRESH_MS while calls are being logged.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QHideEvent, QPalette, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core import long_context
from app.core.queries.executors import evaluation_spend, scorecard
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.executor_chart import ContextFailureChart
from app.ui.models import fmt_money, fmt_ms, fmt_rate
from app.ui.pages import MessageLine, heading
from app.ui.throttle import SingleFlight, Throttle

RANGES = (
    ("Last 7 days", 7 * 86400),
    ("Last 30 days", 30 * 86400),
    ("Last 90 days", 90 * 86400),
    ("All time", None),
)
REFRESH_MS = 5000
COLUMNS = (
    "Model",
    "Calls",
    "Tool calls",
    "Valid",
    "Fail <16K",
    "Fail 16-64K",
    "Fail 64-128K",
    "Fail >128K",
    "$ / finished task",
    "p50",
    "p95",
    "Escalated",
    "Probe",
    "Verdict",
)
VERDICT_COLUMN = len(COLUMNS) - 1


def snapshot(engine: Any, span_s: float | None, now: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    since = 0.0 if span_s is None else now - span_s
    data = scorecard(engine, since=since, until=now + 1e-6)
    data["evaluation"] = evaluation_spend(engine, since=since, until=now + 1e-6)
    data["query_ms"] = (time.perf_counter() - t0) * 1000
    data["span_s"] = span_s
    return data


def _cells(m: dict[str, Any]) -> list[str]:
    probe = m["probe"]
    return [
        m["target"],
        f"{m['calls']:,}",
        f"{m['tool_calls']:,}",
        fmt_rate(m["validity"]),
        *(fmt_rate(b["failure_rate"]) for b in m["buckets"]),
        fmt_money(m["cost_per_finished_task"]),
        fmt_ms(m["latency"]["p50_ms"]),
        fmt_ms(m["latency"]["p95_ms"]),
        str(m["escalated_tasks"]),
        "–" if probe is None else f"{probe['passed']}/{probe['probes']} passed",
        m["verdict"]["text"],
    ]


class ExecutorsPage(QWidget):
    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.flight = SingleFlight(ctx.background, self)
        self.data: dict[str, Any] | None = None
        self.refreshes = 0
        self.fix: dict[str, Any] | None = None

        self.range_box = QComboBox()
        self.range_box.setAccessibleName("Time range")
        for label, span in RANGES:
            self.range_box.addItem(label, span)
        self.range_box.setCurrentIndex(1)
        self.updated = QLabel()
        self.updated.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Range:"))
        bar.addWidget(self.range_box)
        bar.addStretch(1)
        self.evaluation = QLabel()
        self.evaluation.setToolTip(
            "What shadow runs cost: evaluation of candidate models, never part of the spend "
            "totals, budgets or savings"
        )
        bar.addWidget(self.evaluation)
        bar.addSpacing(12)
        bar.addWidget(self.updated)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setAccessibleName("Executor scorecard")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(VERDICT_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selected)

        self.detail_title = QLabel()
        font = self.detail_title.font()
        font.setBold(True)
        self.detail_title.setFont(font)
        self.verdict = QLabel("Select a model to see its verdict and the evidence behind it.")
        self.verdict.setWordWrap(True)
        self.verdict.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.evidence = QLabel()
        self.evidence.setWordWrap(True)
        self.evidence.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.evidence.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.shadow = QLabel()
        self.shadow.setWordWrap(True)
        self.shadow.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.fix_button = QPushButton()
        self.fix_button.hide()
        self.fix_note = QLabel()
        self.fix_note.setWordWrap(True)
        self.fix_note.hide()
        self.fix_button.clicked.connect(self._apply_fix)
        self.message = MessageLine()
        detail = QGroupBox("Verdict")
        detail.setMinimumWidth(420)
        dl = QVBoxLayout(detail)
        for w in (self.detail_title, self.verdict, self.evidence, self.shadow, self.fix_note):
            dl.addWidget(w)
        fix_row = QHBoxLayout()
        fix_row.addWidget(self.fix_button)
        fix_row.addStretch(1)
        dl.addLayout(fix_row)
        dl.addWidget(self.message)
        dl.addStretch(1)
        dl.addWidget(self._replay_panel())

        self.chart = ContextFailureChart()
        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(detail)
        lower.addWidget(self.chart)
        lower.setStretchFactor(0, 2)
        lower.setStretchFactor(1, 3)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(lower)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([240, 520])

        layout = QVBoxLayout(self)
        layout.addWidget(
            heading(
                "Executors",
                "Which model can run your loop, up to what prompt size, and at what cost "
                "per finished task, from your own calls. Failure rate counts tool calls "
                "that failed the checks or whose result came back failed.",
            )
        )
        layout.addLayout(bar)
        layout.addWidget(split, 1)

        self._soon = Throttle(self.refresh, REFRESH_MS, self)
        self.range_box.currentIndexChanged.connect(lambda _i: self.refresh(force=True))
        ctx.bridge.callsLogged.connect(lambda _r: self._soon() if self.isVisible() else None)

    # ---- querying
    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh(force=True)

    def hideEvent(self, event: QHideEvent) -> None:
        self._soon.cancel()
        super().hideEvent(event)

    def refresh(self, force: bool = False) -> None:
        if not self.isVisible() and not force:
            return
        span, engine = self.range_box.currentData(), self.ctx.core.db
        self.flight.run(
            lambda: snapshot(engine, span, time.time()), self.apply, self._failed, queue_latest=force
        )

    def _failed(self, exc: Exception) -> None:
        self.message.error(plain_error("Could not read the scorecard", exc))

    # ---- showing
    def apply(self, data: dict[str, Any]) -> None:
        if data["span_s"] != self.range_box.currentData():
            return  # the range changed while this ran; its own query is queued
        selected = self.selected_target()
        self.data = data
        self.refreshes += 1
        models = data["models"]
        self.table.setRowCount(len(models))
        for row, m in enumerate(models):
            for col, text in enumerate(_cells(m)):
                item = QTableWidgetItem(text)
                if 0 < col < VERDICT_COLUMN:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if col == VERDICT_COLUMN:
                    item.setToolTip(text)
                self.table.setItem(row, col, item)
        self.chart.set_models(models)
        ev = data.get("evaluation") or {"runs": 0, "cost_usd": 0.0}
        self.evaluation.setText(
            f"Evaluation spend (shadow runs, not in spend totals): {fmt_money(ev['cost_usd'])} over "
            f"{ev['runs']:,} runs"
            if ev["runs"]
            else ""
        )
        self.updated.setText(f"Updated {time.strftime('%H:%M:%S')} · {data['query_ms']:.0f} ms")
        targets = [m["target"] for m in models]
        if selected in targets:
            self.table.selectRow(targets.index(selected))
        elif models:
            worst = max(
                range(len(models)),
                key=lambda i: (models[i]["verdict"]["climbs_with_context"], models[i]["calls"]),
            )
            self.table.selectRow(worst)
        else:
            self.verdict.setText(
                "No calls in this range yet: route your agent through Downshift and the scorecard "
                "fills in from its own work."
            )
        self._selected()

    def selected_target(self) -> str | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or self.data is None:
            return None
        return str(self.data["models"][rows[0].row()]["target"])

    def model_row(self, target: str) -> dict[str, Any] | None:
        if self.data is None:
            return None
        return next((m for m in self.data["models"] if m["target"] == target), None)

    def _selected(self) -> None:
        target = self.selected_target()
        m = self.model_row(target) if target else None
        if target is None or m is None:
            return
        v = m["verdict"]
        self.detail_title.setText(target)
        self.verdict.setText(v["text"][:1].upper() + v["text"][1:] + ".")
        lat = m["latency"]
        self.evidence.setText(
            f"{m['calls']:,} calls, {m['tool_calls']:,} tool calls ({fmt_rate(m['validity'])} valid, "
            f"{fmt_rate(m['failure_rate'])} failed incl. failed results). Cost per finished task "
            f"{fmt_money(m['cost_per_finished_task'])} over {m['finished_tasks']} tasks; latency p50 {fmt_ms(lat['p50_ms'])}, "
            f"p95 {fmt_ms(lat['p95_ms'])} (latest {lat['sample']} calls). No verdict under {v['min_tool_calls']} tool calls."
            if m["calls"]
            else "It served no calls in this range: shadow runs compare it with the model that did."
        )
        lines = [
            f"As a shadow of {s['served']}: {s['runs']} runs, valid {fmt_rate(s['valid_rate'])} (served "
            f"{fmt_rate(s['served_valid_rate'])}), same tool {fmt_rate(s['same_tool_rate'])}, arguments valid "
            f"{fmt_rate(s['args_valid_rate'])}, latency {fmt_ms(s['latency_ms'])} (served {fmt_ms(s['served_latency_ms'])}),"
            f" evaluation spend {fmt_money(s['cost_usd'])} (served {fmt_money(s['served_cost_usd'])})"
            + (f", {s['timeouts']} timed out" if s["timeouts"] else "")
            for s in m["shadow"]
        ]
        self.shadow.setText("<br>".join(lines))
        self.shadow.setVisible(bool(lines))
        self._offer_fix(m)

    # ---- replay (see app.core.queries.replay)
    def _replay_panel(self) -> QWidget:
        box = QGroupBox("What would another preset have cost?")
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        self.replay_box = QComboBox()
        self.replay_box.setAccessibleName("Preset to replay on")
        self.replay_button = QPushButton("Replay the range")
        self.replay_button.clicked.connect(self.run_replay)
        row.addWidget(QLabel("Preset:"))
        row.addWidget(self.replay_box, 1)
        row.addWidget(self.replay_button)
        layout.addLayout(row)
        self.replay_result = QLabel(
            "Prices this range's calls on another preset's models, from their logged "
            "token counts. No call is sent."
        )
        self.replay_result.setWordWrap(True)
        self.replay_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.replay_result)
        self.replay_data: dict[str, Any] | None = None
        self._fill_presets()
        self.ctx.bridge.configChanged.connect(lambda _c: self._fill_presets())
        return box

    def _fill_presets(self) -> None:
        config = self.ctx.core.config
        current = self.replay_box.currentText()
        names = [n for n in config.presets if n != config.active] or list(config.presets)
        self.replay_box.blockSignals(True)
        self.replay_box.clear()
        self.replay_box.addItems(names)
        if current in names:
            self.replay_box.setCurrentText(current)
        elif config.premium in names:
            self.replay_box.setCurrentText(config.premium)
        self.replay_box.blockSignals(False)

    def run_replay(self) -> None:
        from app.core.queries.replay import replay

        preset = self.replay_box.currentText()
        if not preset:
            return
        span, engine, config = self.range_box.currentData(), self.ctx.core.db, self.ctx.core.config
        since = 0.0 if span is None else time.time() - span
        self.replay_button.setEnabled(False)
        self.replay_result.setText(f"Pricing the range on {preset}…")

        def done(data: dict[str, Any]) -> None:
            self.replay_button.setEnabled(True)
            self.replay_data = data
            diff = data["difference_usd"]
            sign = "more" if diff > 0 else "less"
            lines = [
                f"<b>{data['calls']:,} calls: {fmt_money(data['actual_cost_usd'])} as served, "
                f"{fmt_money(data['replay_cost_usd'])} on {preset}</b> ({fmt_money(abs(diff))} {sign})."
            ]
            for r in data["roles"]:
                extra = (
                    f", {r['replay_unpriced_calls']} without a price" if r["replay_unpriced_calls"] else ""
                )
                lines.append(
                    f"{r['role']}: {r['calls']:,} calls {fmt_money(r['actual_cost_usd'])} → {r['target']} "
                    f"{fmt_money(r['replay_cost_usd'])}{extra}"
                )
            lines.append(f"<i>{data['caveat']}</i>")
            self.replay_result.setText("<br>".join(lines))

        def failed(exc: Exception) -> None:
            self.replay_button.setEnabled(True)
            self.replay_result.setText(plain_error("Could not replay", exc))

        self.ctx.background.run(lambda: replay(engine, config, preset, since=since), done, failed)

    # ---- the one-click fix (see app.core.long_context)
    def _offer_fix(self, m: dict[str, Any]) -> None:
        """When a model's failures climb with prompt size, offer the long-context rule on the preset whose loop
        runs it: prompts over the size it holds up to go to the preset's plan model."""
        self.fix = None
        self.fix_button.hide()
        self.fix_note.hide()
        if self.message.kind != "ok":
            self.message.clear()
        v = m["verdict"]
        if not v["climbs_with_context"] or not v["suggest_above_tokens"]:
            return
        fix = long_context.fix_for(self.ctx.core.config, m["target"], int(v["suggest_above_tokens"]))
        if fix is None:
            return
        above = f"{fix['above_tokens'] // 1000}K"
        rule = self.ctx.core.config.presets[fix["preset"]].long_context
        if fix["already"] and rule is not None:
            self.message.info(
                f"Preset '{fix['preset']}' already sends prompts over {rule.above_tokens // 1000}K tokens "
                f"to its {fix['role']} model."
            )
            return
        self.fix = fix
        self.fix_button.setText(f"Route prompts over {above} tokens to {fix['role']}")
        if fix["usable"]:
            self.fix_note.setText(
                f'One click adds long_context = {{ above_tokens = {fix["above_tokens"]}, role = "{fix["role"]}" }} '
                f"to preset '{fix['preset']}': its loop calls over {above} prompt tokens then go to {fix['to']}."
            )
            self.fix_note.show()
        self.fix_button.setEnabled(fix["usable"])
        self.fix_button.setToolTip(
            f'Adds long_context = {{ above_tokens = {fix["above_tokens"]}, role = "{fix["role"]}" }}'
            f" to the preset"
            if fix["usable"]
            else fix["why"]
        )
        self.fix_button.show()
        if not fix["usable"]:
            self.message.info(
                f"No one-click fix: {fix['why']}. Add a {fix['role']} model to preset '{fix['preset']}' "
                "on the Presets page."
            )

    def _apply_fix(self) -> None:
        fix = self.fix
        if fix is None:
            return
        self.fix_button.setEnabled(False)

        def done(_config: object) -> None:
            self.message.ok(
                f"Preset '{fix['preset']}' now sends prompts over {fix['above_tokens'] // 1000}K tokens to "
                f"{fix['to']}; the next call applies it."
            )
            self.fix_button.hide()
            self.fix_note.hide()

        def failed(exc: Exception) -> None:
            self.fix_button.setEnabled(True)
            self.message.error(plain_error("Could not save the rule", exc))

        preset, above, role = fix["preset"], fix["above_tokens"], fix["role"]
        self.ctx.update_config(lambda c: long_context.with_rule(c, preset, above, role), done, failed)

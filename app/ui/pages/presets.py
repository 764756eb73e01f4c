"""Presets: which model serves each role, the globs that pick a role, the fallback chain, and budgets.

Model pickers offer what "Test connection" fetched on the Providers page (and any model already in the
config), filtered as you type; any other name can be typed too. Presets travel between machines as TOML
files holding the preset and its providers, never keys. Beside each picked model is its latest tool-use
probe verdict (run from the Providers page or `downshift probe`), or "not probed".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.config import ROLES, Budget, Config, ConfigError, Preset, Target
from app.core.config_edit import duplicate_preset, put_preset, remove_preset, set_budgets
from app.core.preset_io import ImportResult, export_preset, import_presets
from app.core.preset_tier import preset_tier
from app.core.shadow_info import describe as describe_shadow
from app.ui import dialogs
from app.ui.context import UiContext
from app.ui.icons import tray_icon
from app.ui.pages import MessageLine, heading

ROLE_HELP = {
    "default": "the agent's main loop",
    "plan": "planning turns (Claude Code's opus slot in opusplan)",
    "background": "titles, summaries, small helpers (haiku slot)",
    "subagent": "sub-agents the main loop starts",
}
SAME_AS_DEFAULT = ""


def probe_verdict(summary: dict[str, Any] | None, *, prefix: str = "probe: ") -> str:
    """One line for a model picker from a `latest_probes`/`probe_results` summary: "probe: 8/8 tool calls
    valid, 6/6 passed", or "not probed"."""
    if summary is None:
        return "not probed"
    calls, failed = summary.get("tool_calls") or 0, summary.get("tool_failures") or 0
    return f"{prefix}{calls - failed}/{calls} tool calls valid, {summary.get('passed') or 0}/{summary.get('probes') or 0} passed"


PICKER_SOURCE = {"override": "override", "listed": "list", "table": "table", "local": "local"}


def price_note(ctx: UiContext, provider: str, model: str) -> tuple[str, str]:
    """What calls to provider/model are charged per M tokens, short ("$3.00/$15.00 (table)") for the label and
    long (every price, the source and its date) for the tooltip: the same rule as the proxy's."""
    from app.core.pricing import describe_price, fmt_per_million, resolve_price

    config = ctx.core.config
    resolved = resolve_price(config, config.providers.get(provider), model)
    if resolved.price is None:
        return "no price", resolved.label
    short = f"{fmt_per_million(resolved.price.input)}/{fmt_per_million(resolved.price.output)}"
    return f"{short} ({PICKER_SOURCE.get(resolved.source, resolved.source)})", (
        f"{describe_price(resolved.price)}\nfrom {resolved.label}"
    )


def known_models(ctx: UiContext, provider: str) -> list[str]:
    """Fetched models for `provider` plus the ones the config already names, sorted, no duplicates."""
    names = {m.id for m in ctx.models.models(provider)}
    for preset in ctx.core.config.presets.values():
        names.update(t.model for t in (*preset.roles.values(), *preset.fallback) if t.provider == provider)
    return sorted(names, key=str.lower)


class TargetPicker(QWidget):
    """A provider combo and a searchable, editable model combo: one `provider/model` target."""

    def __init__(self, ctx: UiContext, *, optional: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx, self.optional = ctx, optional
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.provider = QComboBox()
        self.provider.setMinimumContentsLength(12)
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model.setMinimumContentsLength(18)  # fits a 900 px window; the price and verdict sit beside it
        self.model.lineEdit().setPlaceholderText("model name: pick or type")
        completer = QCompleter(self.model.model(), self.model)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.model.setCompleter(completer)
        self.probes: dict[str, dict[str, Any]] = {}  # latest_probes, set by the page
        self.verdict = QLabel()
        self.verdict.setAccessibleName("Tool-use probe verdict")
        self.price = QLabel()
        self.price.setAccessibleName("Price per million tokens, in and out, and its source")
        # the verdict gives way in a narrow window (its tooltip keeps the whole line) instead of widening it
        self.verdict.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.verdict.setMinimumWidth(60)
        layout.addWidget(self.provider)
        layout.addWidget(self.model, 3)
        layout.addWidget(self.price)
        layout.addWidget(self.verdict, 2)
        self.provider.currentIndexChanged.connect(self._provider_changed)
        self.model.editTextChanged.connect(lambda _: self._show_verdict())
        self.set_providers(list(ctx.core.config.providers))

    def set_providers(self, names: list[str]) -> None:
        current = self.provider.currentData()
        self.provider.blockSignals(True)
        self.provider.clear()
        if self.optional:
            self.provider.addItem("same as default", SAME_AS_DEFAULT)
        for name in names:
            self.provider.addItem(name, name)
        self.provider.setCurrentIndex(max(self.provider.findData(current), 0))
        self.provider.blockSignals(False)
        self._provider_changed()

    def _provider_changed(self) -> None:
        name = self.provider.currentData()
        text = self.model.currentText()
        self.model.blockSignals(True)
        self.model.clear()
        if name:
            self.model.addItems(known_models(self.ctx, name))
        self.model.setEditText(text if name else "")
        self.model.blockSignals(False)
        self.model.setEnabled(bool(name))
        self._show_probes()

    def set_probes(self, probes: dict[str, dict[str, Any]]) -> None:
        self.probes = probes
        self._show_probes()

    def _show_probes(self) -> None:
        """Each offered model's verdict as its tooltip, and the chosen one's in the label beside it."""
        name, text = self.provider.currentData(), self.model.currentText()
        self.model.blockSignals(True)
        for i in range(self.model.count()):
            model = self.model.itemText(i)
            tip = (
                f"{probe_verdict(self.probes.get(f'{name}/{model}'))}\n{price_note(self.ctx, name, model)[1]}"
            )
            self.model.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
        self.model.setEditText(
            text
        )  # changed item data makes the combo copy its current item over the typed text
        self.model.blockSignals(False)
        self._show_verdict()

    def _show_verdict(self) -> None:
        name, model = self.provider.currentData(), self.model.currentText().strip()
        if not (name and model):
            self.verdict.setText("")
            self.verdict.setToolTip("")
            self.price.setText("")
            self.price.setToolTip("")
            return
        short, long = price_note(self.ctx, name, model)
        self.verdict.setText(probe_verdict(self.probes.get(f"{name}/{model}")))
        self.verdict.setToolTip(self.verdict.text())
        self.price.setText(short)
        self.price.setToolTip(long)

    def set_target(self, target: Target | None) -> None:
        self.provider.setCurrentIndex(
            max(self.provider.findData(target.provider if target else SAME_AS_DEFAULT), 0)
        )
        self._provider_changed()
        self.model.setEditText(target.model if target else "")
        self._show_verdict()

    def target(self) -> Target | None:
        """The chosen target; None for "same as default"; raises ValueError when half filled."""
        name, model = self.provider.currentData(), self.model.currentText().strip()
        if not name:
            return None
        if not model:
            raise ValueError(f"choose a model for {name}")
        return Target(name, model)


class PresetsPage(QWidget):
    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.editing: str | None = None
        self._baseline: tuple[Any, ...] = ()  # the form as last loaded or saved (see has_unsaved_changes)
        self._after_save: str | None = None  # the preset to show once a save asked for by the guard is done
        outer = QVBoxLayout(self)
        outer.addWidget(
            heading(
                "Presets",
                "Which model serves each role. Switching the active preset applies to the very next request.",
            )
        )
        self.tabs = QTabWidget()
        outer.addWidget(self.tabs, 1)
        split = QSplitter()
        split.setChildrenCollapsible(False)
        self.tabs.addTab(split, "&Presets")

        # left: the list and what to do with a preset as a whole
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()
        self.list.setAccessibleName("Presets")
        self.list.currentItemChanged.connect(self._selected)
        left_layout.addWidget(self.list, 1)
        grid = QGridLayout()
        self.activate_button = QPushButton("Set &active")
        self.new_button = QPushButton("&New")
        self.duplicate_button = QPushButton("D&uplicate")
        self.remove_button = QPushButton("&Remove")
        self.import_button = QPushButton("&Import…")
        self.export_button = QPushButton("E&xport…")
        buttons = (
            self.activate_button,
            self.new_button,
            self.duplicate_button,
            self.remove_button,
            self.import_button,
            self.export_button,
        )
        for i, button in enumerate(buttons):
            grid.addWidget(button, i // 2, i % 2)
        left_layout.addLayout(grid)
        self.activate_button.clicked.connect(self.activate_current)
        self.new_button.clicked.connect(lambda: self.confirm_leave() and self.new_preset())
        self.duplicate_button.clicked.connect(self.duplicate_current)
        self.remove_button.clicked.connect(self.remove_current)
        self.import_button.clicked.connect(self.import_file)
        self.export_button.clicked.connect(self.export_current)
        split.addWidget(left)

        # right: the preset's form
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        form_host = QWidget()
        right = QVBoxLayout(form_host)
        right.setContentsMargins(8, 0, 4, 0)
        top = QFormLayout()
        self.name = QLineEdit()
        self.description = QLineEdit()
        self.description.setPlaceholderText("what this preset is for")
        top.addRow("&Name:", self.name)
        top.addRow("&Description:", self.description)
        right.addLayout(top)
        self.rules_note = MessageLine()  # shadow runs and the long-context rule, set in the config file
        right.addWidget(self.rules_note)

        roles_box = QGroupBox("Targets")
        roles_layout = QFormLayout(roles_box)
        self.pickers: dict[str, TargetPicker] = {}
        for role in ROLES:
            picker = TargetPicker(ctx, optional=role != "default")
            picker.setToolTip(ROLE_HELP[role])
            label = QLabel(f"{role.capitalize()}:")
            label.setToolTip(ROLE_HELP[role])
            label.setBuddy(picker.provider)
            roles_layout.addRow(label, picker)
            self.pickers[role] = picker
        right.addWidget(roles_box)

        patterns_box = QGroupBox("Patterns: requested model names (globs) that pick a role")
        patterns_layout = QVBoxLayout(patterns_box)
        self.patterns = QTableWidget(0, 2)
        self.patterns.setHorizontalHeaderLabels(["Model name glob", "Role"])
        self.patterns.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.patterns.verticalHeader().setVisible(False)
        self.patterns.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.patterns.setMinimumHeight(96)
        patterns_layout.addWidget(self.patterns)
        row = QHBoxLayout()
        add_pattern = QPushButton("Add pattern")
        add_pattern.clicked.connect(lambda: self.add_pattern("*", "background", edit=True))
        remove_pattern = QPushButton("Remove pattern")
        remove_pattern.clicked.connect(lambda: self._remove_rows(self.patterns))
        row.addWidget(add_pattern)
        row.addWidget(remove_pattern)
        row.addStretch(1)
        patterns_layout.addLayout(row)
        right.addWidget(patterns_box)

        fallback_box = QGroupBox("Fallback: tried in order when a target fails to connect or answers 5xx/429")
        fallback_layout = QVBoxLayout(fallback_box)
        self.fallback = QListWidget()
        self.fallback.setMinimumHeight(72)
        self.fallback.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        fallback_layout.addWidget(self.fallback)
        self.fallback_picker = TargetPicker(ctx, optional=False)
        row = QHBoxLayout()
        row.addWidget(self.fallback_picker, 1)
        add_fallback = QPushButton("Add")
        add_fallback.clicked.connect(self.add_fallback)
        remove_fallback = QPushButton("Remove")
        remove_fallback.clicked.connect(lambda: self.fallback.takeItem(self.fallback.currentRow()))
        row.addWidget(add_fallback)
        row.addWidget(remove_fallback)
        fallback_layout.addLayout(row)
        right.addWidget(fallback_box)

        right.addStretch(1)
        scroll.setWidget(form_host)
        self.scroll = scroll
        # Save and Revert sit under the scrolled form, always in view however long the form gets
        form_side = QWidget()
        side = QVBoxLayout(form_side)
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(scroll, 1)
        row = QHBoxLayout()
        row.setContentsMargins(8, 0, 4, 0)
        self.save_button = QPushButton("&Save preset")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        self.revert_button = QPushButton("Re&vert")
        self.revert_button.clicked.connect(self.discard_changes)
        row.addWidget(self.save_button)
        row.addWidget(self.revert_button)
        row.addStretch(1)
        side.addLayout(row)
        self.message = MessageLine()
        self.message.setContentsMargins(8, 0, 4, 0)
        side.addWidget(self.message)
        split.addWidget(form_side)
        split.setStretchFactor(1, 1)
        split.setSizes([220, 760])

        self.tabs.addTab(self._budgets_tab(), "&Budgets")
        ctx.bridge.configChanged.connect(self._config_changed)
        self.reload_list()
        config = ctx.core.config
        self._mark_clean()
        self.select(config.active or next(iter(config.presets), ""))
        self.load_budgets(config)
        self.load_probes()

    def showEvent(self, event: QShowEvent) -> None:
        """Probes run elsewhere (Providers page, CLI): read the verdicts again whenever the page shows."""
        super().showEvent(event)
        self.load_probes()

    def load_probes(self) -> None:
        """The latest probe verdict of every target, queried off the GUI thread, beside each model picker."""
        db = self.ctx.core.db

        def job() -> dict[str, dict[str, Any]]:
            from app.core.queries.probes import latest_probes

            return latest_probes(db)

        self.ctx.background.run(job, self._probes_loaded)

    def _probes_loaded(self, probes: dict[str, dict[str, Any]]) -> None:
        for picker in (*self.pickers.values(), self.fallback_picker):
            picker.set_probes(probes)

    # ------------------------------------------------------------------------------------------- list

    def reload_list(self) -> None:
        config = self.ctx.core.config
        self.list.blockSignals(True)
        self.list.clear()
        for name, preset in config.presets.items():
            tier = preset_tier(config, preset)
            text = f"{name}   (active)" if name == config.active else name
            item = QListWidgetItem(tray_icon(tier), text, self.list)  # type: ignore[arg-type]
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(f"{preset.description or name}: {tier}")
            if name == self.editing:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self._update_buttons()

    def select(self, name: str) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == name:
                self.list.setCurrentRow(i)
                return

    def _selected(self, current: QListWidgetItem | None, previous: QListWidgetItem | None) -> None:
        if current is None:
            return
        name = current.data(Qt.ItemDataRole.UserRole)
        if name == self.editing:
            return
        if not self.confirm_leave(then=name):
            self.list.blockSignals(True)
            self.list.setCurrentItem(previous)
            self.list.blockSignals(False)
            return
        self.show_preset(name)

    # ------------------------------------------------------------------------------------------- unsaved

    def _form_state(self) -> tuple[Any, ...]:
        """Everything the form shows, as plain values: compared with the last loaded or saved state."""
        patterns = []
        for row in range(self.patterns.rowCount()):
            item, combo = self.patterns.item(row, 0), self.patterns.cellWidget(row, 1)
            patterns.append(
                (item.text() if item else "", combo.currentText() if isinstance(combo, QComboBox) else "")
            )
        return (
            self.name.text().strip(),
            self.description.text().strip(),
            tuple((p.provider.currentData(), p.model.currentText().strip()) for p in self.pickers.values()),
            tuple(patterns),
            tuple(self.fallback.item(i).text() for i in range(self.fallback.count())),
        )

    def _mark_clean(self) -> None:
        self._baseline = self._form_state()

    def has_unsaved_changes(self) -> bool:
        return self._form_state() != self._baseline

    def unsaved_what(self) -> str:
        return f"The preset {self.editing}" if self.editing else "The new preset"

    def save_changes(self) -> None:
        self.save()

    def discard_changes(self) -> None:
        if self.editing:
            self.show_preset(self.editing)
        else:
            self.new_preset()

    def confirm_leave(self, then: str | None = None) -> bool:
        """Before the form is replaced: True to go ahead (nothing to lose, or the edit was dropped). Save
        starts the save and answers False; once it is saved, preset `then` is shown."""
        if not self.has_unsaved_changes():
            return True
        answer = dialogs.choose(
            self,
            "Unsaved changes",
            f"{self.unsaved_what()} has unsaved changes.",
            ["Save", "Discard changes"],
            "Discarded changes are lost.",
        )
        if answer == 1:
            return True
        if answer == 0:
            self._after_save = then
            self.save()
        return False

    def _update_buttons(self) -> None:
        config = self.ctx.core.config
        chosen = self.editing is not None and self.editing in config.presets
        self.activate_button.setEnabled(chosen and self.editing != config.active)
        for button in (self.duplicate_button, self.remove_button, self.export_button):
            button.setEnabled(chosen)

    def _config_changed(self, config: Config) -> None:
        providers = list(config.providers)
        for picker in (*self.pickers.values(), self.fallback_picker):
            picker.set_providers(providers)
        if self.editing is not None and self.editing not in config.presets:
            self.editing = None
        self.reload_list()
        self.load_budgets(config)

    # ------------------------------------------------------------------------------------------- form

    def show_preset(self, name: str) -> None:
        preset = self.ctx.core.config.presets.get(name)
        if preset is None:
            return
        self.editing = name
        self.name.setText(preset.name)
        self.description.setText(preset.description)
        for role, picker in self.pickers.items():
            picker.set_target(preset.roles.get(role))
        self.patterns.setRowCount(0)
        for glob, role in preset.patterns.items():
            self.add_pattern(glob, role)
        self.fallback.clear()
        self.fallback.addItems([str(t) for t in preset.fallback])
        self.show_rules(preset)
        self.message.clear()
        self._update_buttons()
        self._mark_clean()

    def show_rules(self, preset: Preset | None) -> None:
        """Shadow runs (they send code to one more provider) and the long-context rule, said plainly."""
        lines = []
        shadow = describe_shadow(preset) if preset is not None else None
        if shadow:
            lines.append(shadow + ".")
        if preset is not None and preset.long_context is not None:
            lc = preset.long_context
            lines.append(f"Loop calls over {lc.above_tokens:,} prompt tokens go to the {lc.role} role.")
        if lines:
            self.rules_note.show_message("info" if not shadow else "error", " ".join(lines))
        else:
            self.rules_note.clear()

    def new_preset(self) -> None:
        self.editing = None
        self.rules_note.clear()
        self.list.clearSelection()
        self.name.setText("")
        self.description.setText("")
        active = self.ctx.core.config.active_preset
        for role, picker in self.pickers.items():
            picker.set_target(active.default if active and role == "default" else None)
        self.patterns.setRowCount(0)
        self.fallback.clear()
        self.message.info("New preset: name it, choose its targets, then Save.")
        self.name.setFocus()
        self._update_buttons()
        self._mark_clean()

    def add_pattern(self, glob: str, role: str, *, edit: bool = False) -> None:
        row = self.patterns.rowCount()
        self.patterns.insertRow(row)
        self.patterns.setItem(row, 0, QTableWidgetItem(glob))
        combo = QComboBox()
        combo.addItems(list(ROLES))
        combo.setCurrentText(role)
        self.patterns.setCellWidget(row, 1, combo)
        if edit:
            self.patterns.setCurrentCell(row, 0)
            self.patterns.editItem(self.patterns.item(row, 0))

    @staticmethod
    def _remove_rows(table: QTableWidget) -> None:
        for row in sorted({i.row() for i in table.selectedIndexes()} or {table.currentRow()}, reverse=True):
            if row >= 0:
                table.removeRow(row)

    def add_fallback(self) -> None:
        try:
            target = self.fallback_picker.target()
        except ValueError as exc:
            self.message.error(f"Fallback: {exc}.")
            return
        if target is not None:
            self.fallback.addItem(str(target))

    def form_preset(self) -> Preset:
        """The preset in the form; raises ValueError with a message for the user."""
        name = self.name.text().strip()
        roles: dict[str, Target] = {}
        for role, picker in self.pickers.items():
            try:
                target = picker.target()
            except ValueError as exc:
                raise ValueError(f"{role}: {exc}") from None
            if target is not None:
                roles[role] = target
        if "default" not in roles:
            raise ValueError("the default role needs a target")
        patterns: dict[str, str] = {}
        for row in range(self.patterns.rowCount()):
            item = self.patterns.item(row, 0)
            glob = item.text().strip() if item else ""
            combo = self.patterns.cellWidget(row, 1)
            if glob:
                patterns[glob] = combo.currentText() if isinstance(combo, QComboBox) else "default"
        fallback = tuple(Target.parse(self.fallback.item(i).text()) for i in range(self.fallback.count()))
        old = self.ctx.core.config.presets.get(self.editing) if self.editing else None
        return Preset(
            name,
            roles,
            patterns,
            fallback,
            self.description.text().strip(),
            old.escalate if old else None,
            old.long_context if old else None,
            old.shadow if old else None,
        )  # rules the form does not edit

    # ------------------------------------------------------------------------------------------- actions

    def save(self) -> None:
        try:
            preset = self.form_preset()
        except ValueError as exc:
            self._after_save = None
            self.message.error(f"Not saved: {exc}.")
            return
        old = self.editing
        self.save_button.setEnabled(False)
        self.message.clear()
        self.ctx.update_config(
            lambda c: put_preset(c, preset, old_name=old),
            lambda _: self._saved(preset.name),
            self._failed("Not saved"),
        )

    def _saved(self, name: str) -> None:
        self.save_button.setEnabled(True)
        self.editing = name
        self._mark_clean()
        self.reload_list()
        then, self._after_save = self._after_save, None
        if then and then in self.ctx.core.config.presets:
            self.select(then)
            self.message.ok(f"Saved {name}.")
            return
        active = " It is active: the next request uses it." if name == self.ctx.core.config.active else ""
        self.message.ok(f"Saved {name}.{active}")

    def _failed(self, what: str):  # type: ignore[no-untyped-def]
        def show(exc: Exception) -> None:
            self._after_save = None
            self.save_button.setEnabled(True)
            self.message.error(f"{what}: {exc}")

        return show

    def activate_current(self) -> None:
        name = self.editing
        if name:
            self.message.clear()
            self.ctx.update_config(
                lambda c: c.with_active(name),
                lambda _: self.message.ok(f"{name} is active: the next request uses it."),
                self._failed("Not activated"),
            )

    def duplicate_current(self) -> None:
        if not self.editing or not self.confirm_leave():
            return
        name = self.editing
        result: dict[str, str] = {}
        self.message.clear()

        def change(config: Config) -> Config:
            config, result["name"] = duplicate_preset(config, name)
            return config

        def done(_: Config) -> None:
            self.reload_list()
            self.select(result["name"])
            self.show_preset(result["name"])
            self.message.ok(f"Copied {name} to {result['name']}; rename it and change what you need.")

        self.ctx.update_config(change, done, self._failed("Not duplicated"))

    def remove_current(self) -> None:
        name = self.editing
        if not name:
            return
        try:
            remove_preset(
                self.ctx.core.config, name
            )  # refuses the active preset, or one a budget switches to
        except ConfigError as exc:
            self.message.error(f"{name} cannot be removed: it {exc.problem}.")
            return
        if not dialogs.confirm(self, "Remove preset?", f"Remove the preset {name}?", "Remove"):
            return
        self.message.clear()
        self.ctx.update_config(
            lambda c: remove_preset(c, name), lambda _: self._removed(name), self._failed("Not removed")
        )

    def _removed(self, name: str) -> None:
        self.editing = None
        self.reload_list()
        self.select(self.ctx.core.config.active)
        self.message.ok(f"Removed {name}.")

    def export_current(self) -> None:
        if not self.editing:
            return
        path = dialogs.save_file(
            self, "Export preset", "Downshift preset (*.toml)", Path.home() / f"{self.editing}.downshift.toml"
        )
        if path is None:
            return
        try:
            export_preset(self.ctx.core.config, self.editing, path)
        except (OSError, ConfigError) as exc:
            self.message.error(f"Not exported: {getattr(exc, 'strerror', None) or exc}")
            return
        self.message.ok(f"Exported {self.editing} to {path} (its providers included, no keys).")

    def import_file(self) -> None:
        path = dialogs.open_file(self, "Import preset", "Downshift preset (*.toml);;All files (*)")
        if path is None:
            return
        store = self.ctx.core.config_store
        self.message.clear()

        def job() -> ImportResult:
            imported = import_presets(store.current(), path)
            store.save(imported.config)
            return imported

        def done(imported: ImportResult) -> None:
            names, new = ", ".join(imported.presets), imported.new_providers
            self.reload_list()
            self.select(imported.presets[0])
            extra = f" New providers {', '.join(new)} need a key on the Providers page." if new else ""
            self.message.ok(f"Imported {names} from {path.name}.{extra}")

        self.ctx.write(job, done, self._failed("Not imported"))

    # ------------------------------------------------------------------------------------------- budgets

    def _budgets_tab(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        intro = QLabel(
            "Spending limits for all presets: warn, switch to another preset, or block calls once "
            "spend in the period reaches the limit. Naming a provider counts only its calls."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.budgets = QTableWidget(0, 5)
        self.budgets.setHorizontalHeaderLabels(
            ["Period", "Limit (USD)", "Action", "Provider", "Switch to preset"]
        )
        self.budgets.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.budgets.verticalHeader().setVisible(False)
        self.budgets.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        layout.addWidget(self.budgets, 1)
        row = QHBoxLayout()
        add = QPushButton("Add budget")
        add.clicked.connect(lambda: self.add_budget(Budget("day", 5.0)))
        remove = QPushButton("Remove budget")
        remove.clicked.connect(lambda: self._remove_rows(self.budgets))
        self.save_budgets_button = QPushButton("Save budgets")
        self.save_budgets_button.clicked.connect(self.save_budgets)
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        row.addWidget(self.save_budgets_button)
        layout.addLayout(row)
        self.budget_message = MessageLine()
        layout.addWidget(self.budget_message)
        return box

    def load_budgets(self, config: Config) -> None:
        self.budgets.setRowCount(0)
        for budget in config.budgets:
            self.add_budget(budget)

    def add_budget(self, budget: Budget) -> None:
        config = self.ctx.core.config
        row = self.budgets.rowCount()
        self.budgets.insertRow(row)
        period = QComboBox()
        period.addItems(["day", "month"])
        period.setCurrentText(budget.period)
        limit = QDoubleSpinBox()
        limit.setRange(0.01, 1_000_000)
        limit.setDecimals(2)
        limit.setPrefix("$")
        limit.setValue(budget.limit_usd)
        action = QComboBox()
        action.addItems(["warn", "switch", "block"])
        action.setCurrentText(budget.action)
        provider = QComboBox()
        provider.addItem("all providers", None)
        for name in config.providers:
            provider.addItem(name, name)
        provider.setCurrentIndex(max(provider.findData(budget.provider), 0))
        switch = QComboBox()
        switch.addItem("—", None)
        for name in config.presets:
            switch.addItem(name, name)
        switch.setCurrentIndex(max(switch.findData(budget.switch_to), 0))
        for col, widget in enumerate((period, limit, action, provider, switch)):
            self.budgets.setCellWidget(row, col, widget)

    def form_budgets(self) -> list[Budget]:
        out = []
        for row in range(self.budgets.rowCount()):
            period, limit, action, provider, switch = (self.budgets.cellWidget(row, c) for c in range(5))
            out.append(
                Budget(
                    period.currentText(),
                    round(limit.value(), 2),
                    action.currentText(),  # type: ignore[union-attr]
                    provider.currentData(),
                    switch.currentData(),
                )
            )  # type: ignore[union-attr]
        return out

    def save_budgets(self) -> None:
        self.budget_message.clear()
        budgets = self.form_budgets()
        for i, b in enumerate(budgets):
            if b.action == "switch" and not b.switch_to:
                self.budget_message.error(f"Budget {i + 1}: choose the preset to switch to.")
                return
        self.ctx.update_config(
            lambda c: set_budgets(c, budgets),
            lambda _: self.budget_message.ok(
                f"Saved {len(budgets)} budget{'s' if len(budgets) != 1 else ''}."
            ),
            lambda exc: self.budget_message.error(f"Not saved: {exc}"),
        )

"""Presets: which model serves each role, the globs that pick a role, the fallback chain, and budgets.

The page holds the list and the form; each role's picker is a `TargetPicker` (app.ui.target_picker) and
the Budgets tab is a `BudgetsEditor` (app.ui.budgets_editor). Presets travel between machines as TOML
files holding the preset and its providers, never keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
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
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.config import ROLES, Config, ConfigError, Preset, Target
from app.core.config_edit import duplicate_preset, put_preset, remove_preset
from app.core.preset_io import ImportResult, export_preset, import_presets
from app.core.preset_tier import preset_tier
from app.core.shadow_info import describe as describe_shadow
from app.ui import dialogs
from app.ui.budgets_editor import BudgetsEditor
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.icons import tray_icon
from app.ui.pages import MessageLine, heading
from app.ui.target_picker import (  # noqa: F401 (kept importable from here: the Providers page used to)
    SAME_AS_DEFAULT,
    TargetPicker,
    known_models,
    price_note,
    probe_verdict,
)

ROLE_HELP = {
    "default": "the agent's main loop",
    "plan": "planning turns (Claude Code's opus slot in opusplan)",
    "background": "titles, summaries, small helpers (haiku slot)",
    "subagent": "sub-agents the main loop starts",
}


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
        self.new_button.clicked.connect(self._new_clicked)
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
        fallback_layout.addWidget(self.fallback_picker)  # its own line: with the buttons beside it, too wide
        row = QHBoxLayout()
        add_fallback = QPushButton("Add to fallback")
        add_fallback.clicked.connect(self.add_fallback)
        remove_fallback = QPushButton("Remove")
        remove_fallback.clicked.connect(lambda: self.fallback.takeItem(self.fallback.currentRow()))
        row.addWidget(add_fallback)
        row.addWidget(remove_fallback)
        row.addStretch(1)
        fallback_layout.addLayout(row)
        right.addWidget(fallback_box)

        right.addStretch(1)
        scroll.setWidget(form_host)
        self.form_scroll = scroll  # not `scroll`: that is QWidget.scroll()
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

        self.budgets_editor = BudgetsEditor(ctx)
        self.tabs.addTab(self.budgets_editor, "&Budgets")
        ctx.bridge.configChanged.connect(self._config_changed)
        self.reload_list()
        config = ctx.core.config
        self._mark_clean()
        self.select(config.active or next(iter(config.presets), ""))
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
            item = QListWidgetItem(tray_icon(tier), text, self.list)
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
            if previous is not None:
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
        self.budgets_editor.load(config)

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

    def _new_clicked(self) -> None:
        if self.confirm_leave():
            self.new_preset()

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
        item = QTableWidgetItem(glob)
        self.patterns.setItem(row, 0, item)
        combo = QComboBox()
        combo.addItems(list(ROLES))
        combo.setCurrentText(role)
        self.patterns.setCellWidget(row, 1, combo)
        if edit:
            self.patterns.setCurrentCell(row, 0)
            self.patterns.editItem(item)

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

        def change(config: Config) -> Config:
            """This preset only, onto the config as it is when the save runs: the rules the form does not
            edit (shadow, escalation, long context) are the ones saved meanwhile, not the ones it loaded."""
            now = config.presets.get(old) if old else None
            edited = (
                replace(preset, escalate=now.escalate, long_context=now.long_context, shadow=now.shadow)
                if now is not None
                else preset
            )
            return put_preset(config, edited, old_name=old)

        self.ctx.update_config(
            change,
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

    def _failed(self, what: str) -> Callable[[Exception], None]:
        def show(exc: Exception) -> None:
            self._after_save = None
            self.save_button.setEnabled(True)
            self.message.error(plain_error(what, exc))

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
            self.message.error(plain_error("Not exported", exc))
            return
        self.message.ok(f"Exported {self.editing} to {path} (its providers included, no keys).")

    def import_file(self) -> None:
        path = dialogs.open_file(self, "Import preset", "Downshift preset (*.toml);;All files (*)")
        if path is None:
            return
        store = self.ctx.core.config_store
        self.message.clear()

        def job() -> ImportResult:
            result: list[ImportResult] = []

            def change(config: Config) -> Config:  # merged into the config as it is when the save runs
                result.append(import_presets(config, path))
                return result[-1].config

            store.update(change)
            return result[-1]

        def done(imported: ImportResult) -> None:
            names, new = ", ".join(imported.presets), imported.new_providers
            self.reload_list()
            self.select(imported.presets[0])
            extra = f" New providers {', '.join(new)} need a key on the Providers page." if new else ""
            self.message.ok(f"Imported {names} from {path.name}.{extra}")

        self.ctx.write(job, done, self._failed("Not imported"))

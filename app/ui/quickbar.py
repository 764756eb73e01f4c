"""The window's own copy of the tray menu: a preset switcher that is always in view, Pause, New task and
Copy env. On a desktop with no system tray (stock GNOME, a bare X server) this is the only place to do
them, so nothing the tray offers is tray-only.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QToolBar, QWidget

from app.core.config import Config
from app.core.preset_summary import preset_details, preset_line
from app.core.preset_tier import preset_tier
from app.ui.context import UiContext
from app.ui.icons import tray_icon

MAX_PRESET_SHORTCUTS = 9  # Ctrl+Shift+1..9


class QuickBar(QToolBar):
    presetChosen = Signal(str)
    newTaskRequested = Signal()
    copyEnvRequested = Signal()

    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__("Quick actions", parent)
        self.ctx = ctx
        self.setObjectName("quickBar")
        self.setMovable(False)
        self.setFloatable(False)
        self.addWidget(QLabel(" Preset: "))
        self.presets = QComboBox()
        self.presets.setAccessibleName("Active preset")
        self.presets.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.presets.activated.connect(self._picked)
        self.addWidget(self.presets)
        self.addSeparator()
        self.pause = QAction("Pause proxy", self)
        self.pause.setCheckable(True)
        self.pause.setToolTip("Refuse agents' calls (503) until resumed")
        self.pause.toggled.connect(ctx.set_paused)
        self.addAction(self.pause)
        self.new_task = QAction("New task…", self)
        self.new_task.setShortcut(QKeySequence("Ctrl+T"))
        self.new_task.setToolTip("Count the calls from now on towards a task you name (Ctrl+T)")
        self.new_task.triggered.connect(self.newTaskRequested)
        self.addAction(self.new_task)
        self.copy_env = QAction("Copy env", self)
        self.copy_env.setToolTip("Copy the shell lines that point your agent at this proxy")
        self.copy_env.triggered.connect(self.copyEnvRequested)
        self.addAction(self.copy_env)
        self.preset_shortcuts: list[QAction] = []
        for i in range(MAX_PRESET_SHORTCUTS):
            action = QAction(self)
            action.setShortcut(QKeySequence(f"Ctrl+Shift+{i + 1}"))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda _=False, n=i: self._shortcut(n))
            self.preset_shortcuts.append(action)
        ctx.bridge.configChanged.connect(self.refresh)
        ctx.bridge.pausedChanged.connect(self.show_paused)
        self.refresh(ctx.core.config)

    def shortcut_actions(self) -> list[QAction]:
        """Actions the window adds to itself so their shortcuts work wherever focus is."""
        return [*self.preset_shortcuts, self.new_task]

    def refresh(self, config: Config | None = None) -> None:
        config = config or self.ctx.core.config
        self.presets.blockSignals(True)
        self.presets.clear()
        for i, (name, preset) in enumerate(config.presets.items()):
            key = f"   Ctrl+Shift+{i + 1}" if i < MAX_PRESET_SHORTCUTS else ""
            self.presets.addItem(
                tray_icon(preset_tier(config, preset)), preset_line(config, preset) + key, name
            )
            self.presets.setItemData(i, preset_details(config, preset), Qt.ItemDataRole.ToolTipRole)
        self.presets.setCurrentIndex(self.presets.findData(config.active))
        self.presets.setToolTip(
            self.presets.itemData(self.presets.currentIndex(), Qt.ItemDataRole.ToolTipRole) or ""
        )
        self.presets.blockSignals(False)
        self.show_paused(self.ctx.paused)

    def show_paused(self, paused: bool) -> None:
        self.pause.blockSignals(True)
        self.pause.setChecked(paused)
        self.pause.setEnabled(self.ctx.proxy is not None)
        self.pause.blockSignals(False)

    def _picked(self, index: int) -> None:
        name = self.presets.itemData(index)
        if name and name != self.ctx.core.config.active:
            self.presetChosen.emit(name)

    def _shortcut(self, n: int) -> None:
        if n < self.presets.count():
            self.presets.setCurrentIndex(n)
            self._picked(n)

    def current(self) -> str:
        return str(self.presets.currentData() or "")

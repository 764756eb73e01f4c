"""Settings: the proxy's port and token, where the log lives and what it keeps, and how the app starts.

Every control applies as soon as it changes (saved to the config off the GUI thread); the line at the
bottom says what happened and when it takes effect.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QHideEvent, QPalette, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core import autostart
from app.core.config import Config
from app.core.envexport import AGENTS, FORMATS
from app.core.secrets import rotate_token
from app.core.storage.db import sqlite_path
from app.core.ui_prefs import THEMES, pref, with_prefs
from app.proxy.guard import describe_refusals
from app.ui import dialogs
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.pages import MessageLine, buddy_label, heading
from app.ui.pages.export import AGENT_LABELS, FORMAT_LABELS

THEME_LABELS = {"system": "Follow the system", "light": "Light", "dark": "Dark"}


def _muted(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


class SettingsPage(QWidget):
    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.token: str | None = None
        outer = QVBoxLayout(self)
        outer.addWidget(heading("Settings"))
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        host = QWidget()
        layout = QVBoxLayout(host)
        layout.setContentsMargins(0, 0, 4, 0)
        layout.addWidget(self._proxy_box())
        layout.addWidget(self._storage_box())
        layout.addWidget(self._desktop_box())
        layout.addStretch(1)
        scroll.setWidget(host)
        outer.addWidget(scroll, 1)
        self.message = MessageLine()
        outer.addWidget(self.message)
        self.load(ctx.core.config)
        self.at_login.setChecked(autostart.is_enabled())  # the file is the setting, not the config
        ctx.bridge.configChanged.connect(self.load)
        ctx.bridge.tokenChanged.connect(self.load_token)
        ctx.bridge.proxyChanged.connect(lambda: self.load(ctx.core.config))
        self.load_token()

    # ------------------------------------------------------------------------------------------- build

    def _proxy_box(self) -> QGroupBox:
        box = QGroupBox("Proxy")
        form = QFormLayout(box)
        self.port = QSpinBox()
        self.port.setRange(0, 65535)
        self.port.setSpecialValueText("any free port")
        self.port.setAccessibleName("Port")
        apply_port = QPushButton("Apply")
        apply_port.clicked.connect(self.save_port)
        row = QHBoxLayout()
        row.addWidget(self.port)
        row.addWidget(apply_port)
        row.addStretch(1)
        form.addRow(buddy_label("&Port:", self.port), row)
        self.listening = _muted("")
        form.addRow("", self.listening)
        self.token_field = QLineEdit()
        self.token_field.setReadOnly(True)
        self.token_field.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_field.setAccessibleName("Local token")
        self.show_token = QCheckBox("Sho&w")
        self.show_token.toggled.connect(
            lambda on: self.token_field.setEchoMode(
                QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.Password
            )
        )
        copy = QPushButton("Copy")
        copy.clicked.connect(self.copy_token)
        self.rotate_button = QPushButton("&Rotate…")
        self.rotate_button.clicked.connect(self.rotate)
        row = QHBoxLayout()
        row.addWidget(self.token_field, 1)
        row.addWidget(self.show_token)
        row.addWidget(copy)
        row.addWidget(self.rotate_button)
        form.addRow(buddy_label("&Token:", self.token_field), row)
        note = "Agents present this token to the proxy. Rotating it locks out every agent still using the old one."
        if os.environ.get("DOWNSHIFT_TOKEN"):
            note = "The token comes from $DOWNSHIFT_TOKEN; change it there (rotation is off)."
            self.rotate_button.setEnabled(False)
        form.addRow("", _muted(note))
        self.refused = _muted("")
        self.refused.setAccessibleName("Refused requests")
        form.addRow("Refused:", self.refused)
        # a dict read every 2 s while the page is shown (the count lives in the proxy's memory); a hidden
        # page does not poll (see showEvent/hideEvent)
        self._refused_timer = QTimer(self, interval=2000)
        self._refused_timer.timeout.connect(self.load_refusals)
        return box

    def _storage_box(self) -> QGroupBox:
        box = QGroupBox("Call log and keys")
        form = QFormLayout(box)
        self.database = QLabel()
        self.database.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.database.setWordWrap(True)
        change = QPushButton("Change…")
        change.clicked.connect(self.choose_database)
        self.default_db_button = QPushButton("Use default")
        self.default_db_button.clicked.connect(lambda: self.save_prefs("Database location", database=""))
        row = QHBoxLayout()
        row.addWidget(self.database, 1)
        row.addWidget(change)
        row.addWidget(self.default_db_button)
        form.addRow("Database:", row)
        self.database_next = _muted("")
        form.addRow("", self.database_next)
        self.store_bodies = QCheckBox("Store request and response bodies (for debugging; uses disk space)")
        self.store_bodies.clicked.connect(
            lambda on: self.save_config("Body logging", lambda c: replace(c, store_bodies=bool(on)))
        )
        form.addRow("Bodies:", self.store_bodies)
        self.retention = QSpinBox()
        self.retention.setRange(1, 3650)
        self.retention.setSuffix(" days")
        self.retention.setMaximumWidth(self.port.sizeHint().width() + 30)
        self.retention.editingFinished.connect(self.save_retention)
        form.addRow("Keep calls for:", self.retention)
        keys = _muted(self.ctx.core.secrets.describe())
        keys.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Keys are kept in:", keys)
        return box

    def _desktop_box(self) -> QGroupBox:
        box = QGroupBox("Desktop")
        form = QFormLayout(box)
        self.at_login = QCheckBox("Start Downshift when I log in")
        self.at_login.clicked.connect(self.set_autostart)
        if not autostart.supported():
            self.at_login.setEnabled(False)
            self.at_login.setToolTip("Not supported on this system yet")
        self.minimised = QCheckBox("Start in the tray, without the window")
        self.minimised.clicked.connect(lambda on: self.save_prefs("Start minimised", start_minimised=on))
        form.addRow("Start:", self.at_login)
        form.addRow("", self.minimised)
        self.theme = QComboBox()
        for theme in THEMES:
            self.theme.addItem(THEME_LABELS[theme], theme)
        self.theme.activated.connect(lambda _: self.save_prefs("Theme", theme=self.theme.currentData()))
        row = QHBoxLayout()
        row.addWidget(self.theme)
        row.addStretch(1)
        form.addRow(buddy_label("T&heme:", self.theme), row)
        self.agent = QComboBox()
        for agent in AGENTS:
            self.agent.addItem(AGENT_LABELS.get(agent, agent), agent)
        self.agent.activated.connect(lambda _: self.save_prefs("Tray agent", agent=self.agent.currentData()))
        self.shell = QComboBox()
        for fmt in FORMATS:
            self.shell.addItem(FORMAT_LABELS.get(fmt, fmt), fmt)
        self.shell.activated.connect(lambda _: self.save_prefs("Tray shell", shell=self.shell.currentData()))
        row = QHBoxLayout()
        row.addWidget(self.agent)
        row.addWidget(QLabel("in"))
        row.addWidget(self.shell)
        row.addStretch(1)
        form.addRow("Tray copies env for:", row)
        return box

    # ------------------------------------------------------------------------------------------- state

    def load(self, config: Config) -> None:
        proxy = self.ctx.proxy
        self.port.setValue(config.port)
        if proxy is not None and proxy.port is not None and proxy.port != config.port and config.port != 0:
            self.listening.setText(
                f"Listening on {self.ctx.base_url} now; port {config.port} is used from the next start."
            )
        elif proxy is not None:
            self.listening.setText(f"Listening on {self.ctx.base_url}.")
        else:
            self.listening.setText("The proxy is not running in this window.")
        self.load_refusals()
        self.database.setText(self.current_database())
        chosen = pref(config, "database")
        if chosen and Path(chosen).expanduser() != Path(self.current_database()):
            self.database_next.setText(f"From the next start: {chosen}")
        else:
            self.database_next.setText("Changing the location takes effect when Downshift restarts.")
        self.default_db_button.setEnabled(bool(chosen))
        self.store_bodies.setChecked(config.store_bodies)
        self.retention.setValue(config.retention_days)
        self.minimised.setChecked(pref(config, "start_minimised"))
        for combo, key in ((self.theme, "theme"), (self.agent, "agent"), (self.shell, "shell")):
            combo.setCurrentIndex(max(combo.findData(pref(config, key)), 0))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.load_refusals()
        self._refused_timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        self._refused_timer.stop()
        super().hideEvent(event)

    def load_refusals(self) -> None:
        proxy = self.ctx.proxy
        if proxy is None:
            self.refused.setText("The proxy is not running in this window.")
            return
        snapshot = proxy.server.refusals.snapshot()
        text = describe_refusals(snapshot).capitalize() + " since the proxy started"
        if snapshot["total"]:
            text += ": programs without the token or web pages tried the proxy. They are counted here, not logged as calls"
        self.refused.setText(text + ".")

    def current_database(self) -> str:
        path = sqlite_path(self.ctx.core.db_url)
        from app.core.storage.dialect import display_url

        return str(path) if path else display_url(self.ctx.core.db_url)

    def load_token(self) -> None:
        self.token_field.setText("")
        self.token_field.setPlaceholderText("reading…")
        self.ctx.background.run(
            self.ctx.token,
            self._token_loaded,
            lambda exc: self.message.error(plain_error("The local token cannot be read", exc)),
        )

    def _token_loaded(self, token: str) -> None:
        self.token = token
        self.token_field.setText(token)

    # ------------------------------------------------------------------------------------------- actions

    def save_config(self, what: str, change: Callable[[Config], Config]) -> None:
        self.message.clear()
        self.ctx.update_config(
            change,
            lambda _: self.message.ok(f"{what}: saved."),
            lambda exc: self.message.error(plain_error(f"{what} not saved", exc)),
        )

    def save_prefs(self, what: str, **changes: str | bool) -> None:
        note = " It takes effect when Downshift restarts." if "database" in changes else ""
        self.message.clear()
        self.ctx.update_config(
            lambda c: with_prefs(c, **changes),
            lambda _: self.message.ok(f"{what}: saved.{note}"),
            lambda exc: self.message.error(plain_error(f"{what} not saved", exc)),
        )

    def save_port(self) -> None:
        """Save the port and move the running proxy to it at once (calls in flight finish on the old one),
        so `downshift env` and the Export page never point agents at a port nobody listens on."""
        port, previous = self.port.value(), self.ctx.core.config.port
        if port == previous and (self.ctx.proxy is None or port in (0, self.ctx.proxy.port)):
            return
        self.message.clear()
        if self.ctx.proxy is None:
            self.ctx.update_config(
                lambda c: replace(c, port=port),
                lambda _: self.message.ok(f"Port {port or 'any free port'} saved."),
                lambda exc: self.message.error(plain_error("Port not saved", exc)),
            )
            return

        def moved(proxy: object) -> None:
            self.load(self.ctx.core.config)
            self.message.ok(
                f"The proxy now listens on {self.ctx.base_url}; calls in flight finished on the old "
                "port. Agents started with the old env need it again: a new shell with "
                'eval "$(downshift env)" picks up the new port.'
            )

        def not_moved(exc: Exception) -> None:
            self.ctx.update_config(lambda c: replace(c, port=previous))
            self.message.error(
                plain_error(f"The proxy cannot listen on port {port or 'any free port'}", exc)
                + f" It keeps serving on {self.ctx.base_url}."
            )

        self.ctx.update_config(
            lambda c: replace(c, port=port),
            lambda _: self.ctx.restart_proxy(moved, not_moved),
            lambda exc: self.message.error(plain_error("Port not saved", exc)),
        )

    # the main window's unsaved-changes guard (see MainWindow.confirm_leave): the port waits for Apply
    def has_unsaved_changes(self) -> bool:
        return self.port.value() != self.ctx.core.config.port

    def unsaved_what(self) -> str:
        return f"The port ({self.port.value() or 'any free port'})"

    def save_changes(self) -> None:
        self.save_port()

    def discard_changes(self) -> None:
        self.port.setValue(self.ctx.core.config.port)

    def save_retention(self) -> None:
        if self.retention.value() != self.ctx.core.config.retention_days:
            days = self.retention.value()
            self.save_config("Retention", lambda c: replace(c, retention_days=days))

    def copy_token(self) -> None:
        if self.token:
            QGuiApplication.clipboard().setText(self.token)
            self.message.ok("Token copied.")

    def rotate(self) -> None:
        if not dialogs.confirm(
            self,
            "Rotate the token?",
            "Make a new local token now?",
            "Rotate",
            "Agents using the old token get 401 errors until they use the new env "
            "(copy it from the Export page or the tray).",
        ):
            return
        secrets = self.ctx.core.secrets
        self.rotate_button.setEnabled(False)
        self.ctx.write(lambda: rotate_token(secrets), self._rotated, self._rotate_failed)

    def _rotated(self, _token: str) -> None:
        if self.ctx.proxy is not None:
            self.ctx.proxy.server.reset_token()
        self.rotate_button.setEnabled(True)
        self.ctx.bridge.tokenChanged.emit()
        self.message.ok("New token in use. Copy the env again for your agents.")

    def _rotate_failed(self, exc: Exception) -> None:
        self.rotate_button.setEnabled(True)
        self.message.error(plain_error("Token not rotated", exc))

    def choose_database(self) -> None:
        start = Path(self.current_database())
        path = dialogs.save_file(self, "Database location", "SQLite database (*.db);;All files (*)", start)
        if path is not None:
            self.save_prefs("Database location", database=str(path))

    def set_autostart(self, on: bool) -> None:
        self.message.clear()

        def done(_: object) -> None:
            self.at_login.setChecked(autostart.is_enabled())
            self.message.ok("Downshift starts when you log in." if on else "Start at login is off.")

        self.ctx.write(lambda: autostart.set_enabled(on), done, self._autostart_failed)

    def _autostart_failed(self, exc: Exception) -> None:
        self.at_login.setChecked(autostart.is_enabled())
        self.message.error(plain_error("Start at login not changed", exc))

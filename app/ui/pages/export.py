"""Export: the exact env lines that point an agent at Downshift, copied with one click.

The "direct to provider" variant skips the proxy (nothing logged, priced or routed) and carries the
real provider key, so the key is masked on screen and copying it asks first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QGuiApplication, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.core.config import Config
from app.core.connect import CONNECTABLE, Connected, connect, disconnect, is_connected, rc_line
from app.core.direct_env import DirectEnvError, direct_export_text, mask_key
from app.core.envexport import AGENTS, FORMATS, export_text
from app.core.ui_prefs import pref
from app.ui import dialogs
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.pages import MessageLine, heading

AGENT_LABELS = {
    "claude-code": "Claude Code",
    "codex": "Codex CLI",
    "aider": "aider",
    "opencode": "OpenCode",
    "qwen-code": "Qwen Code",
    "cline": "Cline CLI",
    "continue": "Continue CLI (cn)",
    "gemini": "Gemini CLI",
    "generic": "Any OpenAI / Anthropic client",
}
FORMAT_LABELS = {
    "bash": "bash / zsh",
    "fish": "fish",
    "powershell": "PowerShell",
    "dotenv": ".env file",
    "json": "JSON",
}


def _tilde(path: Path) -> str:
    """A path under the home folder written as ~/…, as people read it."""
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


class ExportPage(QWidget):
    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.token: str | None = None
        self.token_error: str | None = None
        self.keys: dict[str, str | None] = {}
        layout = QVBoxLayout(self)
        layout.addWidget(
            heading(
                "Export",
                "Point a coding agent at Downshift: connect it in one click, or paste "
                "these lines into the shell (or file) the agent starts from.",
            )
        )
        layout.addWidget(self._connect_box())
        form = QFormLayout()
        self.agent = QComboBox()
        for agent in AGENTS:
            self.agent.addItem(AGENT_LABELS.get(agent, agent), agent)
        self.shell = QComboBox()
        for fmt in FORMATS:
            self.shell.addItem(FORMAT_LABELS.get(fmt, fmt), fmt)
        form.addRow("&Agent:", self.agent)
        form.addRow("&Shell:", self.shell)
        self.via_proxy = QRadioButton("Through &Downshift: logged, priced, routed by the active preset")
        self.direct = QRadioButton("Di&rect to a provider: no proxy, no logging")
        self.mode = QButtonGroup(self)
        self.mode.addButton(self.via_proxy)
        self.mode.addButton(self.direct)
        self.via_proxy.setChecked(True)
        self.provider = QComboBox()
        self.provider.setAccessibleName("Provider for the direct variant")
        direct_row = QHBoxLayout()
        direct_row.addWidget(self.direct)
        direct_row.addWidget(self.provider, 1)
        form.addRow("Route:", self.via_proxy)
        form.addRow("", direct_row)
        layout.addLayout(form)
        self.warning = MessageLine()
        layout.addWidget(self.warning)
        self.snippet = QPlainTextEdit()
        self.snippet.setReadOnly(True)
        self.snippet.setObjectName("snippet")
        self.snippet.setAccessibleName("Env snippet")
        self.snippet.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.snippet.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        lines = 4  # grows with the window; a short window (900x600) still shows the buttons below it
        self.snippet.setMinimumHeight(self.snippet.fontMetrics().lineSpacing() * lines + 12)
        layout.addWidget(self.snippet, 1)
        buttons = QHBoxLayout()
        self.copy_button = QPushButton("&Copy to clipboard")
        self.copy_button.setShortcut(QKeySequence("Ctrl+Shift+C"))
        self.copy_button.setToolTip("Copy the snippet (Ctrl+Shift+C)")
        self.copy_button.clicked.connect(self.copy)
        buttons.addWidget(self.copy_button)
        self.result = MessageLine()
        buttons.addWidget(self.result, 1)
        buttons.addStretch(0)  # keeps the button its natural size while no result is shown
        layout.addLayout(buttons)

        config = ctx.core.config
        self.agent.setCurrentIndex(max(self.agent.findData(pref(config, "agent")), 0))
        self.shell.setCurrentIndex(max(self.shell.findData(pref(config, "shell")), 0))
        self._fill_providers(config)
        for combo in (self.agent, self.shell, self.provider):
            combo.currentIndexChanged.connect(self.show_snippet)
        self.shell.currentIndexChanged.connect(lambda _: self._show_connections())
        self.mode.buttonToggled.connect(lambda *_: self.show_snippet())
        ctx.bridge.configChanged.connect(self._config_changed)
        ctx.bridge.tokenChanged.connect(self.load_token)
        self.load_token()

    # ------------------------------------------------------------------------------------------- connect

    def _connect_box(self) -> QGroupBox:
        """A button per agent that writes Downshift into the agent's own settings file (app.core.connect)."""
        box = QGroupBox("Connect an agent: written into its own settings, backed up, undone with Disconnect")
        grid = QGridLayout(box)
        self.connect_buttons: dict[str, QPushButton] = {}
        self.connect_status: dict[str, QLabel] = {}
        for row, (agent, spec) in enumerate(CONNECTABLE.items()):
            button = QPushButton()
            button.setObjectName(f"connect-{agent}")
            button.clicked.connect(lambda _=False, a=agent: self.toggle_connection(a))
            status = QLabel()
            status.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(QLabel(spec.label), row, 0)
            grid.addWidget(button, row, 1)
            grid.addWidget(status, row, 2)
            self.connect_buttons[agent], self.connect_status[agent] = button, status
        grid.setColumnStretch(2, 1)
        rc_row = QHBoxLayout()
        self.rc_line = QLineEdit()
        self.rc_line.setReadOnly(True)
        self.rc_line.setAccessibleName("Line for the shell's rc file")
        self.rc_line.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        copy_rc = QPushButton("Copy line")
        copy_rc.clicked.connect(self._copy_rc_line)
        rc_row.addWidget(QLabel("Shell rc line:"))
        rc_row.addWidget(self.rc_line, 1)
        rc_row.addWidget(copy_rc)
        grid.addLayout(rc_row, len(CONNECTABLE), 0, 1, 3)
        note = QLabel(
            "No token goes into the agent's file: the agent reads it from the environment, which this "
            "line sets in every new shell, so a token rotation or a port change never breaks it."
        )
        note.setWordWrap(True)
        note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        grid.addWidget(note, len(CONNECTABLE) + 1, 0, 1, 3)
        self.connect_message = MessageLine()
        grid.addWidget(self.connect_message, len(CONNECTABLE) + 2, 0, 1, 3)
        self._show_connections()
        return box

    def _copy_rc_line(self) -> None:
        QGuiApplication.clipboard().setText(self.rc_line.text())
        self.connect_message.ok("Copied: add it to your shell's rc file.")

    def _rc_shell(self) -> str:
        shell = self.shell.currentData() if hasattr(self, "shell") else "bash"
        return shell if shell in ("fish", "powershell") else "bash"

    def _show_connections(self, focus: str | None = None) -> None:
        state = {agent: is_connected(agent) for agent in self.connect_buttons}  # one small file read each
        for agent, button in self.connect_buttons.items():
            connected = state[agent]
            button.setText("Disconnect" if connected else "Connect")
            button.setToolTip(
                "Put back the settings this agent had before"
                if connected
                else f"Write Downshift into {CONNECTABLE[agent].file()}"
            )
            self.connect_status[agent].setText(
                f"connected: {_tilde(CONNECTABLE[agent].file())}" if connected else "not connected"
            )
        agent = focus or next((a for a, connected in state.items() if connected), "claude-code")
        self.rc_line.setText(rc_line(agent, self._rc_shell()))

    def toggle_connection(self, agent: str) -> None:
        """Connect or disconnect `agent`, off the GUI thread (it writes the agent's file)."""
        base, shell, label = self.ctx.base_url, self._rc_shell(), CONNECTABLE[agent].label
        self.connect_buttons[agent].setEnabled(False)
        self.connect_message.clear()
        if is_connected(agent):
            job: Callable[[], Any] = lambda: disconnect(agent)  # noqa: E731
        else:
            job = lambda: connect(agent, base, shell)  # noqa: E731

        def done(result: Any) -> None:
            self.connect_buttons[agent].setEnabled(True)
            self._show_connections(agent)
            if isinstance(result, Connected):
                backup = f" (old file kept as {result.backup.name})" if result.backup else ""
                self.connect_message.ok(
                    f"{label} connected{backup}. Add the rc line above to your shell: it sets "
                    f"${result.token_var}."
                )
            else:
                self.connect_message.ok(f"{label} disconnected: {_tilde(result)} is as it was.")

        def failed(exc: Exception) -> None:
            self.connect_buttons[agent].setEnabled(True)
            self.connect_message.error(plain_error(f"{label} not changed", exc))

        self.ctx.write(job, done, failed)

    # ------------------------------------------------------------------------------------------- data

    def load_token(self) -> None:
        self.token = self.token_error = None
        self.show_snippet()
        self.ctx.background.run(self.ctx.token, self._token_loaded, self._token_failed)

    def _token_loaded(self, token: str) -> None:
        self.token = token
        self.show_snippet()

    def _token_failed(self, exc: Exception) -> None:
        self.token_error = plain_error("The local token cannot be read", exc)
        self.show_snippet()

    def _fill_providers(self, config: Config) -> None:
        current = self.provider.currentData()
        self.provider.blockSignals(True)
        self.provider.clear()
        for name, p in config.providers.items():
            self.provider.addItem(f"{name}  ({p.base_url})", name)
        self.provider.setCurrentIndex(max(self.provider.findData(current), 0))
        self.provider.blockSignals(False)

    def _config_changed(self, config: Config) -> None:
        self._fill_providers(config)
        self.keys.clear()  # a provider may have been edited
        self.show_snippet()

    def _load_key(self, name: str) -> None:
        core = self.ctx.core  # the job must not hold the page: see DownshiftApp.copy_env
        self.ctx.background.run(
            lambda: core.provider_key(name),
            lambda key: self._key_loaded(name, key),
            lambda exc: self.warning.error(plain_error(f"The key for {name} cannot be read", exc)),
        )

    def _key_loaded(self, name: str, key: str | None) -> None:
        self.keys[name] = key
        self.show_snippet()

    # ------------------------------------------------------------------------------------------- text

    def snippet_text(self, *, reveal: bool) -> str | None:
        """The snippet for the current choices; None while a secret is still being read or is missing."""
        agent, fmt = self.agent.currentData(), self.shell.currentData()
        if not self.direct.isChecked():
            if self.token is None:
                return None
            # on screen the token is masked, as on the Settings page; Copy puts the real one on the clipboard
            return export_text(agent, fmt, self.ctx.base_url, self.token if reveal else mask_key(self.token))
        name = self.provider.currentData()
        provider = self.ctx.core.config.providers.get(name)
        if provider is None or self.keys.get(name) is None:
            return None
        key = self.keys[name] or ""
        return direct_export_text(
            agent, fmt, provider, key if reveal else mask_key(key), self.ctx.core.config.active_preset
        )

    def show_snippet(self) -> None:
        self.result.clear()
        self.provider.setEnabled(self.direct.isChecked())
        self.copy_button.setEnabled(False)
        if not self.direct.isChecked():
            if self.token_error:
                self.warning.error(self.token_error)
            else:
                self.warning.clear()
            text = self.snippet_text(reveal=False)
            self.snippet.setPlainText(text or ("" if self.token_error else "Reading the local token…"))
            self.copy_button.setEnabled(text is not None)
            return
        name = self.provider.currentData()
        if name is None:
            self.warning.info("Add a provider on the Providers page first.")
            self.snippet.clear()
            return
        if name not in self.keys:
            self.snippet.setPlainText(f"Reading the key for {name}…")
            self._load_key(name)
            return
        if self.keys[name] is None:
            self.warning.error(f"No key is stored for {name}; add one on the Providers page.")
            self.snippet.clear()
            return
        self.warning.error(
            f"This variant puts your real {name} API key in the snippet. Calls made with it bypass "
            "Downshift: no logging, no cost tracking, no fallback."
        )
        try:
            text = self.snippet_text(reveal=False)
        except DirectEnvError as exc:
            self.warning.error(plain_error("", exc))
            self.snippet.clear()
            return
        self.snippet.setPlainText(text or "")
        self.copy_button.setEnabled(text is not None)

    def copy(self) -> None:
        direct = self.direct.isChecked()
        if direct and not dialogs.confirm(
            self,
            "Copy the real provider key?",
            f"The snippet contains your real {self.provider.currentData()} API key.",
            "Copy with key",
            "Anything you paste it into can spend on your account, and calls made with it bypass Downshift "
            "(no logging, no cost tracking, no fallback). The Downshift variant needs no real key.",
        ):
            self.result.info("Not copied.")
            return
        try:
            text = self.snippet_text(reveal=True)
        except DirectEnvError as exc:
            self.warning.error(plain_error("", exc))
            return
        if text is None:
            return
        QGuiApplication.clipboard().setText(text)
        lines = text.count("\n")
        self.result.ok(
            f"Copied {lines} line{'s' if lines != 1 else ''}" + (" with the real key." if direct else ".")
        )

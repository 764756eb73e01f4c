"""Standard dialogs, in one place so every question and error looks the same and tests can answer them.

Questions (`confirm`, `ask_text`, `ask_port`, file pickers) are modal and return the answer; tests
replace these functions with monkeypatch. Errors and notes open window-modal and return at once, so
nothing waits on them.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)


def _box(
    parent: QWidget | None, icon: QMessageBox.Icon, title: str, text: str, detail: str = ""
) -> QMessageBox:
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    if detail:
        box.setInformativeText(detail)
    return box


def error(parent: QWidget | None, title: str, text: str, detail: str = "") -> QMessageBox:
    """Show an error without blocking the caller; returns the box (tests read and close it)."""
    box = _box(parent, QMessageBox.Icon.Warning, title, text, detail)
    box.open()
    return box


def info(parent: QWidget | None, title: str, text: str, detail: str = "") -> QMessageBox:
    box = _box(parent, QMessageBox.Icon.Information, title, text, detail)
    box.open()
    return box


def fatal(title: str, text: str, detail: str = "") -> None:
    """At start-up, before there is a window: wait for the user to read it."""
    box = _box(None, QMessageBox.Icon.Critical, title, text, detail)
    box.exec()


def confirm(parent: QWidget | None, title: str, text: str, ok_text: str, detail: str = "") -> bool:
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, parent)
    if detail:
        box.setInformativeText(detail)
    ok = box.addButton(ok_text, QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is ok


def choose(parent: QWidget | None, title: str, text: str, options: list[str], detail: str = "") -> int | None:
    """A question with several answers (plus Cancel): the index of the one picked, None for Cancel/Esc.
    The first option is the default."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, parent)
    if detail:
        box.setInformativeText(detail)
    buttons = [box.addButton(option, QMessageBox.ButtonRole.AcceptRole) for option in options]
    box.setDefaultButton(buttons[0])
    box.setEscapeButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    clicked = box.clickedButton()
    return next((i for i, b in enumerate(buttons) if b is clicked), None)


def ask_text(parent: QWidget | None, title: str, label: str, text: str = "") -> str | None:
    value, ok = QInputDialog.getText(parent, title, label, QLineEdit.EchoMode.Normal, text)
    return value.strip() if ok and value.strip() else None


def open_file(parent: QWidget | None, title: str, filters: str, start: Path | None = None) -> Path | None:
    name, _ = QFileDialog.getOpenFileName(parent, title, str(start or Path.home()), filters)
    return Path(name) if name else None


def save_file(parent: QWidget | None, title: str, filters: str, start: Path | None = None) -> Path | None:
    name, _ = QFileDialog.getSaveFileName(parent, title, str(start or Path.home()), filters)
    return Path(name) if name else None


class PortTakenDialog(QDialog):
    """The configured port is busy: say so, and offer a free one (editable) to use and save."""

    def __init__(
        self, host: str, port: int, suggestion: int, reason: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Downshift: port in use")
        layout = QVBoxLayout(self)
        text = QLabel(
            f"<b>Downshift cannot listen on {host}:{port}.</b><br>{reason}<br><br>"
            "Another program (or a headless <code>downshift serve</code>) is probably using it. "
            "Downshift can use another port instead and save it in the config. Agents set up for the old "
            "port need the new env from the Export page."
        )
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(text)
        form = QFormLayout()
        self.port = QSpinBox()
        self.port.setRange(1024, 65535)
        self.port.setValue(suggestion)
        form.addRow("Use &port:", self.port)
        layout.addLayout(form)
        buttons = QDialogButtonBox()
        buttons.addButton("Use this port", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton("Quit", QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.setMinimumWidth(460)


def ask_port(host: str, port: int, suggestion: int, reason: str) -> int | None:
    dialog = PortTakenDialog(host, port, suggestion, reason)
    return dialog.port.value() if dialog.exec() == QDialog.DialogCode.Accepted else None

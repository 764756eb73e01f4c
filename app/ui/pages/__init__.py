"""The main window's pages, plus the few widgets they share (a page heading, an inline message line).

Every page is a QWidget built as `Page(ctx: UiContext, parent=None)`. Colours come from the palette and
icons from the style, so pages follow the system's light or dark theme.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QStyle, QVBoxLayout, QWidget


def money(usd: float | None) -> str:
    """Dollars as people read them: cents normally, more digits for the sub-cent sums cheap models cost."""
    if usd is None:
        return "–"
    if usd == 0:
        return "$0.00"
    if abs(usd) < 0.0001:
        return "< $0.0001"
    if abs(usd) < 0.01:
        return f"${usd:.4f}"
    return f"${usd:,.2f}"


def buddy_label(text: str, widget: QWidget) -> QLabel:
    """A form label whose &-mnemonic focuses `widget` (QFormLayout only does that for plain widgets)."""
    label = QLabel(text)
    label.setBuddy(widget)
    return label


def heading(text: str, subtitle: str = "") -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 4)
    layout.setSpacing(2)
    title = QLabel(text)
    font = title.font()
    font.setPointSizeF(font.pointSizeF() * 1.35)
    font.setBold(True)
    title.setFont(font)
    layout.addWidget(title)
    if subtitle:
        sub = QLabel(subtitle)
        sub.setWordWrap(True)
        sub.setForegroundRole(QPalette.ColorRole.PlaceholderText)  # muted, in light and dark themes alike
        layout.addWidget(sub)
    return box


class MessageLine(QWidget):
    """One line of feedback under a form: a standard icon and wrapped, selectable text."""

    _ICONS = {
        "ok": QStyle.StandardPixmap.SP_DialogApplyButton,
        "error": QStyle.StandardPixmap.SP_MessageBoxWarning,
        "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.icon = QLabel()
        self.icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.icon)
        layout.addWidget(self.label, 1)
        self.kind = ""
        self.hide()

    def show_message(self, kind: str, text: str) -> None:
        self.kind = kind
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        self.icon.setPixmap(self.style().standardIcon(self._ICONS[kind]).pixmap(size, size))
        self.label.setText(text)
        self.show()

    def ok(self, text: str) -> None:
        self.show_message("ok", text)

    def error(self, text: str) -> None:
        self.show_message("error", text)

    def info(self, text: str) -> None:
        self.show_message("info", text)

    def clear(self) -> None:
        self.kind = ""
        self.label.clear()
        self.hide()

    def text(self) -> str:
        return self.label.text()


class EmptyState(QWidget):
    """What to do next when a page has nothing to show yet: a sentence and the button that does it."""

    def __init__(self, text: str, button_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        icon = QLabel()
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        icon.setPixmap(
            self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation).pixmap(size, size)
        )
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.button = QPushButton(button_text)
        layout.addWidget(icon)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        self.hide()

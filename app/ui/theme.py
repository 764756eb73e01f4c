"""Light and dark: follow the desktop, or force one.

Qt 6.8+ asks the platform theme for a colour scheme, but on X11 without a platform theme (a bare X
server, many window managers) nobody answers and the palette stays as it was, so "Dark" would say
"saved" and change nothing. Then the app switches to the Fusion style with a palette of its own, and
"Follow the system" puts back the style and palette it started with.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

_SCHEMES = {"system": Qt.ColorScheme.Unknown, "light": Qt.ColorScheme.Light, "dark": Qt.ColorScheme.Dark}
_DARK = {
    QPalette.ColorRole.Window: "#2b2d31",
    QPalette.ColorRole.WindowText: "#e6e6e6",
    QPalette.ColorRole.Base: "#1f2023",
    QPalette.ColorRole.AlternateBase: "#2a2c30",
    QPalette.ColorRole.Text: "#e6e6e6",
    QPalette.ColorRole.Button: "#35373c",
    QPalette.ColorRole.ButtonText: "#e6e6e6",
    QPalette.ColorRole.BrightText: "#ffffff",
    QPalette.ColorRole.Highlight: "#3d7bd9",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.PlaceholderText: "#9a9ca3",
    QPalette.ColorRole.Link: "#7fb2ff",
    QPalette.ColorRole.LinkVisited: "#b99cff",
    QPalette.ColorRole.ToolTipBase: "#35373c",
    QPalette.ColorRole.ToolTipText: "#e6e6e6",
    QPalette.ColorRole.Light: "#45474d",
    QPalette.ColorRole.Midlight: "#3a3c41",
    QPalette.ColorRole.Mid: "#25262a",
    QPalette.ColorRole.Dark: "#18191b",
    QPalette.ColorRole.Shadow: "#000000",
}
_DISABLED = "#7a7c82"

_started_with: tuple[str, QPalette] | None = None  # the style and palette before any forcing
_forced = False


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour in _DARK.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(_DISABLED))
    return palette


def is_dark(palette: QPalette) -> bool:
    return (
        palette.color(QPalette.ColorRole.Window).lightness()
        < palette.color(QPalette.ColorRole.WindowText).lightness()
    )


def apply_theme(theme: str) -> None:
    """'system' follows the desktop's light/dark setting; 'light' and 'dark' force it, through the
    platform when it can, else with Fusion and the app's own palette."""
    global _started_with, _forced
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        return
    if _started_with is None:
        _started_with = (app.style().name(), QPalette(app.palette()))
    hints = QGuiApplication.styleHints()
    if hasattr(hints, "setColorScheme"):  # Qt 6.8+
        hints.setColorScheme(_SCHEMES.get(theme, Qt.ColorScheme.Unknown))
    if theme not in ("light", "dark"):
        if _forced:
            _forced = False
            app.setStyle(_started_with[0])
            app.setPalette(_started_with[1])
        return
    want_dark = theme == "dark"
    if is_dark(app.palette()) == want_dark and not _forced:
        return  # the platform did it
    _forced = True
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if want_dark else app.style().standardPalette())

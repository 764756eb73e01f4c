"""The one place where core events (plain Python, emitted on any thread) become Qt signals.

Signals emitted from the proxy or writer threads reach slots on the GUI thread through Qt's queued
connections, so no widget is ever touched from another thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core.events import EventBus
from app.ui.errors import explain
from app.ui.qt_compat import protect_none

protect_none()  # every GUI, and every GUI test, builds a bridge first: see qt_compat


class CoreBridge(QObject):
    callsLogged = Signal(object)  # list[CallRecord], after they are in the database
    configChanged = Signal(object)  # Config
    configError = Signal(str)
    notice = Signal(str, str)  # (title, message) for tray notifications: budgets, failing providers
    pausedChanged = Signal(bool)  # the proxy was paused or resumed from the tray or the window
    proxyChanged = Signal()  # the embedded proxy was restarted (a new port): addresses shown are out of date
    tokenChanged = Signal()  # the local token was rotated: snippets showing it are out of date
    navigate = Signal(str)  # a page asks the window to show another page ("export", ...)

    def __init__(self, events: EventBus, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe: list[Callable[[], None]] = [
            events.subscribe("calls_logged", self.callsLogged.emit),
            events.subscribe("config_changed", self.configChanged.emit),
            events.subscribe("config_error", lambda exc: self.configError.emit(explain(exc).sentence(""))),
            events.subscribe("notice", self._notice),
        ]

    def _notice(self, payload: Any) -> None:
        title, message = payload if isinstance(payload, tuple) else ("Downshift", str(payload))
        self.notice.emit(title, message)

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

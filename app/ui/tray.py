"""The tray icon: which preset runs the loop (icon), what today cost (tooltip), and a menu to change it.

The menu is rebuilt from current state each time it opens, so it never shows a stale preset list.
Today's figures come from a query that runs off the GUI thread; the result is cached and refreshed when
new calls are logged, at most once a second however busy the proxy is.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from app.core.preset_tier import Tier, preset_tier
from app.core.queries import summary
from app.core.shadow_info import active_notice
from app.core.ui_prefs import pref
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.icons import app_icon, tray_icon
from app.ui.pages import money
from app.ui.throttle import SingleFlight, Throttle

log = logging.getLogger(__name__)

TIER_LABELS = {"cheap": "cheap models", "premium": "premium models", "mixed": "premium plan, cheap execution"}


def local_midnight(now: float | None = None) -> float:
    moment = datetime.fromtimestamp(time.time() if now is None else now)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


class TodayStats(QObject):
    """Today's totals (calls, cost, tool-call failure rate) from `summary`, cached and refreshed off-thread:
    at most one query a second however busy the proxy is (`Throttle`), never two at once (`SingleFlight`)."""

    changed = Signal()
    MIN_INTERVAL = 1.0  # seconds between queries while calls keep arriving

    def __init__(self, ctx: UiContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.total: dict[str, Any] | None = None
        self.error: str | None = None
        self._stopped = False
        self.flight = SingleFlight(ctx.background, self)
        self._throttle = Throttle(self._query, int(self.MIN_INTERVAL * 1000), self)
        self._clock = QTimer(self, interval=60_000)  # a new day starts at zero even when idle
        self._clock.timeout.connect(self.refresh)
        self._clock.start()
        ctx.bridge.callsLogged.connect(self.refresh)

    def refresh(self, *_: object) -> None:
        if not self._stopped:
            self._throttle()

    def _query(self) -> None:
        since, db = local_midnight(), self.ctx.core.db
        # a refresh asked for while a query runs is kept and starts when it ends: no new call is missed
        self.flight.run(
            lambda: summary(db, since=since)["total"], self._done, self._failed, queue_latest=True
        )

    def _done(self, total: dict[str, Any]) -> None:
        self.total, self.error = total, None
        self.changed.emit()

    def _failed(self, exc: Exception) -> None:
        self.error = plain_error("cannot read today's figures", exc)
        self.changed.emit()

    def stop(self) -> None:
        self._stopped = True
        self._clock.stop()
        self._throttle.cancel()

    # ------------------------------------------------------------------------------------------- words

    def spend_text(self) -> str:
        if self.error:
            return "Today: " + self.error
        if self.total is None:
            return "Today: …"
        calls = int(self.total["calls"] or 0)
        return f"Today: {money(self.total['cost_usd'])} over {calls} call{'s' if calls != 1 else ''}"

    def failure_text(self) -> str:
        if self.total is None or self.error:
            return "Tool-call failures: …"
        rate, tools = self.total.get("tool_failure_rate"), int(self.total.get("tool_calls") or 0)
        if rate is None:
            return "Tool-call failures: no tool calls yet"
        return f"Tool-call failures: {rate:.1%} of {tools}"


class Tray(QObject):
    """The tray icon and its menu. It asks the app for everything through its signals (the app connects
    them), so it holds no reference to the app or the window."""

    presetChosen = Signal(str)
    copyEnvRequested = Signal()
    newTaskRequested = Signal()
    showWindowRequested = Signal(str)  # the page to show
    toggleWindowRequested = Signal()
    quitRequested = Signal()
    statusMessage = Signal(str)  # a notice the tray cannot show as a bubble (no tray, no message support)

    def __init__(self, ctx: UiContext, stats: TodayStats, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx, self.stats = ctx, stats
        self.icon = QSystemTrayIcon(app_icon(), self)
        self.menu = QMenu()
        self.menu.setObjectName("trayMenu")
        self.menu.aboutToShow.connect(self.rebuild)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.ctx.bridge.configChanged.connect(self.refresh_icon)
        self.ctx.bridge.pausedChanged.connect(self.refresh_icon)
        self.ctx.bridge.notice.connect(self.notify)
        self.stats.changed.connect(self.refresh_tooltip)
        self.preset_actions: dict[str, QAction] = {}
        self.refresh_icon()
        self.rebuild()

    @staticmethod
    def available() -> bool:
        return QSystemTrayIcon.isSystemTrayAvailable()

    def show(self) -> None:
        if self.available():
            self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    # ------------------------------------------------------------------------------------------- state

    def tier(self) -> Tier:
        config = self.ctx.core.config
        return preset_tier(config, config.active_preset)

    def refresh_icon(self, *_: object) -> None:
        self.icon.setIcon(tray_icon(self.tier(), self.ctx.paused))
        self.refresh_tooltip()

    def tooltip(self) -> str:
        config = self.ctx.core.config
        state = "paused" if self.ctx.paused else f"on {self.ctx.base_url}"
        shadow = active_notice(config)  # a shadow run sends code to one more provider: say so while it is on
        return "\n".join(
            [
                f"Downshift: {config.active or 'no preset'} ({TIER_LABELS[self.tier()]})",
                self.stats.spend_text(),
                f"Proxy {state}",
                *([shadow] if shadow else []),
            ]
        )

    def refresh_tooltip(self) -> None:
        self.icon.setToolTip(self.tooltip())

    def notify(self, title: str, message: str) -> None:
        if self.icon.isVisible() and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(title, message, self.icon.icon(), 8000)
        else:
            self.statusMessage.emit(f"{title}: {message}")

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.toggleWindowRequested.emit()

    # ------------------------------------------------------------------------------------------- menu

    def rebuild(self) -> None:
        from app.ui.pages.export import AGENT_LABELS

        menu, config = self.menu, self.ctx.core.config
        menu.clear()
        self.preset_actions = {}
        head = menu.addAction(
            "Downshift: proxy paused" if self.ctx.paused else f"Downshift on {self.ctx.base_url}"
        )
        head.setEnabled(False)
        menu.addSection("Preset")
        group = QActionGroup(menu)
        group.setExclusive(True)
        for name, preset in config.presets.items():
            tier = preset_tier(config, preset)
            action = menu.addAction(tray_icon(tier), name)
            action.setCheckable(True)
            action.setChecked(name == config.active)
            action.setToolTip(preset.description or TIER_LABELS[tier])
            action.setActionGroup(group)
            action.triggered.connect(lambda _=False, n=name: self.presetChosen.emit(n))
            self.preset_actions[name] = action
        menu.addSeparator()
        for text in (self.stats.spend_text(), self.stats.failure_text()):
            menu.addAction(text).setEnabled(False)
        menu.addSeparator()
        agent = pref(config, "agent")
        menu.addAction(f"Copy env for {AGENT_LABELS.get(agent, agent)}", self.copyEnvRequested.emit)
        menu.addAction("New task…", self.newTaskRequested.emit)
        menu.addAction("Open dashboard", lambda: self.showWindowRequested.emit("dashboard"))
        pause = menu.addAction("Pause proxy")
        pause.setCheckable(True)
        pause.setChecked(self.ctx.paused)
        pause.toggled.connect(self.ctx.set_paused)
        menu.addSeparator()
        menu.addAction("Quit Downshift", self.quitRequested.emit)

    def action(self, text: str) -> QAction | None:
        """The menu entry whose text starts with `text` (for tests and screenshots)."""
        return next((a for a in self.menu.actions() if a.text().startswith(text)), None)

    def close(self) -> None:
        self.hide()
        self.stats.stop()
        self.menu.deleteLater()

"""The tray icon: which preset runs the loop (icon), what today cost (tooltip), and a menu to change it.

The menu is rebuilt from current state each time it opens, so it never shows a stale preset list.
Today's figures come from a query that runs off the GUI thread; the result is cached and refreshed when
new calls are logged, at most once a second however busy the proxy is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from app.core.preset_tier import preset_tier
from app.core.queries import summary
from app.core.shadow_info import active_notice
from app.core.ui_prefs import pref
from app.ui.context import UiContext
from app.ui.icons import app_icon, tray_icon
from app.ui.pages import money

if TYPE_CHECKING:
    from app.ui.application import DownshiftApp

log = logging.getLogger(__name__)

TIER_LABELS = {"cheap": "cheap models", "premium": "premium models", "mixed": "premium plan, cheap execution"}


def local_midnight(now: float | None = None) -> float:
    moment = datetime.fromtimestamp(time.time() if now is None else now)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


class TodayStats(QObject):
    """Today's totals (calls, cost, tool-call failure rate) from `summary`, cached and refreshed off-thread."""

    changed = Signal()
    MIN_INTERVAL = 1.0  # seconds between queries while calls keep arriving

    def __init__(self, ctx: UiContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.total: dict[str, Any] | None = None
        self.error: str | None = None
        self._busy = False
        self._again = False
        self._stopped = False
        self._last_start = 0.0
        self._delay = QTimer(self, singleShot=True)
        self._delay.timeout.connect(self.refresh)
        self._clock = QTimer(self, interval=60_000)  # a new day starts at zero even when idle
        self._clock.timeout.connect(self.refresh)
        self._clock.start()
        ctx.bridge.callsLogged.connect(self.refresh)

    def refresh(self, *_: object) -> None:
        if self._stopped:
            return
        if self._busy:
            self._again = True
            return
        wait = self.MIN_INTERVAL - (time.monotonic() - self._last_start)
        if wait > 0:
            if not self._delay.isActive():
                self._delay.start(int(wait * 1000) + 1)
            return
        self._busy = True
        self._last_start = time.monotonic()
        since, db = local_midnight(), self.ctx.core.db
        self.ctx.background.run(lambda: summary(db, since=since)["total"], self._done, self._failed)

    def _done(self, total: dict[str, Any]) -> None:
        self.total, self.error = total, None
        self._finish()

    def _failed(self, exc: Exception) -> None:
        self.error = f"cannot read today's figures: {exc}"
        self._finish()

    def _finish(self) -> None:
        self._busy = False
        self.changed.emit()
        if self._again:
            self._again = False
            self.refresh()

    def stop(self) -> None:
        self._stopped = True
        self._clock.stop()
        self._delay.stop()

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


def _manual_task_starter() -> Callable[[Any, str], Any] | None:
    """`(core, label) -> task`: `new_manual_task(engine, label)`, as `downshift task new` uses it."""
    from app.core.analytics.tasks import new_manual_task

    return lambda core, label: new_manual_task(core.db, label)


class Tray(QObject):
    def __init__(self, app: DownshiftApp, stats: TodayStats) -> None:
        super().__init__(app)
        self.app, self.ctx, self.stats = app, app.ctx, stats
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

    def tier(self) -> str:
        config = self.ctx.core.config
        return preset_tier(config, config.active_preset)

    def refresh_icon(self, *_: object) -> None:
        self.icon.setIcon(tray_icon(self.tier(), self.ctx.paused))  # type: ignore[arg-type]
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
            self.app.show_status(f"{title}: {message}")

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.app.toggle_window()

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
            action = menu.addAction(tray_icon(tier), name)  # type: ignore[arg-type]
            action.setCheckable(True)
            action.setChecked(name == config.active)
            action.setToolTip(preset.description or TIER_LABELS[tier])
            action.setActionGroup(group)
            action.triggered.connect(lambda _=False, n=name: self.app.activate_preset(n))
            self.preset_actions[name] = action
        menu.addSeparator()
        for text in (self.stats.spend_text(), self.stats.failure_text()):
            menu.addAction(text).setEnabled(False)
        menu.addSeparator()
        agent = pref(config, "agent")
        menu.addAction(f"Copy env for {AGENT_LABELS.get(agent, agent)}", self.app.copy_env)
        if _manual_task_starter() is not None:
            menu.addAction("New task…", self.app.new_task)
        menu.addAction("Open dashboard", lambda: self.app.show_window("dashboard"))
        pause = menu.addAction("Pause proxy")
        pause.setCheckable(True)
        pause.setChecked(self.ctx.paused)
        pause.toggled.connect(self.ctx.set_paused)
        menu.addSeparator()
        menu.addAction("Quit Downshift", self.app.request_quit)

    def action(self, text: str) -> QAction | None:
        """The menu entry whose text starts with `text` (for tests and screenshots)."""
        return next((a for a in self.menu.actions() if a.text().startswith(text)), None)

    def close(self) -> None:
        self.hide()
        self.stats.stop()
        self.menu.deleteLater()

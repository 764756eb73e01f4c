"""The running desktop app: one core, one proxy thread, the tray, the main window, and an orderly quit.

Everything here is wiring; the work happens in the core and the proxy. The window is optional at any
moment (start minimised, closed to the tray). When the desktop has no tray, closing the window asks
first: quit (agents lose their proxy) or keep serving in the background, where running `downshift`
again brings the window back (the single-instance hand-over).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QObject, QSettings, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from app.core.engine import Core
from app.core.envexport import export_text
from app.core.ui_prefs import pref
from app.ui import dialogs, startup
from app.ui.background import Background
from app.ui.bridge import CoreBridge
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.gc_main import GuiThreadCollector
from app.ui.main_window import MainWindow
from app.ui.single_instance import SingleInstance
from app.ui.theme import apply_theme
from app.ui.tray import TodayStats, Tray

if TYPE_CHECKING:  # the proxy's modules load after the window is up (see app.ui.startup)
    from app.proxy.server import ProxyThread

log = logging.getLogger(__name__)
KEYRING_NOTICE_SHOWN = "keyring_notice_shown"  # in the config's [ui] table


class DownshiftApp(QObject):
    def __init__(
        self,
        core: Core,
        proxy: ProxyThread | None,
        settings: QSettings,
        instance: SingleInstance | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.core, self.settings, self.instance = core, settings, instance
        self.collector = GuiThreadCollector(self)  # Qt objects are never destroyed on a worker thread
        bridge = CoreBridge(core.events, self)
        self.ctx = UiContext(core, proxy, bridge, Background(self))
        self.stats = TodayStats(self.ctx, self)
        self.tray = Tray(self.ctx, self.stats, self)
        self.tray.presetChosen.connect(self.activate_preset)
        self.tray.copyEnvRequested.connect(self.copy_env)
        self.tray.newTaskRequested.connect(self.new_task)
        self.tray.showWindowRequested.connect(self.show_window)
        self.tray.toggleWindowRequested.connect(self.toggle_window)
        self.tray.quitRequested.connect(self.request_quit)
        self.tray.statusMessage.connect(self.show_status)
        self.window = MainWindow(self.ctx, settings, self.request_quit)
        self.window.closed.connect(self._window_closed)
        self.window.may_close = self._may_close
        self.window.quick.presetChosen.connect(self.activate_preset)
        self.window.quick.newTaskRequested.connect(self.new_task)
        self.window.quick.copyEnvRequested.connect(self.copy_env)
        bridge.configError.connect(lambda text: bridge.notice.emit("Config not applied", text))
        bridge.configChanged.connect(lambda cfg: apply_theme(pref(cfg, "theme")))
        bridge.proxyChanged.connect(self.window.refresh_status)
        bridge.proxyChanged.connect(self.tray.refresh_icon)
        if instance is not None:
            instance.messageReceived.connect(self._message)
        self._closed = False
        self.told_about_tray = False
        self.background_mode = False  # no tray, and the user chose to keep serving with the window closed

    @property
    def proxy(self) -> ProxyThread | None:
        """The running proxy: the context holds it, as a port change restarts it in place."""
        return self.ctx.proxy

    def start(self, minimised: bool | None = None) -> None:
        """Tray and window. What can wait (today's figures, the token cache, the first-run check) runs
        right after, or, while `app.ui.startup` holds start-up, once the window has painted."""
        config = self.core.config
        apply_theme(pref(config, "theme"))
        self.tray.show()
        startup.after_start(self.stats.refresh)
        if self.proxy is not None:
            self._warm_token()
        minimised = pref(config, "start_minimised") if minimised is None else minimised
        if not minimised or not self.tray.available():
            self.show_window()
        startup.after_start(self._check_keyring)
        startup.after_start(self.window.check_health)
        startup.after_start(self._first_run)

    def _check_keyring(self) -> None:
        """Finding the keyring loads every backend (~0.1 s): done off the GUI thread, after the first frame."""
        secrets = self.core.secrets

        def found(uses_keyring: object) -> None:
            # said once (the Providers page keeps saying it); not at every start
            if not uses_keyring and not self.core.config.ui.get(KEYRING_NOTICE_SHOWN):
                self.ctx.bridge.notice.emit(
                    "No OS keyring", f"Provider keys are kept in a {secrets.describe()}"
                )
                self.ctx.update_config(lambda c: replace(c, ui={**c.ui, KEYRING_NOTICE_SHOWN: True}))

        self.ctx.background.run(lambda: secrets.uses_keyring, found, lambda exc: None)

    def attach_proxy(self, proxy: ProxyThread) -> None:
        """The proxy started after the window (see `launch.run_gui`): from now on the app drives it."""
        self.ctx.proxy = proxy
        self.window.refresh_status()
        self.tray.refresh_icon()
        self._warm_token()

    def _warm_token(self) -> None:
        self.ctx.background.run(
            self.ctx.token,
            None,
            lambda exc: self.show_status(plain_error("The local token cannot be read", exc)),
        )  # warm the cache

    def _first_run(self) -> None:
        """The first-run assistant, when the config has no usable provider yet (loaded after the first frame)."""
        from app.ui.first_run import maybe_run_first_run

        maybe_run_first_run(self.ctx, self.window if self.window.isVisible() else None)

    # ------------------------------------------------------------------------------------------- window

    def show_window(self, page: str | None = None) -> None:
        if page:
            self.window.show_page(page)
        self.window.show()
        self.window.setWindowState(self.window.windowState() & ~Qt.WindowState.WindowMinimized)
        self.window.raise_()
        self.window.activateWindow()

    def toggle_window(self) -> None:
        if self.window.isVisible() and not self.window.isMinimized():
            self.window.close()
        else:
            self.show_window()

    def _may_close(self) -> bool:
        """With no tray, closing the window would leave no visible sign the proxy runs: ask whether to
        quit (agents' next calls are refused) or keep serving in the background."""
        if self._closed or self.tray.available():
            return True
        answer = dialogs.choose(
            self.window,
            "Quit Downshift?",
            "There is no system tray here, so closing the window hides Downshift completely.",
            ["Keep running in the background", "Quit Downshift"],
            'Agents pointed at the proxy get "connection refused" once it quits. In the background the proxy '
            "keeps serving; run `downshift` again to bring this window back.",
        )
        if answer is None:
            return False
        self.background_mode = answer == 0
        return self.background_mode or self.window.confirm_leave()

    def _window_closed(self) -> None:
        if not self.tray.available():
            if not self.background_mode:
                self.quit()
            else:
                log.info(
                    "window closed; the proxy keeps serving in the background (run `downshift` to show it)"
                )
        elif not self.told_about_tray:
            self.told_about_tray = True
            self.tray.notify(
                "Downshift is still running", "The proxy keeps serving; quit from the tray menu."
            )

    def show_status(self, text: str) -> None:
        self.window.statusBar().showMessage(text, 10_000)

    def _message(self, message: str) -> None:
        if message == "show":
            self.background_mode = False
            self.show_window()

    # ------------------------------------------------------------------------------------------- actions

    def activate_preset(self, name: str) -> None:
        """Make `name` active; the proxy reads the config per request, so the next call uses it."""
        self.ctx.update_config(
            lambda c: c.with_active(name),
            None,
            self._not_switched,
        )

    def _not_switched(self, exc: Exception) -> None:
        self.window.quick.refresh()
        self.tray.notify("Preset not switched", plain_error("", exc))

    def copy_env(self) -> None:
        config = self.core.config
        agent, shell, base_url, token = (
            pref(config, "agent"),
            pref(config, "shell"),
            self.ctx.base_url,
            self.ctx.token,
        )

        def done(text: str) -> None:
            QGuiApplication.clipboard().setText(text)
            self.tray.notify("Env copied", f"Paste it into the shell that runs {agent}.")

        # jobs capture plain values only: a QObject whose last reference died with a job on a worker thread
        # would be destroyed there, timers and all
        self.ctx.background.run(
            lambda: export_text(agent, shell, base_url, token()),
            done,
            lambda exc: self.tray.notify("Env not copied", plain_error("", exc)),
        )

    def new_task(self) -> None:
        from app.core.analytics.tasks import new_manual_task

        label = dialogs.ask_text(None, "New task", "What are you working on?")
        if label is None:
            return
        db = self.core.db
        self.ctx.background.run(
            lambda: new_manual_task(db, label),
            lambda _: self.tray.notify("Task started", f"Calls from now on count towards “{label}”."),
            lambda exc: self.tray.notify("Task not started", plain_error("", exc)),
        )

    # ------------------------------------------------------------------------------------------- quit

    def request_quit(self) -> None:
        """Quit from the menu or tray: edits not yet saved are offered for saving first."""
        if self.window.confirm_leave():
            self.quit()

    def quit(self) -> None:
        self.shutdown()
        QApplication.quit()

    def shutdown(self) -> None:
        """Stop in order: window state saved, tray gone, proxy drained (in-flight calls finish or are logged
        as cancelled), queued jobs done, log flushed. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.window.isVisible():
            self.window.save_state()
        self.window.hide()
        self.tray.close()
        if self.instance is not None:
            self.instance.close()
        if self.proxy is not None:
            self.proxy.stop()
        self.ctx.wait()
        QCoreApplication.sendPostedEvents()  # results of finished jobs reach their widgets while these live
        self.ctx.bridge.close()
        self.window.deleteLater()
        self.collector.stop()  # the workers are done: automatic collection may run anywhere again

"""`downshift` with no command: check there is a display, hand over to a running instance or start one.

Every way start-up can fail ends in a sentence for the user (on stderr when there is no screen, in a
dialog otherwise) and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from app import paths
from app.core.config import Config, ConfigError
from app.core.ports import free_port
from app.ui.errors import explain, plain_error

if TYPE_CHECKING:  # Qt, the core and the proxy load only once a display is known to exist
    from PySide6.QtCore import QSettings, QTimer

    from app.core.engine import Core
    from app.proxy.server import ProxyThread

NO_DISPLAY = (
    "downshift: no display found (DISPLAY and WAYLAND_DISPLAY are unset), so the desktop app cannot "
    "start; run the proxy headless with `downshift serve`"
)

# (host, port, suggested free port, reason) -> the port to use, or None to give up
AskPort = Callable[[str, int, int, str], int | None]


def no_display(environ: dict[str, str] | None = None, platform: str | None = None) -> bool:
    """True on a Linux/BSD box with no X11 or Wayland display, unless a Qt platform is forced."""
    env = os.environ if environ is None else environ
    plat = sys.platform if platform is None else platform
    if not plat.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return False
    return not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("QT_QPA_PLATFORM"))


def port_in_use(exc: OSError) -> bool:
    return (
        exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1))
        or "address already in use" in str(exc).lower()
    )


def start_proxy(core: Core, ask_port: AskPort) -> ProxyThread | None:
    """Start the proxy on the configured port. If it is taken, offer a free one (saved to the config when
    accepted) until one works or the user gives up; returns the running ProxyThread or None."""
    from app.proxy.server import ProxyThread

    while True:
        config = core.config
        proxy = ProxyThread(core)
        try:
            return proxy.start()
        except OSError as exc:
            if not port_in_use(exc):
                raise
            chosen = ask_port(config.host, config.port, free_port(config.host), explain(exc).sentence(""))
            if chosen is None:
                return None
            core.config_store.update(with_port(chosen))


def with_port(port: int) -> Callable[[Config], Config]:
    """Only the port, applied to the config as it is when saved: a budget switch (or another window's save)
    that landed while the port question was open stays."""
    return lambda c: replace(c, port=port)


def window_settings() -> QSettings:
    """Window geometry and last page: an INI file in the config folder (QSettings, but at a known path)."""
    from PySide6.QtCore import QSettings

    return QSettings(str(paths.config_dir() / "window-state.ini"), QSettings.Format.IniFormat)


def run_gui(args: argparse.Namespace) -> int:
    """The window comes first: the core (config, keys, call log) opens, the window is built and shown,
    and the proxy starts right after its first frame (`app.ui.startup`). A port that is taken is then
    asked about over the window; giving up quits with exit code 1, as before."""
    if no_display():
        print(NO_DISPLAY, file=sys.stderr)
        return 2
    from PySide6.QtWidgets import QApplication

    from app.core.secrets import SecretStoreError
    from app.core.storage.db import DatabaseOpenError
    from app.ui import dialogs, startup
    from app.ui.icons import app_icon
    from app.ui.single_instance import SingleInstance, instance_key

    existing = QApplication.instance()
    qapp = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0]])
    qapp.setApplicationName("Downshift")
    qapp.setOrganizationName("Downshift")
    qapp.setDesktopFileName("downshift")
    qapp.setWindowIcon(app_icon())
    qapp.setQuitOnLastWindowClosed(False)

    config_path = paths.config_path(args.config)
    instance = SingleInstance(instance_key(config_path))
    if instance.hand_over("show"):
        print("downshift: already running; brought its window forward", file=sys.stderr)
        return 0
    instance.listen()

    from app.core.engine import Core

    try:
        # a team ledger (PostgreSQL), or any log with --read-only: viewed read-only, no proxy (Core.read_only)
        core = Core(config_path, args.db, read_only=True if getattr(args, "read_only", False) else None)
    except (ConfigError, DatabaseOpenError, SecretStoreError, OSError) as exc:
        dialogs.fatal("Downshift cannot start", explain(exc).sentence(""))
        instance.close()
        return 1

    from app.ui.application import DownshiftApp

    startup.hold(when_idle=startup.settle_memory)
    app = DownshiftApp(core, None, window_settings(), instance)
    begun = False

    def start_proxy_now() -> None:
        if core.read_only:  # a viewer: the proxy would have nowhere to log its calls
            startup.release()
            return
        try:
            proxy = start_proxy(core, dialogs.ask_port)
        except OSError as exc:
            config = core.config
            dialogs.fatal(
                "Downshift cannot start",
                f"The proxy cannot listen on {config.host}:{config.port}.",
                plain_error("", exc),
            )
            proxy = None
        if proxy is None:
            startup.reset()
            qapp.exit(1)
            return
        app.attach_proxy(proxy)
        startup.mark("proxy-listening")
        startup.release()  # now the rest: the dashboard's charts and figures, today's totals, first-run check

    def begin() -> None:
        nonlocal begun
        if not begun:
            begun = True
            startup.preload(app.ctx.background, ["app.proxy.server"], start_proxy_now)

    from PySide6.QtCore import QTimer

    startup.FirstFrame(app.window, begin)
    app.start()
    if not app.window.isVisible():
        QTimer.singleShot(0, begin)  # started in the tray: nothing to paint first
    wake = _quit_on_signals(app.quit)
    try:
        code = qapp.exec()
    finally:
        wake.stop()
        startup.reset()
        app.shutdown()
        core.close()
        startup.unsettle()
    return code


def _quit_on_signals(quit_app: Callable[[], None]) -> QTimer:
    """Ctrl+C in the terminal (or SIGTERM from the session) quits like the menu does, proxy drained.
    Python runs signal handlers only between bytecodes, so a idle timer gives it the chance."""
    import signal

    from PySide6.QtCore import QTimer

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: QTimer.singleShot(0, quit_app))
    wake = QTimer(interval=250)
    wake.timeout.connect(lambda: None)
    wake.start()
    return wake

"""Start-up order (app.ui.startup): the window first, then the proxy, the charts and the first queries.

No timings are asserted here (bench/gui_start.py measures them); these tests check the order and that
nothing is lost on the way: queued work runs once, in order, after the first frame; the dashboard
builds its charts then and still shows its figures; the proxy started after the window serves calls.
"""

from __future__ import annotations

import argparse
import gc
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel

from app.ui import launch, startup

pytest_plugins = ["ui_support"]
pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(
        r"This plugin does not support (propagateSizeHints|raise|grabWindow)",
        r"No such signal QPlatformNativeInterface::systemTrayWindowChanged",
    ),
]


@pytest.fixture(autouse=True)
def open_gate() -> Iterator[None]:
    startup.reset()
    yield
    startup.reset()


def test_with_the_gate_open_work_runs_at_once() -> None:
    ran: list[str] = []
    startup.after_start(lambda: ran.append("now"))
    assert ran == ["now"] and not startup.held()


def test_held_work_runs_after_release_in_order_one_per_turn_then_the_idle_callback(qtbot) -> None:  # type: ignore[no-untyped-def]
    ran: list[str] = []
    idle: list[bool] = []
    startup.hold(when_idle=lambda: idle.append(True))
    startup.after_start(lambda: ran.append("a"))
    startup.after_start(lambda: 1 / 0)  # a failing step is logged; the next still runs
    startup.after_start(lambda: ran.append("b"))
    QApplication.processEvents()
    assert ran == [] and startup.held()
    startup.release()
    assert ran == []  # nothing runs inside release() itself
    qtbot.waitUntil(lambda: ran == ["a", "b"] and idle == [True], timeout=3000)
    startup.after_start(lambda: ran.append("later"))  # the gate is open now
    assert ran == ["a", "b", "later"]


def test_preload_imports_off_the_gui_thread_and_the_idle_callback_waits_for_it(qtbot) -> None:  # type: ignore[no-untyped-def]
    import sys

    from app.ui.background import Background

    background = Background()
    loaded_on: list[str] = []
    then_on: list[str] = []
    idle: list[bool] = []
    name = "app.ui.pages.settings"
    sys.modules.pop(name, None)

    real_import = startup.importlib.import_module

    def spying_import(module: str) -> Any:
        loaded_on.append(threading.current_thread().name)
        return real_import(module)

    startup.hold(when_idle=lambda: idle.append(True))
    startup.after_start(
        lambda: startup.preload(
            background,
            [name, "app.ui.no_such_module"],
            lambda: then_on.append(threading.current_thread().name),
        )
    )
    startup.importlib.import_module = spying_import  # type: ignore[assignment]
    try:
        startup.release()
        qtbot.waitUntil(lambda: idle == [True], timeout=10_000)
    finally:
        startup.importlib.import_module = real_import  # type: ignore[assignment]
        background.wait()
    assert name in sys.modules
    assert loaded_on and threading.main_thread().name not in loaded_on
    assert then_on == [threading.main_thread().name]


def test_first_frame_fires_once_after_the_window_painted(qtbot) -> None:  # type: ignore[no-untyped-def]
    painted: list[bool] = []
    fired: list[bool] = []

    class Window(QLabel):
        def paintEvent(self, event: Any) -> None:  # noqa: N802
            painted.append(True)
            super().paintEvent(event)

    window = Window("hello")
    qtbot.addWidget(window)
    startup.FirstFrame(window, lambda: fired.append(bool(painted)))
    QApplication.processEvents()
    assert fired == []  # not shown, nothing painted
    window.show()
    qtbot.waitUntil(lambda: fired == [True], timeout=3000)
    window.update()
    qtbot.wait(50)
    assert fired == [True]


def test_the_dashboard_builds_its_charts_after_start_up_and_shows_its_figures(
    ctx, qtbot, chat, token
) -> None:  # type: ignore[no-untyped-def]
    from app.ui.pages.dashboard import DashboardPage

    chat(token)
    startup.hold()
    page = DashboardPage(ctx)
    qtbot.addWidget(page)
    page.resize(1100, 700)
    page.show()
    qtbot.wait(100)
    assert page._charts is None and page.refreshes == 0  # the window shows first; no query, no pyqtgraph yet
    startup.release()
    qtbot.waitUntil(lambda: page._charts is not None and page.refreshes >= 1, timeout=10_000)
    assert page.tiles["calls"].value.text() == "1"
    assert page.spend.isVisible() and page.spend.series  # the call's spend is in the chart
    assert not page._stand_ins


def test_a_held_dashboard_builds_its_charts_on_first_use(ctx, qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.ui.charts import SpendChart
    from app.ui.pages.dashboard import DashboardPage

    startup.hold()
    page = DashboardPage(ctx)
    qtbot.addWidget(page)
    assert page._charts is None
    assert isinstance(page.spend, SpendChart)  # tests, screenshots, the hover: the chart is just there
    assert page._charts is not None and page.spend is page._charts[0]


def test_run_gui_shows_the_window_then_starts_the_proxy(
    config_path: Path, tmp_path: Path, monkeypatch, qtbot
) -> None:  # type: ignore[no-untyped-def]
    from app.ui.application import DownshiftApp
    from app.ui.main_window import MainWindow

    monkeypatch.setattr("app.ui.tray.Tray.available", staticmethod(lambda: True))
    seen: dict[str, Any] = {}
    real_attach = DownshiftApp.attach_proxy

    def attach(self: DownshiftApp, proxy: Any) -> None:
        seen["window visible when the proxy came"] = self.window.isVisible()
        seen["proxy before"] = self.ctx.proxy
        real_attach(self, proxy)

    monkeypatch.setattr(DownshiftApp, "attach_proxy", attach)
    safety = QTimer(singleShot=True, interval=15_000)
    safety.timeout.connect(lambda: QApplication.exit(3))

    def check_then_quit() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        dash = windows[0].pages.get("dashboard") if windows else None
        if not (
            windows and windows[0].ctx.proxy and dash is not None and dash.refreshes and gc.get_freeze_count()
        ):
            QTimer.singleShot(50, check_then_quit)
            return
        seen["health"] = httpx.get(f"{windows[0].ctx.proxy.url}/health", timeout=5).json()
        seen["status"] = windows[0].status.text()
        seen["frozen"] = gc.get_freeze_count()
        QApplication.exit(0)

    safety.start()
    QTimer.singleShot(0, check_then_quit)
    args = argparse.Namespace(config=str(config_path), db=f"sqlite:///{tmp_path / 'gui.db'}", verbose=False)
    try:
        assert launch.run_gui(args) == 0
    finally:
        safety.stop()
    assert seen["window visible when the proxy came"] and seen["proxy before"] is None
    assert seen["health"]["status"] == "ok"
    assert "Proxy: http://127.0.0.1:" in seen["status"] and ":0 " not in seen["status"]
    assert seen["frozen"] > 0  # start-up objects moved out of the collector's way
    assert gc.get_freeze_count() == 0  # and given back when the app ended
    assert not startup.held()


def test_run_gui_with_the_port_taken_and_no_other_chosen_exits_1(
    config_path: Path, tmp_path: Path, monkeypatch, qtbot
) -> None:  # type: ignore[no-untyped-def]
    from app.core.config import ConfigStore
    from app.ui import dialogs

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    store = ConfigStore(config_path)
    store.save(replace(store.current(), port=taken))
    asked: list[tuple[Any, ...]] = []
    monkeypatch.setattr(dialogs, "ask_port", lambda *a: asked.append(a) or None)
    monkeypatch.setattr("app.ui.tray.Tray.available", staticmethod(lambda: True))
    safety = QTimer(singleShot=True, interval=15_000)
    safety.timeout.connect(lambda: QApplication.exit(3))
    safety.start()
    started = time.monotonic()
    try:
        args = argparse.Namespace(
            config=str(config_path), db=f"sqlite:///{tmp_path / 'gui.db'}", verbose=False
        )
        assert launch.run_gui(args) == 1
    finally:
        safety.stop()
        blocker.close()
    assert len(asked) == 1 and asked[0][:2] == ("127.0.0.1", taken)  # asked once, over the window; declined
    assert time.monotonic() - started < 15
    assert not startup.held()

"""The app shell, offscreen, over a real Core, proxy and mock upstream: launch paths, single instance,
tray menu and icon, window actions, close-to-tray and quit."""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from conftest import PREMIUM_KEY
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel

from app.cli import main as cli
from app.core.envexport import export_text
from app.core.secrets import SecretStore
from app.ui import launch
from app.ui.dialogs import PortTakenDialog
from app.ui.icons import tray_icon
from app.ui.pages.providers import ProvidersPage
from app.ui.single_instance import SingleInstance, instance_key

pytest_plugins = ["ui_support"]
# Qt warnings fail a test; the offscreen platform's notes about what it cannot do are not ours.
pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(
        r"This plugin does not support (propagateSizeHints|raise|grabWindow)",
        r"No such signal QPlatformNativeInterface::systemTrayWindowChanged",
    ),
]


def activate(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """Shortcuts reach the active window only; make it so, as a click on it would."""
    from PySide6.QtWidgets import QApplication

    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)


# ----------------------------------------------------------------------------------------------- launch


def test_no_display_says_so_in_one_line_and_exits_non_zero(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(launch.sys, "platform", "linux")
    assert cli([]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "downshift serve" in err and "Traceback" not in err
    assert not launch.no_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not launch.no_display({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not launch.no_display({}, "darwin")


def test_second_launch_hands_over_to_the_first(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = instance_key(tmp_path / "config.toml")
    assert key != instance_key(tmp_path / "other.toml")
    assert key == instance_key(tmp_path / "." / "config.toml")
    first, second = SingleInstance(key), SingleInstance(key)
    assert not first.hand_over("show", timeout_ms=200)  # nobody is running yet
    assert first.listen() and first.listening
    with qtbot.waitSignal(first.messageReceived, timeout=3000) as got:
        assert second.hand_over("show")
    assert got.args == ["show"]
    first.close()
    # a socket left behind by a crashed instance does not block the next start
    third = SingleInstance(key)
    assert not third.hand_over("show", timeout_ms=200)
    assert third.listen()
    third.close()


def test_second_launch_brings_the_window_forward(gui, qtbot) -> None:  # type: ignore[no-untyped-def]
    key = f"downshift-test-{id(gui)}"
    gui.instance = SingleInstance(key)
    gui.instance.messageReceived.connect(gui._message)
    assert gui.instance.listen()
    gui.window.close()
    assert not gui.window.isVisible()
    assert SingleInstance(key).hand_over("show")
    qtbot.waitUntil(gui.window.isVisible, timeout=3000)


def test_port_taken_offers_a_free_one_and_saves_it(core, qtbot) -> None:  # type: ignore[no-untyped-def]
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    core.config_store.save(replace(core.config, port=taken))
    asked: list[tuple[str, int, int, str]] = []
    try:
        assert launch.start_proxy(core, lambda *a: asked.append(a) or None) is None  # the user chose Quit
        proxy = launch.start_proxy(core, lambda *a: asked.append(a) or a[2])
        try:
            host, port, suggestion, reason = asked[-1]
            assert (host, port) == ("127.0.0.1", taken) and suggestion != taken and reason
            assert proxy.port == suggestion == core.config.port
            assert f"port = {suggestion}" in core.config_path.read_text()
            assert httpx.get(f"{proxy.url}/health", timeout=5).json()["status"] == "ok"
        finally:
            proxy.stop()
    finally:
        blocker.close()
    dialog = PortTakenDialog("127.0.0.1", taken, 50123, "Address already in use")
    qtbot.addWidget(dialog)
    assert dialog.port.value() == 50123
    assert f"127.0.0.1:{taken}" in dialog.findChild(QLabel).text()


def test_without_a_keyring_the_app_says_where_keys_are_kept(gui, core, tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    from keyring.backends.fail import Keyring as NoKeyring

    core.secrets = SecretStore(tmp_path / "secrets.json", backend=NoKeyring())
    assert not core.secrets.uses_keyring
    with qtbot.waitSignal(gui.ctx.bridge.notice, timeout=1000) as notice:
        gui.start(minimised=False)
    assert notice.args[0] == "No OS keyring"
    assert f"file readable only by you: {tmp_path / 'secrets.json'}" in notice.args[1]
    qtbot.waitUntil(lambda: core.config.ui.get("keyring_notice_shown") is True, timeout=3000)
    shown: list[object] = []
    gui.ctx.bridge.notice.connect(lambda *a: shown.append(a))
    gui._check_keyring()  # the next start: said once is enough
    gui.ctx.wait()
    qtbot.wait(50)
    assert shown == []
    page = ProvidersPage(gui.ctx)  # pages read the store when built
    qtbot.addWidget(page)
    page_labels = " ".join(label.text() for label in page.findChildren(QLabel))
    assert f"keys are kept in a file readable only by you: {tmp_path / 'secrets.json'}" in page_labels


# ----------------------------------------------------------------------------------------------- tray


def test_tray_menu_is_rebuilt_from_current_state(chat, gui, core, proxy, token, qtbot) -> None:  # type: ignore[no-untyped-def]
    tray = gui.tray
    tray.rebuild()
    assert [n for n, a in tray.preset_actions.items() if a.isChecked()] == ["cheap"]
    assert tray.tier() == "cheap"
    assert tray.action("Today: $0.00 over 0 calls")
    assert tray.action("Tool-call failures: no tool calls yet")
    assert (
        tray.action("Copy env for Claude Code")
        and tray.action("Open dashboard")
        and tray.action("Quit Downshift")
    )
    assert tray.action(f"Downshift on {proxy.url}")
    for _ in range(3):
        assert chat(token).status_code == 200
    qtbot.waitUntil(lambda: gui.stats.total["calls"] == 3, timeout=5000)
    tray.rebuild()
    assert tray.action("Today: ") and tray.action("Today: ").text().endswith("over 3 calls")
    assert "over 3 calls" in tray.icon.toolTip() and "Downshift: cheap (cheap models)" in tray.icon.toolTip()


def test_tray_tooltip_says_when_shadow_runs_are_on(gui, core, qtbot) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from app.core.config import Shadow, Target

    gui.tray.refresh_tooltip()
    assert "Shadow runs" not in gui.tray.icon.toolTip()
    shadow = Shadow(Target("backup", "cand"), 0.1, 2.0)
    core.config_store.update(
        lambda c: replace(c, presets={**c.presets, "cheap": replace(c.presets["cheap"], shadow=shadow)})
    )
    qtbot.waitUntil(
        lambda: (
            "Shadow runs on: 10% of loop calls are also sent to backup/cand for evaluation (up to $2.00 a day)"
            in gui.tray.icon.toolTip()
        ),
        timeout=3000,
    )


def test_tray_switches_preset_and_the_next_call_uses_it(chat, gui, core, proxy, token, mock, qtbot) -> None:  # type: ignore[no-untyped-def]
    gui.tray.rebuild()
    gui.tray.preset_actions["premium"].trigger()
    qtbot.waitUntil(lambda: core.config.active == "premium", timeout=5000)
    assert 'active = "premium"' in core.config_path.read_text()
    assert chat(token, anthropic=True).status_code == 200
    assert mock.requests[-1].model == core.config.presets["premium"].default.model
    assert mock.requests[-1].api_key == PREMIUM_KEY
    assert gui.tray.tier() == "premium"
    # the icon, tooltip and status line follow the config_changed event, delivered on the GUI thread
    qtbot.waitUntil(lambda: "Downshift: premium (premium models)" in gui.tray.icon.toolTip(), timeout=3000)
    qtbot.waitUntil(lambda: "Preset: premium" in gui.window.status.text(), timeout=3000)
    assert gui.tray.icon.icon().cacheKey() == tray_icon("premium").cacheKey()


def test_tray_copies_env_for_the_chosen_agent(gui, proxy, token, qtbot) -> None:  # type: ignore[no-untyped-def]
    QGuiApplication.clipboard().clear()
    gui.tray.rebuild()
    gui.tray.action("Copy env for Claude Code").trigger()
    qtbot.waitUntil(lambda: bool(QGuiApplication.clipboard().text()), timeout=5000)
    assert QGuiApplication.clipboard().text() == export_text("claude-code", "bash", proxy.url, token)


def test_pause_refuses_calls_until_resumed(chat, gui, proxy, token, qtbot) -> None:  # type: ignore[no-untyped-def]
    gui.tray.rebuild()
    normal = gui.tray.icon.icon().cacheKey()
    gui.tray.action("Pause proxy").trigger()
    assert gui.ctx.paused and proxy.server.paused
    response = chat(token)
    assert response.status_code == 503 and "paused" in response.text
    assert gui.tray.icon.icon().cacheKey() != normal
    assert "Proxy: paused" in gui.window.status.text()
    gui.tray.rebuild()
    assert gui.tray.action("Downshift: proxy paused") and gui.tray.action("Pause proxy").isChecked()
    gui.tray.action("Pause proxy").trigger()
    assert chat(token).status_code == 200


def test_new_task_from_the_tray_starts_a_manual_task_in_the_log(gui, core, answers, qtbot) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from app.core.storage.models import Task

    answers.text = "fix the flaky test"
    gui.tray.rebuild()
    gui.tray.action("New task…").trigger()

    def manual_labels() -> list[str]:
        with core.db.connect() as conn:
            return [r.label for r in conn.execute(select(Task.label).where(Task.source == "manual"))]

    qtbot.waitUntil(lambda: manual_labels() == ["fix the flaky test"], timeout=3000)


# ----------------------------------------------------------------------------------------------- window


def test_open_dashboard_from_the_tray_shows_the_window_on_the_dashboard(gui) -> None:  # type: ignore[no-untyped-def]
    gui.window.close()
    gui.tray.rebuild()
    gui.tray.action("Open dashboard").trigger()
    assert gui.window.isVisible() and gui.window.current_page() == "dashboard"
    from ui_support import StandInPage  # see ui_support.own_pages_only

    assert isinstance(gui.window.page("dashboard"), StandInPage)


def test_the_tray_holds_no_reference_to_the_app_and_asks_through_signals(gui, qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.ui.application import DownshiftApp
    from app.ui.main_window import MainWindow

    assert not [v for v in vars(gui.tray).values() if isinstance(v, DownshiftApp | MainWindow)]
    gui.tray.rebuild()
    with qtbot.waitSignal(gui.tray.showWindowRequested) as shown:
        gui.tray.action("Open dashboard").trigger()
    assert shown.args == ["dashboard"]
    with qtbot.waitSignal(gui.tray.presetChosen) as chosen:
        gui.tray.preset_actions["premium"].trigger()
    assert chosen.args == ["premium"]


def test_a_page_module_that_fails_to_import_raises_instead_of_hiding_the_bug(
    gui, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from app.ui import main_window

    broken = main_window.PageSpec("team", "Team", "app.ui.pages._no_such_page", "TeamPage")
    monkeypatch.setattr(
        main_window, "PAGES", tuple(broken if s.key == "team" else s for s in main_window.PAGES)
    )
    with pytest.raises(ImportError):
        gui.window.page("team")


def test_shortcuts_switch_pages_and_the_last_page_and_geometry_are_remembered(
    gui, settings: QSettings, qtbot
) -> None:  # type: ignore[no-untyped-def]
    from app.ui.main_window import MainWindow

    window = gui.window
    assert window.current_page() == "providers"  # from the settings fixture
    activate(qtbot, window)
    QTest.keyClick(window, Qt.Key.Key_7, Qt.KeyboardModifier.ControlModifier)
    assert window.current_page() == "presets"
    window.page_actions["export"].trigger()
    assert window.current_page() == "export"
    window.resize(790, 570)  # within the offscreen screen (800x600)
    QTest.keyClick(window, Qt.Key.Key_W, Qt.KeyboardModifier.ControlModifier)  # close: hides to the tray
    assert not window.isVisible()
    assert settings.value("window/page") == "export"
    again = MainWindow(gui.ctx, settings, lambda: None)
    qtbot.addWidget(again)
    assert again.current_page() == "export"
    assert (again.width(), again.height()) == (790, 570)


def test_closing_the_window_keeps_serving_and_quit_stops_the_proxy(
    chat, gui, proxy, token, qtbot, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    quits: list[bool] = []
    monkeypatch.setattr("app.ui.application.QApplication.quit", lambda: quits.append(True))
    gui.window.close()
    assert not gui.window.isVisible()
    assert chat(token).status_code == 200
    assert quits == []  # the tray (or, offscreen, the fixture) keeps the app alive
    gui.show_window()
    quit_action = next(a for a in gui.window.actions() if a.text() == "&Quit")
    assert quit_action.shortcut().toString() == "Ctrl+Q"
    quit_action.trigger()
    assert quits == [True]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{proxy.url}/health", timeout=2)


def test_without_a_tray_closing_the_window_asks_and_can_keep_serving_in_the_background(
    chat, gui, proxy, token, answers, qtbot, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    quits: list[bool] = []
    monkeypatch.setattr("app.ui.application.QApplication.quit", lambda: quits.append(True))
    monkeypatch.setattr(type(gui.tray), "available", staticmethod(lambda: False))
    key = f"downshift-test-{id(gui)}"
    gui.instance = SingleInstance(key)
    gui.instance.messageReceived.connect(gui._message)
    assert gui.instance.listen()
    activate(qtbot, gui.window)
    # Cancel: the window stays
    answers.choice = None
    QTest.keyClick(gui.window, Qt.Key.Key_W, Qt.KeyboardModifier.ControlModifier)
    assert answers.asked[-1][0] == "choose" and "no system tray" in answers.asked[-1][1]
    assert "downshift` again" in answers.asked[-1][1]
    assert gui.window.isVisible() and quits == []
    # Keep running: the window goes, the proxy keeps serving, a second `downshift` brings it back
    answers.choice = 0
    gui.window.close_by_user()  # the Close Window menu entry
    assert not gui.window.isVisible() and quits == []
    assert chat(token).status_code == 200
    assert SingleInstance(key).hand_over("show")
    qtbot.waitUntil(gui.window.isVisible, timeout=3000)
    # Quit: asked again, and this time it quits
    answers.choice = 1
    asked = len(answers.asked)
    gui.window.close_by_user()
    assert quits == [True] and len(answers.asked) == asked + 1


def test_without_a_tray_a_programmatic_quit_asks_nothing(gui, answers, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """QApplication.quit closes the windows first: a timed `downshift demo` offscreen must not wait on a
    question nobody can answer."""
    quits: list[bool] = []
    monkeypatch.setattr("app.ui.application.QApplication.quit", lambda: quits.append(True))
    monkeypatch.setattr(type(gui.tray), "available", staticmethod(lambda: False))
    gui.window.close()  # what QApplication.quit does to each window
    assert answers.asked == [] and quits == [True]


def test_with_a_tray_closing_the_window_asks_nothing(gui, answers, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("app.ui.application.QApplication.quit", lambda: None)
    gui.window.close()
    assert not gui.window.isVisible() and answers.asked == []


def test_the_window_offers_everything_the_tray_does(
    chat, gui, core, proxy, token, mock, answers, qtbot
) -> None:  # type: ignore[no-untyped-def]
    quick = gui.window.quick
    assert quick.isVisible()
    texts = [quick.presets.itemText(i) for i in range(quick.presets.count())]
    assert quick.current() == "cheap"
    # each preset with its model and price per million tokens, and its shortcut
    premium = core.config.presets["premium"]
    assert any(
        t.startswith(f"premium: {premium.default.model} (") and "per M" in t and "Ctrl+Shift+" in t
        for t in texts
    ), texts
    # Ctrl+Shift+n switches presets, and the next call follows
    n = list(core.config.presets).index("premium") + 1
    activate(qtbot, gui.window)
    QTest.keyClick(
        gui.window,
        getattr(Qt.Key, f"Key_{n}"),
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    qtbot.waitUntil(lambda: core.config.active == "premium", timeout=5000)
    assert chat(token, anthropic=True).status_code == 200
    assert mock.requests[-1].model == premium.default.model
    qtbot.waitUntil(lambda: quick.current() == "premium", timeout=3000)
    # picking from the combo
    quick.presets.activated.emit(quick.presets.findData("cheap"))
    qtbot.waitUntil(lambda: core.config.active == "cheap", timeout=5000)
    # Pause, and the tray's pause follows (and back)
    quick.pause.trigger()
    assert proxy.server.paused and chat(token).status_code == 503
    gui.tray.rebuild()
    assert gui.tray.action("Pause proxy").isChecked()
    gui.tray.action("Pause proxy").trigger()
    assert not quick.pause.isChecked() and chat(token).status_code == 200
    # Copy env and New task
    QGuiApplication.clipboard().clear()
    quick.copy_env.trigger()
    qtbot.waitUntil(lambda: bool(QGuiApplication.clipboard().text()), timeout=5000)
    assert QGuiApplication.clipboard().text() == export_text("claude-code", "bash", proxy.url, token)
    answers.text = "from the window"
    quick.new_task.trigger()
    assert ("text", "New task") in answers.asked


def test_start_minimised_shows_only_the_tray(
    core, proxy, settings, own_pages_only, monkeypatch, qtbot
) -> None:  # type: ignore[no-untyped-def]
    from app.core.ui_prefs import with_prefs
    from app.ui.application import DownshiftApp
    from app.ui.tray import Tray

    core.config_store.save(with_prefs(core.config, start_minimised=True))
    monkeypatch.setattr(Tray, "available", staticmethod(lambda: True))
    app = DownshiftApp(core, proxy, settings)
    try:
        app.start()
        assert not app.window.isVisible()
        app.tray.rebuild()
        app.tray.action("Open dashboard").trigger()
        assert app.window.isVisible()
    finally:
        app.shutdown()
    # with no tray to come back to, the window shows anyway
    monkeypatch.setattr(Tray, "available", staticmethod(lambda: False))
    app = DownshiftApp(core, proxy, settings)
    try:
        app.start()
        assert app.window.isVisible()
    finally:
        app.shutdown()


def test_core_notices_reach_the_user(gui, core, qtbot) -> None:  # type: ignore[no-untyped-def]
    shown: list[tuple[str, str]] = []
    gui.tray.icon.showMessage = lambda title, text, *_: shown.append((title, text))  # type: ignore[method-assign]
    core.events.emit(
        "notice", ("Budget", "80% of today's $5.00 is spent")
    )  # from the proxy thread in real use
    qtbot.waitUntil(lambda: bool(shown) or "80%" in gui.window.statusBar().currentMessage(), timeout=3000)
    from app.core.config import ConfigError

    core.events.emit("config_error", ConfigError("config.toml", "proxy.port", "must be between 0 and 65535"))
    qtbot.waitUntil(
        lambda: (
            any("proxy.port" in t for _, t in shown)
            or "proxy.port" in gui.window.statusBar().currentMessage()
        ),
        timeout=3000,
    )


def test_run_gui_hands_over_to_a_running_instance(config_path: Path, qtbot, capsys) -> None:  # type: ignore[no-untyped-def]
    import argparse

    running = SingleInstance(instance_key(config_path))
    assert running.listen()
    try:
        with qtbot.waitSignal(running.messageReceived, timeout=3000) as got:
            code = launch.run_gui(argparse.Namespace(config=str(config_path), db=None, verbose=False))
        assert code == 0 and got.args == ["show"]
        assert "already running" in capsys.readouterr().err
    finally:
        running.close()


def test_run_gui_starts_the_proxy_and_quit_stops_it(
    config_path: Path, tmp_path: Path, monkeypatch, qtbot
) -> None:  # type: ignore[no-untyped-def]
    import argparse

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.ui.main_window import MainWindow

    monkeypatch.setattr("app.ui.tray.Tray.available", staticmethod(lambda: True))
    seen: dict[str, object] = {}
    safety = QTimer(singleShot=True, interval=5000)
    safety.timeout.connect(QApplication.quit)  # if Ctrl+Q did not quit, do not hang the suite

    def check_then_quit() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if windows and windows[0].ctx.proxy is None and time.monotonic() < give_up:
            QTimer.singleShot(50, check_then_quit)  # the proxy starts right after the window's first frame
            return
        try:
            seen["url"] = windows[0].ctx.proxy.url
            seen["health"] = httpx.get(f"{windows[0].ctx.proxy.url}/health", timeout=5).json()
            next(a for a in windows[0].actions() if a.text() == "&Quit").trigger()
        finally:
            safety.start()

    give_up = time.monotonic() + 10
    QTimer.singleShot(300, check_then_quit)
    args = argparse.Namespace(config=str(config_path), db=f"sqlite:///{tmp_path / 'gui.db'}", verbose=False)
    assert launch.run_gui(args) == 0
    assert safety.isActive()  # Ctrl+Q ended the event loop, not the safety net
    safety.stop()
    assert seen["health"] == {"status": "ok", "paused": False}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{seen['url']}/health", timeout=2)
    assert (tmp_path / "gui.db").exists()


def test_every_page_of_the_window_opens(core, proxy, settings, qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With the data pages of this build too: none falls back to the "could not be opened" note."""
    from app.ui.application import DownshiftApp
    from app.ui.main_window import PAGES
    from app.ui.tray import Tray

    monkeypatch.setattr(Tray, "available", staticmethod(lambda: True))
    app = DownshiftApp(core, proxy, settings)
    try:
        app.start(minimised=False)
        activate(qtbot, app.window)
        for i, spec in enumerate(PAGES):
            if i < 9:  # Ctrl+1..9; a tenth page is opened from the Go menu
                QTest.keyClick(app.window, Qt.Key(Qt.Key.Key_1 + i), Qt.KeyboardModifier.ControlModifier)
            else:
                app.window.page_actions[spec.key].trigger()
            assert app.window.current_page() == spec.key
            shown = app.window.page(spec.key)
            assert not (isinstance(shown, QLabel) and "could not be opened" in shown.text()), shown.text()
        qtbot.wait(300)  # live pages run their first refresh
    finally:
        app.shutdown()


def test_first_run_assistant_opens_for_a_fresh_install(
    tmp_path: Path, settings, own_pages_only, qtbot, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QApplication, QWizard

    from app.core.engine import Core
    from app.ui.application import DownshiftApp
    from app.ui.tray import Tray

    monkeypatch.setattr(Tray, "available", staticmethod(lambda: True))
    fresh = Core(
        tmp_path / "fresh.toml", f"sqlite:///{tmp_path / 'fresh.db'}"
    )  # the default config: Ollama only
    app = DownshiftApp(fresh, None, settings)
    try:
        app.start(minimised=False)
        qtbot.waitUntil(
            lambda: any(isinstance(w, QWizard) and w.isVisible() for w in QApplication.topLevelWidgets()),
            timeout=5000,
        )
    finally:
        app.shutdown()
        fresh.close()


def test_a_page_can_send_the_user_to_another(gui, qtbot) -> None:  # type: ignore[no-untyped-def]
    gui.window.show_page("settings")
    gui.ctx.bridge.navigate.emit("export")  # the empty states' "Connect an agent…"
    assert gui.window.current_page() == "export"


def test_the_help_menu_opens_the_readme_at_its_sections(gui, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Each Help action opens README.md at the anchor of a heading the README really has."""
    from PySide6.QtGui import QDesktopServices

    from app.ui import help as help_menu

    readme = Path(__file__).resolve().parent.parent / "README.md"
    assert readme == help_menu.README
    anchors = {
        help_menu.slug(line.lstrip("#").strip())
        for line in readme.read_text().splitlines()
        if line.startswith("#")
    }
    assert help_menu.slug("Quick start (headless)") == "quick-start-headless"
    assert help_menu.slug("One click: connect an agent") == "one-click-connect-an-agent"
    menu = next(a.menu() for a in gui.window.menuBar().actions() if a.text() == "&Help")
    titles = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert titles[0] == "&Read me" and titles[-1] == "&About Downshift" and "&Connect an agent" in titles

    opened: list[str] = []
    monkeypatch.setattr(
        QDesktopServices, "openUrl", staticmethod(lambda url: opened.append(url.toString()) or True)
    )
    for action in gui.window.help_actions:
        assert action.isEnabled()
        action.trigger()
    assert opened[0] == f"file://{readme}"
    fragments = [u.split("#", 1)[1] for u in opened[1:]]
    assert len(fragments) == len(help_menu.SECTIONS) and set(fragments) <= anchors, set(fragments) - anchors
    assert "one-click-connect-an-agent" in fragments and "team-mode" in fragments

    off = help_menu.add_help_actions(menu, Path("/nonexistent/README.md"))  # an installed copy has no README
    assert not any(a.isEnabled() for a in off) and "is not there" in off[0].toolTip()


def test_a_reached_budget_stays_in_the_window_until_dismissed(chat, gui, core, token, qtbot) -> None:  # type: ignore[no-untyped-def]
    """The proxy's "Budget reached" notice becomes a banner above every page (a tray bubble fades; no tray,
    no bubble), with a way to the Budgets page, until the user dismisses it."""
    from app.core.config import Budget

    window = gui.window
    assert not window.budget_banner.isVisible()
    core.config_store.update(lambda c: replace(c, budgets=(Budget("month", 1e-9, action="warn"),)))
    qtbot.waitUntil(lambda: core.config.budgets != (), timeout=3000)
    assert chat(token).status_code == 200
    qtbot.waitUntil(window.budget_banner.isVisible, timeout=5000)
    assert "monthly budget of $0.00 is reached" in window.budget_message.label.text()
    window.show_page("calls")
    qtbot.wait(50)
    assert window.budget_banner.isVisible()  # whatever the page
    window.budget_dismiss.click()
    assert not window.budget_banner.isVisible()


def test_today_stats_queries_at_most_once_a_second_through_throttle_and_single_flight(
    gui, qtbot, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from app.ui import tray
    from app.ui.throttle import SingleFlight, Throttle

    assert isinstance(gui.stats.flight, SingleFlight) and isinstance(gui.stats._throttle, Throttle)
    queries: list[float] = []
    real = tray.summary

    def counting(db, since):  # type: ignore[no-untyped-def]
        queries.append(time.monotonic())
        return real(db, since=since)

    monkeypatch.setattr(tray, "summary", counting)
    qtbot.wait(1100)  # past the window of the start-up query
    for _ in range(20):  # a busy proxy: the writer reports new calls many times a second
        gui.ctx.bridge.callsLogged.emit([])
    qtbot.wait(300)
    assert len(queries) == 1
    qtbot.waitUntil(lambda: len(queries) == 2, timeout=2500)  # the repeats are folded into one, not lost
    qtbot.wait(1200)
    assert len(queries) == 2 and queries[1] - queries[0] >= 0.9

"""Fixtures for the desktop app's tests: a real Core, proxy and mock upstream behind a DownshiftApp.

Load with `pytest_plugins = ["ui_support"]`. Window state goes to a temp INI file, modal questions are
answered by `Answers`, and the data pages (owned elsewhere) are swapped for `StandInPage` so these
tests exercise the shell and configuration pages only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QLabel, QWidget


class Answers:
    """Stands in for the modal dialogs in `app.ui.dialogs`: records each question, gives a set answer."""

    def __init__(self) -> None:
        self.confirm = True
        self.text: str | None = "label"
        self.choice: int | None = 0  # for `dialogs.choose`: the option picked, None for Cancel
        self.open_path: Path | None = None
        self.save_path: Path | None = None
        self.asked: list[tuple[str, str]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Answers:
        from app.ui import dialogs

        def confirm(_parent: Any, title: str, text: str, _ok: str, detail: str = "") -> bool:
            self.asked.append(("confirm", f"{title}: {text} {detail}"))
            return self.confirm

        def ask_text(_parent: Any, title: str, label: str, text: str = "") -> str | None:
            self.asked.append(("text", title))
            return self.text

        def choose(_parent: Any, title: str, text: str, options: list[str], detail: str = "") -> int | None:
            self.asked.append(("choose", f"{title}: {text} [{' | '.join(options)}] {detail}"))
            return self.choice

        monkeypatch.setattr(dialogs, "confirm", confirm)
        monkeypatch.setattr(dialogs, "choose", choose)
        monkeypatch.setattr(dialogs, "ask_text", ask_text)
        monkeypatch.setattr(dialogs, "open_file", lambda *a, **k: self.open_path)
        monkeypatch.setattr(dialogs, "save_file", lambda *a, **k: self.save_path)
        return self


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Answers:
    return Answers().install(monkeypatch)


class StandInPage(QLabel):
    """Takes the place of a data page in the shell's tests: they test the shell, not the charts."""

    def __init__(self, ctx: Any, parent: QWidget | None = None) -> None:
        super().__init__("stand-in page", parent)


@pytest.fixture
def own_pages_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.ui import main_window

    data = {"dashboard", "calls", "tasks"}
    monkeypatch.setattr(
        main_window,
        "PAGES",
        tuple(
            main_window.PageSpec(s.key, s.title, "ui_support", "StandInPage") if s.key in data else s
            for s in main_window.PAGES
        ),
    )


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    s = QSettings(str(tmp_path / "window-state.ini"), QSettings.Format.IniFormat)
    s.setValue("window/page", "providers")
    return s


@pytest.fixture
def gui(qtbot, core, proxy, settings, own_pages_only, answers, monkeypatch) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The whole app, as on a desktop with a system tray (offscreen has none)."""
    from app.ui.application import DownshiftApp
    from app.ui.tray import Tray

    monkeypatch.setattr(Tray, "available", staticmethod(lambda: True))
    app = DownshiftApp(core, proxy, settings)
    app.start(minimised=False)
    qtbot.waitUntil(lambda: app.stats.total is not None, timeout=5000)
    yield app
    app.shutdown()


@pytest.fixture
def ctx(qtbot, core, proxy) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A UiContext without the app around it, for testing one page."""
    from app.ui.background import Background
    from app.ui.bridge import CoreBridge
    from app.ui.context import UiContext

    owner = QObject()  # Qt owns the bridge and runner, so no job's last reference can destroy them off-thread
    context = UiContext(core, proxy, CoreBridge(core.events, owner), Background(owner))
    yield context
    context.wait()
    context.bridge.close()
    owner.deleteLater()


@pytest.fixture
def chat(proxy):  # type: ignore[no-untyped-def]
    """`chat(token, model="default", anthropic=False)`: one call through the running proxy, as an OpenAI
    chat completion or (for presets on an Anthropic provider) an Anthropic message."""

    def post(token: str, model: str = "default", anthropic: bool = False) -> httpx.Response:
        body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
        path = "/v1/messages" if anthropic else "/v1/chat/completions"
        return httpx.post(
            f"{proxy.url}{path}", headers={"Authorization": f"Bearer {token}"}, json=body, timeout=20
        )

    return post

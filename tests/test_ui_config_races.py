"""Every writer of the config saves through `ConfigStore.update` with only its own change: a budget switch
(which saves on a thread of its own) or another window landing while a page saves is kept, and the page's
edit is kept too. Each test puts the other writer exactly where the old code lost it."""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.core import long_context
from app.core.config import Config, ConfigStore, load_config
from app.ui.pages.presets import PresetsPage
from app.ui.pages.providers import ProvidersPage

pytest_plugins = ["ui_support"]
pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(r"This plugin does not support (propagateSizeHints|raise|grabWindow)"),
]


def switch(c: Config) -> Config:
    """What a budget switch saves: only the active preset."""
    return c.with_active("premium")


def another_writer_during_save(
    store: ConfigStore, monkeypatch: pytest.MonkeyPatch, change: Callable[[Config], Config] = switch
) -> threading.Thread:
    """Just before the page's save writes the file, another thread updates the config (a budget switch).

    A page that read the config earlier and saves it whole lets the other update land first and then writes
    over it. A page that saves through `update()` holds the store's update lock here: the other writer waits
    (the join times out), then applies its change on top of the page's."""
    original = store.save
    other = threading.Thread(target=store.update, args=(change,), daemon=True)

    def save(config: Config) -> None:
        if threading.current_thread() is not other and not other.is_alive() and other.ident is None:
            other.start()
            other.join(1.0)
        original(config)

    monkeypatch.setattr(store, "save", save)
    return other


def saved(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def page(qtbot, cls, ctx):  # type: ignore[no-untyped-def]
    widget = cls(ctx)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def said_on(line) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Every message the line shows from now on: a config change landing just after a save may clear the
    line again (the Providers page re-shows the account), so waiting on the line itself could miss it."""
    said: list[tuple[str, str]] = []
    show = line.show_message

    def record(kind: str, text: str) -> None:
        said.append((kind, text))
        show(kind, text)

    line.show_message = record
    return said


def first_result(qtbot, said: list[tuple[str, str]]) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: any(kind in ("ok", "error") for kind, _ in said), timeout=5000)
    return next((kind, text) for kind, text in said if kind in ("ok", "error"))


# ----------------------------------------------------------------------------------------------- providers


def test_provider_save_keeps_a_budget_switch_that_lands_while_it_saves(
    ctx, core, memory_keyring, monkeypatch, qtbot
) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, ProvidersPage, ctx)
    p.show_provider("backup")
    p.base_url.setText("http://127.0.0.1:9/v1")
    p.key.setText("sk-new-backup-key")
    p._edited()
    said = said_on(p.message)
    other = another_writer_during_save(core.config_store, monkeypatch)
    qtbot.mouseClick(p.save_button, Qt.MouseButton.LeftButton)
    assert first_result(qtbot, said)[0] == "ok", said
    other.join(5)
    for config in (load_config(core.config_path), core.config_store.current()):
        assert config.active == "premium"  # the switch
        assert config.providers["backup"].base_url == "http://127.0.0.1:9/v1"  # the user's edit
    assert memory_keyring.store[("downshift", "provider:backup")] == "sk-new-backup-key"


def test_provider_save_applies_the_form_to_the_provider_as_it_is_now(ctx, core, qtbot) -> None:  # type: ignore[no-untyped-def]
    """The page loaded; then another window gave the provider headers and switched preset; the user saves a
    new URL: the headers (not in the form), the switch and the URL all stay."""
    p = page(qtbot, ProvidersPage, ctx)
    p.show_provider("backup")
    p.base_url.setText("http://127.0.0.1:9/v1")
    p._edited()

    def elsewhere(c: Config) -> Config:
        from dataclasses import replace

        providers = dict(c.providers)
        providers["backup"] = replace(providers["backup"], headers={"X-Team": "blue"})
        return replace(c, providers=providers).with_active("premium")

    t = threading.Thread(target=core.config_store.update, args=(elsewhere,))
    t.start()
    t.join(5)
    said = said_on(p.message)
    p.save()
    assert first_result(qtbot, said)[0] == "ok", said
    config = load_config(core.config_path)
    assert config.active == "premium"
    assert config.providers["backup"].headers == {"X-Team": "blue"}
    assert config.providers["backup"].base_url == "http://127.0.0.1:9/v1"


def test_provider_removal_keeps_a_switch_that_lands_while_it_saves(
    ctx, core, memory_keyring, answers, monkeypatch, qtbot
) -> None:  # type: ignore[no-untyped-def]
    from app.core.config import Provider
    from app.core.config_edit import upsert_provider

    core.config_store.update(lambda c: upsert_provider(c, Provider("spare", "http://127.0.0.1:9/v1")))
    p = page(qtbot, ProvidersPage, ctx)
    p.show_provider("spare")
    said = said_on(p.message)
    other = another_writer_during_save(core.config_store, monkeypatch)
    p.remove_current()
    assert first_result(qtbot, said) == ("ok", "Removed spare.")
    other.join(5)
    config = load_config(core.config_path)
    assert config.active == "premium" and "spare" not in config.providers


# ----------------------------------------------------------------------------------------------- presets


def test_preset_save_keeps_a_rule_and_a_switch_saved_before_it_ran(ctx, core, qtbot) -> None:  # type: ignore[no-untyped-def]
    """The user saves the preset while the writer thread is busy; before the save runs, another writer adds a
    long-context rule to that preset and switches preset. The preset's edit replaces only what the form
    shows: the rule and the switch stay."""
    p = page(qtbot, PresetsPage, ctx)
    p.select("cheap")
    p.description.setText("edited by the user")
    gate = threading.Event()
    said = said_on(p.message)
    ctx.write(lambda: gate.wait(5))  # the writer thread is busy with an earlier save
    qtbot.mouseClick(p.save_button, Qt.MouseButton.LeftButton)
    other = threading.Thread(
        target=core.config_store.update,
        args=(lambda c: long_context.with_rule(c, "cheap", 50_000, "plan").with_active("premium"),),
    )
    other.start()
    other.join(5)
    gate.set()
    assert first_result(qtbot, said)[0] == "ok", said
    for config in (load_config(core.config_path), core.config_store.current()):
        cheap = config.presets["cheap"]
        assert cheap.description == "edited by the user"
        assert cheap.long_context is not None and cheap.long_context.above_tokens == 50_000
        assert config.active == "premium"


def test_preset_import_keeps_a_budget_switch_that_lands_while_it_saves(
    ctx, core, answers, monkeypatch, tmp_path: Path, qtbot
) -> None:  # type: ignore[no-untyped-def]
    from app.core.preset_io import preset_toml

    shared = tmp_path / "shared.downshift.toml"
    shared.write_text(preset_toml(core.config, "flaky"))
    answers.open_path = shared
    p = page(qtbot, PresetsPage, ctx)
    said = said_on(p.message)
    other = another_writer_during_save(core.config_store, monkeypatch)
    p.import_file()
    assert first_result(qtbot, said) == ("ok", "Imported flaky (imported) from shared.downshift.toml.")
    other.join(5)
    data = saved(core.config_path)
    assert data["routing"]["active"] == "premium"
    assert "flaky (imported)" in [pr["name"] for pr in data["presets"]]


# ----------------------------------------------------------------------------------------------- launch


def test_a_port_chosen_at_start_keeps_a_switch_made_while_the_dialog_was_open(core) -> None:  # type: ignore[no-untyped-def]
    import socket

    from app.ui import launch

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    core.config_store.update(lambda c: __import__("dataclasses").replace(c, port=taken))

    def ask(host: str, port: int, suggestion: int, reason: str) -> int:
        core.config_store.update(switch)  # a budget switch while the user reads the question
        return suggestion

    try:
        proxy = launch.start_proxy(core, ask)
        assert proxy is not None
        try:
            config = load_config(core.config_path)
            assert config.port == proxy.port != taken and config.active == "premium"
        finally:
            proxy.stop()
    finally:
        blocker.close()

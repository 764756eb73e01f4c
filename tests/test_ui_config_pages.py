"""The configuration pages driven like a user would, offscreen, over a real Core, proxy and mock upstream:
Providers (keys to the keyring, test connection), Presets (edit, activate through the tray, share),
Export (clipboard), Settings (token rotation, prefs, start at login). Also renders every page and the
tray menu to docs/screenshots."""

from __future__ import annotations

import tomllib
from pathlib import Path

import httpx
import pytest
from conftest import BACKUP_KEY, PROVIDER_KEY
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.core import autostart
from app.core.config import Budget, Target
from app.core.direct_env import mask_key
from app.core.envexport import export_text
from app.core.preset_io import preset_toml
from app.core.ui_prefs import pref
from app.testing.script import Reply, ToolCall, Usage
from app.ui.pages.export import ExportPage
from app.ui.pages.presets import PresetsPage
from app.ui.pages.providers import ProvidersPage
from app.ui.pages.settings import SettingsPage

pytest_plugins = ["ui_support"]
pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(
        r"This plugin does not support (propagateSizeHints|raise|grabWindow)",
        r"No such signal QPlatformNativeInterface::systemTrayWindowChanged",
    ),
]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
NEW_KEY = "sk-test-myseek-fedcba9876543210"


def page(qtbot, cls, ctx):  # type: ignore[no-untyped-def]
    widget = cls(ctx)
    qtbot.addWidget(widget)
    widget.resize(980, 680)
    widget.show()
    return widget


def wait_message(qtbot, line, kind: str, timeout: int = 5000) -> str:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: line.kind == kind, timeout=timeout)
    return line.text()


def wait_text(qtbot, line, text: str, timeout: int = 5000) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: line.text() == text, timeout=timeout)


# ----------------------------------------------------------------------------------------------- providers


def test_add_a_provider_from_a_template_key_goes_to_the_keyring_only(
    ctx, core, mock, memory_keyring, qtbot
) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, ProvidersPage, ctx)
    p.new_account("deepseek")
    assert p.name.text() == "deepseek" and p.base_url.text() == "https://api.deepseek.com/v1"
    assert p.key_env.text() == "DEEPSEEK_API_KEY" and "platform.deepseek.com" in p.docs.text()
    p.name.setText("myseek")
    p.base_url.setText(f"{mock.base_url}/v1")
    QTest.keyClicks(p.key, NEW_KEY)
    assert p.key.echoMode() == p.key.EchoMode.Password
    qtbot.mouseClick(p.save_button, Qt.MouseButton.LeftButton)
    assert "Saved myseek. The key is in the keyring." in wait_message(qtbot, p.message, "ok")
    assert memory_keyring.store[("downshift", "provider:myseek")] == NEW_KEY
    text = core.config_path.read_text()
    assert NEW_KEY not in text and 'name = "myseek"' in text and 'kind = "deepseek"' in text
    assert p.key.text() == ""  # the field never shows the stored key again
    qtbot.waitUntil(lambda: p.list.currentItem().text(2) == "set", timeout=3000)

    # test connection: lists the models with the stored key, and keeps them for the Presets page
    qtbot.mouseClick(p.test_button, Qt.MouseButton.LeftButton)
    message = wait_message(qtbot, p.message, "ok")
    assert message.startswith("Connected in ") and ": 5 models." in message
    assert mock.requests[-1].path == "/v1/models" and mock.requests[-1].api_key == NEW_KEY
    assert p.models.topLevelItemCount() == 5 and p.models_label.text() == "Models (5)"
    assert "qwen/qwen3-coder" in [m.id for m in ctx.models.models("myseek")]
    presets = page(qtbot, PresetsPage, ctx)
    picker = presets.pickers["plan"]
    picker.set_target(Target("myseek", "x"))
    offered = [picker.model.itemText(i) for i in range(picker.model.count())]
    assert "moonshotai/kimi-k2" in offered and "qwen/qwen3-coder" in offered


def test_rename_keeps_the_key_and_presets_and_removal_is_guarded(
    ctx, core, memory_keyring, answers, qtbot
) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, ProvidersPage, ctx)
    p.show_provider("backup")
    p.name.setText("deep")
    p._edited()
    p.save()
    wait_message(qtbot, p.message, "ok")
    assert memory_keyring.store[("downshift", "provider:deep")] == BACKUP_KEY
    assert ("downshift", "provider:backup") not in memory_keyring.store
    assert core.config.presets["cheap"].roles["plan"] == Target("deep", "deepseek/deepseek-chat")
    # in use: refused with the reason, before any question
    p.remove_current()
    assert (
        p.message.kind == "error"
        and "deep cannot be removed: it is still used by preset cheap, preset flaky" in p.message.text()
    )
    assert answers.asked == []
    # unused: asked, then removed with its key
    p.new_account("groq")
    p.key.setText("gsk-test")
    p.save()
    wait_message(qtbot, p.message, "ok")
    assert memory_keyring.store[("downshift", "provider:groq")] == "gsk-test"
    p.remove_current()
    # the config is saved, then the key deleted, in one job on the writer thread: wait for the job's end
    wait_text(qtbot, p.message, "Removed groq.", timeout=3000)
    assert "groq" not in core.config.providers
    assert ("downshift", "provider:groq") not in memory_keyring.store
    assert answers.asked and answers.asked[0][0] == "confirm"


def test_connection_errors_are_shown_as_messages(ctx, core, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, ProvidersPage, ctx)
    p.show_provider("deadco")
    p.test_connection()
    dead = core.config.providers["deadco"].base_url  # a closed port (tests/conftest.py)
    assert f"Connection failed: cannot connect to {dead}/models" in wait_message(qtbot, p.message, "error")
    p.new_account("custom")
    assert p.base_url.text() == ""
    p.save()
    assert p.message.text() == "The base URL must start with http:// or https://"


# ----------------------------------------------------------------------------------------------- presets


def test_edit_a_preset_then_activate_it_from_the_tray_and_the_next_call_follows(
    gui, core, mock, token, chat, qtbot
) -> None:  # type: ignore[no-untyped-def]
    presets = gui.window.show_page("presets")
    presets.select("flaky")
    assert presets.name.text() == "flaky"
    presets.pickers["default"].set_target(Target("backup", "deepseek/deepseek-v3.2-edited"))
    presets.add_pattern("*opus*", "plan")
    presets.pickers["plan"].set_target(Target("cheapco", "qwen/qwen3-coder-plan"))
    qtbot.mouseClick(presets.save_button, Qt.MouseButton.LeftButton)
    assert wait_message(qtbot, presets.message, "ok") == "Saved flaky."
    saved = core.config.presets["flaky"]
    assert saved.default == Target("backup", "deepseek/deepseek-v3.2-edited")
    assert saved.patterns == {"*opus*": "plan"} and saved.fallback == (
        Target("backup", "deepseek/deepseek-chat"),
    )
    assert core.config.active == "cheap"

    gui.tray.rebuild()
    gui.tray.preset_actions["flaky"].trigger()
    qtbot.waitUntil(lambda: core.config.active == "flaky", timeout=5000)
    assert chat(token).status_code == 200
    assert (mock.requests[-1].model, mock.requests[-1].api_key) == (
        "deepseek/deepseek-v3.2-edited",
        BACKUP_KEY,
    )
    assert chat(token, "claude-opus-4-5").status_code == 200  # the new pattern sends it to the plan role
    assert (mock.requests[-1].model, mock.requests[-1].api_key) == ("qwen/qwen3-coder-plan", PROVIDER_KEY)
    qtbot.waitUntil(
        lambda: "flaky   (active)" in [presets.list.item(i).text() for i in range(presets.list.count())]
    )
    assert gui.tray.tier() == "cheap"


def test_preset_form_refuses_half_filled_targets(ctx, core, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, PresetsPage, ctx)
    p.new_preset()
    p.name.setText("half")
    p.pickers["plan"].set_target(Target("cheapco", ""))
    p.save()
    assert p.message.text() == "Not saved: plan: choose a model for cheapco."
    p.pickers["plan"].set_target(None)
    p.name.setText("premium")
    p.save()
    assert "already a preset named 'premium'" in wait_message(qtbot, p.message, "error")
    p.name.setText("half")
    p.save()
    assert wait_message(qtbot, p.message, "ok") == "Saved half."
    assert core.config.presets["half"].default == core.config.presets["cheap"].default


def test_duplicate_activate_remove_and_share_presets(ctx, core, answers, tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, PresetsPage, ctx)
    p.select("cheap")
    p.duplicate_current()
    wait_text(qtbot, p.message, "Copied cheap to cheap copy; rename it and change what you need.")
    assert p.editing == "cheap copy" and "cheap copy" in core.config.presets
    p.activate_current()
    wait_text(qtbot, p.message, "cheap copy is active: the next request uses it.")
    assert core.config.active == "cheap copy"
    p.select("cheap")
    p.remove_current()
    assert wait_message(qtbot, p.message, "ok") == "Removed cheap."
    assert "cheap" not in core.config.presets
    # export, then import it back: it lands under a new name, with no key in the file
    p.select("cheap copy")
    answers.save_path = tmp_path / "shared.downshift.toml"
    p.export_current()
    assert p.message.kind == "ok"
    shared = answers.save_path.read_text()
    assert shared == preset_toml(core.config, "cheap copy") and PROVIDER_KEY not in shared
    answers.open_path = answers.save_path
    p.import_file()
    assert (
        wait_message(qtbot, p.message, "ok") == "Imported cheap copy (imported) from shared.downshift.toml."
    )
    assert core.config.presets["cheap copy (imported)"].roles == core.config.presets["cheap copy"].roles
    answers.open_path = tmp_path / "broken.toml"
    answers.open_path.write_text("[[presets]]\nname = 'x'\ndefault = 'ghost/m'\n")
    p.import_file()
    assert (
        "Not imported: " in wait_message(qtbot, p.message, "error")
        and "unknown provider 'ghost'" in p.message.text()
    )


def test_budgets_are_edited_and_saved(ctx, core, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, PresetsPage, ctx)
    p.budgets_editor.add_budget(Budget("month", 40.0, action="switch"))
    p.budgets_editor.save()
    assert p.budgets_editor.message.text() == "Budget 1: choose the preset to switch to."
    switch = p.budgets_editor.table.cellWidget(0, 4)
    switch.setCurrentIndex(switch.findData("cheap"))
    p.budgets_editor.add_budget(Budget("day", 2.5))
    p.budgets_editor.table.cellWidget(1, 3).setCurrentIndex(
        p.budgets_editor.table.cellWidget(1, 3).findData("premium")
    )
    p.budgets_editor.save()
    assert wait_message(qtbot, p.budgets_editor.message, "ok") == "Saved 2 budgets."
    assert core.config.budgets == (
        Budget("month", 40.0, "switch", None, "cheap"),
        Budget("day", 2.5, "warn", "premium", None),
    )
    assert tomllib.loads(core.config_path.read_text())["budgets"][1] == {
        "period": "day",
        "limit_usd": 2.5,
        "provider": "premium",
    }


# ----------------------------------------------------------------------------------------------- export


def test_export_copies_the_exact_snippet(ctx, core, proxy, token, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, ExportPage, ctx)
    qtbot.waitUntil(lambda: p.copy_button.isEnabled(), timeout=3000)
    assert p.agent.currentData() == "claude-code" and p.shell.currentData() == "bash"
    p.agent.setCurrentIndex(p.agent.findData("aider"))
    p.shell.setCurrentIndex(p.shell.findData("fish"))
    expected = export_text("aider", "fish", proxy.url, token)
    assert p.snippet.toPlainText() == export_text(
        "aider", "fish", proxy.url, mask_key(token)
    )  # masked on screen
    assert token not in p.snippet.toPlainText()
    QGuiApplication.clipboard().clear()
    qtbot.mouseClick(p.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == expected
    assert p.result.text() == f"Copied {expected.count(chr(10))} lines."


def test_direct_variant_masks_the_key_and_asks_before_copying_it(ctx, answers, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, ExportPage, ctx)
    p.agent.setCurrentIndex(p.agent.findData("generic"))
    p.direct.setChecked(True)
    p.provider.setCurrentIndex(p.provider.findData("cheapco"))
    qtbot.waitUntil(lambda: p.copy_button.isEnabled(), timeout=3000)
    shown = p.snippet.toPlainText()
    assert PROVIDER_KEY not in shown and "sk-tes…cdef" in shown and "OPENAI_MODEL='qwen/qwen3-coder'" in shown
    assert "real cheapco API key" in p.warning.text()
    QGuiApplication.clipboard().setText("before")
    answers.confirm = False
    p.copy()
    assert QGuiApplication.clipboard().text() == "before" and p.result.text() == "Not copied."
    answers.confirm = True
    p.copy()
    assert f"export OPENAI_API_KEY='{PROVIDER_KEY}'" in QGuiApplication.clipboard().text()
    assert "real cheapco API key" in answers.asked[-1][1]
    # Claude Code cannot reach an OpenAI-format provider directly: said, not crashed
    p.agent.setCurrentIndex(p.agent.findData("claude-code"))
    assert (
        "Claude Code speaks the Anthropic Messages API" in p.warning.text() and not p.copy_button.isEnabled()
    )


# ----------------------------------------------------------------------------------------------- settings


def test_rotating_the_token_locks_out_the_old_one(ctx, core, proxy, token, chat, answers, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, SettingsPage, ctx)
    export = page(qtbot, ExportPage, ctx)
    qtbot.waitUntil(lambda: p.token_field.text() == token, timeout=3000)
    assert chat(token).status_code == 200
    with qtbot.waitSignal(ctx.bridge.tokenChanged, timeout=5000):
        p.rotate()
    new = core.token()
    assert new != token
    assert chat(token).status_code == 401
    assert chat(new).status_code == 200
    qtbot.waitUntil(
        lambda: p.token_field.text() == new and mask_key(new) in export.snippet.toPlainText(), timeout=3000
    )
    answers.confirm = False
    p.rotate()
    assert core.token() == new


def test_settings_apply_and_say_when(ctx, core, isolated_home: Path, answers, tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, SettingsPage, ctx)
    p.store_bodies.click()
    wait_text(qtbot, p.message, "Body logging: saved.")
    assert core.config.store_bodies
    p.retention.setValue(30)
    p.save_retention()
    wait_text(qtbot, p.message, "Retention: saved.")
    assert core.config.retention_days == 30
    p.minimised.click()
    wait_text(qtbot, p.message, "Start minimised: saved.")
    assert pref(core.config, "start_minimised") is True
    p.theme.setCurrentIndex(p.theme.findData("dark"))
    p.theme.activated.emit(p.theme.currentIndex())
    wait_text(qtbot, p.message, "Theme: saved.")
    assert pref(core.config, "theme") == "dark"
    p.agent.setCurrentIndex(p.agent.findData("codex"))
    p.agent.activated.emit(p.agent.currentIndex())
    wait_text(qtbot, p.message, "Tray agent: saved.")
    assert pref(core.config, "agent") == "codex"
    p.at_login.click()
    wait_text(qtbot, p.message, "Downshift starts when you log in.")
    assert autostart.is_enabled() and p.at_login.isChecked()
    assert (isolated_home / "config" / "autostart" / "downshift.desktop").is_file()
    p.at_login.click()
    wait_text(qtbot, p.message, "Start at login is off.")
    assert not autostart.is_enabled() and not p.at_login.isChecked()
    answers.save_path = tmp_path / "elsewhere" / "calls.db"
    p.choose_database()
    wait_text(qtbot, p.message, "Database location: saved. It takes effect when Downshift restarts.")
    assert pref(core.config, "database") == str(answers.save_path)
    wait_text(qtbot, p.database_next, f"From the next start: {answers.save_path}")
    assert core.config.store_bodies and core.config.retention_days == 30  # later saves kept earlier ones


def test_the_chosen_database_is_used_from_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import paths
    from app.core.config import Config
    from app.core.engine import database_url
    from app.core.ui_prefs import with_prefs

    chosen = with_prefs(Config(), database=str(tmp_path / "x.db"))
    assert database_url(None, chosen) == f"sqlite:///{tmp_path / 'x.db'}"
    assert database_url("sqlite:///cli.db", chosen) == "sqlite:///cli.db"
    monkeypatch.setenv("DOWNSHIFT_DB_URL", "sqlite:///env.db")
    assert database_url(None, chosen) == "sqlite:///env.db"
    monkeypatch.delenv("DOWNSHIFT_DB_URL")
    assert database_url(None, Config()) == paths.db_url()


# ----------------------------------------------------------------------------------------------- screenshots


def test_screenshots_of_every_config_page_and_the_tray_menu(gui, core, proxy, token, mock, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Real data: calls through the proxy (so spend shows), models fetched from the mock upstream."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tool = {
        "type": "function",
        "function": {
            "name": "read_file",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
    for i, model in enumerate(("default", "plan", "background", "default", "default", "default")):
        args: dict | str = "{'path': broken" if i == 4 else {"path": f"src/module_{i}.py"}
        mock.enqueue(
            Reply(
                tool_calls=[ToolCall("read_file", args)],
                usage=Usage(prompt=24_000 + 3000 * i, completion=700, cached=16_000),
            )
        )
        r = httpx.post(
            f"{proxy.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            timeout=20,
            json={"model": model, "tools": [tool], "messages": [{"role": "user", "content": "read it"}]},
        )
        assert r.status_code == 200
    qtbot.waitUntil(lambda: gui.stats.total["calls"] == 6, timeout=5000)
    window = gui.window
    window.resize(1100, 720)

    providers = window.show_page("providers")
    providers.show_provider("cheapco")
    providers.test_connection()
    wait_message(qtbot, providers.message, "ok")
    presets = window.show_page("presets")
    presets.select("cheap")
    presets.budgets_editor.add_budget(Budget("day", 5.0))
    presets.budgets_editor.add_budget(Budget("month", 60.0, action="switch", switch_to="cheap"))
    presets.budgets_editor.save()
    wait_text(qtbot, presets.budgets_editor.message, "Saved 2 budgets.")
    export = window.show_page("export")
    qtbot.waitUntil(lambda: export.copy_button.isEnabled(), timeout=3000)
    settings = window.show_page("settings")
    qtbot.waitUntil(lambda: bool(settings.token_field.text()), timeout=3000)
    for key in ("providers", "presets", "export", "settings"):
        window.show_page(key)
        qtbot.wait(50)
        assert window.grab().save(str(SCREENSHOTS / f"{key}.png"))
    window.show_page("presets")
    presets.tabs.setCurrentIndex(1)
    qtbot.wait(50)
    assert window.grab().save(str(SCREENSHOTS / "budgets.png"))

    gui.tray.rebuild()
    menu = gui.tray.menu
    menu.adjustSize()
    assert "over 6 calls" in gui.tray.action("Today: ").text()
    assert gui.tray.action("Tool-call failures: 16.7% of 6")
    assert menu.grab().save(str(SCREENSHOTS / "tray-menu.png"))

    # the Dark theme, as picked on the Settings page: offscreen there is no platform theme (like X11 with
    # none), so the app's own Fusion dark palette is used; the pixels say it really changed
    from app.ui.theme import apply_theme, is_dark

    window.show_page("providers")
    qtbot.wait(50)
    light_shot = window.grab().toImage()
    apply_theme("dark")
    try:
        assert is_dark(QApplication.palette())
        qtbot.wait(50)
        dark_shot = window.grab().toImage()
        assert dark_shot.save(str(SCREENSHOTS / "providers-dark.png"))
    finally:
        apply_theme("system")
    assert not is_dark(QApplication.palette())
    for x, y in ((5, window.height() - 5), (window.width() // 2, window.height() // 2), (60, 300)):
        light_px, dark_px = light_shot.pixelColor(x, y), dark_shot.pixelColor(x, y)
        assert light_px.lightness() > 180 and dark_px.lightness() < 90, (
            x,
            y,
            light_px.name(),
            dark_px.name(),
        )

    # the whole window at the smallest size it is made for and at a large one, light and dark
    presets.tabs.setCurrentIndex(0)
    for (width, height), key in (((900, 600), "export"), ((1400, 900), "presets")):
        window.resize(width, height)
        window.show_page(key)
        for theme in ("light", "dark"):
            apply_theme(theme)
            try:
                qtbot.wait(50)
                shot = window.grab()
                assert (shot.width(), shot.height()) == (width, height)  # nothing forces the window larger
                assert shot.save(str(SCREENSHOTS / f"window-{width}x{height}-{theme}.png"))
            finally:
                apply_theme("system")

    for name in (
        "providers",
        "providers-dark",
        "presets",
        "budgets",
        "export",
        "settings",
        "tray-menu",
        "window-900x600-light",
        "window-900x600-dark",
        "window-1400x900-light",
        "window-1400x900-dark",
    ):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 5000


def test_export_lists_the_newer_agents(ctx, proxy, token, qtbot) -> None:  # type: ignore[no-untyped-def]
    """OpenCode, Qwen Code, Cline CLI and Continue CLI are on the list; the file-configured ones show how
    `--write` sets them up and what it writes."""
    p = page(qtbot, ExportPage, ctx)
    qtbot.waitUntil(lambda: p.copy_button.isEnabled(), timeout=3000)
    labels = {p.agent.itemData(i): p.agent.itemText(i) for i in range(p.agent.count())}
    assert {k: labels[k] for k in ("opencode", "qwen-code", "cline", "continue")} == {
        "opencode": "OpenCode",
        "qwen-code": "Qwen Code",
        "cline": "Cline CLI",
        "continue": "Continue CLI (cn)",
    }
    p.agent.setCurrentIndex(p.agent.findData("cline"))
    text = p.snippet.toPlainText()
    assert (
        "downshift env --agent cline --write" in text and "export CLINE_SESSION_BACKEND_MODE='local'" in text
    )
    assert text == export_text("cline", "bash", proxy.url, mask_key(token))  # masked on screen


# ----------------------------------------------------------------------------------------------- unsaved edits


def test_an_edited_preset_is_not_dropped_when_another_is_picked(ctx, core, answers, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, PresetsPage, ctx)
    p.select("cheap")
    p.description.setText("edited, not saved")
    assert p.has_unsaved_changes()
    answers.choice = None  # Cancel: stay on the edited preset, the edit kept
    p.select("premium")
    assert answers.asked[-1][0] == "choose" and "The preset cheap has unsaved changes" in answers.asked[-1][1]
    assert p.editing == "cheap" and p.description.text() == "edited, not saved"
    assert p.list.currentItem().data(Qt.ItemDataRole.UserRole) == "cheap"
    answers.choice = 0  # Save: saved, then the other preset shows
    p.select("premium")
    qtbot.waitUntil(lambda: p.editing == "premium", timeout=5000)
    assert core.config.presets["cheap"].description == "edited, not saved"
    p.description.setText("dropped on purpose")
    answers.choice = 1  # Discard
    p.select("cheap")
    assert p.editing == "cheap" and core.config.presets["premium"].description != "dropped on purpose"
    assert not p.has_unsaved_changes()
    p.select("premium")  # nothing edited: no question
    assert len([a for a in answers.asked if a[0] == "choose"]) == 3


def test_leaving_a_page_with_unsaved_edits_asks_and_quit_too(gui, core, answers, qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    window = gui.window
    presets = window.show_page("presets")
    presets.select("cheap")
    presets.description.setText("half done")
    answers.choice = None
    window.show_page("export")
    assert window.current_page() == "presets" and presets.description.text() == "half done"
    answers.choice = 1
    window.show_page("export")
    assert window.current_page() == "export" and not presets.has_unsaved_changes()
    providers = window.show_page("providers")
    providers.base_url.setText("http://127.0.0.1:1/v1")
    providers.base_url.textEdited.emit("http://127.0.0.1:1/v1")
    answers.choice = 0  # Save, then go
    window.show_page("settings")
    assert wait_message(qtbot, providers.message, "ok") == "Saved cheapco."
    assert core.config.providers["cheapco"].base_url == "http://127.0.0.1:1/v1"
    settings = window.page("settings")
    assert window.current_page() == "settings"
    settings.port.setValue(core.config.port + 1)  # typed, not applied
    quits: list[bool] = []
    monkeypatch.setattr("app.ui.application.QApplication.quit", lambda: quits.append(True))
    answers.choice = None
    next(a for a in window.actions() if a.text() == "&Quit").trigger()
    assert quits == [] and "The port" in answers.asked[-1][1]
    answers.choice = 1
    gui.tray.rebuild()
    gui.tray.action("Quit Downshift").trigger()
    assert quits == [True]


def test_save_and_revert_stay_in_view_and_save_keeps_the_scroll(ctx, core, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, PresetsPage, ctx)
    p.resize(900, 420)  # a short window: the form scrolls
    p.select("premium")
    qtbot.wait(50)
    bar = p.form_scroll.verticalScrollBar()
    assert bar.maximum() > 0
    bar.setValue(bar.maximum())
    for button in (p.save_button, p.revert_button):
        assert button.isVisible() and button.visibleRegion().boundingRect().size() == button.size()
    p.activate_button.click()
    qtbot.waitUntil(lambda: p.message.kind == "ok", timeout=5000)
    assert p.save_button.visibleRegion().boundingRect().size() == p.save_button.size()
    before = bar.value()
    p.description.setText("scroll stays")
    p.save_button.click()
    qtbot.waitUntil(lambda: p.message.kind == "ok" and "Saved" in p.message.text(), timeout=5000)
    qtbot.wait(50)
    assert bar.value() == before


def test_the_dark_theme_applies_without_a_platform_theme(gui, core, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Settings > Theme > Dark used to say "saved" and change nothing where no platform theme answers."""
    from app.ui.theme import is_dark

    settings = gui.window.show_page("settings")
    assert not is_dark(QApplication.palette())
    try:
        settings.theme.setCurrentIndex(settings.theme.findData("dark"))
        settings.theme.activated.emit(settings.theme.currentIndex())
        qtbot.waitUntil(lambda: is_dark(QApplication.palette()), timeout=5000)
        # the widgets hear of the new palette through posted events: wait for them too
        qtbot.waitUntil(
            lambda: settings.palette().color(settings.backgroundRole()).lightness() < 90, timeout=5000
        )
        settings.theme.setCurrentIndex(settings.theme.findData("light"))
        settings.theme.activated.emit(settings.theme.currentIndex())
        qtbot.waitUntil(lambda: not is_dark(QApplication.palette()), timeout=5000)
    finally:
        settings.theme.setCurrentIndex(settings.theme.findData("system"))
        settings.theme.activated.emit(settings.theme.currentIndex())
        qtbot.waitUntil(lambda: pref(core.config, "theme") == "system", timeout=5000)
    assert not is_dark(QApplication.palette())


def test_apply_port_moves_the_running_proxy_and_env_prints_where_it_listens(
    ctx, core, proxy, token, chat, mock, capsys, qtbot
) -> None:  # type: ignore[no-untyped-def]
    """ "Apply" used to say "from the next start" while `downshift env` already printed the new port."""
    from app.cli import main as cli
    from app.core.connect import connect
    from app.ui.launch import free_port

    old_url, new_port = proxy.url, free_port("127.0.0.1")
    connected = connect("codex", old_url)  # a connected agent's file follows the port
    assert cli(["--config", str(core.config_path), "env"]) == 0
    assert (
        f"{old_url}" in capsys.readouterr().out
    )  # the port the proxy really has, not the configured 0/default
    mock.enqueue(Reply(text="slow", first_byte_delay=1.5))
    import threading

    slow: list[int] = []
    caller = threading.Thread(target=lambda: slow.append(chat(token).status_code))
    caller.start()  # a call in flight on the old port while the port changes
    qtbot.waitUntil(lambda: len(mock.requests) >= 1, timeout=5000)
    p = page(qtbot, SettingsPage, ctx)
    p.port.setValue(new_port)
    p.save_port()
    try:
        assert f"now listens on http://127.0.0.1:{new_port}" in wait_message(
            qtbot, p.message, "ok", timeout=10_000
        )
        assert ctx.proxy is not proxy and ctx.proxy.port == new_port and core.config.port == new_port
        assert f"Listening on http://127.0.0.1:{new_port}." == p.listening.text()
        caller.join(10)
        assert slow == [200]  # drained, not cut
        qtbot.waitUntil(lambda: proxy._stopped.is_set(), timeout=10_000)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{old_url}/health", timeout=2)
        assert (
            httpx.post(
                f"http://127.0.0.1:{new_port}/v1/chat/completions",
                headers={"Authorization": f"Bearer {token}"},
                json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
                timeout=20,
            ).status_code
            == 200
        )
        assert cli(["--config", str(core.config_path), "env"]) == 0
        assert f"http://127.0.0.1:{new_port}" in capsys.readouterr().out
        ctx.wait()
        assert f'base_url = "http://127.0.0.1:{new_port}/v1"' in connected.path.read_text()
        # a port that is taken: the proxy stays where it is and says so
        taken = ctx.proxy.port
        blocker = __import__("socket").socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        p.port.setValue(blocker.getsockname()[1])
        p.save_port()
        assert f"keeps serving on http://127.0.0.1:{taken}" in wait_message(
            qtbot, p.message, "error", timeout=10_000
        )
        qtbot.waitUntil(lambda: core.config.port == taken, timeout=5000)
        blocker.close()
    finally:
        ctx.wait()
        ctx.proxy.stop()
    assert cli(["--config", str(core.config_path), "env"]) == 0  # nothing runs: the configured port
    assert f"http://127.0.0.1:{core.config.port}" in capsys.readouterr().out


def test_connect_buttons_write_and_restore_each_agents_file(
    ctx, core, proxy, isolated_home: Path, qtbot
) -> None:  # type: ignore[no-untyped-def]
    import json

    from app.core.connect import CONNECTABLE, is_connected

    settings_file = isolated_home / ".claude" / "settings.json"
    settings_file.parent.mkdir()
    settings_file.write_text(json.dumps({"theme": "dark"}))
    p = page(qtbot, ExportPage, ctx)
    assert set(p.connect_buttons) == set(CONNECTABLE)
    assert all(b.text() == "Connect" for b in p.connect_buttons.values())
    p.connect_buttons["claude-code"].click()
    message = wait_message(qtbot, p.connect_message, "ok")
    assert "Claude Code connected" in message and "settings.json.downshift-backup" in message
    assert "$ANTHROPIC_AUTH_TOKEN" in message
    assert p.connect_status["claude-code"].text() == "connected: ~/.claude/settings.json"
    data = json.loads(settings_file.read_text())
    assert data["theme"] == "dark" and data["env"]["ANTHROPIC_BASE_URL"] == proxy.url
    assert "ANTHROPIC_AUTH_TOKEN" not in data["env"] and core.token() not in settings_file.read_text()
    assert p.connect_buttons["claude-code"].text() == "Disconnect"
    assert p.rc_line.text() == 'eval "$(downshift env --agent claude-code)"'
    p.connect_buttons["aider"].click()
    qtbot.waitUntil(lambda: "Aider connected" in p.connect_message.text(), timeout=5000)
    assert 'model: "openai/default"' in (isolated_home / ".aider.conf.yml").read_text()
    p.shell.setCurrentIndex(p.shell.findData("fish"))
    assert p.rc_line.text().endswith("--format fish | source")
    p.connect_buttons["claude-code"].click()  # Disconnect
    qtbot.waitUntil(lambda: "Claude Code disconnected" in p.connect_message.text(), timeout=5000)
    assert json.loads(settings_file.read_text()) == {"theme": "dark"} and not is_connected("claude-code")
    p.connect_buttons["aider"].click()
    qtbot.waitUntil(lambda: "Aider disconnected" in p.connect_message.text(), timeout=5000)
    assert not (isolated_home / ".aider.conf.yml").exists()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    p.connect_buttons["codex"].click()
    qtbot.waitUntil(lambda: "Codex CLI connected" in p.connect_message.text(), timeout=5000)
    qtbot.wait(50)
    assert p.grab().save(str(SCREENSHOTS / "export-connect.png"))


def test_the_preset_editor_fits_a_900x600_window_with_no_horizontal_scroll(
    gui, ctx, qtbot, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    window = gui.window
    window.resize(900, 600)
    presets = window.show_page("presets")
    presets.select("cheap")
    presets.load_probes()
    gui.ctx.wait()
    qtbot.wait(100)  # layouts settle, probe verdicts and prices are in the pickers
    shot = window.grab()
    assert shot.save(str(tmp_path / "presets-900x600.png"))
    assert (shot.width(), shot.height()) == (900, 600)
    bar = presets.form_scroll.horizontalScrollBar()
    assert bar.maximum() == 0 and not bar.isVisible(), (
        bar.maximum(),
        presets.form_scroll.widget().minimumSizeHint(),
    )
    # the form is usable: every picker's model field is wide enough to read a model name
    for picker in (*presets.pickers.values(), presets.fallback_picker):
        assert picker.model.width() >= 140, picker.model.width()
    bar = presets.form_scroll.verticalScrollBar()
    bar.setValue(bar.maximum())  # the fallback list and its picker, at the bottom of the form
    qtbot.wait(50)
    assert window.grab().save(str(tmp_path / "presets-900x600-bottom.png"))
    assert presets.form_scroll.horizontalScrollBar().maximum() == 0
    # the Budgets tab too: every column of a budget row in view
    presets.budgets_editor.add_budget(Budget("month", 60.0, action="switch", switch_to="cheap"))
    presets.tabs.setCurrentIndex(1)
    qtbot.wait(50)
    assert window.grab().save(str(tmp_path / "budgets-900x600.png"))
    assert presets.budgets_editor.table.horizontalScrollBar().maximum() == 0

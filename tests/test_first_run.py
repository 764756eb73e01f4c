"""The first-run assistant, driven end to end against the mock upstream as a custom OpenAI-compatible
provider: template, key (a refused one, then a good one), models with prices, saved config and keyring,
the agent's env on the clipboard; plus when it opens at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QWizard

from app.core.config import Provider, default_config
from app.core.provider_templates import TEMPLATES, template
from app.ui import first_run
from app.ui.first_run import (
    Choices,
    FirstRunWizard,
    apply_choices,
    maybe_run_first_run,
    needs_first_run,
    suggest,
)

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(r"This plugin does not support (propagateSizeHints|raise|grabWindow)"),
]

GOOD_KEY = "sk-mock-good-0123456789"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """docs/screenshots with DOWNSHIFT_SCREENSHOTS=1 (a plain test run leaves the tree clean), else a temp folder."""
    folder = SCREENSHOTS if os.environ.get("DOWNSHIFT_SCREENSHOTS") else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(wizard: QWizard, name: str, folder: Path) -> None:
    """Each page as the README shows it (first_run_*.png)."""
    QApplication.processEvents()  # pending layout requests, so a label filled a moment ago has its height
    target = folder / f"first_run_{name}.png"
    assert wizard.grab().save(str(target))
    assert target.stat().st_size > 10_000


@pytest.fixture
def keyed_mock() -> Iterator[object]:
    from app.testing.mock_upstream import MockUpstream

    with MockUpstream(require_key=GOOD_KEY) as upstream:
        yield upstream


@pytest.fixture
def fresh_core(tmp_path: Path) -> Iterator[object]:
    """A Core on a config that does not exist yet: what a new user starts with."""
    from app.core.engine import Core

    core = Core(tmp_path / "config.toml", f"sqlite:///{tmp_path / 'log.db'}")
    yield core
    core.close()


@pytest.fixture
def ctx(qtbot, fresh_core) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from app.ui.background import Background
    from app.ui.bridge import CoreBridge
    from app.ui.context import UiContext

    background = Background()
    context = UiContext(fresh_core, None, CoreBridge(fresh_core.events), background)
    yield context
    assert context.wait(10_000)
    context.bridge.close()


def _next(qtbot, wizard: QWizard) -> None:  # type: ignore[no-untyped-def]
    button = wizard.button(QWizard.WizardButton.NextButton)
    assert button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_the_assistant_sets_up_a_custom_provider_end_to_end(qtbot, ctx, keyed_mock, shots: Path) -> None:  # type: ignore[no-untyped-def]
    wizard = FirstRunWizard(ctx)
    qtbot.addWidget(wizard)
    wizard.show()
    next_button = wizard.button(QWizard.WizardButton.NextButton)

    page = wizard.provider_page
    page.templates.setCurrentRow([t.id for t in TEMPLATES].index("custom"))
    assert not next_button.isEnabled()  # a custom provider needs its URL
    qtbot.keyClicks(page.base_url, keyed_mock.base_url + "/v1")
    page.name.setText("mockco")
    shoot(wizard, "1_provider", shots)
    _next(qtbot, wizard)

    key_page = wizard.key_page
    assert wizard.currentPage() is key_page and not next_button.isEnabled()
    qtbot.keyClicks(key_page.key, "sk-wrong")  # tested on its own after a pause: no click needed
    qtbot.waitUntil(lambda: key_page.message.kind == "error", timeout=10_000)
    assert "refused" in key_page.message.text() and not next_button.isEnabled()
    key_page.key.clear()
    qtbot.keyClicks(key_page.key, GOOD_KEY)
    qtbot.mouseClick(key_page.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(next_button.isEnabled, timeout=10_000)
    assert key_page.message.kind == "ok" and "5 models" in key_page.message.text()
    assert keyed_mock.last_request.api_key == GOOD_KEY
    shoot(wizard, "2_key", shots)
    _next(qtbot, wizard)

    models = wizard.models_page
    assert models.cheap.model() == "qwen/qwen3-coder"  # suggested from the provider's own list
    assert models.premium.model() == "anthropic/claude-sonnet-4.6"
    assert models.cheap.price.text().startswith("$0.22 in / $0.95 out")  # the packaged price table
    assert models.premium.price.text().startswith("$3.00 in / $15.00 out")
    assert "costs 15× as much" in models.ratio.text()  # (3 x 3 + 15) / (3 x 0.22 + 0.95)
    models.cheap.combo.setCurrentText("moonshotai/kimi-k2")
    assert models.cheap.price.text().startswith("$0.60 in / $2.50 out")
    models.cheap.combo.setCurrentText("mock-model")  # not in the table: the provider's own list prices it
    assert "provider's list" in models.cheap.price.text()
    models.cheap.combo.setCurrentText("qwen/qwen3-coder")
    shoot(wizard, "3_models", shots)
    _next(qtbot, wizard)
    qtbot.waitUntil(lambda: wizard.currentPage() is wizard.agent_page, timeout=10_000)

    core = ctx.core
    config = core.config_store.current()
    provider = config.providers["mockco"]
    assert provider.base_url == keyed_mock.base_url + "/v1" and provider.kind == "custom"
    assert core.secrets.get("provider:mockco") == GOOD_KEY  # the keyring, never the config file
    assert GOOD_KEY not in core.config_path.read_text()
    assert {n: str(p.roles["default"]) for n, p in config.presets.items() if n != "premium"} == {
        "cheap": "mockco/qwen/qwen3-coder",
        "plan-high": "mockco/qwen/qwen3-coder",
    }
    assert str(config.presets["premium"].default) == "mockco/anthropic/claude-sonnet-4.6"
    assert str(config.presets["plan-high"].roles["plan"]) == "mockco/anthropic/claude-sonnet-4.6"
    assert config.active == "cheap" and config.premium == "premium"
    assert ctx.models.models("mockco")  # the Presets page's picker has the list too

    agent = wizard.agent_page
    agent.agent.setCurrentIndex(agent.agent.findData("aider"))
    qtbot.waitUntil(agent.copy_button.isEnabled, timeout=10_000)
    text = agent.env.toPlainText()
    assert "OPENAI_API_BASE" in text and core.token() in text and "openai/default" in text
    qtbot.mouseClick(agent.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == text
    shoot(wizard, "4_agent", shots)
    qtbot.mouseClick(wizard.button(QWizard.WizardButton.FinishButton), Qt.MouseButton.LeftButton)
    assert ctx.wait(10_000)
    ui = core.config_store.current().ui
    assert ui["first_run_done"] is True and ui["agent"] == "aider"


def test_going_back_and_changing_a_model_saves_again(qtbot, ctx, keyed_mock) -> None:  # type: ignore[no-untyped-def]
    wizard = FirstRunWizard(ctx)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.provider_page.templates.setCurrentRow([t.id for t in TEMPLATES].index("custom"))
    wizard.provider_page.base_url.setText(keyed_mock.base_url + "/v1")
    _next(qtbot, wizard)
    wizard.key_page.key.setText(GOOD_KEY)
    wizard.key_page.test()
    qtbot.waitUntil(wizard.button(QWizard.WizardButton.NextButton).isEnabled, timeout=10_000)
    _next(qtbot, wizard)
    _next(qtbot, wizard)
    qtbot.waitUntil(lambda: wizard.currentPage() is wizard.agent_page, timeout=10_000)
    wizard.back()
    wizard.models_page.premium.combo.setCurrentText("moonshotai/kimi-k2")
    _next(qtbot, wizard)
    qtbot.waitUntil(lambda: wizard.currentPage() is wizard.agent_page, timeout=10_000)
    assert str(ctx.core.config_store.current().presets["premium"].default) == "custom/moonshotai/kimi-k2"


def test_skipping_marks_it_done_without_touching_providers(qtbot, ctx) -> None:  # type: ignore[no-untyped-def]
    before = ctx.core.config_store.current()
    wizard = FirstRunWizard(ctx)
    qtbot.addWidget(wizard)
    wizard.show()
    assert wizard.button(QWizard.WizardButton.CancelButton).text() == "Skip"
    wizard.reject()
    assert ctx.wait(10_000)
    after = ctx.core.config_store.current()
    assert after.ui["first_run_done"] is True
    assert after.providers == before.providers and after.presets == before.presets


def test_it_opens_for_a_fresh_install_and_never_again(qtbot, ctx) -> None:  # type: ignore[no-untyped-def]
    def open_wizards() -> list[FirstRunWizard]:
        return [w for w in QApplication.topLevelWidgets() if isinstance(w, FirstRunWizard) and w.isVisible()]

    assert maybe_run_first_run(ctx) is True  # only the local Ollama of the default config: no key anywhere
    qtbot.waitUntil(lambda: len(open_wizards()) == 1, timeout=10_000)
    wizard = open_wizards()[0]
    wizard.reject()
    assert ctx.wait(10_000)
    assert maybe_run_first_run(ctx) is False


def test_it_stays_closed_when_a_hosted_provider_has_a_key(
    qtbot, ctx, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    opened: list[object] = []
    monkeypatch.setattr(first_run, "FirstRunWizard", lambda *a: opened.append(a))
    config = apply_choices(
        default_config(),
        Choices(Provider("openrouter", "https://openrouter.ai/api/v1", kind="openrouter"), None, "a", "b"),
    )
    ctx.core.config_store.save(replace(config, ui={}))  # set up by hand, not by the assistant
    ctx.core.set_provider_key("openrouter", "sk-or-test")
    assert maybe_run_first_run(ctx) is True  # the key check runs in the background...
    assert ctx.wait(10_000)
    qtbot.wait(50)
    assert opened == []  # ...and finds the key


def test_needs_first_run_rules() -> None:
    config = default_config()
    assert needs_first_run(config, lambda p: True)  # Ollama is local: its (absent) key does not count
    hosted = apply_choices(
        config,
        Choices(
            Provider("deepseek", "https://api.deepseek.com/v1", kind="deepseek"),
            None,
            "deepseek-chat",
            "deepseek-reasoner",
        ),
    )
    fresh = replace(hosted, ui={})
    assert needs_first_run(fresh, lambda p: False)
    assert not needs_first_run(fresh, lambda p: p.name == "deepseek")
    assert not needs_first_run(hosted, lambda p: False)  # the assistant ran already


def test_apply_choices_reuses_an_existing_account_and_keeps_other_presets() -> None:
    config = default_config()
    ollama = first_run.provider_for(config, template("ollama"), "http://127.0.0.1:11434/v1/")
    assert ollama.name == "ollama"  # same kind and URL as the default config's: reused
    second = first_run.provider_for(config, template("ollama"), "http://10.0.0.5:11434/v1")
    assert second.name == "ollama-2"
    out = apply_choices(config, Choices(ollama, None, "qwen2.5-coder:7b", "qwen3-coder:30b"))
    assert list(out.providers) == ["ollama"]
    assert set(out.presets) == {"cheap", "premium", "plan-high"} and out.active == "cheap"


def test_suggest_prefers_known_picks_then_the_first_model() -> None:
    assert suggest(["a", "DeepSeek-Chat", "b"], first_run.CHEAP_PICKS) == "DeepSeek-Chat"
    assert suggest(["zeta", "alpha"], first_run.CHEAP_PICKS) == "zeta"
    assert suggest([], first_run.CHEAP_PICKS) == ""


def test_a_custom_anthropic_endpoint_with_steps_priced_lists_and_the_placeholder_gone(
    qtbot, ctx, keyed_mock
) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QStyleOptionViewItem

    assert "ollama" in ctx.core.config.providers  # the fresh install's placeholder
    wizard = FirstRunWizard(ctx)
    qtbot.addWidget(wizard)
    wizard.show()
    assert [
        p.title().split(":")[0]
        for p in (wizard.provider_page, wizard.key_page, wizard.models_page, wizard.agent_page)
    ] == [f"Step {i} of 4" for i in (1, 2, 3, 4)]
    page = wizard.provider_page
    page.templates.setCurrentRow([t.id for t in TEMPLATES].index("custom"))
    assert page.api.isEnabled()
    page.api.setCurrentIndex(page.api.findData("anthropic"))
    qtbot.keyClicks(page.base_url, keyed_mock.base_url + "/v1")
    page.name.setText("claudeish")
    _next(qtbot, wizard)
    key_page = wizard.key_page
    qtbot.keyClicks(key_page.key, GOOD_KEY)
    qtbot.mouseClick(key_page.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(wizard.button(QWizard.WizardButton.NextButton).isEnabled, timeout=10_000)
    assert keyed_mock.last_request.api == "anthropic"  # listed the Anthropic way (x-api-key)
    _next(qtbot, wizard)
    combo = wizard.models_page.cheap.combo
    row = combo.findText("qwen/qwen3-coder")
    option = QStyleOptionViewItem()
    combo.itemDelegate().initStyleOption(option, combo.model().index(row, 0))
    assert option.text == "qwen/qwen3-coder    $0.22 / $0.95 per M"  # the drop-down shows prices
    assert combo.itemText(row) == "qwen/qwen3-coder"  # what gets picked stays the bare id
    _next(qtbot, wizard)
    qtbot.waitUntil(lambda: wizard.currentPage() is wizard.agent_page, timeout=10_000)
    config = ctx.core.config_store.current()
    assert config.providers["claudeish"].api == "anthropic"
    assert list(config.providers) == ["claudeish"]  # the unused Ollama placeholder is gone


def test_a_skipped_assistant_comes_back_from_the_menu_and_a_dead_ollama_is_flagged(
    qtbot, ctx, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import socket

    from PySide6.QtCore import QSettings

    from app.ui.main_window import MainWindow

    with socket.socket() as probe:  # the placeholder points at 127.0.0.1:11434: nothing may listen there
        if probe.connect_ex(("127.0.0.1", 11434)) == 0:
            pytest.skip("something listens on Ollama's port on this machine")
    settings = QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
    settings.setValue("window/page", "export")
    window = MainWindow(ctx, settings, lambda: None)
    qtbot.addWidget(window)
    window.show()
    window.check_health()
    qtbot.waitUntil(lambda: window.health.kind == "error", timeout=10_000)
    assert "ollama at http://127.0.0.1:11434/v1, which is not answering" in window.health.text()
    assert "Set up a provider" in window.health.text()

    def open_wizards() -> list[FirstRunWizard]:
        return [w for w in QApplication.topLevelWidgets() if isinstance(w, FirstRunWizard) and w.isVisible()]

    assert maybe_run_first_run(ctx, window) is True
    qtbot.waitUntil(lambda: len(open_wizards()) == 1, timeout=10_000)
    open_wizards()[0].reject()  # Skip
    assert ctx.wait(10_000)
    assert maybe_run_first_run(ctx, window) is False  # it does not come back on its own...
    qtbot.waitUntil(lambda: not open_wizards(), timeout=5000)
    setup = next(
        a for m in window.menuBar().actions() for a in m.menu().actions() if a.text() == "Set up a &provider…"
    )
    setup.trigger()  # ...but the menu brings it back
    qtbot.waitUntil(lambda: len(open_wizards()) == 1, timeout=5000)
    open_wizards()[0].reject()
    assert ctx.wait(10_000)


def test_closing_the_assistant_while_a_key_is_tested_leaves_no_late_callback(
    qtbot, ctx, keyed_mock, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The answer of a test still running when the assistant closes (and is deleted) must not reach its
    deleted pages ("Internal C++ object already deleted")."""
    import threading

    import shiboken6

    from app.core import provider_models

    answered = threading.Event()
    real = provider_models.fetch_models

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        answered.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(provider_models, "fetch_models", slow)
    wizard = first_run.open_first_run(ctx)
    page = wizard.provider_page
    page.templates.setCurrentRow([t.id for t in TEMPLATES].index("custom"))
    qtbot.keyClicks(page.base_url, keyed_mock.base_url + "/v1")
    page.name.setText("mockco")
    _next(qtbot, wizard)
    wizard.key_page.key.setText(GOOD_KEY)
    wizard.key_page.test()
    wizard.close()  # deleted on close (WA_DeleteOnClose)
    qtbot.waitUntil(lambda: not shiboken6.isValid(wizard), timeout=3000)  # the deferred delete happened
    answered.set()
    assert ctx.wait(10_000)
    qtbot.wait(100)  # the job's result is delivered on the GUI thread: nobody is there to take it


def test_saving_the_choices_keeps_a_change_another_writer_makes_meanwhile(
    qtbot, ctx, keyed_mock, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The assistant's save goes through `ConfigStore.update`: a budget switch or another window saving just
    as it writes waits its turn and lands on top, instead of being written over."""
    import threading

    store = ctx.core.config_store
    original = store.save
    other = threading.Thread(target=store.update, args=(lambda c: replace(c, retention_days=7),), daemon=True)

    def save(config):  # type: ignore[no-untyped-def]
        if threading.current_thread() is not other and other.ident is None:
            other.start()
            other.join(1.0)  # the old read-then-save let it land here, then saved over it
        original(config)

    monkeypatch.setattr(store, "save", save)
    wizard = FirstRunWizard(ctx)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.provider_page.templates.setCurrentRow([t.id for t in TEMPLATES].index("custom"))
    wizard.provider_page.base_url.setText(keyed_mock.base_url + "/v1")
    _next(qtbot, wizard)
    wizard.key_page.key.setText(GOOD_KEY)
    wizard.key_page.test()
    qtbot.waitUntil(wizard.button(QWizard.WizardButton.NextButton).isEnabled, timeout=10_000)
    _next(qtbot, wizard)
    _next(qtbot, wizard)
    qtbot.waitUntil(lambda: wizard.currentPage() is wizard.agent_page, timeout=10_000)
    other.join(5)
    from app.core.config import load_config

    config = load_config(ctx.core.config_path)
    assert config.retention_days == 7 and "custom" in config.providers and config.active == "cheap"

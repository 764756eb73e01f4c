"""The first-run assistant: from a fresh install to an agent pointed at Downshift in four pages.

Provider (a template), key (tested by listing the provider's models, off the GUI thread), cheap and
premium models (from that list, with prices from the price table), agent (its env, ready to copy). The
key goes to the keyring and the providers and presets to the config when the models page is left, so
the env copied on the last page already works. Nothing here is special: the Providers, Presets and
Export pages edit the same things afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from app.core.config import Config, Preset, Provider, Target
from app.core.config_edit import put_preset, upsert_provider
from app.core.envexport import FORMATS, export_text
from app.core.provider_templates import TEMPLATES, ProviderTemplate, provider_from_template
from app.core.ui_prefs import pref, with_prefs
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.pages import MessageLine, money

if (
    TYPE_CHECKING
):  # the HTTP client loads when a key is tested, not with the app (every start imports this module)
    from app.core.provider_models import ModelInfo, ModelListing

DONE_KEY = "first_run_done"  # in the config's [ui] table
AGENT_LABELS = {
    "claude-code": "Claude Code",
    "codex": "Codex CLI",
    "aider": "Aider",
    "cline": "Cline",
    "opencode": "OpenCode",
    "qwen-code": "Qwen Code",
    "continue": "Continue",
    "generic": "Another OpenAI- or Anthropic-format tool",
}
# Sensible picks when the provider lists them, best first; otherwise the first listed model.
CHEAP_PICKS = (
    "qwen/qwen3-coder",
    "deepseek/deepseek-chat-v3.1",
    "deepseek-chat",
    "moonshotai/kimi-k2",
    "kimi-k2-0905-preview",
    "devstral-medium-latest",
    "openai/gpt-oss-120b",
    "gpt-5-mini",
    "claude-haiku-4-5",
    "qwen2.5-coder:7b",
)
PREMIUM_PICKS = (
    "anthropic/claude-sonnet-4.6",
    "anthropic/claude-sonnet-4.5",
    "claude-sonnet-4-5",
    "claude-sonnet-4-6",
    "openai/gpt-5",
    "gpt-5",
    "deepseek/deepseek-reasoner",
    "deepseek-reasoner",
    "moonshotai/kimi-k2-thinking",
)


# ---------------------------------------------------------------------------------------------- no Qt


@dataclass(frozen=True)
class Choices:
    """What the assistant collected; `apply_choices` turns it into config."""

    provider: Provider
    key: str | None
    cheap: str
    premium: str


def needs_first_run(config: Config, has_key: Callable[[Provider], bool]) -> bool:
    """Not done before, and no hosted provider has a key yet (a fresh install has a local Ollama only)."""
    if config.ui.get(DONE_KEY):
        return False
    return not any(not p.local and has_key(p) for p in config.providers.values())


def provider_for(config: Config, tpl: ProviderTemplate, base_url: str, name: str | None = None) -> Provider:
    """The template's provider; an existing account of the same kind and URL is reused, not duplicated."""
    url = base_url.strip().rstrip("/")
    for existing in config.providers.values():
        if existing.kind == tpl.kind and existing.base_url == url and (name is None or name == existing.name):
            return existing
    return provider_from_template(tpl, name=name or None, base_url=url, taken=config.providers)


def apply_choices(config: Config, choices: Choices) -> Config:
    """Add the provider and the cheap / premium / plan-high presets; cheap becomes active."""
    name = choices.provider.name
    config = upsert_provider(config, choices.provider, old_name=name if name in config.providers else None)
    cheap, premium = Target(name, choices.cheap), Target(name, choices.premium)
    presets = (
        Preset("cheap", {"default": cheap}, description="Open-weight executor for the loop"),
        Preset("premium", {"default": premium}, description="Frontier model for everything"),
        Preset(
            "plan-high",
            {"default": cheap, "plan": premium},
            description="Plan on the premium model, execute cheap",
        ),
    )
    for preset in presets:
        config = put_preset(config, preset, old_name=preset.name if preset.name in config.presets else None)
    config = replace(config, active="cheap", cheap="cheap", premium="premium")
    config = drop_placeholder(config, keep=name)
    return replace(config, ui={**config.ui, DONE_KEY: True})


def drop_placeholder(config: Config, keep: str) -> Config:
    """A fresh install's local Ollama entry is a placeholder: once another provider is set up, it goes,
    so it neither lingers as the first choice in pickers nor routes calls to a server that is not there.
    Kept when it was picked, edited, or is still used by a preset or budget."""
    from app.core.config import default_config
    from app.core.config_edit import provider_users

    placeholder = default_config().providers["ollama"]
    if keep == placeholder.name or config.providers.get(placeholder.name) != placeholder:
        return config
    if provider_users(config, placeholder.name):
        return config
    return replace(config, providers={k: v for k, v in config.providers.items() if k != placeholder.name})


def suggest(ids: Sequence[str], picks: Sequence[str]) -> str:
    lowered = {i.lower(): i for i in ids}
    for pick in picks:
        if pick in lowered:
            return lowered[pick]
    return ids[0] if ids else ""


def in_out_price(
    model: str, provider_kind: str, listed: ModelInfo | None = None
) -> tuple[float, float, bool] | None:
    """(input, output) USD per million tokens and whether they come from the provider's own list: the price
    table first, then that list; None when neither knows the model."""
    from app.core.price_table import lookup

    entry = lookup(model, provider_kind) if model else None
    if entry is not None:
        return entry.input, entry.output, False
    if listed is not None and listed.input_per_m is not None and listed.output_per_m is not None:
        return listed.input_per_m, listed.output_per_m, True
    return None


def price_text(model: str, provider_kind: str, listed: ModelInfo | None = None) -> str:
    """Input and output price per million tokens, and where it came from when that is the provider's list."""
    found = in_out_price(model, provider_kind, listed)
    if found is None:
        return "price unknown: calls are logged as unpriced until you add one (Presets page)"
    inp, out, from_list = found
    return f"{money(inp)} in / {money(out)} out per million tokens" + (
        " (provider's list)" if from_list else ""
    )


def unit_price(model: str, provider_kind: str, listed: ModelInfo | None = None) -> float | None:
    """A blended USD per million tokens (3 in : 1 out, roughly an agent loop's mix), or None if unknown."""
    found = in_out_price(model, provider_kind, listed)
    return None if found is None else (3 * found[0] + found[1]) / 4


def default_shell() -> str:
    return "powershell" if sys.platform == "win32" else "bash"


# ---------------------------------------------------------------------------------------------- pages


class ProviderPage(QWizardPage):
    """Pick a template; custom and local servers show their URL to edit."""

    def __init__(self, ctx: UiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.setTitle("Where should your agent's calls go?")
        self.setSubTitle(
            "Pick the provider you have an account with (or a local server). You can add more "
            "later on the Providers page, or skip this assistant (Downshift > Set up a provider… brings it back)."
        )
        self.templates = QListWidget()
        self.templates.setObjectName("templates")
        for tpl in TEMPLATES:
            item = QListWidgetItem(tpl.name + (" (local server)" if tpl.local else ""))
            item.setData(Qt.ItemDataRole.UserRole, tpl.id)
            self.templates.addItem(item)
        self.base_url = QLineEdit()
        self.base_url.setObjectName("baseUrl")
        self.base_url.setPlaceholderText("https://…/v1 (the prefix of /chat/completions)")
        self.name = QLineEdit()
        self.name.setObjectName("providerName")
        self.name.setPlaceholderText("a short name, e.g. work-vllm")
        self.api = QComboBox()
        self.api.setObjectName("apiFormat")
        self.api.addItem("OpenAI format (/chat/completions)", "openai")
        self.api.addItem("Anthropic format (/v1/messages)", "anthropic")
        self.api.setToolTip(
            "The wire format the server speaks; Downshift translates between it and the agent's"
        )
        form = QFormLayout()
        form.addRow("Base URL", self.base_url)
        form.addRow("API format", self.api)
        form.addRow("Name", self.name)
        layout = QVBoxLayout(self)
        layout.addWidget(self.templates, 1)
        layout.addLayout(form)
        self.templates.currentRowChanged.connect(self._chosen)
        self.base_url.textChanged.connect(self.completeChanged)
        self.templates.setCurrentRow(0)

    @property
    def template(self) -> ProviderTemplate:
        return TEMPLATES[max(0, self.templates.currentRow())]

    def _chosen(self) -> None:
        tpl = self.template
        self.base_url.setText(tpl.base_url)
        self.base_url.setReadOnly(bool(tpl.base_url) and not tpl.local)
        self.name.setText("" if tpl.id == "custom" else tpl.id)
        self.api.setCurrentIndex(max(0, self.api.findData(tpl.api)))
        self.api.setEnabled(tpl.id == "custom")  # the others speak the format their template says
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.base_url.text().strip().startswith(("http://", "https://"))

    def provider(self) -> Provider:
        config = self.ctx.core.config
        provider = provider_for(config, self.template, self.base_url.text(), self.name.text().strip() or None)
        api = self.api.currentData()
        return (
            replace(provider, api=api) if self.template.id == "custom" and api != provider.api else provider
        )


class KeyPage(QWizardPage):
    """Paste the key and test it: the listing feeds the model pickers, so a passing test is required."""

    def __init__(self, ctx: UiContext, provider_page: ProviderPage) -> None:
        super().__init__()
        self.ctx, self.provider_page = ctx, provider_page
        self.setTitle("Paste your API key")
        self.key = QLineEdit()
        self.key.setObjectName("apiKey")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.show_key = QCheckBox("Show")
        self.show_key.toggled.connect(
            lambda on: self.key.setEchoMode(QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.Password)
        )
        self.where = QLabel()
        self.where.setOpenExternalLinks(True)
        self.where.setWordWrap(True)
        self.test_button = QPushButton("Test")
        self.test_button.setObjectName("testKey")
        self.test_button.clicked.connect(self.test)
        self.message = MessageLine()
        self.message.setObjectName("keyMessage")
        self.note = QLabel()
        self.note.setWordWrap(True)
        row = QFormLayout()
        row.addRow("Key", self.key)
        row.addRow("", self.show_key)
        layout = QVBoxLayout(self)
        layout.addWidget(self.where)
        layout.addLayout(row)
        layout.addWidget(self.test_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.message)
        layout.addStretch(1)
        layout.addWidget(self.note)
        self.listing: ModelListing | None = None
        self._tested_for: tuple[str, str, str] | None = None
        self._debounce = QTimer(self, singleShot=True, interval=700)
        self._debounce.timeout.connect(self._auto_test)
        self.key.textEdited.connect(self._edited)

    def initializePage(self) -> None:
        tpl, provider = self.provider_page.template, self.provider_page.provider()
        self.setSubTitle(f"{tpl.name} at {provider.base_url}")
        if tpl.local:
            self.where.setText("A local server usually needs no key: leave it empty and press Test.")
        elif tpl.docs_url:
            self.where.setText(f'No key yet? Create one at <a href="{tpl.docs_url}">{tpl.docs_url}</a>.')
        else:
            self.where.setText(
                "The key your server expects as a Bearer token (leave empty if it needs none)."
            )
        self.note.setText(
            f"The key is kept in the {self.ctx.core.secrets.describe()}, never in the config or the log."
        )
        if self._signature() != self._tested_for:
            self.listing = None
            self.message.clear()
        self.completeChanged.emit()

    def _signature(self) -> tuple[str, str, str]:
        provider = self.provider_page.provider()
        return provider.name, provider.base_url, self.key.text().strip()

    def _edited(self) -> None:
        self.listing, self._tested_for = None, None
        self.message.clear()
        self.completeChanged.emit()
        self._debounce.start()  # a pasted key is tested without a click

    def _auto_test(self) -> None:
        if self.key.text().strip():
            self.test()

    def test(self) -> None:
        provider, key = self.provider_page.provider(), self.key.text().strip() or None
        signature = self._signature()
        self.test_button.setEnabled(False)
        self.message.info(f"Asking {provider.base_url}/models…")

        def fetch() -> ModelListing:
            from app.core.provider_models import fetch_models

            return fetch_models(provider, key, timeout=15.0)

        self.ctx.background.run(fetch, lambda listing: self._tested(signature, listing), self._failed)

    def _tested(self, signature: tuple[str, str, str], listing: ModelListing) -> None:
        self.test_button.setEnabled(True)
        if signature != self._signature():
            return  # the key changed while we asked; the newer test decides
        if not listing.models:
            self.message.error("The provider answered, but lists no models.")
            return
        self.listing, self._tested_for = listing, signature
        n = len(listing.models)
        self.message.ok(
            f"It works: {n} model{'s' if n != 1 else ''}, answered in {listing.latency_ms:.0f} ms."
        )
        self.completeChanged.emit()

    def _failed(self, exc: Exception) -> None:
        self.test_button.setEnabled(True)
        self.message.error(plain_error("That did not work", exc))

    def isComplete(self) -> bool:
        return self.listing is not None and self._tested_for == self._signature()


class PricedItems(QStyledItemDelegate):
    """Paints each model in the drop-down with its price beside it; the item text (the id) is unchanged,
    so what is typed or picked stays a plain model id."""

    def __init__(self, picker: ModelPicker) -> None:
        super().__init__(picker.combo)
        self.picker = picker

    def initStyleOption(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:  # noqa: N802
        super().initStyleOption(option, index)
        model = str(index.data() or "")
        price = short_price(model, self.picker.kind, self.picker.listed.get(model))
        option.text = f"{model}    {price}" if price else model


def short_price(model: str, provider_kind: str, listed: ModelInfo | None = None) -> str:
    """'$0.30 / $1.20 per M' (input / output), or '' when unknown."""
    found = in_out_price(model, provider_kind, listed)
    return "" if found is None else f"{money(found[0])} / {money(found[1])} per M"


class ModelPicker(QWidget):
    """An editable model list (type to filter) with the chosen model's price under it."""

    def __init__(self, object_name: str) -> None:
        super().__init__()
        self.combo = QComboBox()
        self.combo.setObjectName(object_name)
        self.combo.setEditable(True)
        self.combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.combo.setMinimumContentsLength(32)
        self.price = QLabel()
        self.price.setObjectName(object_name + "Price")
        self.price.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo)
        layout.addWidget(self.price)
        self.kind = "custom"
        self.listed: dict[str, ModelInfo] = {}
        self.combo.setItemDelegate(PricedItems(self))
        self.combo.currentTextChanged.connect(self._show_price)

    def fill(self, listing: ModelListing, kind: str, chosen: str) -> None:
        self.kind = kind
        self.listed = {m.id: m for m in listing.models}
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItems(listing.ids)
        completer = QCompleter(listing.ids, self.combo)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.combo.setCompleter(completer)
        self.combo.blockSignals(False)
        self.combo.setCurrentText(chosen)
        self._show_price(chosen)

    def model(self) -> str:
        return self.combo.currentText().strip()

    def _show_price(self, text: str) -> None:
        self.price.setText(price_text(text.strip(), self.kind, self.listed.get(text.strip())))


class ModelsPage(QWizardPage):
    """Cheap and premium models; leaving the page saves the key, the provider and the presets."""

    def __init__(self, ctx: UiContext, provider_page: ProviderPage, key_page: KeyPage) -> None:
        super().__init__()
        self.ctx, self.provider_page, self.key_page = ctx, provider_page, key_page
        self.setTitle("Pick a cheap and a premium model")
        self.setSubTitle(
            "The cheap model runs the agent's loop; the premium one is there for planning and "
            "hard steps. Three presets are made from them: cheap, premium and plan-high."
        )
        self.cheap = ModelPicker("cheapModel")
        self.premium = ModelPicker("premiumModel")
        self.message = MessageLine()
        self.message.setObjectName("saveMessage")
        self.ratio = QLabel()
        self.ratio.setObjectName("priceRatio")
        self.ratio.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Cheap", self.cheap)
        form.addRow("Premium", self.premium)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.ratio)
        hint = QLabel(
            "A premium model on another provider (say, Anthropic) can be set on the Presets page "
            "once that provider is added."
        )
        hint.setWordWrap(True)
        layout.addWidget(hint)
        layout.addStretch(1)
        layout.addWidget(self.message)
        self.saved: Choices | None = None
        self._saving = False
        for picker in (self.cheap, self.premium):
            picker.combo.currentTextChanged.connect(self.completeChanged)
            picker.combo.currentTextChanged.connect(self._compare)

    def _compare(self) -> None:
        """How much more the premium model costs, in one line: the reason the cheap one runs the loop."""
        kind = self.provider_page.template.kind
        cheap, premium = (
            unit_price(p.model(), kind, p.listed.get(p.model())) for p in (self.cheap, self.premium)
        )
        if cheap and premium and premium > cheap:
            self.ratio.setText(
                f"For an agent loop's usual mix (3 tokens in to 1 out), the premium model costs "
                f"{premium / cheap:.0f}× as much as the cheap one."
            )
        else:
            self.ratio.clear()

    def initializePage(self) -> None:
        listing = self.key_page.listing
        if listing is None:
            return
        kind = self.provider_page.template.kind
        ids = listing.ids
        self.cheap.fill(
            listing, kind, self.cheap.model() if self.cheap.model() in ids else suggest(ids, CHEAP_PICKS)
        )
        self.premium.fill(
            listing,
            kind,
            self.premium.model() if self.premium.model() in ids else suggest(ids, PREMIUM_PICKS),
        )
        self._compare()
        self.message.clear()

    def isComplete(self) -> bool:
        return bool(self.cheap.model() and self.premium.model()) and not self._saving

    def choices(self) -> Choices:
        return Choices(
            self.provider_page.provider(),
            self.key_page.key.text().strip() or None,
            self.cheap.model(),
            self.premium.model(),
        )

    def validatePage(self) -> bool:
        """Save off the GUI thread, then move on; a failed save stays here with the reason."""
        choices = self.choices()
        if choices == self.saved:
            return True
        core, models, listing = self.ctx.core, self.ctx.models, self.key_page.listing

        def job() -> Choices:
            if choices.key:
                core.set_provider_key(choices.provider.name, choices.key)
            core.config_store.update(lambda c: apply_choices(c, choices))
            if listing is not None:
                models.put(replace(listing, provider=choices.provider.name))
            return choices

        self._saving = True
        self.completeChanged.emit()
        self.message.info("Saving…")
        self.ctx.write(job, self._saved, self._save_failed)
        return False

    def _saved(self, choices: Choices) -> None:
        self._saving = False
        self.saved = choices
        self.completeChanged.emit()
        self.message.ok(f"Saved {choices.provider.name}; the cheap preset is active.")
        self.wizard().next()

    def _save_failed(self, exc: Exception) -> None:
        self._saving = False
        self.completeChanged.emit()
        self.message.error(plain_error("Not saved", exc))


class AgentPage(QWizardPage):
    """Which agent, and its environment to paste into the shell that runs it."""

    def __init__(self, ctx: UiContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.setTitle("Point your agent at Downshift")
        self.setSubTitle(
            "Paste these lines into the shell that starts your agent. The model names are "
            "Downshift's roles, so switching presets never needs a restart."
        )
        self.agent = QComboBox()
        self.agent.setObjectName("agent")
        for agent, label in AGENT_LABELS.items():
            self.agent.addItem(label, agent)
        self.shell = QComboBox()
        self.shell.setObjectName("shell")
        self.shell.addItems(FORMATS)
        self.env = QPlainTextEdit()
        self.env.setObjectName("envText")
        self.env.setReadOnly(True)
        self.env.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setObjectName("copyEnv")
        self.copy_button.clicked.connect(self.copy)
        self.message = MessageLine()
        form = QFormLayout()
        form.addRow("Agent", self.agent)
        form.addRow("Shell", self.shell)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.env, 1)
        layout.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.message)
        self.token: str | None = None
        self.agent.currentIndexChanged.connect(self.show_env)
        self.shell.currentIndexChanged.connect(self.show_env)

    def initializePage(self) -> None:
        config = self.ctx.core.config
        self.agent.setCurrentIndex(max(0, self.agent.findData(pref(config, "agent"))))
        self.shell.setCurrentText(pref(config, "shell") if "shell" in config.ui else default_shell())
        self.env.setPlainText("Reading the local token…")
        self.copy_button.setEnabled(False)
        self.ctx.background.run(
            self.ctx.token,
            self._got_token,
            lambda exc: self.message.error(plain_error("The local token cannot be read", exc)),
        )

    def _got_token(self, token: str) -> None:
        self.token = token
        self.copy_button.setEnabled(True)
        self.show_env()

    def show_env(self) -> None:
        if self.token is None:
            return
        self.env.setPlainText(
            export_text(self.agent.currentData(), self.shell.currentText(), self.ctx.base_url, self.token)
        )
        self.message.clear()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.env.toPlainText())
        self.message.ok(f"Copied. Paste it into the shell that runs {self.agent.currentText()}.")


class FirstRunWizard(QWizard):
    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setWindowTitle("Set up Downshift")
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage)
        self.provider_page = ProviderPage(ctx)
        self.key_page = KeyPage(ctx, self.provider_page)
        self.models_page = ModelsPage(ctx, self.provider_page, self.key_page)
        self.agent_page = AgentPage(ctx)
        pages = (self.provider_page, self.key_page, self.models_page, self.agent_page)
        for i, page in enumerate(pages):
            page.setTitle(f"Step {i + 1} of {len(pages)}: {page.title()}")
            self.addPage(page)
        self.setButtonText(QWizard.WizardButton.CancelButton, "Skip")
        self.resize(620, 460)
        self.currentIdChanged.connect(self._page_changed)
        self.finished.connect(self._finished)

    def _page_changed(self, _id: int) -> None:
        # By the last page everything is saved: "Skip" would only confuse, Finish is the way out.
        self.setOption(QWizard.WizardOption.NoCancelButton, self.currentPage() is self.agent_page)

    def _finished(self, _result: int) -> None:
        """Finish or skip: either way the assistant does not come back; the agent chosen is remembered."""
        agent = self.agent_page.agent.currentData() if self.currentPage() is self.agent_page else None

        def change(config: Config) -> Config:
            changed = replace(config, ui={**config.ui, DONE_KEY: True})
            if agent:
                changed = with_prefs(changed, agent=agent, shell=self.agent_page.shell.currentText())
            return changed

        self.ctx.update_config(change)


_open: set[FirstRunWizard] = set()


def maybe_run_first_run(ctx: UiContext, parent: QWidget | None = None) -> bool:
    """Open the assistant when the config has no hosted provider with a key and it never ran.

    The key check may touch the keyring, so it runs in the background and the assistant opens when it
    answers. Returns False when the assistant has already run (or been skipped), True when the check was
    started. The wizard is window-modal over `parent` and never blocks the caller.
    """
    config = ctx.core.config
    if config.ui.get(DONE_KEY):
        return False
    core = ctx.core

    def check() -> bool:
        return needs_first_run(core.config, lambda p: core.provider_key(p.name) is not None)

    def open_if_needed(needed: bool) -> None:
        if needed:
            open_first_run(ctx, parent)

    ctx.background.run(check, open_if_needed)
    return True


def open_first_run(ctx: UiContext, parent: QWidget | None = None) -> FirstRunWizard:
    """Open the assistant now (Downshift > Set up a provider…, after a Skip or to add another provider).
    The one already open is brought forward instead of opening a second."""
    from shiboken6 import isValid

    for wizard in list(_open):
        if not isValid(wizard):  # deleted with its parent window, without finishing
            _open.discard(wizard)
            continue
        wizard.raise_()
        wizard.activateWindow()
        return wizard
    wizard = FirstRunWizard(ctx, parent)
    _open.add(wizard)  # without a parent, only this reference keeps it alive
    wizard.finished.connect(lambda _r: _open.discard(wizard))
    wizard.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    wizard.setWindowModality(Qt.WindowModality.WindowModal if parent else Qt.WindowModality.NonModal)
    wizard.open()
    return wizard

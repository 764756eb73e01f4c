"""Providers: the accounts Downshift can route to, added from templates, with their keys in the keyring.

The key field is write-only: an empty field keeps the stored key, text replaces it, and the key goes to
the keyring (never the config). "Test connection" lists the provider's models with the key; the list is
cached for the Presets page's model picker. "Probe tool use" runs the executor check (a fixed battery of
tool-use probes, `app.core.analytics.probe`) against the selected model off the GUI thread, stores it, and
the model list shows each model's latest verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.config import APIS, Config, ConfigError, Price, Provider, Target
from app.core.config_edit import remove_provider, set_price_override, upsert_provider
from app.core.pricing import Resolved, describe_price, fmt_per_million, resolve_price
from app.core.provider_models import ModelInfo, ModelListing, fetch_models
from app.core.provider_templates import (
    TEMPLATES,
    ProviderTemplate,
    provider_from_template,
    template,
    template_for,
)
from app.core.secrets import provider_key_name
from app.ui import dialogs
from app.ui.context import UiContext
from app.ui.errors import plain_error
from app.ui.pages import MessageLine, buddy_label, heading
from app.ui.target_picker import probe_verdict

PRICE_COLUMNS = {2: "input", 3: "output"}
SOURCE_COLUMN, PROBE_COLUMN = 4, 5
SOURCE_SHORT = {
    "override": "your override",
    "listed": "provider's list",
    "table": "price table",
    "local": "local",
    "unpriced": "no known price",
}


def source_text(resolved: Resolved) -> str:
    """The "Price from" cell: the source and, when it has one, the date it was read ("price table, 2026-11")."""
    short = SOURCE_SHORT.get(resolved.source, resolved.source)
    return f"{short}, {resolved.date}" if resolved.date else short


def _price(value: float | None) -> str:
    return "" if value is None else fmt_per_million(value)


def parse_price(text: str) -> float | None:
    """A price typed in a cell: "2.5", "$2.50", "1,200"; empty for none. Raises ValueError on anything else."""
    cleaned = text.strip().replace("$", "").replace(",", "")
    if not cleaned:
        return None
    value = float(cleaned)
    if value < 0 or value != value:
        raise ValueError(f"{text!r} is not a price")
    return value


def probe_report(result: dict[str, Any]) -> str:
    """The outcome of one probe run, for the Providers page: validity, latency, cost and what failed."""
    latencies = [r["latency_ms"] for r in result["results"] if r.get("latency_ms") is not None]
    latency = f"{sum(latencies):.0f} ms" if latencies else "no answer"
    cost = "-" if result.get("cost_usd") is None else f"${result['cost_usd']:.4f}"
    text = f"{result['target']}: {probe_verdict(result, prefix='')}; {latency}; cost {cost}."
    failed = [
        f"{r['probe']} ({r['detail']})" if r.get("detail") else r["probe"]
        for r in result["results"]
        if not r["passed"]
    ]
    return text + (f" Failed: {'; '.join(failed)}." if failed else "")


class ProvidersPage(QWidget):
    _docs_html: str = ""  # the docs link as laid out (see changeEvent)

    def __init__(self, ctx: UiContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.editing: str | None = None  # provider shown in the form; None for a new account
        self.key_status: dict[str, bool] = {}
        self.dirty = False  # the form differs from the saved account (a new account always does)
        self.edited = False  # the user typed or picked something since the form was filled
        secrets = ctx.core.secrets
        layout = QVBoxLayout(self)
        layout.addWidget(
            heading(
                "Providers",
                f"Accounts Downshift can route to. Keys are kept in the "
                f"{secrets.describe()}, never in the config file.",
            )
        )
        if not secrets.uses_keyring:
            self.keyring_note = MessageLine()
            self.keyring_note.info(f"No OS keyring was found, so keys are kept in a {secrets.describe()}.")
            layout.addWidget(self.keyring_note)

        split = QSplitter()
        split.setChildrenCollapsible(False)
        layout.addWidget(split, 1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        self.list = QTreeWidget()
        self.list.setHeaderLabels(["Account", "Type", "Key"])
        self.list.setRootIsDecorated(False)
        self.list.setAllColumnsShowFocus(True)
        self.list.setAccessibleName("Provider accounts")
        header = self.list.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.list.currentItemChanged.connect(self._selected)
        left_layout.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.add_button = QPushButton("&Add account")
        self.add_menu = QMenu(self.add_button)
        for tpl in TEMPLATES:
            action = self.add_menu.addAction(tpl.name)
            action.setData(tpl.id)
            action.triggered.connect(lambda _=False, t=tpl.id: self._add_account(t))
        self.add_button.setMenu(self.add_menu)
        self.remove_button = QPushButton("&Remove")
        self.remove_button.clicked.connect(self.remove_current)
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        left_layout.addLayout(row)
        split.addWidget(left)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(8, 0, 0, 0)
        form = QFormLayout()
        self.template = QComboBox()
        for tpl in TEMPLATES:
            self.template.addItem(tpl.name, tpl.id)
        self.template.activated.connect(self._template_chosen)
        self.name = QLineEdit()
        self.base_url = QLineEdit()
        self.base_url.setPlaceholderText("https://…/v1")
        self.api = QComboBox()
        self.api.addItems(list(APIS))
        self.local = QCheckBox("Runs on this machine (no key, no per-token cost)")
        self.key_env = QLineEdit()
        self.key_env.setPlaceholderText("optional, e.g. OPENROUTER_API_KEY")
        self.key_env.setToolTip(
            "When this variable is set in Downshift's environment, its value is used "
            "instead of the stored key."
        )
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setAccessibleName("API key")
        self.show_key_box = QCheckBox("Sho&w")
        self.show_key_box.toggled.connect(
            lambda on: self.key.setEchoMode(QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.Password)
        )
        key_row = QHBoxLayout()
        key_row.addWidget(self.key, 1)
        key_row.addWidget(self.show_key_box)
        self.docs = QLabel()
        self.docs.setOpenExternalLinks(True)
        self.docs.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        form.addRow("&Template:", self.template)
        form.addRow("&Name:", self.name)
        form.addRow("Base &URL:", self.base_url)
        form.addRow("A&PI:", self.api)
        form.addRow("", self.local)
        form.addRow(buddy_label("API &key:", self.key), key_row)
        form.addRow("Key &variable:", self.key_env)
        form.addRow("", self.docs)
        right_layout.addLayout(form)
        for widget in (self.name, self.base_url, self.key_env, self.key):
            widget.textEdited.connect(self._edited)
        self.api.activated.connect(self._edited)
        self.local.clicked.connect(self._edited)

        buttons = QHBoxLayout()
        self.save_button = QPushButton("&Save")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        self.revert_button = QPushButton("Re&vert")
        self.revert_button.clicked.connect(self.revert)
        self.test_button = QPushButton("&Test connection")
        self.test_button.setToolTip(
            "List the provider's models with this key, and keep the list for the Presets page"
        )
        self.test_button.clicked.connect(self.test_connection)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.revert_button)
        buttons.addStretch(1)
        buttons.addWidget(self.test_button)
        right_layout.addLayout(buttons)
        self.message = MessageLine()
        right_layout.addWidget(self.message)
        self.models_label = QLabel("Models")
        right_layout.addWidget(self.models_label)
        self.models = QTreeWidget()
        self.models.setHeaderLabels(
            ["Model", "Context", "Input $/M", "Output $/M", "Price from", "Tool-use probe"]
        )
        self.models.headerItem().setToolTip(
            2,
            "What calls to this model are charged per million input tokens. "
            "Double-click to override it in the config; clear it to remove "
            "the override.",
        )
        self.models.headerItem().setToolTip(3, self.models.headerItem().toolTip(2).replace("input", "output"))
        self.models.headerItem().setToolTip(
            SOURCE_COLUMN,
            "Where the price comes from: your override in the "
            "config, the provider's own model list, or the built-in price table. "
            "A provider that reports a call's cost (OpenRouter) is charged that.",
        )
        self.models.setEditTriggers(QTreeWidget.EditTrigger.NoEditTriggers)  # only the price cells, below
        self.models.itemDoubleClicked.connect(self._edit_price)
        self.models.itemChanged.connect(self._price_edited)
        self._filling = False
        self.models.setRootIsDecorated(False)
        self.models.setAlternatingRowColors(True)
        self.models.setAccessibleName("Models this provider serves")
        header = self.models.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3, SOURCE_COLUMN, PROBE_COLUMN):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.models.currentItemChanged.connect(lambda *_: self._update_probe_button())
        right_layout.addWidget(self.models, 1)
        probe_row = QHBoxLayout()
        self.probe_button = QPushButton("Pro&be tool use")
        self.probe_button.setToolTip(
            "Run a fixed battery of tool-use probes against the selected model, straight to "
            "the provider (not through the proxy), and keep the result"
        )
        self.probe_button.clicked.connect(self.probe_selected)
        self.probe_status = QLabel()
        self.probe_status.setWordWrap(True)
        self.probe_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.probe_status.setAccessibleName("Tool-use probe result")
        probe_row.addWidget(self.probe_button, 0, Qt.AlignmentFlag.AlignTop)
        probe_row.addWidget(self.probe_status, 1)
        right_layout.addLayout(probe_row)
        self.probes: dict[str, dict[str, Any]] = {}  # latest_probes: "provider/model" -> summary
        self.probing: str | None = None  # the target being probed
        self.models_provider: str | None = None  # whose models the list shows
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([320, 640])

        ctx.bridge.configChanged.connect(self._config_changed)
        self.reload_list()
        first = self.list.topLevelItem(0)
        if first is not None:
            self.list.setCurrentItem(first)
        else:
            self.new_account("openrouter")

    # ------------------------------------------------------------------------------------------- list

    def reload_list(self, select: str | None = None) -> None:
        config = self.ctx.core.config
        select = select or self.editing
        self.list.blockSignals(True)
        self.list.clear()
        for name, p in config.providers.items():
            item = QTreeWidgetItem(self.list, [name, template_for(p).name, self._key_text(p)])
            item.setData(0, Qt.ItemDataRole.UserRole, name)
            item.setToolTip(0, p.base_url)
            if name == select:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self.remove_button.setEnabled(self.editing is not None)
        self._load_key_status(list(config.providers))

    def _key_text(self, p: Provider) -> str:
        if p.local:
            return "local"
        if p.name not in self.key_status:
            return "…"
        return "set" if self.key_status[p.name] else "missing"

    def _load_key_status(self, names: list[str]) -> None:
        core = self.ctx.core

        def job() -> dict[str, bool]:
            return {n: core.provider_key(n) is not None for n in names}

        self.ctx.background.run(
            job,
            self._key_status_loaded,
            lambda exc: self.message.error(plain_error("Key status not read", exc)),
        )

    def _key_status_loaded(self, status: dict[str, bool]) -> None:
        self.key_status.update(status)
        providers = self.ctx.core.config.providers
        for i in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(i)
            p = providers.get(item.data(0, Qt.ItemDataRole.UserRole)) if item is not None else None
            if item is not None and p is not None:
                item.setText(2, self._key_text(p))
        self._update_key_placeholder()

    def _selected(self, current: QTreeWidgetItem | None, previous: QTreeWidgetItem | None) -> None:
        if current is None:
            return
        name = current.data(0, Qt.ItemDataRole.UserRole)
        if name == self.editing:
            return
        if self.edited and not dialogs.confirm(
            self, "Discard changes?", f"{self.unsaved_what()} has unsaved changes.", "Discard"
        ):
            self.list.blockSignals(True)
            if previous is not None:
                self.list.setCurrentItem(previous)
            self.list.blockSignals(False)
            return
        self.show_provider(name)

    def _config_changed(self, _config: Config) -> None:
        if self.editing is not None and self.editing not in self.ctx.core.config.providers:
            self.editing = None
        self.reload_list()
        if not self.dirty and self.editing is not None:
            self.show_provider(self.editing)

    # ------------------------------------------------------------------------------------------- form

    def _fill(self, p: Provider, tpl: ProviderTemplate) -> None:
        self.template.setCurrentIndex(max(self.template.findData(tpl.id), 0))
        self.name.setText(p.name)
        self.base_url.setText(p.base_url)
        self.api.setCurrentText(p.api)
        self.local.setChecked(p.local)
        self.key_env.setText(p.api_key_env or "")
        self.key.clear()
        self.show_key_box.setChecked(False)
        where = "Start the server" if tpl.local else "Get a key"
        self._docs_html = f'<a href="{tpl.docs_url}">{where}: {tpl.docs_url}</a>' if tpl.docs_url else ""
        self.docs.setText(self._docs_html)
        self._update_key_placeholder()
        self.dirty = self.edited = False
        self.message.clear()

    def changeEvent(self, event: QEvent) -> None:
        """A rich-text link keeps the colour it was laid out with: lay it out again for a new theme."""
        if event.type() == QEvent.Type.PaletteChange and self._docs_html:
            self.docs.setText("")
            self.docs.setText(self._docs_html)
        super().changeEvent(event)

    def _update_key_placeholder(self) -> None:
        if self.local.isChecked():
            text = "not needed for a local server"
        elif self.editing is not None and self.key_status.get(self.editing):
            text = "stored; type a new key to replace it"
        else:
            text = "paste the key; it goes to the keyring"
        self.key.setPlaceholderText(text)

    def show_provider(self, name: str) -> None:
        p = self.ctx.core.config.providers.get(name)
        if p is None:
            return
        self.editing = name
        self.template.setEnabled(False)
        self._fill(p, template_for(p))
        self.remove_button.setEnabled(True)
        self.show_models(name, self.ctx.models.models(name))

    def _add_account(self, template_id: str) -> None:
        if self.edited and not dialogs.confirm(
            self, "Discard changes?", f"{self.unsaved_what()} has unsaved changes.", "Discard"
        ):
            return
        self.new_account(template_id)

    def new_account(self, template_id: str) -> None:
        tpl = template(template_id)
        self.editing = None
        self.list.clearSelection()
        self.list.setCurrentIndex(QModelIndex())  # no current item
        self.template.setEnabled(True)
        self._fill(provider_from_template(tpl, taken=self.ctx.core.config.providers), tpl)
        self.dirty = True
        self.remove_button.setEnabled(False)
        self.show_models(None, [])
        self.message.info(
            f"New {tpl.name} account: check the fields, paste the key, then Save."
            + (" Custom providers need a base URL." if not tpl.base_url else "")
        )
        (self.key if tpl.needs_key else self.name).setFocus()

    def _template_chosen(self) -> None:
        if self.editing is None:
            self.new_account(self.template.currentData())

    def _edited(self, *_: object) -> None:
        self.dirty = self.edited = True
        self._update_key_placeholder()

    # the main window's unsaved-changes guard (see MainWindow.confirm_leave)
    def has_unsaved_changes(self) -> bool:
        return self.edited

    def unsaved_what(self) -> str:
        return f"The account {self.editing}" if self.editing else "The new account"

    def save_changes(self) -> None:
        self.save()

    def discard_changes(self) -> None:
        self.revert()

    def revert(self) -> None:
        self.dirty = False
        if self.editing is not None:
            self.show_provider(self.editing)
        else:
            self.new_account(self.template.currentData())

    def form_provider(self) -> Provider:
        """A Provider from the form, keeping the settings the form does not show (headers, timeouts...)."""
        base = self.ctx.core.config.providers.get(self.editing) if self.editing else None
        return self.form_edit()(base)

    def form_edit(self) -> Callable[[Provider | None], Provider]:
        """The form's fields, read now, laid over the provider as it is when the save runs (None: a new
        one): settings the form does not show that another writer changed meanwhile are kept, not undone."""
        name, base_url = self.name.text().strip(), self.base_url.text().strip().rstrip("/")
        api, local, key_env = (
            self.api.currentText(),
            self.local.isChecked(),
            self.key_env.text().strip() or None,
        )
        template_id = self.template.currentData()

        def apply(base: Provider | None) -> Provider:
            if base is not None:
                return replace(base, name=name, base_url=base_url, api=api, local=local, api_key_env=key_env)
            return Provider(
                name=name,
                base_url=base_url,
                api=api,
                local=local,
                api_key_env=key_env,
                kind=template(template_id).kind,
            )

        return apply

    # ------------------------------------------------------------------------------------------- actions

    def save(self) -> None:
        edit, old, typed_key = self.form_edit(), self.editing, self.key.text().strip()
        provider = self.form_provider()
        if not provider.base_url.startswith(("http://", "https://")):
            self.message.error("The base URL must start with http:// or https://")
            return
        core = self.ctx.core

        def change(config: Config) -> Config:
            """Only this provider changes, applied to the config as it is when the save runs."""
            return upsert_provider(config, edit(config.providers.get(old) if old else None), old_name=old)

        def job() -> Config:
            change(core.config_store.current())  # a refused edit (a name taken...) touches no key
            if typed_key:
                core.set_provider_key(provider.name, typed_key)
            elif old and old != provider.name:  # carry the stored key over to the new name
                key = core.secrets.get(provider_key_name(old))
                if key:
                    core.set_provider_key(provider.name, key)
            config = core.config_store.update(change)
            if old and old != provider.name:
                core.set_provider_key(old, None)
            return config

        self.save_button.setEnabled(False)
        self.ctx.write(job, lambda _: self._saved(provider.name, bool(typed_key)), self._save_failed)

    def _saved(self, name: str, key_stored: bool) -> None:
        self.save_button.setEnabled(True)
        self.dirty = self.edited = False
        self.editing = name
        self.key.clear()
        self.key_status.pop(name, None)
        self.reload_list(select=name)
        self.show_provider(name)
        self.message.ok(f"Saved {name}." + (" The key is in the keyring." if key_stored else ""))

    def _save_failed(self, exc: Exception) -> None:
        self.save_button.setEnabled(True)
        self.message.error(plain_error("Not saved", exc))

    def remove_current(self) -> None:
        name = self.editing
        if name is None:
            return
        try:
            remove_provider(self.ctx.core.config, name)  # refuses while presets or budgets use it
        except ConfigError as exc:
            self.message.error(f"{name} cannot be removed: it {exc.problem}.")
            return
        if not dialogs.confirm(
            self,
            "Remove account?",
            f"Remove the provider {name}?",
            "Remove",
            "Its stored key is deleted from the keyring too.",
        ):
            return
        core, models = self.ctx.core, self.ctx.models

        def job() -> None:
            core.config_store.update(lambda c: remove_provider(c, name))
            core.set_provider_key(name, None)
            models.forget(name)

        self.ctx.write(
            job,
            lambda _: self._removed(name),
            lambda exc: self.message.error(plain_error("Not removed", exc)),
        )

    def _removed(self, name: str) -> None:
        self.editing = None
        self.dirty = False
        self.reload_list()
        first = self.list.topLevelItem(0)
        if first is not None:
            self.list.setCurrentItem(first)
        self.message.ok(f"Removed {name}.")

    def test_connection(self) -> None:
        provider, typed_key = self.form_provider(), self.key.text().strip()
        if not provider.base_url.startswith(("http://", "https://")):
            self.message.error("The base URL must start with http:// or https://")
            return
        core, models, saved = self.ctx.core, self.ctx.models, self.editing

        def job() -> ModelListing:
            key = typed_key or (core.provider_key(saved) if saved else None)
            listing = fetch_models(provider, key)
            if saved:
                models.put(replace(listing, provider=saved))
            return listing

        self.test_button.setEnabled(False)
        self.message.info(f"Asking {provider.base_url}/models…")
        self.ctx.background.run(job, self._tested, self._test_failed)

    def _tested(self, listing: ModelListing) -> None:
        self.test_button.setEnabled(True)
        n = len(listing.models)
        kept = (
            " Saved for the Presets page's model picker."
            if self.editing
            else " Save the account to keep the list."
        )
        self.message.ok(f"Connected in {listing.latency_ms:.0f} ms: {n} model{'s' if n != 1 else ''}.{kept}")
        self.show_models(self.editing, list(listing.models))

    def _test_failed(self, exc: Exception) -> None:
        self.test_button.setEnabled(True)
        self.message.error(plain_error("Connection failed", exc))

    def show_models(self, name: str | None, models: list[ModelInfo]) -> None:
        self._filling = True
        self.models.clear()
        self.models_provider = name
        config = self.ctx.core.config
        provider = config.providers.get(name) if name else None
        for m in models:
            resolved = self._resolved(provider, m)
            price = resolved.price
            item = QTreeWidgetItem(
                [
                    m.id,
                    f"{m.context_length:,}" if m.context_length else "",
                    _price(price.input if price else None),
                    _price(price.output if price else None),
                    source_text(resolved),
                    "",
                ]
            )
            item.setData(0, Qt.ItemDataRole.UserRole, m.id)
            tip = f"{describe_price(price)}\nfrom {resolved.label}" if price else resolved.label
            for col in (2, 3, SOURCE_COLUMN):
                item.setToolTip(col, tip)
            if provider is not None and not provider.local:
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            for col in (1, 2, 3):
                item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.models.addTopLevelItem(item)
        self._filling = False
        self._show_probe_column()
        self._update_probe_button()
        if name and models:
            self._load_probes()
        when = self.ctx.models.fetched_at(name) if name else None
        if models:
            self.models_label.setText(f"Models ({len(models)})")
        elif name and when is None:
            self.models_label.setText("Models: not fetched yet; use Test connection")
        else:
            self.models_label.setText("Models")

    def _resolved(self, provider: Provider | None, m: ModelInfo) -> Resolved:
        """The price calls to `m` are charged (one rule for the proxy and this page); for an account not saved
        yet, the price its list gives."""
        if provider is not None:
            return resolve_price(self.ctx.core.config, provider, m.id)
        if m.input_per_m is not None and m.output_per_m is not None:
            listed = Price(m.input_per_m, m.output_per_m, m.cache_read_per_m, m.cache_write_per_m)
            return Resolved(listed, "listed", "", "this account's model list (save the account to keep it)")
        return resolve_price(self.ctx.core.config, None, m.id)

    # ------------------------------------------------------------------------------------------- price override

    def _edit_price(self, item: QTreeWidgetItem, column: int) -> None:
        if column in PRICE_COLUMNS and item.flags() & Qt.ItemFlag.ItemIsEditable:
            self.models.editItem(item, column)

    def _price_edited(self, item: QTreeWidgetItem, column: int) -> None:
        """A price cell was edited: write the config override for this model from the two price cells, or,
        when both are cleared, remove it."""
        name = self.models_provider
        if self._filling or column not in PRICE_COLUMNS or not name:
            return
        model = item.data(0, Qt.ItemDataRole.UserRole)
        key = f"{name}/{model}"
        config = self.ctx.core.config
        try:
            values = {field: parse_price(item.text(col)) for col, field in PRICE_COLUMNS.items()}
        except ValueError:
            self.message.error(
                f"{item.text(column)!r} is not a price: type USD per million tokens, e.g. 2.50"
            )
            self.show_models(name, self.ctx.models.models(name))
            return
        if values["input"] is None and values["output"] is None:
            if key in config.prices:
                self.ctx.update_config(
                    lambda c: set_price_override(c, key, None),
                    lambda _: self.message.ok(f"Removed the price override of {key}."),
                    lambda exc: self.message.error(plain_error("Not saved", exc)),
                )
            else:
                self.show_models(name, self.ctx.models.models(name))
            return
        if values["input"] is None or values["output"] is None:
            missing = "input" if values["input"] is None else "output"
            self.message.info(f"Now the {missing} price of {model}: an override needs both.")
            return
        current = resolve_price(config, config.providers.get(name), model)
        base = current.price
        price = Price(
            values["input"],
            values["output"],
            base.cache_read if base else None,
            base.cache_write if base else None,
            base.cache_write_1h if base else None,
        )
        copied = ""
        if base is not None and current.source != "override" and base.cache_read is not None:
            copied = f" (cache prices from the {current.label})"
        self.ctx.update_config(
            lambda c: set_price_override(c, key, price),
            lambda _: self.message.ok(f'Saved [prices."{key}"]: {describe_price(price)}{copied}.'),
            lambda exc: self.message.error(plain_error("Not saved", exc)),
        )

    # ------------------------------------------------------------------------------------------- probes

    def _load_probes(self) -> None:
        """The latest probe verdict of every target, queried off the GUI thread, into the Probe column."""
        db = self.ctx.core.db

        def job() -> dict[str, dict[str, Any]]:
            from app.core.queries.probes import latest_probes

            return latest_probes(db)

        self.ctx.background.run(
            job,
            self._probes_loaded,
            lambda exc: self.probe_status.setText(plain_error("Probe results not read", exc)),
        )

    def _probes_loaded(self, probes: dict[str, dict[str, Any]]) -> None:
        self.probes = probes
        self._show_probe_column()

    def _show_probe_column(self) -> None:
        name = self.models_provider
        for i in range(self.models.topLevelItemCount()):
            item = self.models.topLevelItem(i)
            if item is None:
                continue
            target = f"{name}/{item.data(0, Qt.ItemDataRole.UserRole)}"
            if target == self.probing:
                item.setText(PROBE_COLUMN, "probing…")
            elif name:
                summary = self.probes.get(target)
                item.setText(PROBE_COLUMN, probe_verdict(summary, prefix="") if summary else "not probed")

    def _selected_target(self) -> Target | None:
        item = self.models.currentItem()
        name = self.models_provider
        if item is None or not name or name != self.editing:
            return None
        return Target(name, item.data(0, Qt.ItemDataRole.UserRole))

    def _update_probe_button(self) -> None:
        self.probe_button.setEnabled(self.probing is None and self._selected_target() is not None)

    def probe_selected(self) -> None:
        """Say what the battery will cost before it spends: estimate off the GUI thread, confirm, then run."""
        target = self._selected_target()
        if target is None or self.probing is not None:
            return
        config = self.ctx.core.config
        self.probing = str(target)
        self._update_probe_button()
        self.probe_status.setText(f"Estimating what probing {target} will cost…")

        def job() -> Any:
            from app.core.analytics.probe import estimate

            return estimate(config, target)

        self.ctx.background.run(
            job,
            lambda est: self._confirm_probe(target, est),
            lambda exc: self._probe_failed(str(target), exc),
        )

    def _confirm_probe(self, target: Target, est: Any) -> None:
        self.probing = None
        if not dialogs.confirm(
            self,
            "Probe tool use",
            f"Probe {target}? The probes go straight to the provider and are billed like any call.",
            "Run the probes",
            detail=est.describe(),
        ):
            self.probe_status.setText(f"Probe of {target} cancelled: nothing was sent. {est.describe()}")
            self._show_probe_column()
            self._update_probe_button()
            return
        self._run_probe(target)

    def _run_probe(self, target: Target) -> None:
        core = self.ctx.core

        def job() -> dict[str, Any]:
            from app.core.analytics.probe import run_probes, store
            from app.core.queries.probes import probe_results

            outcomes = run_probes(core.config, target, core.provider_key(target.provider))
            store(core.db, target, outcomes)
            result = probe_results(core.db, str(target))
            assert result is not None
            return result

        from app.core.analytics.probe import PROBES

        self.probing = str(target)
        self._update_probe_button()
        self._show_probe_column()
        self.probe_status.setText(
            f"Probing {target}: {len(PROBES)} tool-use probes, straight to the provider…"
        )
        self.ctx.background.run(job, self._probed, lambda exc: self._probe_failed(str(target), exc))

    def _probed(self, result: dict[str, Any]) -> None:
        self.probing = None
        self.probes[result["target"]] = result
        self.probe_status.setText(probe_report(result))
        self._show_probe_column()
        self._update_probe_button()

    def _probe_failed(self, target: str, exc: Exception) -> None:
        self.probing = None
        self.probe_status.setText(plain_error(f"Probe of {target} failed", exc))
        self._show_probe_column()
        self._update_probe_button()

"""A preset target picker: a provider combo, a searchable model combo, its price and its probe verdict.

Used for each role and for the fallback chain on the Presets page. Model pickers offer what "Test
connection" fetched on the Providers page (and any model already in the config), filtered as you type;
any other name can be typed too. Beside the picked model are its price per million tokens and its latest
tool-use probe verdict (run from the Providers page or `downshift probe`), or "not probed".
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QComboBox, QCompleter, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.core.config import Target
from app.ui.context import UiContext

SAME_AS_DEFAULT = ""


def probe_verdict(summary: dict[str, Any] | None, *, prefix: str = "probe: ") -> str:
    """One line for a model picker from a `latest_probes`/`probe_results` summary: "probe: 8/8 tool calls
    valid, 6/6 passed", or "not probed"."""
    if summary is None:
        return "not probed"
    calls, failed = summary.get("tool_calls") or 0, summary.get("tool_failures") or 0
    return f"{prefix}{calls - failed}/{calls} tool calls valid, {summary.get('passed') or 0}/{summary.get('probes') or 0} passed"


PICKER_SOURCE = {"override": "override", "listed": "list", "table": "table", "local": "local"}


def price_note(ctx: UiContext, provider: str, model: str) -> tuple[str, str]:
    """What calls to provider/model are charged per M tokens, short ("$3.00/$15.00 (table)") for the label and
    long (every price, the source and its date) for the tooltip: the same rule as the proxy's."""
    from app.core.pricing import describe_price, fmt_per_million, resolve_price

    config = ctx.core.config
    resolved = resolve_price(config, config.providers.get(provider), model)
    if resolved.price is None:
        return "no price", resolved.label
    short = f"{fmt_per_million(resolved.price.input)}/{fmt_per_million(resolved.price.output)}"
    return f"{short} ({PICKER_SOURCE.get(resolved.source, resolved.source)})", (
        f"{describe_price(resolved.price)}\nfrom {resolved.label}"
    )


def known_models(ctx: UiContext, provider: str) -> list[str]:
    """Fetched models for `provider` plus the ones the config already names, sorted, no duplicates."""
    names = {m.id for m in ctx.models.models(provider)}
    for preset in ctx.core.config.presets.values():
        names.update(t.model for t in (*preset.roles.values(), *preset.fallback) if t.provider == provider)
    return sorted(names, key=str.lower)


class TargetPicker(QWidget):
    """A provider combo and a searchable, editable model combo: one `provider/model` target."""

    def __init__(self, ctx: UiContext, *, optional: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx, self.optional = ctx, optional
        # two lines: the combos, then the price and the probe verdict in small muted text under them, so
        # the picker fits a 900 px window with no horizontal scroll and nothing cut
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        combos = QHBoxLayout()
        self.provider = QComboBox()
        self.provider.setMinimumContentsLength(10)
        self.provider.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model.setMinimumContentsLength(16)
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        line = self.model.lineEdit()  # an editable combo always has one
        if line is not None:
            line.setPlaceholderText("model name: pick or type")
        completer = QCompleter(self.model.model(), self.model)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.model.setCompleter(completer)
        self.probes: dict[str, dict[str, Any]] = {}  # latest_probes, set by the page
        self.price = QLabel()
        self.price.setAccessibleName("Price per million tokens, in and out, and its source")
        self.verdict = QLabel()
        self.verdict.setAccessibleName("Tool-use probe verdict")
        # the verdict gives way in a narrow window (its tooltip keeps the whole line) instead of widening it
        self.verdict.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.verdict.setMinimumWidth(60)
        notes = QHBoxLayout()
        notes.setContentsMargins(4, 0, 0, 0)
        notes.setSpacing(12)
        for label in (self.price, self.verdict):
            label.setForegroundRole(QPalette.ColorRole.PlaceholderText)  # muted, light and dark alike
            font = label.font()
            font.setPointSizeF(font.pointSizeF() * 0.9)
            label.setFont(font)
        combos.addWidget(self.provider)
        combos.addWidget(self.model, 1)
        notes.addWidget(self.price)
        notes.addWidget(self.verdict, 1)
        layout.addLayout(combos)
        layout.addLayout(notes)
        self.provider.currentIndexChanged.connect(self._provider_changed)
        self.model.editTextChanged.connect(lambda _: self._show_verdict())
        self.set_providers(list(ctx.core.config.providers))

    def set_providers(self, names: list[str]) -> None:
        current = self.provider.currentData()
        self.provider.blockSignals(True)
        self.provider.clear()
        if self.optional:
            self.provider.addItem("same as default", SAME_AS_DEFAULT)
        for name in names:
            self.provider.addItem(name, name)
        self.provider.setCurrentIndex(max(self.provider.findData(current), 0))
        self.provider.blockSignals(False)
        self._provider_changed()

    def _provider_changed(self) -> None:
        name = self.provider.currentData()
        text = self.model.currentText()
        self.model.blockSignals(True)
        self.model.clear()
        if name:
            self.model.addItems(known_models(self.ctx, name))
        self.model.setEditText(text if name else "")
        self.model.blockSignals(False)
        self.model.setEnabled(bool(name))
        self._show_probes()

    def set_probes(self, probes: dict[str, dict[str, Any]]) -> None:
        self.probes = probes
        self._show_probes()

    def _show_probes(self) -> None:
        """Each offered model's verdict as its tooltip, and the chosen one's in the label beside it."""
        name, text = self.provider.currentData(), self.model.currentText()
        self.model.blockSignals(True)
        for i in range(self.model.count()):
            model = self.model.itemText(i)
            tip = (
                f"{probe_verdict(self.probes.get(f'{name}/{model}'))}\n{price_note(self.ctx, name, model)[1]}"
            )
            self.model.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
        self.model.setEditText(
            text
        )  # changed item data makes the combo copy its current item over the typed text
        self.model.blockSignals(False)
        self._show_verdict()

    def _show_verdict(self) -> None:
        name, model = self.provider.currentData(), self.model.currentText().strip()
        if not (name and model):
            self.verdict.setText("")
            self.verdict.setToolTip("")
            self.price.setText("")
            self.price.setToolTip("")
            return
        short, long = price_note(self.ctx, name, model)
        self.verdict.setText(probe_verdict(self.probes.get(f"{name}/{model}")))
        self.verdict.setToolTip(self.verdict.text())
        self.price.setText(short)
        self.price.setToolTip(long)

    def set_target(self, target: Target | None) -> None:
        self.provider.setCurrentIndex(
            max(self.provider.findData(target.provider if target else SAME_AS_DEFAULT), 0)
        )
        self._provider_changed()
        self.model.setEditText(target.model if target else "")
        self._show_verdict()

    def target(self) -> Target | None:
        """The chosen target; None for "same as default"; raises ValueError when half filled."""
        name, model = self.provider.currentData(), self.model.currentText().strip()
        if not name:
            return None
        if not model:
            raise ValueError(f"choose a model for {name}")
        return Target(name, model)

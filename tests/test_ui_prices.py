"""Prices on the Providers page and the Presets pickers: the price a call is charged and where it comes from,
beside each model; a price overridden inline lands in the config and is what the next call is charged."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

import pytest
from analytics_support import chat, settled, user
from PySide6.QtCore import Qt

from app.core.config import Target
from app.testing.script import Reply, Usage
from app.ui.pages.presets import PresetsPage
from app.ui.pages.providers import PROBE_COLUMN, SOURCE_COLUMN, ProvidersPage

pytest_plugins = ["ui_support"]
pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore(r"This plugin does not support (propagateSizeHints|raise|grabWindow)"),
]


def page(qtbot, cls, ctx):  # type: ignore[no-untyped-def]
    widget = cls(ctx)
    qtbot.addWidget(widget)
    widget.resize(1100, 680)
    widget.show()
    return widget


def rows(p: ProvidersPage) -> dict[str, list[str]]:
    out = {}
    for i in range(p.models.topLevelItemCount()):
        item = p.models.topLevelItem(i)
        out[item.text(0)] = [item.text(c) for c in range(p.models.columnCount())]
    return out


def connected(qtbot, p: ProvidersPage, name: str) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    p.show_provider(name)
    p.message.clear()
    qtbot.mouseClick(p.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: p.message.kind in ("ok", "error"), timeout=5000)
    assert p.message.kind == "ok", p.message.text()
    return rows(p)


def test_each_model_shows_the_price_calls_are_charged_and_its_source(
    ctx, core, qtbot, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, ProvidersPage, ctx)
    listed = connected(qtbot, p, "cheapco")  # an OpenRouter-style list with prices
    assert listed["qwen/qwen3-coder"][2:4] == ["$0.30", "$1.20"]
    assert listed["qwen/qwen3-coder"][SOURCE_COLUMN] == f"provider's list, {time.strftime('%Y-%m-%d')}"
    p.grab().save(str(tmp_path / "providers-listed.png"))
    tip = p.models.topLevelItem(list(listed).index("qwen/qwen3-coder")).toolTip(SOURCE_COLUMN)
    assert "cache read $0.03" in tip and "cheapco's model list" in tip
    assert (
        listed["qwen/qwen3-coder"][PROBE_COLUMN] == "not probed"
        or listed["qwen/qwen3-coder"][PROBE_COLUMN] == ""
    )
    table = connected(
        qtbot, p, "premium"
    )  # Anthropic's list has no prices: the table's, with its source and date
    assert table["anthropic/claude-sonnet-4.6"][2:5] == ["$3.00", "$15.00", "price table, 2026-11"]
    tip = p.models.topLevelItem(list(table).index("anthropic/claude-sonnet-4.6")).toolTip(2)
    assert "Anthropic pricing page" in tip and "2026-11" in tip
    p.grab().save(str(tmp_path / "providers-prices.png"))

    presets = page(qtbot, PresetsPage, ctx)  # the pickers say the same
    picker = presets.pickers["default"]
    picker.set_target(Target("cheapco", "qwen/qwen3-coder"))
    assert picker.price.text() == "$0.30/$1.20 (list)"
    assert "cheapco's model list" in picker.price.toolTip() and "cache read $0.03" in picker.price.toolTip()
    presets.grab().save(str(tmp_path / "presets-prices.png"))


def test_a_price_overridden_inline_is_saved_and_charged(ctx, core, proxy, mock, token, qtbot) -> None:  # type: ignore[no-untyped-def]
    p = page(qtbot, ProvidersPage, ctx)
    listed = connected(qtbot, p, "cheapco")
    index = list(listed).index("qwen/qwen3-coder")
    item = p.models.topLevelItem(index)
    assert item.flags() & Qt.ItemFlag.ItemIsEditable
    item.setText(2, "2.5")  # what the delegate commits after a double-click and typing
    qtbot.waitUntil(lambda: "cheapco/qwen/qwen3-coder" in core.config.prices, timeout=5000)
    saved = tomllib.loads(core.config_path.read_text())["prices"]["cheapco/qwen/qwen3-coder"]
    assert saved == {"input": 2.5, "output": 1.2, "cache_read": pytest.approx(0.03)}
    # the config is saved on the writer thread before the page hears of it: wait for the message too
    qtbot.waitUntil(lambda: 'Saved [prices."cheapco/qwen/qwen3-coder"]' in p.message.text(), timeout=5000)
    qtbot.waitUntil(
        lambda: rows(p).get("qwen/qwen3-coder", [""] * 6)[SOURCE_COLUMN] == "your override", timeout=5000
    )
    assert rows(p)["qwen/qwen3-coder"][2:4] == ["$2.50", "$1.20"]

    mock.enqueue(Reply(text="x", usage=Usage(prompt=1000, completion=100)))
    assert (
        chat(proxy, token, user("charged at the override"), model="cheapco/qwen/qwen3-coder").status_code
        == 200
    )
    row = settled(core)[-1]
    assert row["cost_source"] == "override" and row["cost_usd"] == pytest.approx(
        (1000 * 2.5 + 100 * 1.2) / 1e6
    )

    item = p.models.topLevelItem(index)
    item.setText(2, "abc")
    qtbot.waitUntil(lambda: p.message.kind == "error", timeout=3000)
    assert (
        "is not a price" in p.message.text() and core.config.prices["cheapco/qwen/qwen3-coder"].input == 2.5
    )
    item = p.models.topLevelItem(index)
    p._filling = True
    item.setText(3, "")
    p._filling = False
    item.setText(2, "")  # both cells cleared: the override goes
    qtbot.waitUntil(lambda: "cheapco/qwen/qwen3-coder" not in core.config.prices, timeout=5000)
    qtbot.waitUntil(
        lambda: rows(p).get("qwen/qwen3-coder", [""] * 6)[SOURCE_COLUMN].startswith("provider's list"),
        timeout=5000,
    )


def test_a_local_providers_prices_cannot_be_edited(ctx, core, qtbot) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from app.core.provider_models import ModelInfo

    core.config_store.save(
        replace(
            core.config,
            providers={
                **core.config.providers,
                "backup": replace(core.config.providers["backup"], local=True),
            },
        )
    )
    qtbot.waitUntil(lambda: core.config.providers["backup"].local, timeout=3000)
    p = page(qtbot, ProvidersPage, ctx)
    p.show_provider("backup")
    p.show_models("backup", [ModelInfo("qwen-local", None, None, None)])
    item = p.models.topLevelItem(0)
    assert item.text(SOURCE_COLUMN) == "local" and item.text(2) == "$0.00"
    assert not item.flags() & Qt.ItemFlag.ItemIsEditable


def test_the_savings_tile_states_the_method_and_the_assumption_in_use(ctx, core, qtbot) -> None:  # type: ignore[no-untyped-def]
    from app.ui.pages.dashboard import RANGES, DashboardPage, snapshot

    dash = page(qtbot, DashboardPage, ctx)
    tip = dash.tiles["savings"].toolTip()
    assert "premium preset's model for the same role" in tip and "measured on your own premium calls" in tip
    assert "hourly_cost" in tip
    data = snapshot(core.db, RANGES[0], "model", time.time(), core.config)
    dash._applied(data)
    assert (
        "Now: each call's own cache split (the log holds 0 of the 20 premium calls"
        in dash.tiles["savings"].toolTip()
    )

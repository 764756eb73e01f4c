"""A total that leaves out an attempt without a known price says so: the first target (a model no source can
price) starts answering, reports its input usage, then breaks mid-stream; the fallback serves the call at a
known price. The unpriced attempt was billed too, so the call's cost is only part of what it cost: the row,
`downshift calls`/`stats`, the Calls page and the call detail mark it unpriced (in part), never complete."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from conftest import logged_calls
from test_usage_shapes import EXPECTED_COST, MESSAGES, TEXT, USAGE, shapes_config

from app.cli import main as cli
from app.core.queries import dashboard
from app.core.queries.calls import call_detail
from app.testing.script import Fault, Reply

pytest_plugins = ["ui_support"]


@pytest.fixture
def config_path(tmp_path: Path, mock) -> Path:  # type: ignore[no-untyped-def]
    config = shapes_config(mock.base_url).replace(
        '[routing]\nactive = "gateway"',
        '[[presets]]\nname = "gamble"\ndefault = "anthropic/no-price-known"\nfallback = ["groq/m-groq"]\n\n'
        '[routing]\nactive = "gamble"',
    )
    assert 'active = "gamble"' in config
    path = tmp_path / "config.toml"
    path.write_text(config)
    return path


@pytest.fixture
def row(proxy, mock, token, core) -> dict:  # type: ignore[no-untyped-def]
    words = " ".join(f"w{i}" for i in range(40))
    mock.enqueue(
        Fault("error_event", after_chunks=3, reply=Reply(text=words, usage=USAGE)),  # Anthropic: input first
        Reply(text=TEXT, usage=USAGE, usage_shape="groq"),
    )
    body = {"model": "default", "max_tokens": 500, "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": token}, timeout=20
    ) as r:
        r.read()
    assert r.status_code == 200
    (logged,) = logged_calls(core)
    return logged  # type: ignore[no-any-return]


def test_the_row_says_its_cost_leaves_out_an_unpriced_attempt(row, core) -> None:  # type: ignore[no-untyped-def]
    assert (row["outcome"], row["provider"], row["attempts"]) == ("ok", "groq", 2)
    first, _served = call_detail(core.db, row["call_id"])["fallback"]
    assert first["target"] == "anthropic/no-price-known" and first["cost_source"] == "unpriced"
    assert first["cost_usd"] is None and first["output_tokens"] >= 1
    assert row["cost_usd"] == pytest.approx(EXPECTED_COST, rel=1e-9)  # the part that has a price
    assert row["unpriced"]  # ... and the row says it is not the whole cost


def test_cli_does_not_present_the_total_as_complete(row, core, config_path, capsys) -> None:  # type: ignore[no-untyped-def]
    where = ("--config", str(config_path), "--db", core.db_url)
    capsys.readouterr()
    assert cli(["calls", *where]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if "groq/m-groq" in x]
    assert "unpriced" in line and "$" in line
    assert cli(["calls", "--json", *where]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["unpriced"] and listed["cost_usd"] == pytest.approx(EXPECTED_COST, rel=1e-9)
    assert cli(["stats", *where]) == 0
    stats = capsys.readouterr().out
    assert "1 calls have no known price" in stats
    assert cli(["stats", "--json", *where]) == 0
    total = json.loads(capsys.readouterr().out)["total"]
    assert total["unpriced_calls"] == 1 and total["cost_usd"] == pytest.approx(EXPECTED_COST, rel=1e-9)
    assert dashboard.tiles(core.db, since=0)["unpriced_calls"] == 1


def test_the_gui_marks_the_cost_as_partly_unpriced(row, core, qtbot, ctx) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QTextBrowser

    from app.ui.models import CALL_COLUMNS
    from app.ui.pages.calls import CallsPage, detail_html

    calls = CallsPage(ctx)
    qtbot.addWidget(calls)
    calls.resize(1280, 500)
    calls.show()
    qtbot.waitUntil(lambda: calls.model.rowCount() == 1, timeout=5000)
    column = [c.key for c in CALL_COLUMNS].index("cost_usd")
    cell = calls.model.index(0, column).data()
    assert cell.startswith("$") and cell.endswith("+")  # "and more": the figure is not the whole cost
    tip = calls.model.index(0, column).data(Qt.ItemDataRole.ToolTipRole)
    assert "part of the cost has no known price" in tip
    html = detail_html(call_detail(core.db, row["call_id"]))
    assert "no known price" in html and "anthropic/no-price-known" in html and "+ unpriced" in html
    view = QTextBrowser()
    qtbot.addWidget(view)
    view.resize(520, 900)
    view.setHtml(html)
    view.show()
    assert view.grab().save("/tmp/figures-detail-partly-unpriced.png")
    assert calls.grab().save("/tmp/figures-calls-partly-unpriced.png")


def test_a_team_ledger_counts_the_call_unpriced_too() -> None:
    """The ledger's totals are built from the shipped row: the attempts go with it, so the call still counts."""
    import orjson

    from app.core.analytics.rollup import BatchTotals
    from app.core.records import Attempt, CallRecord
    from app.core.team_ship import payload, record

    rec = CallRecord("anthropic", "/v1/messages", outcome="ok", cost_usd=0.02, cost_source="override")
    rec.provider, rec.upstream_model = "groq", "m-groq"
    rec.attempts = [
        Attempt(
            "anthropic/no-price-known", 200, "upstream_stream_error", cost_source="unpriced", output_tokens=3
        ),
        Attempt("groq/m-groq", 200),
    ]
    totals = BatchTotals()
    totals.add_call(record(orjson.loads(payload(rec))))
    (usage,) = totals.usage.values()
    assert usage["unpriced_calls"] == 1 and usage["cost_usd"] == pytest.approx(0.02)

"""The Dashboard's member filter on a log with two members' calls, on SQLite and on PostgreSQL: every tile, chart
and the health row change to that member's figures, which equal a hand sum of the calls logged."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from app.core.records import CallRecord
from app.core.toolcheck import NOT_FAILURES
from app.testing.ledger_load import make_record
from app.ui.background import Background
from app.ui.bridge import CoreBridge
from app.ui.context import UiContext
from app.ui.models import fmt_money, fmt_rate

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)

COUNTS = {"ann": 30, "bob": 17}


def _logged(core: Any) -> dict[str, list[CallRecord]]:
    """Calls of ann and bob from the last few minutes (all of them today), written by the real log writer."""
    now = time.time()
    midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    t0 = max(now - 300, midnight + 1)
    out: dict[str, list[CallRecord]] = {}
    for n, (member, count) in enumerate(COUNTS.items()):
        out[member] = [make_record(n, i, t0, member) for i in range(count)]
        for rec in out[member]:
            core.writer.finished(rec)
    assert core.writer.flush()
    return out


def _hand(recs: list[CallRecord]) -> dict[str, Any]:
    ended = [r for r in recs if r.outcome not in ("in_flight", "interrupted")]
    tools = [t for r in ended for t in r.tool_calls]
    failed = sum(1 for t in tools if t.kind not in NOT_FAILURES)
    return {
        "calls": len(ended),
        "cost": sum(r.cost_usd or 0.0 for r in ended),
        "errors": sum(1 for r in ended if r.outcome != "ok"),
        "failure_rate": failed / len(tools) if tools else None,
    }


def test_the_member_filter_shows_that_members_figures(qtbot: Any, core: Any) -> None:
    from app.ui.pages.dashboard import ALL_MEMBERS, DashboardPage

    recs = _logged(core)
    ctx = UiContext(core, None, CoreBridge(core.events), Background())
    page = DashboardPage(ctx)
    qtbot.addWidget(page)
    page.resize(1200, 800)
    page.show()
    try:
        qtbot.waitUntil(lambda: page.last_data is not None and page.member_box.count() == 3, timeout=15_000)
        assert page.member_box.isVisible()
        assert [page.member_box.itemText(i) for i in range(3)] == [ALL_MEMBERS, "ann", "bob"]
        everyone = _hand(recs["ann"] + recs["bob"])
        assert page.tiles["calls"].value.text() == f"{everyone['calls']:,}"

        for member in ("bob", "ann"):
            hand = _hand(recs[member])
            page.member_box.setCurrentIndex(page.member_box.findData(member))
            qtbot.waitUntil(
                lambda m=member: page.last_data is not None and page.last_data["member"] == m, timeout=15_000
            )
            data = page.last_data
            assert page.tiles["calls"].value.text() == f"{hand['calls']:,}"
            assert data["tiles"]["spend_today"] == pytest.approx(hand["cost"])
            assert page.tiles["today"].value.text() == fmt_money(hand["cost"])
            assert data["tiles"]["spend_range"] == pytest.approx(hand["cost"])
            assert page.tiles["failure"].value.text() == fmt_rate(hand["failure_rate"])
            charted = sum(sum(series) for series in data["spend"]["series"].values())
            assert charted == pytest.approx(hand["cost"])
            assert sum(data["spend"]["calls"]) == hand["calls"]
            emitted = sum(sum(n) for n in data["failures"]["tool_calls"].values())
            assert emitted == sum(len(r.tool_calls) for r in recs[member])
            assert data["health"]["calls"] == hand["calls"] and data["health"]["errors"] == hand["errors"]
            assert sum(t["calls"] for t in data["tasks"]["tasks"]) == hand["calls"]

        page.member_box.setCurrentIndex(0)
        qtbot.waitUntil(
            lambda: page.last_data is not None and page.last_data["member"] is None, timeout=15_000
        )
        assert page.tiles["calls"].value.text() == f"{everyone['calls']:,}"
    finally:
        page.hide()
        ctx.background.wait(10_000)
        ctx.bridge.close()


def test_a_single_users_log_offers_no_member_filter(qtbot: Any, core: Any) -> None:
    from app.ui.pages.dashboard import DashboardPage

    for i in range(5):
        core.writer.finished(make_record(0, i, time.time() - 120))
    assert core.writer.flush()
    ctx = UiContext(core, None, CoreBridge(core.events), Background())
    page = DashboardPage(ctx)
    qtbot.addWidget(page)
    page.show()
    try:
        qtbot.waitUntil(lambda: page.last_data is not None, timeout=15_000)
        assert page.tiles["calls"].value.text() == "5"
        assert not page.member_box.isVisible() and page.member_box.count() == 2
    finally:
        page.hide()
        ctx.background.wait(10_000)
        ctx.bridge.close()

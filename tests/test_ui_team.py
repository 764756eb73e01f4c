"""The desktop app's Team page over a real team ledger on PostgreSQL, opened read-only: the member filter,
the per-member table, a rendered screenshot, and writes refused by the server."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.engine import Core
from app.core.storage.db import open_read_only
from app.testing.ledger_load import make_record
from app.ui.background import Background
from app.ui.bridge import CoreBridge
from app.ui.context import UiContext


@pytest.fixture
def ledger(pg_server, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    """A team ledger with calls of ann (40), bob (25) and cem (10) from the last hour, written as a gateway
    writes them (the log writer with its analytics hook)."""
    url = pg_server.create_database()
    gateway = Core(tmp_path / "gateway.toml", url)
    t0 = time.time() - 3000
    for n_member, (member, n) in enumerate((("ann", 40), ("bob", 25), ("cem", 10))):
        for i in range(n):
            gateway.writer.finished(make_record(n_member, i, t0, member))
    assert gateway.writer.flush()
    gateway.close()
    yield url
    pg_server.drop_database(url)


def test_team_page_shows_every_member_and_filters_by_one(
    qtbot: Any, ledger: str, tmp_path: Path, config_path: Path
) -> None:
    from app.ui.pages.team import TeamPage

    config_path.write_text(config_path.read_text() + f'\n[team]\nmember = "ann"\nledger = "{ledger}"\n')
    core = Core(config_path, f"sqlite:///{tmp_path / 'mine.db'}")
    ctx = UiContext(core, None, CoreBridge(core.events), Background())
    page = TeamPage(ctx)
    qtbot.addWidget(page)
    page.resize(1100, 600)
    page.show()
    try:
        qtbot.waitUntil(lambda: page.table.rowCount() == 3, timeout=10_000)
        table = {page.table.item(r, 0).text(): page.table.item(r, 1).text() for r in range(3)}
        assert table == {"ann": "40", "bob": "25", "cem": "10"}
        assert page.tiles["calls"].value.text() == "75"
        assert [page.member.itemText(i) for i in range(page.member.count())] == [
            "All members",
            "ann",
            "bob",
            "cem",
        ]
        page.member.setCurrentText("bob")
        qtbot.waitUntil(lambda: page.tiles["calls"].value.text() == "25", timeout=10_000)
        assert "postgres@" in page.where.text()
        shot = Path(os.environ.get("DOWNSHIFT_TEAM_SHOT", tmp_path / "team.png"))
        page.grab().save(str(shot))
        assert shot.stat().st_size > 1000
    finally:
        page.hide()
        ctx.background.wait(10_000)
        ctx.bridge.close()
        core.close()


def test_without_a_ledger_the_page_says_how_to_get_one(qtbot: Any, core) -> None:  # type: ignore[no-untyped-def]
    from app.ui.pages.team import TeamPage

    ctx = UiContext(core, None, CoreBridge(core.events), Background())
    page = TeamPage(ctx)
    qtbot.addWidget(page)
    page.show()
    assert "No team ledger" in page.message.text() and page.table.rowCount() == 0
    page.hide()
    ctx.bridge.close()


def test_a_ledger_opened_read_only_refuses_writes(ledger: str) -> None:
    engine = open_read_only(ledger)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM calls")).scalar() == 75
        with pytest.raises(DBAPIError, match="read-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM calls"))
    finally:
        engine.dispose()

"""`downshift --db URL` opens a team ledger (PostgreSQL), or any log with `--read-only`, for reading only, and the
database enforces it: the whole desktop app run over it, every page shown, writes nothing (row counts, the
server's tuple counters, the file's bytes), starts no proxy, writer or shipper, and a write fails clearly."""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.engine import Core
from app.core.storage.db import DatabaseOpenError, create_db_engine, open_read_only
from app.testing.ledger_load import make_record
from app.ui import launch, startup

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)

TABLES = ("calls", "tool_calls", "tasks", "task_totals", "usage_slots", "outbox", "analytics_meta")


@pytest.fixture(autouse=True)
def open_gate() -> Iterator[None]:
    startup.reset()
    yield
    startup.reset()


def _fill(config_path: Path, url: str) -> None:
    writer = Core(config_path, url)
    try:
        for n, member in enumerate(("ann", "bob")):
            for i in range(20):
                writer.writer.finished(make_record(n, i, time.time() - 600, member))
        assert writer.writer.flush()
    finally:
        writer.close()


def _state(url: str) -> dict[str, Any]:
    """Every table's row count, and what says whether anything at all was written: the file's bytes (SQLite), the
    server's inserted/updated/deleted tuple counters (PostgreSQL)."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            out: dict[str, Any] = {
                t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in TABLES
            }
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_stat_clear_snapshot()"))
                out["tuples written"] = conn.execute(
                    text("SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables")
                ).scalar()
    finally:
        engine.dispose()
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        for name in (path, path.with_name(path.name + "-wal")):
            out[name.name] = hashlib.sha256(name.read_bytes()).hexdigest() if name.exists() else None
    return out


def test_the_app_opened_read_only_writes_nothing(
    db_url: str, config_path: Path, monkeypatch: Any, qtbot: Any
) -> None:
    from app.ui.main_window import PAGES, MainWindow

    _fill(config_path, db_url)
    # a ledger to ship to is set: a read-only app must not start shipping either
    config_path.write_text(
        config_path.read_text()
        + '\n[team]\nmember = "ann"\nledger = "postgresql://nobody@127.0.0.1:9/none"\n'
    )
    time.sleep(1.2)  # the filling connections' statistics reach the server's counters
    before = _state(db_url)
    assert before["calls"] == 40
    monkeypatch.setattr("app.ui.tray.Tray.available", staticmethod(lambda: True))
    seen: dict[str, Any] = {}
    monkeypatch.setattr("app.ui.dialogs.fatal", lambda *a: seen.setdefault("fatal", a))
    safety = QTimer(singleShot=True, interval=30_000)
    safety.timeout.connect(lambda: QApplication.exit(3))
    pages = [spec.key for spec in PAGES]

    def visit() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if not windows or startup.held():
            QTimer.singleShot(50, visit)
            return
        window = windows[0]
        if pages:
            window.show_page(pages.pop(0))  # each page queries the log as it is shown
            QTimer.singleShot(300, visit)
            return
        dash = window.pages.get("dashboard")
        if dash is None or not dash.refreshes:
            window.show_page("dashboard")
            QTimer.singleShot(100, visit)
            return
        core = window.ctx.core
        seen.update(
            proxy=window.ctx.proxy,
            writer_running=core.writer._thread.is_alive(),
            shipper=core.shipper,
            status=window.status.text(),
            calls_shown=dash.tiles["calls"].value.text(),
        )
        try:
            with core.db.begin() as conn:
                conn.execute(text("DELETE FROM calls"))
        except DBAPIError as exc:
            seen["write"] = str(exc.orig)
        QApplication.exit(0)

    safety.start()
    QTimer.singleShot(0, visit)
    args = argparse.Namespace(
        config=str(config_path), db=db_url, verbose=False, read_only=db_url.startswith("sqlite")
    )
    try:
        assert launch.run_gui(args) == 0, seen
    finally:
        safety.stop()
    assert seen["proxy"] is None and not seen["writer_running"] and seen["shipper"] is None
    assert seen["status"].startswith("Read-only: ")
    assert seen["calls_shown"] == "40"
    assert "read-only" in seen["write"] or "readonly" in seen["write"]
    time.sleep(1.2)
    assert _state(db_url) == before


def test_read_only_refuses_a_log_that_is_not_at_this_versions_schema(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        with pytest.raises(DatabaseOpenError, match="does not exist"):
            open_read_only(db_url)
        Path(db_url.removeprefix("sqlite:///")).touch()
    with pytest.raises(DatabaseOpenError, match="no Downshift schema yet.*not changed"):
        open_read_only(db_url)
    assert _tables(db_url) == []  # nothing was created


def _tables(url: str) -> list[str]:
    from sqlalchemy import inspect

    engine = create_db_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()

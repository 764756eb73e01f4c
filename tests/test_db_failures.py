"""The call log's database locked or its disk full: the proxy keeps serving at full speed, holds the rows in
a bounded queue, warns (log and a "notice" event), writes them when it can, and says exactly how many it
had to drop when the bound was reached."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import logged_calls
from sqlalchemy import event

from app.core.storage.writer import LogWriter
from app.proxy.server import ProxyThread

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@contextlib.contextmanager
def connection_pragmas(engine, *pragmas: str) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Every new connection of `engine` runs `pragmas` (the pool is emptied so the writer reconnects)."""

    def apply(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        for p in pragmas:
            cur.execute(p)
        cur.close()

    event.listen(engine, "connect", apply)
    engine.dispose()
    try:
        yield
    finally:
        event.remove(engine, "connect", apply)
        engine.dispose()


def db_file(core) -> Path:  # type: ignore[no-untyped-def]
    return Path(core.db_url.removeprefix("sqlite:///"))


def calls(proxy, token: str, n: int, **extra) -> list[float]:  # type: ignore[no-untyped-def]
    """Make n calls (every third streamed); each must succeed; returns their latencies."""
    latencies = []
    for i in range(n):
        start = time.monotonic()
        r = httpx.post(
            f"{proxy.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            json={**CHAT, "stream": i % 3 == 0, **extra},
            timeout=20,
        )
        assert r.status_code == 200, r.text
        latencies.append(time.monotonic() - start)
    return latencies


def test_locked_database_keeps_serving_then_writes_every_row(proxy, mock, token, core, caplog) -> None:  # type: ignore[no-untyped-def]
    notices: list[tuple[str, str]] = []
    core.events.subscribe("notice", notices.append)
    with connection_pragmas(core.db, "PRAGMA busy_timeout=100"):
        blocker = sqlite3.connect(db_file(core), timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
        try:
            with caplog.at_level(logging.WARNING):
                latencies = calls(proxy, token, 30)
                wait_for(lambda: any(t == "Call log paused" for t, _ in notices))
            assert max(latencies) < 1.0  # the database never sits on the request path
            assert core.writer.stats.outage_since is not None and core.writer.stats.failures >= 1
            assert "locked" in (core.writer.stats.last_error or "")
            assert any("call log write failed" in r.getMessage() for r in caplog.records)
            assert not core.writer.flush(timeout=0.3)
        finally:
            blocker.rollback()
            blocker.close()
        wait_for(lambda: any(t == "Call log writing again" for t, _ in notices))
    rows = logged_calls(core)
    assert len(rows) == 30 and len({r["call_id"] for r in rows}) == 30
    assert {r["outcome"] for r in rows} == {"ok"}
    assert core.writer.stats.dropped == 0 and core.writer.stats.outage_since is None
    resumed = next(m for t, m in notices if t == "Call log writing again")
    assert "no call was lost" in resumed


def test_full_disk_keeps_serving_then_writes_every_row(config_path: Path, proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    """Disk full as SQLite sees it (SQLITE_FULL), made with max_page_count: portable and root-free."""
    from dataclasses import replace

    core.config_store.save(replace(core.config, store_bodies=True))  # big rows: every one needs new pages
    with core.db.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    notices: list[tuple[str, str]] = []
    core.events.subscribe("notice", notices.append)
    with connection_pragmas(core.db, f"PRAGMA max_page_count={pages}"):
        calls(proxy, token, 12, metadata={"note": "x" * 20_000})
        wait_for(lambda: any(t == "Call log paused" for t, _ in notices))
        assert "full" in (core.writer.stats.last_error or "")
        assert core.writer.pending > 0 or core.writer.stats.outage_since is not None
    # space again (the pool reconnects without the cap)
    wait_for(lambda: any(t == "Call log writing again" for t, _ in notices))
    rows = logged_calls(core)
    assert len(rows) == 12 and {r["outcome"] for r in rows} == {"ok"}
    assert core.writer.stats.dropped == 0


def test_a_full_queue_drops_rows_and_says_how_many(tmp_path: Path, mock, core) -> None:  # type: ignore[no-untyped-def]
    core.writer.close()
    core.writer = LogWriter(  # a tiny bound; wired as the Core wires its own
        core.db,
        max_pending=10,
        interval=0.01,
        notify=lambda title, message: core.events.emit("notice", (title, message)),
    )
    core.writer.secrets = core.secret_values
    core.writer.hooks.append(core.policy.writer_hook)
    notices: list[tuple[str, str]] = []
    core.events.subscribe("notice", notices.append)
    finished: list[object] = []
    core.events.subscribe("call_finished", finished.append)  # after the handler handed its row over
    token = core.token()
    with connection_pragmas(core.db, "PRAGMA busy_timeout=50"), ProxyThread(core, port=0) as proxy:
        blocker = sqlite3.connect(db_file(core), timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            calls(proxy, token, 40)  # every call still served
            wait_for(lambda: len(finished) == 40)
            dropped = core.writer.stats.dropped
            assert dropped > 0
            assert any(t == "Call log rows dropped" for t, _ in notices)
        finally:
            blocker.rollback()
            blocker.close()
        wait_for(lambda: core.writer.flush(timeout=1))
    assert core.writer.stats.dropped == dropped  # nothing more lost once writing resumed
    with core.db.connect() as conn:
        outcomes = dict(conn.exec_driver_sql("SELECT outcome, count(*) FROM calls GROUP BY outcome").all())
    assert outcomes.get("ok", 0) + dropped == 40  # each call is either in the log or counted as dropped
    assert outcomes.get("in_flight", 0) <= dropped  # a start that fitted, its end did not
    resumed = next(m for t, m in notices if t == "Call log writing again")
    assert f"{dropped} call(s) could not be kept" in resumed


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(path: Path) -> None:
    with open(path, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_a_really_full_disk(tiny_disk: Path, config_path: Path, mock) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from app.core.engine import Core

    core = Core(config_path, f"sqlite:///{tiny_disk / 'log.db'}")
    try:
        core.set_provider_key("cheapco", "sk-test-cheapco-0123456789abcdef")
        core.config_store.save(replace(core.config, store_bodies=True))
        notices: list[tuple[str, str]] = []
        core.events.subscribe("notice", notices.append)
        token = core.token()
        with ProxyThread(core, port=0) as proxy:
            calls(proxy, token, 2)
            assert core.writer.flush()
            fill(tiny_disk / "filler")  # the disk is now full
            calls(proxy, token, 15, metadata={"note": "y" * 30_000})
            wait_for(lambda: any(t == "Call log paused" for t, _ in notices))
            (tiny_disk / "filler").unlink()  # the user makes room
            wait_for(lambda: any(t == "Call log writing again" for t, _ in notices), timeout=20)
            rows = logged_calls(core)
        assert len(rows) == 17 and {r["outcome"] for r in rows} == {"ok"}
        assert core.writer.stats.dropped == 0
    finally:
        core.close()

"""Pruning erases (issue 14): the text of pruned calls (bodies, errors) is gone from the database file, not
left in free pages for anyone who copies the file. Calls go through the real proxy, the prune through the
real CLI, and the .db and -wal files are read as raw bytes."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from conftest import logged_calls

from app.cli import main as cli
from app.testing.script import Reply

MARKER = "PRUNE-ME-4f1c9e"
KEEP = "KEEP-ME-8b27d0"


@pytest.fixture
def store_bodies(config_path: Path) -> Path:
    config_path.write_text(config_path.read_text() + "\n[logging]\nstore_bodies = true\n")
    return config_path


def _files(db_path: Path) -> bytes:
    return b"".join(f.read_bytes() for f in (db_path, db_path.with_name(db_path.name + "-wal")) if f.exists())


@pytest.fixture(params=["build default", "off"])
def secure_delete_default(request, monkeypatch):  # type: ignore[no-untyped-def]
    """SQLite's own default for secure_delete differs by build (Debian's is on, python.org's is off): every
    connection made here starts with it off in the second case, as such a build would."""
    import sqlite3

    if request.param == "off":
        real = sqlite3.dbapi2.connect

        def connect(*args, **kwargs):  # type: ignore[no-untyped-def]
            conn = real(*args, **kwargs)
            conn.execute("PRAGMA secure_delete = 0")
            return conn

        monkeypatch.setattr(sqlite3.dbapi2, "connect", connect)
    return request.param


def test_a_prune_leaves_no_pruned_text_in_the_database_file(  # type: ignore[no-untyped-def]
    secure_delete_default, store_bodies, proxy, mock, token, core, monkeypatch
) -> None:
    h = {"Authorization": f"Bearer {token}"}
    for i in range(30):
        mock.enqueue(
            Reply(status=400, error=f"{MARKER} error {i}") if i % 3 == 0 else Reply(text=f"{MARKER} {i}")
        )
        body = {
            "model": "default",
            "messages": [{"role": "user", "content": f"{MARKER} question {i} " + "x" * 3000}],
        }
        httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=h)
    logged_calls(core)
    with core.db.begin() as conn:  # those calls were made ten days ago
        conn.exec_driver_sql("UPDATE calls SET started_at = started_at - 10 * 86400")
        conn.exec_driver_sql("UPDATE tool_calls SET started_at = started_at - 10 * 86400")
        conn.exec_driver_sql(
            "UPDATE tasks SET started_at = started_at - 10 * 86400, last_at = last_at - 10 * 86400"
        )
    mock.enqueue(Reply(text=f"{KEEP} answer"))
    body = {"model": "default", "messages": [{"role": "user", "content": f"{KEEP} question"}]}
    assert httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=h).status_code == 200
    assert len(logged_calls(core)) == 31
    proxy.stop()
    core.writer.flush()
    db_path = Path(core.db_url.removeprefix("sqlite:///"))
    assert MARKER.encode() in _files(db_path)

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # should the CLI ask to confirm
    args = ["--config", str(core.config_path), "--db", core.db_url]
    assert cli(["rollup", "--days", "1", *args]) == 0
    core.db.dispose()
    rows = logged_calls(core)
    assert len(rows) == 1
    data = _files(db_path)
    assert KEEP.encode() in data  # what is kept is still there
    assert data.count(MARKER.encode()) == 0, data.count(MARKER.encode())


def test_every_connection_erases_what_it_deletes(secure_delete_default, core) -> None:  # type: ignore[no-untyped-def]
    with core.db.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1

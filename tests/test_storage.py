from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from app.core.records import CallRecord, ToolCallResult
from app.core.storage.db import DatabaseOpenError, head_revision, open_database
from app.core.storage.writer import LogWriter


def rows(engine, sql: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_schema_migrated_wal_and_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = open_database(url)
    assert rows(engine, "PRAGMA journal_mode") == [("wal",)]
    assert rows(engine, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    engine.dispose()
    open_database(url).dispose()  # opening again is a no-op migration


@pytest.mark.both_backends
def test_quick_call_is_one_row_and_in_flight_rows_become_interrupted(db_url: str) -> None:
    url = db_url
    engine = open_database(url)
    writer = LogWriter(engine, interval=0.01)
    writer.machine = "box-1"
    quick = CallRecord(client_api="openai", endpoint="/v1/chat/completions")
    writer.started(quick)
    quick.tool_calls.append(ToolCallResult("call_1", "read_file", "ok"))
    quick.finish("ok", 200)
    writer.finished(quick)
    slow = CallRecord(client_api="anthropic", endpoint="/v1/messages")
    writer.started(slow)
    assert writer.flush()
    assert set(rows(engine, "SELECT call_id, outcome FROM calls")) == {
        (quick.call_id, "ok"),
        (slow.call_id, "in_flight"),
    }
    assert rows(engine, "SELECT tool_call_id, kind FROM tool_calls") == [("call_1", "ok")]
    writer.failed_results([("call_1", "exit code 1")])
    assert writer.flush()
    assert rows(engine, "SELECT result_failed, result_reason FROM tool_calls") == [(1, "exit code 1")]
    writer.close()
    engine.dispose()
    # the process "died" with `slow` in flight: the next start marks it (on a shared PostgreSQL ledger only a
    # proxy on the same machine does; a reader, or another machine's proxy, leaves other proxies' calls alone)
    if engine.url.get_backend_name() == "postgresql":
        for other in (open_database(url), open_database(url, machine="box-2")):
            assert rows(other, f"SELECT outcome FROM calls WHERE call_id = '{slow.call_id}'") == [
                ("in_flight",)
            ]
            other.dispose()
    engine = open_database(url, machine="box-1")
    assert rows(engine, f"SELECT outcome FROM calls WHERE call_id = '{slow.call_id}'") == [("interrupted",)]
    engine.dispose()


def test_writer_survives_a_locked_database(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    engine = open_database(f"sqlite:///{path}")
    writer = LogWriter(engine, interval=0.01)
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    engine.dispose()
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA busy_timeout=10")
    recs = [CallRecord(client_api="openai", endpoint="/x") for _ in range(5)]
    for r in recs:
        r.finish("ok", 200)
        writer.finished(r)
    assert not writer.flush(timeout=0.5)  # cannot write while locked...
    blocker.rollback()
    blocker.close()
    assert writer.flush(timeout=10)  # ...and nothing is lost once it can
    assert rows(engine, "SELECT count(*) FROM calls") == [(5,)]
    assert writer.stats.failures >= 1 and writer.stats.dropped == 0
    writer.close()
    engine.dispose()


def test_damaged_database_is_a_clear_error_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(DatabaseOpenError, match="cannot be opened"):
        open_database(f"sqlite:///{path}")
    assert path.read_bytes() == before


def _schema(path: Path) -> dict[str, tuple]:
    """Every table's columns (name, type, not null, default, primary key), indexes and foreign keys."""
    conn = sqlite3.connect(path)
    try:
        out = {}
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for name in tables:
            cols = [tuple(r[1:]) for r in conn.execute(f"PRAGMA table_info('{name}')")]
            indexes = sorted(
                (r[1], r[2], tuple(c[2] for c in conn.execute(f"PRAGMA index_info('{r[1]}')")))
                for r in conn.execute(f"PRAGMA index_list('{name}')")
            )
            fks = sorted(tuple(r[2:]) for r in conn.execute(f"PRAGMA foreign_key_list('{name}')"))
            out[name] = (cols, indexes, fks)
        return out
    finally:
        conn.close()


def test_a_new_log_gets_the_schema_the_migrations_build(tmp_path: Path) -> None:
    """A new log is created from the models without Alembic; it must be the schema the migrations build,
    column for column, or a later migration would run against something else."""
    from alembic import command
    from sqlalchemy import create_engine

    from app.core.storage.db import _alembic_config

    migrated = tmp_path / "migrated.db"
    engine = create_engine(f"sqlite:///{migrated}")
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    engine.dispose()
    created = tmp_path / "created.db"
    open_database(f"sqlite:///{created}").dispose()
    expected, got = _schema(migrated), _schema(created)
    assert sorted(got) == sorted(expected)
    for table in expected:
        assert got[table] == expected[table], table


def test_the_migrations_build_the_models_schema_on_postgresql(pg_server) -> None:  # type: ignore[no-untyped-def]
    """One set of migrations builds both schemas: on PostgreSQL (always built by Alembic) the tables, columns,
    types, defaults and indexes match the models, as Alembic's own comparison sees them."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from app.core.storage.models import Base

    url = pg_server.create_database()
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            assert rows(engine, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
        pg_server.drop_database(url)

"""What differs between the two databases the call log lives in: SQLite (one user) and PostgreSQL (a team).

The hot paths (the log writer and its hooks) write plain SQL on the driver's cursor, prepared once per
dialect at import; sqlite3 takes `?` placeholders, psycopg `%s`. Queries written in SQLAlchemy's `text()`
use portable SQL and ask here only for what cannot be portable (flooring a time into buckets).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import BinaryExpression
from sqlalchemy.sql.operators import like_op

POSTGRES = "postgresql"


class ContainsText(BinaryExpression[bool]):
    """`column LIKE pattern ESCAPE '\\'`, ASCII case-insensitive on both databases: SQLite's LIKE already is
    (and keeps its plain LIKE), PostgreSQL's is not, so it gets ILIKE."""

    inherit_cache = True


@compiles(ContainsText)
def _contains_default(element: ContainsText, compiler: Any, **kw: Any) -> str:
    sql: str = compiler.visit_binary(element, **kw)
    return sql


@compiles(ContainsText, "postgresql")
def _contains_pg(element: ContainsText, compiler: Any, **kw: Any) -> str:
    sql: str = compiler.visit_binary(element.left.ilike(element.right, escape="\\"), **kw)
    return sql


def contains_text(column: Any, pattern: str) -> Any:
    """Case-insensitive LIKE with `\\` as the escape character, compiled per dialect."""
    expr = column.like(pattern, escape="\\")
    return ContainsText(expr.left, expr.right, like_op, modifiers=expr.modifiers)


def is_postgres(bind: Engine | Connection) -> bool:
    """True for an Engine or Connection on PostgreSQL."""
    return bind.dialect.name == POSTGRES


class DriverCursor(Protocol):
    """What the hot paths use of a DB-API cursor (sqlite3's or psycopg's): plain SQL, no SQLAlchemy."""

    @property
    def lastrowid(self) -> int | None: ...

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> DriverCursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> object: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def close(self) -> None: ...


def driver_cursor(conn: Connection) -> DriverCursor:
    """A cursor of the driver's own connection under `conn` (in its transaction): the writer and its hooks
    write through it because SQLAlchemy's statement execution costs more per batch than the inserts."""
    driver = conn.connection.driver_connection
    if driver is None:  # only a connection that was closed or invalidated has none
        raise RuntimeError("the database connection is closed")
    cursor: DriverCursor = driver.cursor()
    return cursor


def pg(sql: str) -> str:
    """A statement written for sqlite3 (`?` placeholders) in psycopg's paramstyle. Our statements hold no
    literal `?` or `%`, so a plain replacement is exact."""
    assert "%" not in sql, sql
    return sql.replace("?", "%s")


def floor_bucket(bind: Any, expr: str, bucket: str = ":b", offset: str = ":off") -> str:
    """SQL for the start of the `bucket`-second bucket holding `expr` (unix seconds), buckets aligned to
    `offset`. SQLite's CAST truncates (the same as floor for times after 1970); PostgreSQL's rounds, so it
    floors explicitly."""
    if is_postgres(bind):
        return f"CAST(floor(({expr} + {offset}) / CAST({bucket} AS DOUBLE PRECISION)) AS BIGINT) * {bucket} - {offset}"
    return f"CAST(({expr} + {offset}) / {bucket} AS INTEGER) * {bucket} - {offset}"


def normalize_url(url: str) -> str:
    """A database URL as a user writes it, with the driver Downshift uses: `postgresql://` and `postgres://`
    name psycopg 3 (SQLAlchemy's own default for them is psycopg2, which Downshift does not ship)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def display_url(url: str) -> str:
    """The URL with any password masked: what logs, the window title and error messages show."""
    if "://" not in url or url.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy understands: show no part of it that could hold a secret
        return url.split("://", 1)[0] + "://..."

"""Opening the call-log database: SQLite in WAL mode, schema brought to head by Alembic.

Alembic (~11 MB resident, ~0.2 s to import) is imported only when an upgrade is due: at every other start
one SELECT on `alembic_version`, compared with the head revision read from the migration files, is enough,
and a new, empty log is created from the models and stamped at head.
The database file is copied aside before a migration touches it, so an upgrade can never lose the log.
The file (and its -wal/-shm companions, which SQLite creates with the same mode) is readable only by the
user: it can hold prompts and answers when bodies are stored.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DatabaseError

from app.core.storage.dialect import display_url, is_postgres, normalize_url

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class DatabaseOpenError(RuntimeError):
    """The database cannot be opened or upgraded; the message says which file and what to do."""


def sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and url[len(prefix) :] not in ("", ":memory:"):
        return Path(url[len(prefix) :])
    return None


def _on_connect(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA foreign_keys=ON")
    # Deleted and rewritten rows are overwritten with zeros, so pruned calls' text (bodies, errors) does not
    # linger in free pages. Debian's SQLite has it on by default (every benchmark ran so); python.org's is off.
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


def make_private(path: Path) -> None:
    """Create the database file readable only by the user, or take group/other access off an old one."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            with contextlib.suppress(OSError):
                mode = candidate.stat().st_mode
                if mode & (stat.S_IRWXG | stat.S_IRWXO):
                    os.chmod(candidate, stat.S_IMODE(mode) & ~(stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return  # unwritable folder: SQLite reports it with the file name
    else:
        os.close(fd)


def check_url(url: str) -> None:
    """The call log is a SQLite file or a team ledger on PostgreSQL (psycopg 3): any other URL is refused in
    one line (shown with any password masked)."""
    if not normalize_url(url).startswith(("sqlite:", "sqlite+", "postgresql+psycopg:")):
        raise DatabaseOpenError(
            f"unsupported database URL {display_url(url)[:200]!r}: the call log is a SQLite "
            "file, e.g. --db sqlite:///path/to/downshift.db, or a PostgreSQL team ledger, "
            "e.g. --db postgresql://user@host:5432/db"
        )


def _read_only_reason(path: Path | None) -> str | None:
    """Why the log's folder or file cannot be written, or None: a read-only folder is not a damaged log."""
    if path is None:
        return None
    folder = path.parent
    if not folder.is_dir():
        return f"its folder {folder} does not exist and cannot be created"
    if not os.access(folder, os.W_OK):
        return f"its folder {folder} is read-only (SQLite needs to create the -wal and -shm files next to it)"
    if path.exists() and not os.access(path, os.W_OK):
        return f"the file {path} is read-only"
    return None


def create_db_engine(url: str) -> Engine:
    url = normalize_url(url)
    check_url(url)
    if not url.startswith("sqlite"):
        # A team ledger: a connection checked before use survives a server restart; libpq takes the password
        # from PGPASSWORD or ~/.pgpass when the URL has none (never from the config file).
        return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=8)
    path = sqlite_path(url)
    if path is not None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        make_private(path)
    engine = create_engine(url, connect_args={"check_same_thread": False} if url.startswith("sqlite") else {})
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _on_connect)
    return engine


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head() or ""


_REVISION = re.compile(r"""^revision\s*(?::[^=]*)?=\s*["']([^"']+)["']""", re.M)
_DOWN_REVISION = re.compile(r"""^down_revision\s*(?::[^=]*)?=\s*(?:None|["']([^"']+)["'])""", re.M)


@lru_cache(maxsize=1)
def _head_from_files() -> str | None:
    """The head revision read from the migration scripts without importing Alembic; None when the files do
    not say it plainly (one `revision = "..."` and one `down_revision = ...` each, a single head)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        files = sorted((MIGRATIONS / "versions").glob("*.py"))
        for path in files:
            if path.name == "__init__.py":
                continue
            source = path.read_text(encoding="utf-8")
            revision, down = _REVISION.findall(source), _DOWN_REVISION.findall(source)
            if len(revision) != 1 or len(down) != 1:
                return None
            revisions.add(revision[0])
            if down[0]:
                parents.add(down[0])
    except OSError:
        return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(engine: Engine) -> tuple[bool, str | None]:
    """(known, revision) of a SQLite file with one plain SELECT; known is False when only Alembic can tell."""
    if engine.dialect.name != "sqlite":
        return False, None
    with engine.connect() as conn:
        if (
            conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).first()
            is None
        ):
            return True, None
        rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    if len(rows) > 1:
        return False, None
    return True, rows[0][0] if rows else None


def _is_empty(engine: Engine) -> bool:
    """True for a SQLite database with no tables at all: a log being created, nothing to migrate."""
    if engine.dialect.name != "sqlite":
        return False
    with engine.connect() as conn:
        return (
            conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").first() is None
        )


def create_at_head(engine: Engine, head: str) -> None:
    """A new log: the schema from the models and the head revision stamped, in one transaction. The models
    and the migrations describe the same schema (tests/test_storage.py compares the two, table by table)."""
    from app.core.storage.models import Base

    with engine.begin() as conn:
        Base.metadata.create_all(conn)
        conn.exec_driver_sql(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head})


def migrate(engine: Engine, url: str) -> None:
    """Bring the schema to head, copying the file aside first if it already holds data."""
    fast_head = _head_from_files()
    if fast_head is not None:
        known, stored = _stored_revision(engine)
        if known and stored == fast_head:
            return  # up to date: Alembic is not even imported
        if known and stored is None and _is_empty(engine):
            create_at_head(
                engine, fast_head
            )  # a new log: no Alembic either (~0.3 s and 11 MB on first start)
            return
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg = _alembic_config()
    head = head_revision()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    path = sqlite_path(url)
    if current is not None and path is not None and path.exists():
        backup = path.with_name(f"{path.name}.before-{head}-{int(time.time())}.bak")
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy2(path, backup)
    with engine.begin() as conn:
        if is_postgres(
            conn
        ):  # several instances starting at once on one ledger: one migrates, the others wait
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7261847309)")
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _is_alembic_command_error(exc: BaseException) -> bool:
    util = sys.modules.get("alembic.util")  # not imported: Alembic did not run, so it raised nothing
    return util is not None and isinstance(exc, util.CommandError)


def open_database(url: str, machine: str | None = None) -> Engine:
    """An engine on an up-to-date schema; calls left in flight by a crash are marked interrupted. A shared
    PostgreSQL ledger has other proxies' calls in flight: only this machine's are marked, and only by a proxy
    (`machine` given), never by a reader such as the desktop app opening the ledger."""
    engine = create_db_engine(url)
    try:
        migrate(engine, url)
        with engine.begin() as conn:
            if not is_postgres(conn):
                conn.execute(text("UPDATE calls SET outcome = 'interrupted' WHERE outcome = 'in_flight'"))
            elif machine:
                conn.execute(
                    text(
                        "UPDATE calls SET outcome = 'interrupted' WHERE outcome = 'in_flight' AND machine = :m"
                    ),
                    {"m": machine},
                )
    except DatabaseError as exc:
        engine.dispose()
        where = sqlite_path(url) or display_url(url)
        read_only = _read_only_reason(sqlite_path(url))
        if read_only is not None:
            raise DatabaseOpenError(
                f"The call log {where} cannot be written: {read_only}. Nothing was changed; make it writable "
                f"or pass --db with another location."
            ) from exc
        raise DatabaseOpenError(
            f"The call log {where} cannot be opened ({exc.orig}). It is left untouched; move it aside "
            f"or pass --db with another location."
        ) from exc
    except Exception as exc:
        if not _is_alembic_command_error(exc):
            raise
        # a revision this version does not know: written by a newer Downshift
        engine.dispose()
        where = sqlite_path(url) or display_url(url)
        raise DatabaseOpenError(
            f"The call log {where} was written by a newer version of Downshift ({exc}). It is left untouched; "
            f"update Downshift or pass --db with another location."
        ) from exc
    return engine


def open_read_only(url: str) -> Engine:
    """A team ledger opened for reading only (the desktop app's Team page): PostgreSQL refuses every write on
    these connections (`default_transaction_read_only`), and nothing is migrated or marked. The schema must
    already be there: a proxy or `downshift member list` against the ledger creates it."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        return create_engine(f"sqlite:///file:{path}?mode=ro&uri=true" if path else url)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=2,
        max_overflow=2,
        connect_args={"options": "-c default_transaction_read_only=on"},
    )

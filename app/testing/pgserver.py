"""A throw-away PostgreSQL server for tests and benchmarks: initdb into a temp folder, listen on 127.0.0.1 on a
free port (and a unix socket in the folder), stop and delete it at the end.

PostgreSQL refuses to run as root, so under root the server runs as the `postgres` user (initdb must be able
to look that user up, which needs a world-readable /etc/passwd: `ensure_passwd_readable` restores the usual
0644 when a hardened image left it root-only). Durability is switched off (fsync, full-page writes): a test
server that loses everything on a power cut is fine, and it is several times faster.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from app.testing.ports import free_port

BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (or they cannot start): the message says why."""


def find_bin_dir() -> Path | None:
    """The folder holding initdb/pg_ctl/postgres, or None when PostgreSQL is not installed."""
    for d in (os.environ.get("DOWNSHIFT_PG_BIN"), *BIN_DIRS):
        if d and (Path(d) / "initdb").exists() and (Path(d) / "postgres").exists():
            return Path(d)
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "postgres").exists():
        return Path(found).resolve().parent
    return None


def ensure_passwd_readable() -> None:
    """initdb looks its own user up in /etc/passwd; an image that made the file root-only breaks that."""
    passwd = Path("/etc/passwd")
    with contextlib.suppress(OSError):
        mode = stat.S_IMODE(passwd.stat().st_mode)
        if os.geteuid() == 0 and mode & 0o044 != 0o044:
            os.chmod(passwd, 0o644)


class PgServer:
    """One running PostgreSQL cluster. `url(db)` is a SQLAlchemy-ready URL; `create_database` makes a fresh one."""

    def __init__(self, bin_dir: Path | None = None, base: Path | None = None) -> None:
        found = bin_dir or find_bin_dir()
        if found is None:
            raise PostgresUnavailable(
                "no PostgreSQL server binaries (initdb, postgres) found; install postgresql-15"
            )
        self.bin_dir: Path = found
        self.root = Path(tempfile.mkdtemp(prefix="downshift-pg-", dir=base))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "postgres"
        self._as_other: list[str] = []
        self._n = 0
        if os.geteuid() == 0:
            ensure_passwd_readable()
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresUnavailable(
                    "running as root and there is no `postgres` user to run the server as"
                ) from exc
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            os.chmod(self.root, 0o700)
            self._as_other = [
                "setpriv",
                f"--reuid={pw.pw_uid}",
                f"--regid={pw.pw_gid}",
                "--init-groups",
                "--",
            ]

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_other, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
        )

    def start(self) -> PgServer:
        done = self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        return self.resume()

    def resume(self) -> PgServer:
        """Start (again) on the same data folder and port: tests stop and restart it to play an outage."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
            " -c synchronous_commit=off -c max_connections=200 -c shared_buffers=64MB"
        )
        done = self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )
        if done.returncode != 0:
            log = (
                (self.root / "server.log").read_text(errors="replace")[-2000:]
                if (self.root / "server.log").exists()
                else ""
            )
            raise PostgresUnavailable(f"PostgreSQL did not start: {done.stderr.strip()} {log}")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        self._n += 1
        name = f"{prefix}_{os.getpid()}_{self._n}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with (
            contextlib.suppress(Exception),
            psycopg.connect(
                f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres", autocommit=True
            ) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

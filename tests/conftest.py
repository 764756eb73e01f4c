"""Shared fixtures: every user directory and the keyring redirected into a temp folder; the project's own
mock upstream; a real proxy on 127.0.0.1 port 0 in front of it."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest_plugins = ["qt_guard"]  # no test may touch a deleted Qt object (see qt_guard)


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A real keyring backend (the `keyring` API end to end) that keeps secrets in memory for one test."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.store:
            raise keyring.errors.PasswordDeleteError(username)
        del self.store[(service, username)]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "home"
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_STATE_HOME", "state"),
        ("HOME", ""),
    ):
        (home / sub).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(home / sub))
    for var in (
        "DOWNSHIFT_TOKEN",
        "DOWNSHIFT_CONFIG",
        "DOWNSHIFT_DB_URL",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    from app.core import listed_prices, premium_split

    listed_prices.invalidate()  # the proxy's copy of the model lists' prices belongs to the previous test's home
    premium_split.reset()  # and so do the premium calls counted for the savings' cache split
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield home
    keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    backend = keyring.get_keyring()
    assert isinstance(backend, MemoryKeyring)
    return backend


# ----------------------------------------------------------------------------------------------- proxy

PROVIDER_KEY = "sk-test-cheapco-0123456789abcdef"
BACKUP_KEY = "sk-test-backup-abcdef0123456789"
PREMIUM_KEY = "sk-ant-test-premium-0123456789abcdef"


def proxy_config_text(mock_url: str, *, dead_url: str | None = None, active: str = "cheap") -> str:
    """A config whose providers all live on the mock upstream (plus one that refuses connections)."""
    if dead_url is None:
        from app.testing.ports import dead_url as refused_url

        dead_url = refused_url()
    return f"""
[proxy]
host = "127.0.0.1"
port = 0

[[providers]]
name = "cheapco"
base_url = "{mock_url}/v1"
kind = "openrouter"

[[providers]]
name = "backup"
base_url = "{mock_url}/v1"

[[providers]]
name = "premium"
base_url = "{mock_url}/v1"
api = "anthropic"
kind = "anthropic"

[[providers]]
name = "deadco"
base_url = "{dead_url}"
timeouts = {{ connect = 2, first_byte = 5, idle = 5 }}

[[presets]]
name = "cheap"
default = "cheapco/qwen/qwen3-coder"
background = "cheapco/qwen/qwen3-coder-30b"
plan = "backup/deepseek/deepseek-chat"
patterns = {{ "*haiku*" = "background" }}
fallback = ["backup/deepseek/deepseek-chat"]

[[presets]]
name = "premium"
default = "premium/claude-sonnet-4-6"

[[presets]]
name = "flaky"
default = "deadco/qwen/qwen3-coder"
fallback = ["backup/deepseek/deepseek-chat"]

[routing]
active = "{active}"
premium = "premium"
"""


@pytest.fixture
def mock():  # type: ignore[no-untyped-def]
    from app.testing.mock_upstream import MockUpstream

    with MockUpstream() as upstream:
        yield upstream


@pytest.fixture
def config_path(tmp_path: Path, mock) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(proxy_config_text(mock.base_url))
    return path


# ----------------------------------------------------------------------------------------------- databases
# Tests marked `both_backends` run once on SQLite and once on PostgreSQL (a throw-away server per test session,
# a fresh database per test): every fixture that builds a call log takes its URL from `db_url`.


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("db_backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="session")
def pg_server():  # type: ignore[no-untyped-def]
    """A PostgreSQL 15 server for the session; skipped only off CI when the binaries are not installed."""
    from app.testing.pgserver import PgServer, find_bin_dir

    if find_bin_dir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing on CI (.ci/run installs postgresql-15)")
        pytest.skip(
            "PostgreSQL server binaries not installed (apt-get install postgresql-15); CI runs these tests"
        )
    server = PgServer().start()
    yield server
    server.close()


@pytest.fixture
def db_backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture
def db_url(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The call log's URL: a file in the test's folder, or a new database on the session's PostgreSQL."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'log.db'}"
        return
    server = request.getfixturevalue("pg_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def core(tmp_path: Path, config_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    from app.core.engine import Core

    c = Core(config_path, db_url)
    c.set_provider_key("cheapco", PROVIDER_KEY)
    c.set_provider_key("backup", BACKUP_KEY)
    c.set_provider_key("premium", PREMIUM_KEY)
    yield c
    c.close()


@pytest.fixture
def proxy(core):  # type: ignore[no-untyped-def]
    from app.proxy.server import ProxyThread

    with ProxyThread(core, port=0) as running:
        yield running


@pytest.fixture
def token(core) -> str:  # type: ignore[no-untyped-def]
    return core.token()


def logged_calls(core) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every row of the call log, oldest first, after the writer caught up."""
    import time

    from app.core.queries import recent_calls

    deadline = time.monotonic() + 5
    while True:  # a handler may still be finishing after its client read the last byte
        assert core.writer.flush()
        rows = list(reversed(recent_calls(core.db, 10_000)))
        if all(r["outcome"] != "in_flight" for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _collect_garbage_on_the_main_thread():  # type: ignore[no-untyped-def]
    """app/ui/gc_main.py: a Qt object in a reference cycle, collected on a worker thread, can deadlock with the
    GUI thread. Most tests build pages without the app (and its GUI-thread collector) and drop many widgets,
    so automatic collection stays off and the main thread collects what is due after each test."""
    from app.ui.gc_main import collect_due

    gc.disable()
    yield
    collect_due()

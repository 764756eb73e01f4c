"""`downshift --read-only COMMAND` and a PostgreSQL team ledger with a command that only reads: the log is opened
read-only (the database enforces it) and nothing is written, as the desktop app does; a command that writes,
given `--read-only`, is refused with exit code 2 before it opens anything."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from test_read_only_open import _fill, _state

from app.cli.main import main
from app.core.engine import Core

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)


def _read_commands(tmp_path: Path) -> list[list[str]]:
    out = tmp_path / "export.json"
    return [
        ["calls", "--json"],
        ["stats", "--json"],
        ["export", "calls", "--format", "json", "--out", str(out)],
        ["tasks", "--json"],
        ["executors", "--json"],
        ["replay", "--preset", "cheap", "--json"],
        ["prices", "show", "cheapco/cheap-model"],
        ["member", "list", "--json"],
    ]


@pytest.fixture
def opened(monkeypatch: Any) -> list[bool]:
    """Whether each Core a command opened was read-only (recorded when the command closes it)."""
    seen: list[bool] = []
    real_close = Core.close

    def close(self: Core, *args: Any, **kwargs: Any) -> None:
        seen.append(self.read_only)
        real_close(self, *args, **kwargs)

    monkeypatch.setattr(Core, "close", close)
    return seen


def _settled(db_url: str, config_path: Path, opened: list[bool] | None = None) -> dict[str, Any]:
    _fill(config_path, db_url)
    if opened is not None:
        opened.clear()  # the filling Core's close is not a command's
    time.sleep(1.2)  # the filling connections' statistics reach the server's counters (PostgreSQL)
    return _state(db_url)


def test_read_only_read_commands_open_the_log_read_only_and_write_nothing(
    db_url: str, config_path: Path, tmp_path: Path, opened: list[bool], capsys: Any
) -> None:
    before = _settled(db_url, config_path, opened)
    assert before["calls"] == 40
    for command in _read_commands(tmp_path):
        code = main(["--read-only", "--config", str(config_path), "--db", db_url, *command])
        assert code == 0, (command, capsys.readouterr().err)
    assert opened and all(opened), opened  # every Core the commands opened was read-only
    assert '"calls"' in capsys.readouterr().out or (tmp_path / "export.json").exists()
    time.sleep(1.2)
    assert _state(db_url) == before  # rows, the file's bytes, the server's tuple counters


def test_read_only_after_the_command_works_too(db_url: str, config_path: Path, opened: list[bool]) -> None:
    before = _settled(db_url, config_path, opened)
    assert main(["stats", "--read-only", "--config", str(config_path), "--db", db_url]) == 0
    assert opened == [True]
    time.sleep(1.2)
    assert _state(db_url) == before


def test_a_read_command_on_a_team_ledger_is_read_only_without_the_option(
    db_url: str, db_backend: str, config_path: Path, tmp_path: Path, opened: list[bool], capsys: Any
) -> None:
    """As the app: a PostgreSQL ledger others write is read-only for a command that only reads (a SQLite log of
    one's own opens as before)."""
    before = _settled(db_url, config_path, opened)
    for command in _read_commands(tmp_path):
        code = main(["--config", str(config_path), "--db", db_url, *command])
        assert code == 0, (command, capsys.readouterr().err)
    assert opened == [db_backend == "postgresql"] * len(opened) and opened
    if db_backend == "postgresql":
        time.sleep(1.2)
        assert _state(db_url) == before


@pytest.mark.parametrize(
    "command",
    [
        ["task", "new", "a label"],
        ["rollup", "--days", "1", "--yes"],
        ["prices", "refresh"],
        ["member", "add", "carol"],
        ["use", "cheap"],
        ["key", "set", "cheapco"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_writing_command_with_read_only_is_refused(
    db_url: str, config_path: Path, capsys: Any, command: list[str]
) -> None:
    before = _settled(db_url, config_path)
    config_before = config_path.read_bytes()
    code = main(["--read-only", "--config", str(config_path), "--db", db_url, *command])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"`{command[0]}` writes" in err and "--read-only" in err and "stats" in err
    time.sleep(1.2)
    assert _state(db_url) == before
    assert config_path.read_bytes() == config_before


def test_a_writing_command_on_a_team_ledger_still_writes(db_url: str, config_path: Path) -> None:
    before = _settled(db_url, config_path)
    assert main(["--config", str(config_path), "--db", db_url, "task", "new", "by hand"]) == 0
    assert _state(db_url)["tasks"] == before["tasks"] + 1


def test_read_only_writes_no_default_config(db_url: str, tmp_path: Path, config_path: Path) -> None:
    _fill(config_path, db_url)
    missing = tmp_path / "nowhere" / "config.toml"
    assert main(["--read-only", "--config", str(missing), "--db", db_url, "calls"]) == 0
    assert main(["--read-only", "--config", str(missing), "prices"]) == 0
    assert not missing.exists()

"""The command line never loses data and never shows a traceback, run as a user runs it (a real `python -m
app` process): a prune of more than a day's worth of calls is confirmed, `use` keeps a hand-edited config's
comments and a backup, out-of-range or malformed values and unwritable places get one clear line and exit
code 2, and client-chosen strings reach the terminal without their control characters."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import logged_calls

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


def _drop_dac_override() -> (
    None
):  # in the child: as root, file modes apply again (CAP_DAC_OVERRIDE/READ_SEARCH)
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP: the exec that follows runs without them


def cli(*args: str, stdin: str | None = None, honour_modes: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    preexec = (
        _drop_dac_override
        if honour_modes and sys.platform.startswith("linux") and os.geteuid() == 0
        else None
    )
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        preexec_fn=preexec,
    )


def one_clear_line(run: subprocess.CompletedProcess[str], *words: str) -> str:
    assert run.returncode == 2, (run.returncode, run.stdout[-500:], run.stderr[-2000:])
    err = run.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("downshift"), err
    for word in words:
        assert word in err, (word, err)
    return err


def call_count(core) -> int:  # type: ignore[no-untyped-def]
    with core.db.connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM calls").scalar_one()


@pytest.fixture
def history(proxy, token, core):  # type: ignore[no-untyped-def]
    """Six real calls through the proxy, then moved back in time: 10 to 15 days ago."""
    for _ in range(6):
        assert (
            httpx.post(
                f"{proxy.url}/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 200
        )
    rows = logged_calls(core)
    with core.db.begin() as conn:
        for i, row in enumerate(rows):
            conn.exec_driver_sql(
                "UPDATE calls SET started_at = started_at - ? WHERE call_id = ?",
                ((10 + i) * 86400, row["call_id"]),
            )
    return ["--config", str(core.config_path), "--db", core.db_url]


# ----------------------------------------------------------------------------------------------- rollup


@pytest.mark.parametrize("days", ["-1", "0", "nan", "inf", "-inf", "1e12", "soon"])
def test_rollup_needs_a_positive_age(history, core, days) -> None:  # type: ignore[no-untyped-def]
    one_clear_line(cli("rollup", "--days", days, "--yes", *history), "--days")
    assert call_count(core) == 6


def test_rollup_confirms_more_than_a_days_worth(history, core) -> None:  # type: ignore[no-untyped-def]
    one_clear_line(cli("rollup", "--days", "1", *history), "6 calls", "--yes")  # no terminal to ask on
    assert call_count(core) == 6
    assert cli("rollup", "--days", "1", *history, stdin="no\n").returncode == 2  # a pipe is not a terminal
    assert call_count(core) == 6
    done = cli("rollup", "--days", "12.5", "--yes", *history)  # the three older than 12.5 days
    assert done.returncode == 0 and "3 calls older than" in done.stdout, done.stderr
    assert call_count(core) == 3
    with core.db.begin() as conn:  # within a day's worth: no question asked
        conn.exec_driver_sql("UPDATE calls SET started_at = ? WHERE 1", (1_700_000_000.0,))
    done = cli("rollup", "--days", "1", *history)
    assert done.returncode == 0 and "3 calls older than" in done.stdout, done.stderr
    assert call_count(core) == 0


def test_retention_off_is_not_a_prune_of_everything(history, core) -> None:  # type: ignore[no-untyped-def]
    core.config_store.update(lambda c: __import__("dataclasses").replace(c, retention_days=0))
    one_clear_line(cli("rollup", "--yes", *history), "retention is off")
    assert call_count(core) == 6


# ----------------------------------------------------------------------------------------------- use

HAND_EDITED = """# my Downshift config: the cheap loop on OpenRouter
[proxy]
host = "127.0.0.1"   # loopback only
port = 8765

[[providers]]
name = "local"    # ollama on the workstation
base_url = "http://127.0.0.1:11434/v1"
kind = "ollama"
local = true

# two presets: try cheap first
[[presets]]
name = "cheap"
default = "local/qwen2.5-coder:7b"

[[presets]]
name = "premium"
default = "local/qwen2.5-coder:32b"   # the big one

[routing]
active = "cheap"  # switched with `downshift use`
"""


def test_use_keeps_comments_layout_and_a_backup(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(HAND_EDITED)
    run = cli("use", "premium", "--config", str(config))
    assert run.returncode == 0, run.stderr
    assert config.read_text() == HAND_EDITED.replace('active = "cheap"', 'active = "premium"')
    assert (tmp_path / "config.toml.bak").read_text() == HAND_EDITED
    run = cli("presets", "--json", "--config", str(config))
    assert '"active": true' in run.stdout and run.stdout.index('"premium"') < run.stdout.index(
        '"active": true'
    )


# ----------------------------------------------------------------------------------------------- malformed values


@pytest.mark.parametrize(
    "argv,words",
    [
        (["calls", "--limit", "99999999999999999999"], ["--limit", "out of range"]),
        (["calls", "--limit", "-5"], ["--limit"]),
        (["tasks", "--limit", "0"], ["--limit"]),
        (["stats", "--since", "99999999999d"], ["before 1970"]),
        (["tasks", "--since", "99999999999d"], ["before 1970"]),
        (["stats", "--since", "nand"], ["cannot read"]),
        (["task", "done", "99999999999999999999999"], ["no task"]),
        (["task", "done", "१२"], ["usage"]),
        (["export", "calls", "--since", "bogus"], ["cannot read 'bogus'"]),
        (
            ["export", "calls", "--out", "{tmp}/missing/calls.csv"],
            ["cannot write", "No such file or directory"],
        ),
        (["export", "calls", "--out", "/dev/full"], ["cannot write /dev/full", "No space left"]),
        (["export", "calls", "--format", "json", "--out", "/dev/full"], ["No space left"]),
        (["rollup", "--days", "nan"], ["--days"]),
        (
            ["calls", "--db", "mysql://localhost/downshift"],
            ["unsupported database URL", "SQLite", "PostgreSQL"],
        ),
        (["calls", "--db", "bogus"], ["unsupported database URL"]),
        (["serve", "--port", "70000"], ["--port"]),
        (["doctor", "--timeout", "nan"], ["--timeout"]),
        (["demo", "--headless", "--speed", "0"], ["--speed"]),
    ],
)
def test_malformed_values_get_one_clear_line(history, tmp_path: Path, argv, words) -> None:  # type: ignore[no-untyped-def]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    common = [] if "--db" in argv else history
    one_clear_line(cli(*argv, *common), *words)
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="file modes as root need Linux capabilities")
def test_a_read_only_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        err = one_clear_line(
            cli("presets", "--config", str(folder / "config.toml"), honour_modes=True), "cannot be written"
        )
        assert str(folder / "config.toml") in err and "read-only" in err
        folder.chmod(0o755)
        (folder / "config.toml").write_text(HAND_EDITED)
        folder.chmod(0o555)
        one_clear_line(
            cli("use", "premium", "--config", str(folder / "config.toml"), honour_modes=True),
            "cannot be written",
        )
        assert (folder / "config.toml").read_text() == HAND_EDITED
    finally:
        folder.chmod(0o755)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="file modes as root need Linux capabilities")
def test_a_read_only_data_folder_says_so(history, core, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = Path(core.db_url.removeprefix("sqlite:///"))
    # every row written and the pool's connections closed; not core.close(): the proxy fixture flushes the writer
    # at teardown, and a closed writer's flush waits out its timeout (twice 10 s)
    assert core.writer.flush()
    core.db.dispose()
    db.parent.chmod(0o555)
    try:
        err = one_clear_line(cli("calls", *history, honour_modes=True), "read-only", str(db.parent))
        assert "move it aside" not in err and "damaged" not in err
        err = one_clear_line(
            cli(
                "calls",
                "--config",
                history[1],
                "--db",
                f"sqlite:///{db.parent / 'new.db'}",
                honour_modes=True,
            ),
            "read-only",
        )
    finally:
        db.parent.chmod(0o755)
    assert call_count(core) == 6


# ----------------------------------------------------------------------------------------------- terminal output


def test_client_chosen_strings_lose_their_control_characters(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    evil = "qwen\x1b[2J\x1b]0;pwned\x07\u202eredoc\r\nFAKE ROW"
    common = ["--config", str(core.config_path), "--db", core.db_url]
    assert (
        cli("task", "new", "fix\x1b[31mthe bug\x9b2J", *common).returncode == 0
    )  # a label pasted from elsewhere
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={**CHAT, "model": evil},
        headers={"Authorization": f"Bearer {token}", "User-Agent": "agent/1.0"},
    )
    assert r.status_code == 200, r.text
    logged_calls(core)
    for command in (["calls"], ["tasks"], ["stats"]):
        run = cli(*command, *common)
        assert run.returncode == 0, run.stderr
        assert not any(
            ord(c) < 32 and c != "\n" or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in run.stdout
        ), command
    calls = cli("calls", *common).stdout
    assert "qwen?[2J?]0;pwned??redoc??FAKE ROW" in calls and len(calls.strip().splitlines()) == 3
    assert "fix?[31mthe bug?2J" in cli("tasks", *common).stdout
    assert (
        '"requested_model": "qwen\\u001b[2J' in cli("calls", "--json", *common).stdout
    )  # JSON keeps it, escaped

"""`downshift statusline`: Claude Code's real status-line JSON in, one line out, from a log the real proxy wrote;
never a failure; install / uninstall merge Claude Code's settings.json.

tests/golden/claude_code_statusline.json is what the pinned Claude Code (2.1.332) piped to a statusLine
command in an interactive session (captured through a pty; home and project paths replaced)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import logged_calls, proxy_config_text

from app.core.storage.db import open_database
from app.statusline import status_line
from app.testing.script import Reply, ToolCall, Usage

REPO = Path(__file__).resolve().parent.parent
FIXTURE = json.loads((REPO / "tests" / "golden" / "claude_code_statusline.json").read_text())
SESSION = FIXTURE["session_id"]
BASH = {
    "type": "function",
    "function": {
        "name": "Bash",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
}


def statusline(
    stdin: str | bytes, config: Path, db_url: str, *, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The command exactly as Claude Code runs it (`python -m app statusline`, JSON on stdin)."""
    env = {**os.environ, "DOWNSHIFT_CONFIG": str(config), "DOWNSHIFT_DB_URL": db_url, "PYTHONPATH": str(REPO)}
    if home is not None:
        env["HOME"] = str(home)
    data = stdin if isinstance(stdin, str) else stdin.decode("latin-1")
    return subprocess.run(
        [sys.executable, "-m", "app", "statusline"],
        input=data,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def agent_turns(proxy, token: str, session: str, results: list[str]) -> None:  # type: ignore[no-untyped-def]
    """A tool loop as Claude Code's session would send it: one call per entry, each after the previous tool's
    result (`results`: the text each tool returned)."""
    headers = {"Authorization": f"Bearer {token}", "X-Claude-Code-Session-Id": session}
    messages: list[dict] = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": "go"},
    ]
    with httpx.Client(base_url=proxy.url, headers=headers, timeout=30) as client:
        for i, result in enumerate([*results, None]):
            r = client.post(
                "/v1/chat/completions", json={"model": "default", "messages": messages, "tools": [BASH]}
            )
            assert r.status_code == 200, r.text
            if result is None:
                break
            call = r.json()["choices"][0]["message"]
            messages += [
                call,
                {"role": "tool", "tool_call_id": call["tool_calls"][0]["id"], "content": result},
            ]
            assert i < 10


@pytest.fixture
def served(mock, proxy, core, token: str):  # type: ignore[no-untyped-def]
    mock.default = Reply(
        tool_calls=[ToolCall("Bash", {"command": "make"})], usage=Usage(prompt=2000, completion=40)
    )
    return proxy


def test_real_claude_code_json_gives_the_session_line(
    served, mock, core, config_path: Path, tmp_path: Path, token: str
) -> None:  # type: ignore[no-untyped-def]
    agent_turns(served, token, SESSION, ["ok", "ok"])
    agent_turns(served, token, "another-session", ["ok"])  # today's spend counts it, the session does not
    rows = logged_calls(core)
    mine = [r for r in rows if r["session_key"] == f"session:{SESSION}"]
    assert len(mine) == 3 and len(rows) == 5

    done = statusline(json.dumps(FIXTURE), config_path, core.db_url)

    assert done.returncode == 0 and done.stderr == "", done.stderr
    (line,) = done.stdout.splitlines()
    session_cost = sum(r["cost_usd"] for r in mine)
    today = sum(r["cost_usd"] for r in rows)
    assert line.startswith("⇣ cheap · cheapco/qwen/qwen3-coder · "), line
    assert f"session ${session_cost:.3f}" in line and f"today ${today:.3f}" in line, line
    assert "saved $" in line  # against the premium preset
    assert "⚠" not in line  # port 0 in the config: the running proxy's port is unknown, so not checked


def test_failing_tool_calls_and_a_near_budget_raise_the_mark(
    served, mock, core, tmp_path: Path, token: str
) -> None:  # type: ignore[no-untyped-def]
    agent_turns(served, token, SESSION, ["bash: make: command not found"] * 3 + ["ok"])
    config = tmp_path / "statusline.toml"
    port = int(served.url.rsplit(":", 1)[1])
    config.write_text(
        proxy_config_text(mock.base_url).replace("port = 0", f"port = {port}")
        + '\n[[budgets]]\nperiod = "day"\nlimit_usd = 0.001\n'
    )
    logged_calls(core)

    (line,) = statusline(json.dumps(FIXTURE), config, core.db_url).stdout.splitlines()

    # 5 calls, each asking for one tool: 3 of the 5 results said the command failed
    assert "⚠ tool calls failing 60%, daily budget " in line, line
    assert "proxy not running" not in line  # this config names the running proxy's port


def test_line_reads_the_log_without_sqlalchemy(served, core, config_path: Path, token: str) -> None:  # type: ignore[no-untyped-def]
    """The hot path imports neither SQLAlchemy nor Qt (either would cost more than the whole budget), and
    once the config's settings are cached, neither tomllib nor json."""
    agent_turns(served, token, SESSION, ["ok"])
    logged_calls(core)
    env = {
        **os.environ,
        "DOWNSHIFT_CONFIG": str(config_path),
        "DOWNSHIFT_DB_URL": core.db_url,
        "PYTHONPATH": str(REPO),
    }
    probe = (
        "import sys, runpy; sys.argv = ['app', 'statusline']\n"
        "try:\n    runpy.run_module('app', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'PySide6', 'app', 'tomllib')))"
    )

    def run() -> tuple[str, str]:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + probe],
            input=json.dumps(FIXTURE),
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        first, modules = done.stdout.splitlines()
        return first, modules

    first, modules = run()  # the first run parses the config and caches what it needs
    assert first.startswith("⇣ cheap · cheapco/qwen/qwen3-coder") and "tomllib" in modules
    first, modules = run()
    assert first.startswith("⇣ cheap · cheapco/qwen/qwen3-coder")
    assert modules == "['app', 'app.statusline']"
    config_path.write_text(config_path.read_text().replace('active = "cheap"', 'active = "premium"'))
    first, modules = run()  # a changed config is read again
    assert first.startswith("⇣ premium · ") and "tomllib" in modules


@pytest.mark.parametrize("stdin", ["", "not json", "[1, 2]", '{"session_id": 42}', "\udcff"])
def test_odd_input_still_prints_a_line(stdin: str, config_path: Path, tmp_path: Path) -> None:
    done = statusline(
        stdin.encode("utf-8", "surrogateescape"), config_path, f"sqlite:///{tmp_path / 'none.db'}"
    )
    assert done.returncode == 0 and done.stdout.startswith("⇣ cheap"), (done.stdout, done.stderr)


def test_no_log_yet(config_path: Path, tmp_path: Path) -> None:
    config_path.write_text(config_path.read_text().replace("port = 0", "port = 9"))  # nothing listens there
    done = statusline(json.dumps(FIXTURE), config_path, f"sqlite:///{tmp_path / 'missing.db'}")
    assert (done.returncode, done.stdout.strip()) == (0, "⇣ cheap · no calls logged yet ⚠ proxy not running")
    assert not (tmp_path / "missing.db").exists()  # read-only: never creates the log


def test_unreadable_log_and_config(tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    done = statusline(json.dumps(FIXTURE), tmp_path / "no-config.toml", f"sqlite:///{broken}")
    assert done.returncode == 0 and done.stdout.startswith("⇣ no preset · log unreadable ("), done.stdout
    done = statusline(json.dumps(FIXTURE), tmp_path / "no-config.toml", "postgresql://somewhere/db")
    assert done.returncode == 0 and "log is not a SQLite file" in done.stdout


def test_log_of_an_older_schema(tmp_path: Path, config_path: Path) -> None:
    """A log without the rollup tables (or locked, or half-written) is a line, never a traceback."""
    import contextlib
    import sqlite3

    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE calls (x)")
    done = statusline(json.dumps(FIXTURE), config_path, f"sqlite:///{path}")
    assert done.returncode == 0 and "log unreadable (no such table: tasks)" in done.stdout, done.stdout


def test_session_without_calls_and_fresh_log(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'log.db'}")
    engine.dispose()
    line = status_line(
        {"session_id": "never-seen"},
        env={
            "DOWNSHIFT_CONFIG": str(tmp_path / "c.toml"),
            "DOWNSHIFT_DB_URL": f"sqlite:///{tmp_path / 'log.db'}",
        },
        now=time.time(),
    )
    assert line.startswith("⇣ no preset · today $0.000"), line


# ----------------------------------------------------------------------------------------------- install


def run_cli(*args: str, home: Path, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(data), "PYTHONPATH": str(REPO)}
    env.pop("CLAUDE_CONFIG_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "app", "statusline", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_install_merges_backs_up_and_uninstall_restores(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    settings = home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    mine = {
        "model": "opusplan",
        "permissions": {"allow": ["Bash(ls)"]},
        "statusLine": {"type": "command", "command": "~/.claude/my-line.sh"},
    }
    settings.write_text(json.dumps(mine))

    done = run_cli("install", home=home, data=data)
    assert done.returncode == 0, done.stderr
    installed = json.loads(settings.read_text())
    assert {k: installed[k] for k in ("model", "permissions")} == {
        k: mine[k] for k in ("model", "permissions")
    }
    code = f'import sys;sys.path.insert(0,"{REPO}");from app.statusline import main;main()'
    assert installed["statusLine"] == {
        "type": "command",
        "command": f"{sys.executable} -I -S -c '{code}'",
        "padding": 0,
    }
    (backup,) = settings.parent.glob("settings.json.bak-*")
    assert json.loads(backup.read_text()) == mine
    assert run_cli("install", home=home, data=data).returncode == 0  # again: unchanged, no second backup
    assert len(list(settings.parent.glob("settings.json.bak-*"))) == 1

    # the installed command is a working status line, with no help from PYTHONPATH or site-packages
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DOWNSHIFT_CONFIG", "DOWNSHIFT_DB_URL")
    }
    line = subprocess.run(
        installed["statusLine"]["command"],
        shell=True,
        input=json.dumps(FIXTURE),
        text=True,
        capture_output=True,
        env={**env, "HOME": str(home)},
        timeout=30,
        check=False,
    )
    assert line.returncode == 0 and line.stdout.startswith("⇣ "), line

    done = run_cli("uninstall", home=home, data=data)
    assert done.returncode == 0 and "removed" in done.stdout, done.stderr
    assert json.loads(settings.read_text()) == mine  # the user's own status line is back
    assert "nothing to do" in run_cli("uninstall", home=home, data=data).stdout


def test_install_into_a_fresh_home_and_out_again(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    assert run_cli("install", home=home, data=data).returncode == 0
    settings = home / ".claude" / "settings.json"
    assert list(json.loads(settings.read_text())) == ["statusLine"]
    assert run_cli("uninstall", home=home, data=data).returncode == 0
    assert json.loads(settings.read_text()) == {}


def test_install_refuses_a_broken_settings_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text("{broken")
    done = run_cli("install", home=home, data=tmp_path / "data")
    assert done.returncode == 1 and "is not valid JSON" in done.stderr
    assert settings.read_text() == "{broken"


# ----------------------------------------------------------------------------------------------- the endpoint


def test_session_endpoint_gives_the_same_figures(served, core, config_path: Path, token: str) -> None:  # type: ignore[no-untyped-def]
    """GET /downshift/session/{id}: the line's figures as JSON for other status bars, token required."""
    agent_turns(served, token, SESSION, ["bash: make: command not found", "ok"])
    rows = [r for r in logged_calls(core) if r["session_key"] == f"session:{SESSION}"]

    with httpx.Client(base_url=served.url, timeout=10) as client:
        assert client.get(f"/downshift/session/{SESSION}").status_code == 401
        assert (
            client.get(f"/downshift/session/{SESSION}", headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        r = client.get(f"/downshift/session/{SESSION}", headers={"Authorization": f"Bearer {token}"})
        unknown = client.get("/downshift/session/nobody", headers={"Authorization": f"Bearer {token}"}).json()
    assert r.status_code == 200, r.text
    figures = r.json()
    assert figures["preset"] == "cheap" and figures["model"] == "cheapco/qwen/qwen3-coder"
    assert figures["session_cost_usd"] == pytest.approx(sum(x["cost_usd"] for x in rows))
    assert (figures["tool_calls"], figures["tool_failures"]) == (3, 1)
    assert figures["session_savings_usd"] > 0 and figures["today_usd"] >= figures["session_cost_usd"]
    line = statusline(json.dumps(FIXTURE), config_path, core.db_url).stdout.strip()
    assert figures["line"] == line.split(" ⚠")[0]  # the same line, less the proxy check the CLI adds
    assert (unknown["model"], unknown["session_cost_usd"]) == (None, None)
    assert len(logged_calls(core)) == 3  # polling is not logged as calls


def test_codex_notify_ignores_other_notifications_and_never_fails(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Codex's notify program must not break Codex: other notification types, garbage or a missing log give
    exit 0 and no traceback."""
    from app import codex_notify

    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"), "PATH": ""}
    assert codex_notify.main(['{"type": "approval-requested", "thread-id": "x"}'], env) == 0
    assert codex_notify.main(["not json"], env) == 0
    assert codex_notify.main([], env) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "data" / "downshift" / "codex-status.txt").exists()

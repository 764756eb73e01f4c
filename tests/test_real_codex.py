"""The real Codex CLI (npm @openai/codex, pinned in tests/agents/node) through the proxy's Responses gateway.

Codex speaks only the Responses API; the mock upstream speaks chat completions, so every turn crosses the
translation both ways: Codex's request (developer messages, namespace and custom tools, reasoning fields)
down to chat, the streamed chat answer back up to Responses events that Codex must accept and act on.
Configured as docs/agents.md says: $CODEX_HOME/config.toml from `codex_config()`, variables from
`downshift env --agent codex`, plus the settings that keep Codex offline and non-interactive.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
from agents.harness import (
    LOOPBACK,
    AgentRun,
    Sandbox,
    agents_mark,
    codex_binary,
    downshift_env,
    generation_requests,
    installed_version,
    remote_endpoints,
    require,
    run_agent,
    sealed_env,
    tool_round_trip,
)
from conftest import logged_calls

from app.core.envexport import codex_config
from app.testing.script import Reply, ToolCall, Usage

pytestmark = [agents_mark(), pytest.mark.timeout(180)]

CODEX_VERSION = "0.169.0"  # keep in step with tests/agents/node/package.json

# Root keys first (TOML puts keys after a table header into that table): run tools without asking, in the
# test's own temp workdir, and never phone home (update check, analytics, plugin sync reach github.com and
# chatgpt.com otherwise).
TEST_ROOT_KEYS = """\
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false
"""
# Appended to codex_config(), whose last table is [model_providers.downshift]: fail fast instead of retrying.
TEST_PROVIDER_KEYS = """\
request_max_retries = 0
stream_max_retries = 0
"""
TEST_TABLES = """
[analytics]
enabled = false

[features]
plugins = false
"""


@pytest.fixture
def codex(tmp_path: Path, proxy, config_path: Path, token: str):  # type: ignore[no-untyped-def]
    """Run `codex exec` in a fresh workdir with a $CODEX_HOME that points at the proxy."""
    binary = require("Codex CLI (npm @openai/codex)", codex_binary())
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        TEST_ROOT_KEYS + codex_config(proxy.url) + TEST_PROVIDER_KEYS + TEST_TABLES
    )
    box = Sandbox(
        tmp_path, {**downshift_env("codex", config_path, proxy.url, token), "CODEX_HOME": str(home)}
    )

    def run(prompt: str, *extra: str, strace_log: Path | None = None) -> AgentRun:
        # --strict-config: a key this Codex version does not know is an error, not silently ignored.
        argv: list[str | Path] = [binary, "exec", "--strict-config", "--skip-git-repo-check", *extra, prompt]
        return box.run(argv, strace_log=strace_log)

    run.workdir = box.workdir  # type: ignore[attr-defined]
    return run


def session_id(run: AgentRun) -> str:
    found = re.search(r"^session id: ([0-9a-f-]{36})$", run.stderr, re.MULTILINE)
    assert found, run.report()
    return found.group(1)


def test_installed_codex_is_the_pinned_version(tmp_path: Path) -> None:
    run = installed_version([require("Codex CLI (npm @openai/codex)", codex_binary())], tmp_path, timeout=30)
    assert run.returncode == 0 and run.stdout.split() == ["codex-cli", CODEX_VERSION], run.report()


def test_shell_tool_loop(codex, mock, core) -> None:  # type: ignore[no-untyped-def]
    """Codex asks the model, runs the exec_command it gets back, returns the output, and finishes."""
    mock.default = tool_round_trip(
        Reply(
            tool_calls=[ToolCall("exec_command", {"cmd": "echo hello > out.txt"})],
            usage=Usage(prompt=1000, completion=20),
        ),
        Reply(text="Wrote hello to out.txt.", usage=Usage(prompt=1200, completion=6)),
    )
    run = codex("Write hello into out.txt")

    assert run.returncode == 0, run.report()
    assert (codex.workdir / "out.txt").read_text() == "hello\n"
    assert run.stdout.strip() == "Wrote hello to out.txt.", run.report()
    assert re.search(r"tokens used\s+2,226", run.stderr), run.report()  # usage made it back to Codex

    first, second = generation_requests(mock.requests)
    assert first.model == "qwen/qwen3-coder" and first.stream
    assert first.json["stream_options"] == {"include_usage": True}
    assert "exec_command" in [t["function"]["name"] for t in first.json["tools"]]
    assert first.json["messages"][0]["role"] == "system"  # Codex's developer messages
    assert first.json["messages"][-1] == {"role": "user", "content": "Write hello into out.txt"}
    call, result = second.json["messages"][-2:]
    (tool_call,) = call["tool_calls"]
    assert tool_call["function"]["name"] == "exec_command"
    assert result["role"] == "tool" and result["tool_call_id"] == tool_call["id"]
    assert "Process exited with code 0" in result["content"]

    rows = logged_calls(core)
    assert [(r["client_api"], r["endpoint"], r["outcome"], r["status"]) for r in rows] == [
        ("responses", "/v1/responses", "ok", 200)
    ] * 2
    assert [(r["input_tokens"], r["output_tokens"], r["tool_calls"]) for r in rows] == [
        (1000, 20, 1),
        (1200, 6, 0),
    ]
    assert all(r["streamed"] and r["role"] == "default" and r["provider"] == "cheapco" for r in rows)
    assert all(r["cost_usd"] > 0 and r["cost_source"] == "table" for r in rows)
    assert {r["session_key"] for r in rows} == {f"session:{session_id(run)}"}  # Codex's session-id header
    assert rows[0]["user_agent"].startswith(f"codex_exec/{CODEX_VERSION}")


def test_talks_to_nobody_but_the_proxy(codex, mock, proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With the update check, analytics and plugins off, every socket Codex opens (DNS included) goes to the
    proxy. With plugins on, the same run looks up github.com and chatgpt.com."""
    mock.default = Reply(text="Nothing to do.")
    log = tmp_path / "strace.log"
    run = codex("Say nothing", strace_log=log)

    assert run.returncode == 0, run.report()
    endpoints = remote_endpoints(log)
    proxy_port = int(proxy.url.rsplit(":", 1)[1])
    assert endpoints and all(host in LOOPBACK and port == proxy_port for host, port in endpoints), endpoints


APPLY_PATCH = """*** Begin Patch
*** Add File: greet.py
+def greet(name: str) -> str:
+    return f"hello {name}"
*** End Patch
"""


def test_apply_patch_custom_tool_loop(codex, mock, core) -> None:  # type: ignore[no-untyped-def]
    """For a model Codex knows (gpt-5.5), it offers apply_patch as a freeform custom tool with a grammar. The
    gateway bridges it to a function with one `input` string; the model's call comes back to Codex as a
    custom_tool_call that Codex applies, and its custom_tool_call_output goes up as a tool message."""
    mock.default = tool_round_trip(
        Reply(
            tool_calls=[ToolCall("apply_patch", {"input": APPLY_PATCH})],
            usage=Usage(prompt=900, completion=40),
        ),
        Reply(text="Added greet.py.", usage=Usage(prompt=1000, completion=4)),
    )
    run = codex("Add a greet function in greet.py", "--model", "gpt-5.5")

    assert run.returncode == 0, run.report()
    assert (
        codex.workdir / "greet.py"
    ).read_text() == 'def greet(name: str) -> str:\n    return f"hello {name}"\n'
    assert run.stdout.strip() == "Added greet.py.", run.report()

    first, second = generation_requests(mock.requests)
    (bridged,) = [t["function"] for t in first.json["tools"] if t["function"]["name"] == "apply_patch"]
    assert bridged["parameters"]["required"] == ["input"] and "Begin Patch" in bridged["description"]
    call, result = second.json["messages"][-2:]
    assert call["tool_calls"][0]["function"]["name"] == "apply_patch"
    assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
    assert "greet.py" in result["content"]

    rows = logged_calls(core)
    assert [(r["requested_model"], r["role"], r["outcome"]) for r in rows] == [
        ("gpt-5.5", "default", "ok")
    ] * 2
    assert [(r["input_tokens"], r["output_tokens"], r["tool_calls"]) for r in rows] == [
        (900, 40, 1),
        (1000, 4, 0),
    ]


def test_upstream_error_reaches_codex(codex, mock, core) -> None:  # type: ignore[no-untyped-def]
    """A provider's 400 ends the run with the provider's message, not a hang or a generic failure."""
    mock.default = Reply(status=400, error="maximum context length is 8192 tokens")
    run = codex("Write hello into out.txt")

    assert run.returncode != 0, run.report()
    assert "maximum context length is 8192 tokens" in run.stderr, run.report()
    assert not (codex.workdir / "out.txt").exists()
    rows = logged_calls(core)
    assert rows and all((r["outcome"], r["status"]) == ("error", 400) for r in rows)


def test_notify_shows_the_sessions_figures(
    tmp_path: Path, proxy, config_path: Path, token: str, mock, core
) -> None:  # type: ignore[no-untyped-def]
    """`notify = [..., "codex-notify"]`: after each finished turn Codex runs Downshift with its thread id (the
    session id it sends), and the session's figures land in codex-status.txt for a status bar or prompt."""
    binary = require("Codex CLI (npm @openai/codex)", codex_binary())
    home = tmp_path / "codex-home"
    home.mkdir()
    notify = f'notify = ["{sys.executable}", "-m", "app", "codex-notify"]\n'
    (home / "config.toml").write_text(
        notify + TEST_ROOT_KEYS + codex_config(proxy.url) + TEST_PROVIDER_KEYS + TEST_TABLES
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    variables = {
        **downshift_env("codex", config_path, proxy.url, token),
        "CODEX_HOME": str(home),
        "DOWNSHIFT_CONFIG": str(config_path),
        "DOWNSHIFT_DB_URL": core.db_url,
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    env = sealed_env(tmp_path / "home", variables)
    mock.default = tool_round_trip(
        Reply(text="Hello.", usage=Usage(prompt=100_000, completion=2_000)), Reply(text="x")
    )
    run = run_agent([binary, "exec", "--skip-git-repo-check", "say hello"], cwd=workdir, env=env)
    assert run.returncode == 0, run.report()
    (row,) = logged_calls(core)
    assert row["session_key"] == f"session:{session_id(run)}" and row["cost_usd"] > 0
    status = tmp_path / "home" / ".local" / "share" / "downshift" / "codex-status.txt"
    deadline = time.monotonic() + 15
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status.exists(), run.report()
    line = status.read_text()
    assert "cheap" in line and f"${row['cost_usd']:.2f}" in line, line

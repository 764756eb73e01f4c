"""The real OpenCode (npm opencode-ai, pinned in tests/agents/node) through the proxy's chat-completions endpoint.

Configured as docs/agents.md says: the variables from `downshift env --agent opencode` (the provider block inline
in OPENCODE_CONFIG_CONTENT, the key in DOWNSHIFT_API_KEY) and `opencode run`. Its config folder is seeded as
"dependencies installed": otherwise OpenCode installs @opencode-ai/plugin into ~/.config/opencode from the npm
registry in the background of every first run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agents.harness import (
    AgentRun,
    Sandbox,
    agents_mark,
    dns_names,
    downshift_env,
    generation_requests,
    installed_version,
    opencode_binary,
    outside_destinations,
    require,
    task_rows,
    tool_call_rows,
    tool_round_trip,
)
from conftest import logged_calls

from app.testing.script import Reply, ToolCall, Usage

pytestmark = [agents_mark(), pytest.mark.timeout(180)]

OPENCODE_VERSION = "1.18.33"  # keep in step with tests/agents/node/package.json


def seed_plugin_deps(home: Path) -> None:
    """What OpenCode checks before installing its plugin package into a config folder: node_modules exists and
    the lock file lists every dependency it would add."""
    folder = home / ".config" / "opencode"
    (folder / "node_modules").mkdir(parents=True, exist_ok=True)
    lock = {"packages": {"": {"dependencies": {"@opencode-ai/plugin": OPENCODE_VERSION}}}}
    (folder / "package-lock.json").write_text(json.dumps(lock))


@pytest.fixture
def opencode(tmp_path: Path, proxy, config_path: Path, token: str):  # type: ignore[no-untyped-def]
    binary = require("OpenCode (npm opencode-ai)", opencode_binary())
    box = Sandbox(tmp_path, downshift_env("opencode", config_path, proxy.url, token))
    seed_plugin_deps(box.home)

    def run(prompt: str, *, strace_log: Path | None = None) -> AgentRun:
        return box.run([binary, "run", prompt], strace_log=strace_log)

    run.workdir = box.workdir  # type: ignore[attr-defined]
    return run


def test_installed_opencode_is_the_pinned_version(tmp_path: Path) -> None:
    run = installed_version([require("OpenCode (npm opencode-ai)", opencode_binary())], tmp_path, timeout=30)
    assert run.returncode == 0 and run.stdout.strip() == OPENCODE_VERSION, run.report()


def test_write_tool_loop_offline(opencode, mock, core, proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """OpenCode asks for a title (small_model, no tools) beside the main call, writes the file the model asks
    for, returns the result and finishes; every call is logged under its x-session-id, and the strace log
    shows the proxy as the only destination."""
    target = opencode.workdir / "out.txt"
    mock.default = tool_round_trip(
        Reply(
            tool_calls=[ToolCall("write", {"filePath": str(target), "content": "hello\n"})],
            usage=Usage(prompt=1000, completion=20),
        ),
        Reply(text="Wrote hello to out.txt.", usage=Usage(prompt=1200, completion=6)),
        side=Reply(text="Writing hello", usage=Usage(prompt=50, completion=3)),
    )
    log = tmp_path / "strace.log"
    run = opencode("Write hello into out.txt", strace_log=log)

    assert run.returncode == 0, run.report()
    assert target.read_text() == "hello\n"
    assert "Wrote hello to out.txt." in run.stdout, run.report()
    assert outside_destinations(log, proxy.url) == set() and dns_names(log) == set(), dns_names(log)

    requests = generation_requests(mock.requests)
    title = [r for r in requests if not r.json.get("tools")]
    main = [r for r in requests if r.json.get("tools")]
    assert [r.model for r in title] == ["qwen/qwen3-coder-30b"]  # small_model = the background role
    assert [r.model for r in main] == ["qwen/qwen3-coder"] * 2
    first = main[0].json
    assert first["tool_choice"] == "auto" and first["stream_options"] == {"include_usage": True}
    assert {"bash", "edit", "read", "write"} <= {t["function"]["name"] for t in first["tools"]}
    call, result = main[1].json["messages"][-2:]
    assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
    assert "Wrote file successfully" in result["content"]

    rows = logged_calls(core)
    assert len(rows) == 3 and all(
        (r["outcome"], r["status"], r["client_api"]) == ("ok", 200, "openai") for r in rows
    )
    assert sorted(r["role"] for r in rows) == ["background", "default", "default"]
    assert all(r["user_agent"].startswith(f"opencode/{OPENCODE_VERSION}") for r in rows)
    assert all(r["cost_usd"] > 0 for r in rows if r["role"] == "default")
    (session,) = {r["session_key"] for r in rows}
    assert session.startswith("session:ses_")  # x-session-id
    tasks = task_rows(core)
    assert [(t["key"], t["source"]) for t in tasks] == [(session, "session")]
    assert {r["task_id"] for r in rows} == {tasks[0]["id"]}


def test_failed_command_is_attributed(opencode, mock, core) -> None:  # type: ignore[no-untyped-def]
    """OpenCode returns a failed command's stderr as it came (`cat: missing.txt: No such file or directory`):
    the result marks the bash call that asked for it."""
    mock.default = tool_round_trip(
        Reply(
            tool_calls=[ToolCall("bash", {"command": "cat missing.txt", "description": "Show missing.txt"})]
        ),
        Reply(text="The file does not exist."),
        side=Reply(text="A title"),
    )
    run = opencode("Show missing.txt")

    assert run.returncode == 0, run.report()
    (row,) = tool_call_rows(core)
    assert (row["name"], row["kind"], row["result_failed"]) == ("bash", "ok", 1), row
    assert "no such file or directory" in row["result_reason"]

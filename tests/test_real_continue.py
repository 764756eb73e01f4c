"""The real Continue CLI (npm @continuedev/cli, binary `cn`, pinned in tests/agents/node) through the proxy's
chat-completions endpoint.

Configured as docs/agents.md says: `downshift env --agent continue --write` writes ~/.continue/downshift.yaml
(models named for Downshift roles), and `cn --config ~/.continue/downshift.yaml --auto -p`. Continue's CLI
sends no session id; every start looks up api.continue.dev (a latest-version check no setting turns off),
which the trace flags.
"""

from __future__ import annotations

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
    node_script,
    outside_destinations,
    require,
    task_rows,
    tool_call_rows,
    tool_round_trip,
)
from conftest import logged_calls

from app.testing.script import Reply, ToolCall, Usage

pytestmark = [agents_mark(), pytest.mark.timeout(180)]

CONTINUE_VERSION = "1.5.47"  # keep in step with tests/agents/node/package.json
NAME = "Continue CLI (npm @continuedev/cli)"
CONTINUE_OWN_HOSTS = {"api.continue.dev"}  # the version check at start-up; no model call goes there


@pytest.fixture
def cn(tmp_path: Path, proxy, config_path: Path, token: str):  # type: ignore[no-untyped-def]
    command = require(NAME, node_script("@continuedev/cli", "dist/cn.js"))
    home = tmp_path / "home"
    box = Sandbox(tmp_path, downshift_env("continue", config_path, proxy.url, token, write_home=home))
    config = home / ".continue" / "downshift.yaml"

    def run(prompt: str, *, strace_log: Path | None = None) -> AgentRun:
        return box.run([*command, "--config", config, "--auto", "-p", prompt], strace_log=strace_log)

    run.workdir = box.workdir  # type: ignore[attr-defined]
    return run


def test_installed_continue_cli_is_the_pinned_version(tmp_path: Path) -> None:
    run = installed_version(require(NAME, node_script("@continuedev/cli", "dist/cn.js")), tmp_path)
    assert run.returncode == 0 and run.stdout.strip() == CONTINUE_VERSION, run.report()


def test_write_tool_loop_offline(cn, mock, core, proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = cn.workdir / "out.txt"
    mock.default = tool_round_trip(
        Reply(
            tool_calls=[ToolCall("Write", {"filepath": str(target), "content": "hello\n"})],
            usage=Usage(prompt=1000, completion=20),
        ),
        Reply(text="Wrote hello to out.txt.", usage=Usage(prompt=1200, completion=6)),
    )
    log = tmp_path / "strace.log"
    run = cn("Write hello into out.txt", strace_log=log)

    assert run.returncode == 0, run.report()
    assert target.read_text() == "hello\n"
    assert "Wrote hello to out.txt." in run.stdout, run.report()
    assert dns_names(log) <= CONTINUE_OWN_HOSTS, dns_names(log)
    assert {port for _host, port in outside_destinations(log, proxy.url)} <= {53, 443}

    first, second = generation_requests(mock.requests)
    assert first.model == "qwen/qwen3-coder" and first.stream and "tool_choice" not in first.json
    assert {"Read", "Write", "Edit", "Bash"} <= {t["function"]["name"] for t in first.json["tools"]}
    call, result = second.json["messages"][-2:]
    assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]

    rows = logged_calls(core)
    assert [(r["outcome"], r["role"], r["client_api"]) for r in rows] == [("ok", "default", "openai")] * 2
    assert [(r["input_tokens"], r["output_tokens"], r["tool_calls"]) for r in rows] == [
        (1000, 20, 1),
        (1200, 6, 0),
    ]
    assert all(r["cost_usd"] > 0 and r["session_key"] is None for r in rows)
    (task,) = task_rows(core)
    assert task["source"] == "fingerprint" and {r["task_id"] for r in rows} == {task["id"]}
    assert tool_call_rows(core)[0]["result_failed"] == 0


def test_failed_command_is_attributed(cn, mock, core) -> None:  # type: ignore[no-untyped-def]
    """Continue answers a failed tool with `Error executing tool Bash: Error (exit code 1): ...`."""
    mock.default = tool_round_trip(
        Reply(tool_calls=[ToolCall("Bash", {"command": "cat missing.txt"})]),
        Reply(text="The file does not exist."),
    )
    run = cn("Show missing.txt")

    assert run.returncode == 0, run.report()
    result = generation_requests(mock.requests)[-1].json["messages"][-1]
    assert result["content"].startswith("Error executing tool Bash: Error (exit code 1)")
    (row,) = tool_call_rows(core)
    assert (row["name"], row["kind"], row["result_failed"]) == ("Bash", "ok", 1), row
    assert "error executing tool" in row["result_reason"]

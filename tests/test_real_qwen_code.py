"""The real Qwen Code (npm @qwen-code/qwen-code, pinned in tests/agents/node) through the proxy's chat-completions
endpoint.

Configured as docs/agents.md says: `downshift env --agent qwen-code --write` (usage statistics off in
~/.qwen/settings.json), its three variables, and `qwen --yolo -p`. Qwen Code sends no session id, so its calls are grouped by their fingerprint (the system
prompt and first user turn are the same across a run). Its tool results are arrays of text parts.
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

# keep in step with tests/agents/node/package.json. Not the newest (0.24.x): that asks for Node 22, and the
# agents run on the machine's Node (20 here and in CI); 0.15.x is the last line that supports Node 20.
QWEN_CODE_VERSION = "0.15.10"
NAME = "Qwen Code (npm @qwen-code/qwen-code)"


@pytest.fixture
def qwen(tmp_path: Path, proxy, config_path: Path, token: str):  # type: ignore[no-untyped-def]
    command = require(NAME, node_script("@qwen-code/qwen-code", "cli.js"))
    home = tmp_path / "home"  # `--write` turns usage statistics off in its .qwen/settings.json
    box = Sandbox(tmp_path, downshift_env("qwen-code", config_path, proxy.url, token, write_home=home))

    def run(prompt: str, *, strace_log: Path | None = None) -> AgentRun:
        return box.run([*command, "--yolo", "-p", prompt], strace_log=strace_log)

    run.workdir = box.workdir  # type: ignore[attr-defined]
    return run


def test_installed_qwen_code_is_the_pinned_version(tmp_path: Path) -> None:
    run = installed_version(require(NAME, node_script("@qwen-code/qwen-code", "cli.js")), tmp_path)
    assert run.returncode == 0 and run.stdout.strip() == QWEN_CODE_VERSION, run.report()


def test_write_file_tool_loop_offline(qwen, mock, core, proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Qwen Code writes the file the model asks for and finishes; both calls are logged as one task, and set up
    by `downshift env --agent qwen-code --write` it opens no socket but the proxy's (without the settings
    file it also looks up an Alibaba Cloud RUM host for usage statistics)."""
    target = qwen.workdir / "out.txt"
    mock.default = tool_round_trip(
        Reply(
            tool_calls=[ToolCall("write_file", {"file_path": str(target), "content": "hello\n"})],
            usage=Usage(prompt=1000, completion=20),
        ),
        Reply(text="Wrote hello to out.txt.", usage=Usage(prompt=1200, completion=6)),
    )
    log = tmp_path / "strace.log"
    run = qwen("Write hello into out.txt", strace_log=log)

    assert run.returncode == 0, run.report()
    assert target.read_text() == "hello\n"
    assert "Wrote hello to out.txt." in run.stdout, run.report()
    assert outside_destinations(log, proxy.url) == set() and dns_names(log) == set(), dns_names(log)

    first, second = generation_requests(mock.requests)
    assert first.model == "qwen/qwen3-coder" and first.stream
    assert first.json["max_tokens"] == 8000 and first.json["messages"][0]["role"] == "system"
    assert {"write_file", "run_shell_command", "read_file"} <= {
        t["function"]["name"] for t in first.json["tools"]
    }
    call, result = second.json["messages"][-2:]
    assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
    assert isinstance(result["content"], list) and result["content"][0]["type"] == "text"  # an array of parts

    rows = logged_calls(core)
    assert [(r["outcome"], r["role"], r["client_api"]) for r in rows] == [("ok", "default", "openai")] * 2
    assert [(r["input_tokens"], r["output_tokens"], r["tool_calls"]) for r in rows] == [
        (1000, 20, 1),
        (1200, 6, 0),
    ]
    assert all(r["cost_usd"] > 0 and r["session_key"] is None for r in rows)  # no session id is sent
    assert rows[0]["user_agent"].startswith(f"QwenCode/{QWEN_CODE_VERSION}")
    (task,) = task_rows(core)
    assert task["source"] == "fingerprint" and {r["task_id"] for r in rows} == {task["id"]}


def test_failed_command_is_attributed(qwen, mock, core) -> None:  # type: ignore[no-untyped-def]
    """Qwen Code's shell report says `Error: (none)` and then `Exit Code: 1`: the exit code decides."""
    mock.default = tool_round_trip(
        Reply(tool_calls=[ToolCall("run_shell_command", {"command": "cat missing.txt"})]),
        Reply(text="The file does not exist."),
    )
    run = qwen("Show missing.txt")

    assert run.returncode == 0, run.report()
    result = generation_requests(mock.requests)[-1].json["messages"][-1]
    assert "Error: (none)\nExit Code: 1" in result["content"][0]["text"]
    (row,) = tool_call_rows(core)
    assert (row["name"], row["kind"], row["result_failed"]) == ("run_shell_command", "ok", 1), row
    assert "Exit Code: 1" in row["result_reason"]


def test_successful_command_is_not_a_failure(qwen, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.default = tool_round_trip(
        Reply(tool_calls=[ToolCall("run_shell_command", {"command": "echo fine"})]), Reply(text="Done.")
    )
    run = qwen("Say fine")

    assert run.returncode == 0, run.report()
    (row,) = tool_call_rows(core)
    assert (row["name"], row["result_failed"]) == ("run_shell_command", 0), row

"""The real Cline CLI (npm cline, pinned in tests/agents/node) through the proxy's chat-completions endpoint.

Configured as docs/agents.md says: `downshift env --agent cline --write` merges Downshift into
~/.cline/data/settings/providers.json as its openai-compatible provider, and its one variable
(CLINE_SESSION_BACKEND_MODE=local) keeps the run in the CLI's own process instead of a detached hub daemon on
127.0.0.1:25463 that outlives it. Any daemon a run leaves anyway is stopped after each test. Cline sends no
session id; its tool results are JSON strings with a `success` flag.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agents.harness import (
    AgentRun,
    Sandbox,
    agents_mark,
    cline_binary,
    dns_names,
    downshift_env,
    generation_requests,
    installed_version,
    outside_destinations,
    require,
    stop_cline_hubs,
    task_rows,
    tool_call_rows,
    tool_round_trip,
)
from conftest import logged_calls

from app.testing.script import Reply, ToolCall, Usage

pytestmark = [agents_mark(), pytest.mark.timeout(180)]

CLINE_VERSION = "3.0.65"  # keep in step with tests/agents/node/package.json
NAME = "Cline CLI (npm cline)"
# Looked up by every run, telemetry opted out or not (PostHog feature flags and OpenTelemetry export). Flagged
# here, and in docs/agents.md: no model call goes there, and nothing else is contacted.
CLINE_OWN_HOSTS = {"data.cline.bot", "otel.cline.bot"}


@pytest.fixture
def cline(tmp_path: Path, proxy, config_path: Path, token: str):  # type: ignore[no-untyped-def]
    binary = require(NAME, cline_binary())
    home = tmp_path / "home"
    box = Sandbox(tmp_path, downshift_env("cline", config_path, proxy.url, token, write_home=home))

    def run(prompt: str, *, strace_log: Path | None = None) -> AgentRun:
        return box.run([binary, prompt], strace_log=strace_log)

    run.workdir = box.workdir  # type: ignore[attr-defined]
    run.home = home  # type: ignore[attr-defined]
    yield run
    stop_cline_hubs(box.workdir)


def test_installed_cline_is_the_pinned_version(tmp_path: Path) -> None:
    run = installed_version([require(NAME, cline_binary())], tmp_path)
    assert run.returncode == 0 and run.stdout.strip() == CLINE_VERSION, run.report()


def test_editor_tool_loop_offline(cline, mock, core, proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Cline creates the file with its editor tool and finishes; both calls are one task; the only other
    destinations are DNS look-ups of Cline's own telemetry hosts."""
    target = cline.workdir / "out.txt"
    mock.default = tool_round_trip(
        Reply(
            tool_calls=[ToolCall("editor", {"path": str(target), "new_text": "hello\n"})],
            usage=Usage(prompt=1000, completion=20),
        ),
        Reply(text="Wrote hello to out.txt.", usage=Usage(prompt=1200, completion=6)),
    )
    log = tmp_path / "strace.log"
    run = cline("Write hello into out.txt", strace_log=log)

    assert run.returncode == 0, run.report()
    assert target.read_text() == "hello\n"
    assert "Wrote hello to out.txt." in run.stdout, run.report()
    assert dns_names(log) <= CLINE_OWN_HOSTS, dns_names(log)
    assert {port for _host, port in outside_destinations(log, proxy.url)} <= {53, 443}
    assert stop_cline_hubs(cline.workdir) == []  # CLINE_SESSION_BACKEND_MODE=local: no daemon was started

    settings = json.loads((cline.home / ".cline/data/settings/providers.json").read_text())
    assert settings["lastUsedProvider"] == "openai-compatible"

    first, second = generation_requests(mock.requests)
    assert first.model == "qwen/qwen3-coder" and "max_tokens" not in first.json
    assert {"editor", "run_commands", "read_files"} <= {t["function"]["name"] for t in first.json["tools"]}
    call, result = second.json["messages"][-2:]
    assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
    assert json.loads(result["content"])["success"] is True

    rows = logged_calls(core)
    assert [(r["outcome"], r["role"], r["client_api"]) for r in rows] == [("ok", "default", "openai")] * 2
    assert [(r["input_tokens"], r["output_tokens"], r["tool_calls"]) for r in rows] == [
        (1000, 20, 1),
        (1200, 6, 0),
    ]
    assert all(r["cost_usd"] > 0 and r["session_key"] is None for r in rows)
    assert rows[0]["user_agent"].startswith("ai-sdk/openai-compatible/")
    (task,) = task_rows(core)
    assert task["source"] == "fingerprint" and {r["task_id"] for r in rows} == {task["id"]}
    assert tool_call_rows(core)[0]["result_failed"] == 0


def test_failed_command_is_attributed(cline, mock, core) -> None:  # type: ignore[no-untyped-def]
    """run_commands answers with a JSON list of results; `success: false` marks the call that asked for it."""
    mock.default = tool_round_trip(
        Reply(tool_calls=[ToolCall("run_commands", {"commands": ["cat missing.txt"]})]),
        Reply(text="The file does not exist."),
    )
    run = cline("Show missing.txt")

    assert run.returncode == 0, run.report()
    (result,) = json.loads(generation_requests(mock.requests)[-1].json["messages"][-1]["content"])
    assert result["success"] is False
    (row,) = tool_call_rows(core)
    assert (row["name"], row["kind"], row["result_failed"]) == ("run_commands", "ok", 1), row
    assert row["result_reason"].startswith("success: false: Command exited with code 1")


def test_invalid_arguments_answer_is_attributed(cline, mock, core) -> None:  # type: ignore[no-untyped-def]
    """A call missing a required argument comes back as `{"error": ...}` alone. The schema check already counts
    the call as a failure; the result's error is recorded on the same row."""
    mock.default = tool_round_trip(
        Reply(tool_calls=[ToolCall("editor", {"path": "out.txt"})]), Reply(text="Giving up.")
    )
    run = cline("Write out.txt")

    assert run.returncode == 0, run.report()
    (row,) = tool_call_rows(core)
    assert (row["name"], row["kind"], row["result_failed"]) == ("editor", "schema", 1), row
    assert row["result_reason"] == "error: ✖ Invalid input: expected string, received undefined"

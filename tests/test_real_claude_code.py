"""The real Claude Code (npm @anthropic-ai/claude-code, pinned in tests/agents/node) through the proxy's
Anthropic gateway to an OpenAI-format provider.

Claude Code speaks Anthropic Messages; the mock upstream speaks chat completions, so each turn crosses the
translation both ways and Claude Code must act on the streamed answer as if Anthropic had sent it.
Configured as docs/agents.md says: the variables from `downshift env --agent claude-code` (base URL, token,
model slots naming Downshift roles), non-essential traffic off, a fresh HOME, and `--allowedTools` naming
the one tool the test lets run (`--dangerously-skip-permissions` is refused when running as root).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from agents.harness import (
    LOOPBACK,
    AgentRun,
    Sandbox,
    agents_mark,
    claude_binary,
    downshift_env,
    generation_requests,
    installed_version,
    remote_endpoints,
    require,
    tool_round_trip,
)
from conftest import logged_calls

from app.testing.script import Reply, ToolCall, Usage

pytestmark = [agents_mark(), pytest.mark.timeout(180)]

CLAUDE_CODE_VERSION = "2.1.332"  # keep in step with tests/agents/node/package.json
QUIET = {  # everything but the model calls off: telemetry, error reports, update checks, feedback surveys
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
}


class Claude:
    """`claude -p` in a fresh workdir, pointed at the proxy; the result JSON parsed."""

    def __init__(self, binary: Path, box: Sandbox) -> None:
        self.binary, self.box, self.workdir = binary, box, box.workdir
        self.session = str(uuid.uuid4())

    def __call__(
        self, prompt: str, *extra: str, strace_log: Path | None = None
    ) -> tuple[AgentRun, dict[str, Any]]:
        argv: list[str | Path] = [
            self.binary,
            "-p",
            prompt,
            "--output-format",
            "json",
            "--session-id",
            self.session,
            *extra,
        ]
        run = self.box.run(argv, strace_log=strace_log)
        try:
            result = json.loads(run.stdout)
        except ValueError:
            result = {}
        return run, result


@pytest.fixture
def claude(tmp_path: Path, proxy, config_path: Path, token: str) -> Claude:  # type: ignore[no-untyped-def]
    binary = require("Claude Code (npm @anthropic-ai/claude-code)", claude_binary())
    return Claude(
        binary, Sandbox(tmp_path, {**downshift_env("claude-code", config_path, proxy.url, token), **QUIET})
    )


def text_of(content: Any) -> str:
    """A chat message's content as text, whether a string or a list of text parts."""
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part.get("type") == "text")


def test_installed_claude_code_is_the_pinned_version(tmp_path: Path) -> None:
    binary = require("Claude Code (npm @anthropic-ai/claude-code)", claude_binary())
    run = installed_version([binary], tmp_path, variables=QUIET, timeout=30)
    assert run.returncode == 0 and run.stdout.split()[0] == CLAUDE_CODE_VERSION, run.report()


def test_bash_tool_loop(claude: Claude, mock, core) -> None:  # type: ignore[no-untyped-def]
    """Claude Code asks the model, runs the Bash call it gets back, sends the tool_result, and finishes."""
    mock.default = tool_round_trip(
        Reply(
            tool_calls=[ToolCall("Bash", {"command": "echo hi > f", "description": "Write hi to f"})],
            usage=Usage(prompt=1000, completion=20),
        ),
        Reply(text="Wrote hi to f.", usage=Usage(prompt=1200, completion=6)),
    )
    run, result = claude("Write hi into the file f", "--allowedTools", "Bash")

    assert run.returncode == 0, run.report()
    assert (claude.workdir / "f").read_text() == "hi\n"
    assert (result["subtype"], result["result"], result["num_turns"]) == ("success", "Wrote hi to f.", 2), (
        run.report()
    )
    # The usage Claude Code counted is what the provider reported, carried through the translation.
    assert (result["usage"]["input_tokens"], result["usage"]["output_tokens"]) == (2200, 26), result["usage"]

    first, second = generation_requests(mock.requests)
    assert first.model == "qwen/qwen3-coder" and first.stream
    assert first.json["messages"][0]["role"] == "system"
    assert "Claude Code" in text_of(first.json["messages"][0]["content"])
    assert "thinking" not in first.json and "context_management" not in first.json  # Anthropic-only fields
    (bash,) = [t["function"] for t in first.json["tools"] if t["function"]["name"] == "Bash"]
    assert "command" in bash["parameters"]["properties"]
    assert any(
        text_of(m["content"]).endswith("Write hi into the file f")
        for m in first.json["messages"]
        if m["role"] == "user"
    )
    call, result_message = second.json["messages"][-2:]
    (tool_call,) = call["tool_calls"]
    assert tool_call["function"]["name"] == "Bash"
    assert json.loads(tool_call["function"]["arguments"])["command"] == "echo hi > f"
    assert result_message["role"] == "tool" and result_message["tool_call_id"] == tool_call["id"]
    assert text_of(result_message["content"]) == "(Bash completed with no output)"

    rows = logged_calls(core)  # exactly the two calls: no refused first attempt, no side calls
    assert [
        (r["client_api"], r["endpoint"], r["requested_model"], r["role"], r["outcome"]) for r in rows
    ] == [
        ("anthropic", "/v1/messages", "default", "default", "ok")
    ] * 2  # opusplan outside plan mode: the sonnet slot
    assert [(r["input_tokens"], r["output_tokens"], r["tool_calls"]) for r in rows] == [
        (1000, 20, 1),
        (1200, 6, 0),
    ]
    assert all(r["streamed"] and r["provider"] == "cheapco" and r["cost_usd"] > 0 for r in rows)
    assert {r["session_key"] for r in rows} == {f"session:{claude.session}"}  # X-Claude-Code-Session-Id
    assert rows[0]["user_agent"].startswith(f"claude-cli/{CLAUDE_CODE_VERSION}")


def test_failed_bash_call_counts_against_the_model(claude: Claude, mock, core) -> None:  # type: ignore[no-untyped-def]
    """The main route: Claude Code over a chat-completions model. A Bash command that fails comes back as a
    tool_result with is_error under the toolu_ id Claude Code was given; the log marks the call that made it
    and the model's tool failure rate counts it."""
    from app.core.queries import dashboard
    from app.core.queries.calls import call_detail

    mock.default = tool_round_trip(
        Reply(
            tool_calls=[ToolCall("Bash", {"command": "ls /no/such/dir", "description": "List a missing dir"})]
        ),
        Reply(text="That directory does not exist."),
    )
    run, result = claude("List /no/such/dir", "--allowedTools", "Bash")

    assert run.returncode == 0 and result["result"] == "That directory does not exist.", run.report()
    _first, second = generation_requests(mock.requests)
    tool_message = second.json["messages"][-1]
    assert tool_message["role"] == "tool" and text_of(tool_message["content"]).startswith(
        "[tool error]"
    )  # is_error
    rows = logged_calls(core)
    (tool_row,) = call_detail(core.db, rows[0]["call_id"])["tool_call_rows"]
    assert tool_row["tool_call_id"].startswith("toolu_") and tool_row["result_failed"], tool_row
    model = dashboard.reliability(core.db)["models"]["qwen/qwen3-coder"]
    assert (model["tool_calls"], model["failed"], model["by_kind"]["result_failed"]) == (1, 1, 1)


def test_write_tool_creates_a_file(claude: Claude, mock) -> None:  # type: ignore[no-untyped-def]
    target = claude.workdir / "notes.md"
    mock.default = tool_round_trip(
        Reply(
            tool_calls=[
                ToolCall("Write", {"file_path": str(target), "content": "# Notes\n\nrouted by Downshift\n"})
            ]
        ),
        Reply(text="Created notes.md."),
    )
    run, result = claude("Create notes.md", "--allowedTools", "Write")

    assert run.returncode == 0, run.report()
    assert target.read_text() == "# Notes\n\nrouted by Downshift\n"
    assert result["result"] == "Created notes.md.", run.report()
    tool_message = generation_requests(mock.requests)[-1].json["messages"][-1]
    assert tool_message["role"] == "tool" and "notes.md" in text_of(tool_message["content"])


def test_talks_to_nobody_but_the_proxy(claude: Claude, mock, proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With non-essential traffic off, every socket Claude Code opens (DNS included) goes to the proxy."""
    mock.default = Reply(text="hi")
    log = tmp_path / "strace.log"
    run, result = claude("say hi", strace_log=log)

    assert run.returncode == 0 and result["result"] == "hi", run.report()
    endpoints = remote_endpoints(log)
    proxy_port = int(proxy.url.rsplit(":", 1)[1])
    assert endpoints and all(host in LOOPBACK and port == proxy_port for host, port in endpoints), endpoints


def test_upstream_error_reaches_claude_code(claude: Claude, mock, core) -> None:  # type: ignore[no-untyped-def]
    """A provider's 400 ends the run with the provider's message, as an Anthropic-shaped error."""
    mock.default = Reply(status=400, error="unsupported parameter: top_k")
    run, result = claude("say hi")

    assert run.returncode != 0, run.report()
    assert (result.get("is_error"), result.get("api_error_status")) == (True, 400), run.report()
    assert "unsupported parameter: top_k" in result["result"], run.report()
    assert any(
        (r["outcome"], r["status"], r["provider"]) == ("error", 400, "cheapco") for r in logged_calls(core)
    )


def test_context_overflow_is_recognised_by_claude_code(claude: Claude, mock) -> None:  # type: ignore[no-untyped-def]
    """An OpenAI-style context-length 400 arrives in a shape Claude Code reads as "prompt too long" (the
    signal it compacts on), not as an opaque failure."""
    mock.default = Reply(status=400, error="This model's maximum context length is 8192 tokens")
    run, result = claude("say hi")

    assert run.returncode != 0, run.report()
    assert result.get("terminal_reason") == "prompt_too_long", run.report()
    assert result["result"].startswith("Prompt is too long"), run.report()


def test_mid_conversation_system_message_is_accepted(claude: Claude, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.default = Reply(text="hi")
    run, result = claude("say hi")

    assert run.returncode == 0 and result["result"] == "hi", run.report()
    rows = logged_calls(core)
    assert [(r["outcome"], r["status"]) for r in rows] == [("ok", 200)], [r["error_message"] for r in rows]

"""The real Gemini CLI (npm @google/gemini-cli, pinned in tests/agents/node) through the proxy's Gemini API gateway.

Gemini CLI speaks only the Gemini API (`POST /v1beta/models/default:streamGenerateContent?alt=sse`, key in
`x-goog-api-key`); the mock upstream speaks chat completions (cheap preset) or Anthropic Messages (premium),
so every turn crosses the translation both ways. Configured as docs/agents.md says: the variables from
`downshift env --agent gemini` and ~/.gemini/settings.json merged by `write_gemini_settings`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from agents.harness import (
    LOOPBACK,
    NODE_DIR,
    AgentRun,
    Sandbox,
    agents_mark,
    downshift_env,
    generation_requests,
    installed_version,
    remote_endpoints,
    require,
    tool_round_trip,
)
from conftest import logged_calls

from app.core.gemini_settings import write_gemini_settings
from app.testing.script import RecordedRequest, Reply, ToolCall, Usage

pytestmark = [agents_mark(), pytest.mark.timeout(180)]

GEMINI_VERSION = "0.61.0"  # keep in step with tests/agents/node/package.json


def gemini_binary() -> Path | None:
    path = NODE_DIR / "node_modules" / ".bin" / "gemini"
    return path if path.exists() else None


@pytest.fixture
def gemini(tmp_path: Path, proxy, config_path: Path, token: str):  # type: ignore[no-untyped-def]
    """Run `gemini -p` in a fresh workdir, with a home whose settings.json Downshift merged."""
    binary = require("Gemini CLI (npm @google/gemini-cli)", gemini_binary())
    box = Sandbox(tmp_path, downshift_env("gemini", config_path, proxy.url, token))

    def run(prompt: str, *extra: str, settings: bool = True, strace_log: Path | None = None) -> AgentRun:
        if settings:
            write_gemini_settings(box.env)
        # --yolo: run tools without asking; --skip-trust: the temp workdir is not a trusted folder yet. No -m:
        # GEMINI_MODEL=default from `downshift env` names the model.
        argv: list[str | Path] = [binary, "--yolo", "--skip-trust", *extra, "-p", prompt]
        return box.run(argv, strace_log=strace_log, timeout=120)

    run.workdir = box.workdir  # type: ignore[attr-defined]
    return run


def test_installed_gemini_cli_is_the_pinned_version(tmp_path: Path) -> None:
    run = installed_version([require("Gemini CLI (npm @google/gemini-cli)", gemini_binary())], tmp_path)
    assert run.returncode == 0 and run.stdout.strip() == GEMINI_VERSION, run.report()


def test_write_file_tool_loop(gemini, mock, core) -> None:  # type: ignore[no-untyped-def]
    """Gemini CLI asks the model, runs the write_file call it gets back, returns the result, and finishes."""
    target = gemini.workdir / "hello.txt"
    mock.default = tool_round_trip(
        Reply(tool_calls=[ToolCall("write_file", {"file_path": str(target), "content": "hello\n"})],
              usage=Usage(prompt=9000, completion=20)),
        Reply(text="Wrote hello.txt.", usage=Usage(prompt=9400, completion=6, cached=8000)),
    )  # fmt: skip
    run = gemini("Write hello into hello.txt")

    assert run.returncode == 0, run.report()
    assert target.read_text() == "hello\n"
    assert run.stdout.strip() == "Wrote hello.txt.", run.report()

    first, second = generation_requests(mock.requests)
    assert first.model == "qwen/qwen3-coder" and first.stream
    assert first.json["stream_options"] == {"include_usage": True}
    assert first.json["messages"][0]["role"] == "system"  # systemInstruction (~30k characters)
    assert len(first.json["messages"][0]["content"]) > 10_000
    assert "Write hello into hello.txt" in first.json["messages"][-1]["content"]
    tools = {t["function"]["name"]: t["function"] for t in first.json["tools"]}
    assert {"write_file", "read_file", "run_shell_command"} <= set(tools)
    assert tools["write_file"]["parameters"]["required"] == ["file_path", "content"]  # parametersJsonSchema
    call, result = second.json["messages"][-2:]
    (tool_call,) = call["tool_calls"]
    assert tool_call["id"].startswith("call_") and tool_call["function"]["name"] == "write_file"
    assert (
        result["role"] == "tool" and result["tool_call_id"] == tool_call["id"]
    )  # the provider's own id again
    assert "Successfully created and wrote" in result["content"]

    rows = logged_calls(core)
    assert [(r["client_api"], r["endpoint"], r["outcome"], r["status"]) for r in rows] == [
        ("gemini", "/v1beta/models/{model}:streamGenerateContent", "ok", 200)
    ] * 2
    assert [(r["input_tokens"], r["cache_read_tokens"], r["output_tokens"], r["tool_calls"]) for r in rows] == [
        (9000, 0, 20, 1), (1400, 8000, 6, 0)]  # fmt: skip
    assert all(r["streamed"] and r["role"] == "default" and r["requested_model"] == "default" for r in rows)
    assert all(r["cost_usd"] > 0 and r["cost_source"] == "table" for r in rows)
    # no session id from Gemini CLI: the run is one task by its system prompt and first user turn
    assert rows[0]["session_key"] is None and rows[0]["task_id"] == rows[1]["task_id"]
    assert rows[0]["user_agent"].startswith(f"GeminiCLI-tui/{GEMINI_VERSION}/default")


def test_failed_tool_results_are_attributed(gemini, mock, core) -> None:  # type: ignore[no-untyped-def]
    """A read of a missing file comes back as `response.error`, a failing command as its output with an exit
    code: both are failures of the calls that asked for them; the model sees the error flagged."""
    missing = gemini.workdir / "missing.txt"
    calls = [ToolCall("read_file", {"file_path": str(missing)}), ToolCall("run_shell_command", {"command": "ls nothing-here"}),
             ToolCall("write_file", {"file_path": str(gemini.workdir / "ok.txt"), "content": "fine\n"})]  # fmt: skip
    mock.default = tool_round_trip(Reply(tool_calls=calls), Reply(text="Two of three failed."))
    run = gemini("Read missing.txt, list nothing-here and write ok.txt")

    assert run.returncode == 0, run.report()
    results = {
        m["tool_call_id"]: m["content"]
        for m in generation_requests(mock.requests)[1].json["messages"]
        if m["role"] == "tool"
    }
    assert (
        len(results) == 3
        and sum(text.startswith("[tool error] File not found") for text in results.values()) == 1
    )
    logged_calls(core)
    with core.db.connect() as conn:
        marked = dict(conn.exec_driver_sql("SELECT name, result_failed FROM tool_calls").all())
    assert marked == {"read_file": 1, "run_shell_command": 1, "write_file": 0}


def _anthropic_loop(call: Reply, final: Reply):  # type: ignore[no-untyped-def]
    def answer(request: RecordedRequest) -> Reply:
        last = request.json["messages"][-1]
        content = last["content"]
        done = isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)
        return final if done else call

    return answer


def test_tool_loop_through_an_anthropic_upstream(gemini, mock, core) -> None:  # type: ignore[no-untyped-def]
    """The same loop with the premium preset, whose target speaks Anthropic Messages: Gemini -> chat -> Messages
    and back, streamed; the functionCall id Gemini CLI echoes is Anthropic's own toolu_ id."""
    core.config_store.update(lambda c: c.with_active("premium"))
    target = gemini.workdir / "hi.txt"
    mock.default = _anthropic_loop(
        Reply(tool_calls=[ToolCall("write_file", {"file_path": str(target), "content": "hi\n"})], usage=Usage(prompt=900, completion=15)),
        Reply(text="Done.", usage=Usage(prompt=950, completion=2)),
    )  # fmt: skip
    run = gemini("Write hi into hi.txt")

    assert run.returncode == 0, run.report()
    assert target.read_text() == "hi\n" and run.stdout.strip() == "Done."
    first, second = [r for r in mock.requests if r.path == "/v1/messages"]
    assert (
        first.model == "claude-sonnet-4-6"
        and first.json["stream"] is True
        and isinstance(first.json["system"], str)
    )
    use = second.json["messages"][-2]["content"][-1]
    result = second.json["messages"][-1]["content"][0]
    assert use["type"] == "tool_use" and use["id"].startswith("toolu_") and result["tool_use_id"] == use["id"]
    rows = logged_calls(core)
    assert [(r["upstream_api"], r["input_tokens"], r["output_tokens"], r["tool_calls"]) for r in rows] == [
        ("anthropic", 900, 15, 1), ("anthropic", 950, 2, 0)]  # fmt: skip


def test_model_names_route_like_role_names(gemini, mock, core) -> None:  # type: ignore[no-untyped-def]
    """`-m plan` picks the plan role; a Gemini model name (what Gemini CLI asks for when no model is set)
    takes the preset's default route (or the role a preset pattern gives it)."""
    mock.default = Reply(text="ok")
    assert gemini("Say ok", "-m", "plan").returncode == 0
    assert gemini("Say ok", "-m", "gemini-2.5-flash-lite").returncode == 0
    rows = logged_calls(core)
    assert [(r["requested_model"], r["role"], r["upstream_model"]) for r in rows] == [
        ("plan", "plan", "deepseek/deepseek-chat"), ("gemini-2.5-flash-lite", "default", "qwen/qwen3-coder")]  # fmt: skip


def test_web_search_side_call_goes_to_background_and_joins_the_task(gemini, mock, core) -> None:  # type: ignore[no-untyped-def]
    """google_web_search asks a Gemini model (by its Gemini name, with the hosted googleSearch tool, which is
    dropped) for the answer. A preset pattern `gemini-*` = background (as docs/agents.md suggests) sends such
    side calls to the cheap model, and the side-call rule puts them in the loop's task."""

    def with_pattern(config):  # type: ignore[no-untyped-def]
        cheap = replace(config.presets["cheap"], patterns={"gemini-*": "background"})
        return replace(config, presets={**config.presets, "cheap": cheap})

    core.config_store.update(with_pattern)
    mock.default = tool_round_trip(
        Reply(tool_calls=[ToolCall("google_web_search", {"query": "capital of France"})]),
        Reply(text="It is Paris."),
        side=Reply(text="Paris is the capital of France."),
    )
    run = gemini("What is the capital of France? Search the web.")

    assert run.returncode == 0 and run.stdout.strip() == "It is Paris.", run.report()
    main, side, final = generation_requests(mock.requests)
    assert (
        "tools" not in side.json and side.model == "qwen/qwen3-coder-30b"
    )  # googleSearch dropped, background role
    assert "Paris is the capital of France." in final.json["messages"][-1]["content"]
    rows = logged_calls(core)
    assert [r["role"] for r in rows] == ["default", "background", "default"]
    assert rows[1]["requested_model"].startswith("gemini-") and len({r["task_id"] for r in rows}) == 1


def test_an_upstream_error_reaches_gemini_cli(gemini, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.default = Reply(status=400, error="This model's maximum context length is 1000 tokens")
    run = gemini("Say hi")
    assert run.returncode != 0, run.report()
    assert "maximum context length" in run.stdout + run.stderr, run.report()
    rows = logged_calls(core)
    assert rows and all(
        (r["client_api"], r["status"], r["outcome"]) == ("gemini", 400, "error") for r in rows
    )


def test_settings_file_is_required(gemini, mock) -> None:  # type: ignore[no-untyped-def]
    """Why `downshift env --agent gemini` talks about ~/.gemini/settings.json: the variables alone are refused."""
    run = gemini("Say hi", settings=False)
    assert run.returncode != 0 and "Invalid auth method selected" in run.stdout + run.stderr, run.report()
    assert not generation_requests(mock.requests)


def test_talks_to_nobody_but_the_proxy(gemini, mock, proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With usage statistics off (the settings Downshift writes) every socket Gemini CLI opens, DNS included,
    goes to the proxy; with them on it looks up play.googleapis.com."""
    mock.default = Reply(text="Nothing to do.")
    log = tmp_path / "strace.log"
    run = gemini("Say nothing", strace_log=log)

    assert run.returncode == 0 and run.stdout.strip() == "Nothing to do.", run.report()
    endpoints = remote_endpoints(log)
    proxy_port = int(proxy.url.rsplit(":", 1)[1])
    assert endpoints and all(host in LOOPBACK and port == proxy_port for host, port in endpoints), endpoints
    settings = json.loads((tmp_path / "home" / ".gemini" / "settings.json").read_text())
    assert settings["privacy"]["usageStatisticsEnabled"] is False

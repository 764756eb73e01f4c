"""The real aider (PyPI aider-chat, pinned in tests/agents/aider-requirements.txt, in a venv of its own) through
the proxy's OpenAI chat-completions endpoint.

aider asks for no tools: the model answers with an edit written in the text (a whole file, or SEARCH/REPLACE
blocks), and aider applies it to the file on disk. Configured as docs/agents.md says: the variables from
`downshift env --agent aider`, a model metadata file naming Downshift's role models (aider does not know
`openai/default`, and would download litellm's price list from GitHub to look it up), and the switches that
keep it offline and non-interactive.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agents.harness import (
    LOOPBACK,
    AgentRun,
    Sandbox,
    agents_mark,
    aider_binary,
    downshift_env,
    generation_requests,
    installed_version,
    remote_endpoints,
    require,
)
from conftest import logged_calls

from app.testing.script import Reply, Usage

pytestmark = [agents_mark(), pytest.mark.timeout(240)]

AIDER_VERSION = "0.86.2"  # keep in step with tests/agents/aider-requirements.txt
ORIGINAL = 'def greet():\n    print("hi")\n'
EDITED = 'def greet():\n    print("hello from downshift")\n'
# What aider should know about the role models it is pointed at (litellm's model-info format).
ROLE_MODEL_INFO = {
    "max_input_tokens": 131072,
    "max_output_tokens": 8192,
    "input_cost_per_token": 0.0,
    "output_cost_per_token": 0.0,
    "litellm_provider": "openai",
    "mode": "chat",
}
OFFLINE_FLAGS = ("--no-check-update", "--analytics-disable", "--no-show-release-notes", "--map-tokens", "0")


@pytest.fixture
def aider(tmp_path: Path, proxy, config_path: Path, token: str):  # type: ignore[no-untyped-def]
    """Run `aider --message ...` on greet.py in a fresh workdir (no git), pointed at the proxy."""
    binary = require("aider (PyPI aider-chat)", aider_binary())
    variables = downshift_env("aider", config_path, proxy.url, token)
    metadata = tmp_path / "aider.model.metadata.json"
    metadata.write_text(
        json.dumps({variables[key]: ROLE_MODEL_INFO for key in ("AIDER_MODEL", "AIDER_WEAK_MODEL")})
    )
    box = Sandbox(tmp_path, {**variables, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    (box.workdir / "greet.py").write_text(ORIGINAL)

    def run(message: str, *extra: str, strace_log: Path | None = None) -> AgentRun:
        argv: list[str | Path] = [
            binary,
            "--message",
            message,
            "--yes-always",
            "--no-git",
            *OFFLINE_FLAGS,
            "--model-metadata-file",
            metadata,
            *extra,
            "greet.py",
        ]
        return box.run(argv, strace_log=strace_log, timeout=180)

    run.workdir = box.workdir  # type: ignore[attr-defined]
    return run


def test_installed_aider_is_the_pinned_version(tmp_path: Path) -> None:
    run = installed_version([require("aider (PyPI aider-chat)", aider_binary())], tmp_path, timeout=120)
    assert run.returncode == 0 and run.stdout.split() == ["aider", AIDER_VERSION], run.report()


def test_search_replace_edit(aider, mock, core, proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """aider's diff format: the model's SEARCH/REPLACE block lands in the file. Traced, to show aider with
    these settings opens no socket but the proxy's (no update check, analytics or price-list download)."""
    mock.default = Reply(
        text=f"greet.py\n```python\n<<<<<<< SEARCH\n{ORIGINAL}=======\n{EDITED}>>>>>>> REPLACE\n```\n",
        usage=Usage(prompt=700, completion=40),
    )
    log = tmp_path / "strace.log"
    run = aider("Make greet say hello from downshift", "--edit-format", "diff", strace_log=log)

    assert run.returncode == 0, run.report()
    assert (aider.workdir / "greet.py").read_text() == EDITED, run.report()
    assert "Applied edit to greet.py" in run.stdout, run.report()
    proxy_port = int(proxy.url.rsplit(":", 1)[1])
    endpoints = remote_endpoints(log)
    assert endpoints and all(host in LOOPBACK and port == proxy_port for host, port in endpoints), endpoints

    (request,) = generation_requests(mock.requests)
    assert request.model == "qwen/qwen3-coder" and request.stream
    assert request.json["stream_options"] == {"include_usage": True}  # the proxy asked; aider did not
    assert any(ORIGINAL in str(m.get("content")) for m in request.json["messages"])  # greet.py was sent
    assert "Make greet say hello from downshift" in request.json["messages"][-1]["content"]
    (row,) = logged_calls(core)
    assert (row["client_api"], row["endpoint"], row["requested_model"], row["role"]) == (
        "openai",
        "/v1/chat/completions",
        "default",
        "default",
    )
    assert (row["outcome"], row["streamed"], row["input_tokens"], row["output_tokens"]) == (
        "ok",
        True,
        700,
        40,
    )
    assert row["cost_usd"] > 0 and row["user_agent"].startswith("OpenAI/Python")


def test_whole_file_edit(aider, mock, core) -> None:  # type: ignore[no-untyped-def]
    """aider's whole format: the model sends the full new file under its name."""
    mock.default = Reply(text=f"greet.py\n```python\n{EDITED}```\n", usage=Usage(prompt=650, completion=14))
    run = aider("Make greet say hello from downshift", "--edit-format", "whole")

    assert run.returncode == 0, run.report()
    assert (aider.workdir / "greet.py").read_text() == EDITED, run.report()
    (row,) = logged_calls(core)
    assert (row["outcome"], row["input_tokens"], row["output_tokens"]) == ("ok", 650, 14)
    assert row["cost_usd"] > 0

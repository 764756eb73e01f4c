"""`downshift env --debug`: the agent is pointed at the proxy's /debug endpoints, whose answers name the preset,
role, provider and model that served them. The normal endpoints never send these headers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from conftest import logged_calls

from app.cli import main as cli
from app.testing.script import Reply

DEBUG_HEADERS = ("x-downshift-preset", "x-downshift-role", "x-downshift-provider", "x-downshift-model")


def test_env_debug_points_every_agent_at_the_debug_endpoints(capsys, config_path: Path, core) -> None:  # type: ignore[no-untyped-def]
    def env(agent: str, *extra: str) -> dict[str, str]:
        assert cli(["env", "--config", str(config_path), "--agent", agent, "--format", "json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    assert env("qwen-code", "--debug")["OPENAI_BASE_URL"] == "http://127.0.0.1:0/debug/v1"
    assert env("qwen-code")["OPENAI_BASE_URL"] == "http://127.0.0.1:0/v1"
    assert env("claude-code", "--debug")["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:0/debug"
    opencode = json.loads(env("opencode", "--debug")["OPENCODE_CONFIG_CONTENT"])
    assert opencode["provider"]["downshift"]["options"]["baseURL"] == "http://127.0.0.1:0/debug/v1"


@pytest.mark.parametrize("stream", [False, True])
def test_debug_endpoint_names_the_route(proxy, mock, core, token: str, stream: bool) -> None:  # type: ignore[no-untyped-def]
    mock.default = Reply(text="hi")
    body = {"model": "default", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=proxy.url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        debug = client.post("/debug/v1/chat/completions", json=body)
        plain = client.post("/v1/chat/completions", json=body)
        background = client.post("/debug/v1/chat/completions", json={**body, "model": "background"})
    assert debug.status_code == plain.status_code == 200
    assert [debug.headers.get(h) for h in DEBUG_HEADERS] == [
        "cheap",
        "default",
        "cheapco",
        "qwen/qwen3-coder",
    ]
    assert [background.headers.get(h) for h in DEBUG_HEADERS] == [
        "cheap",
        "background",
        "cheapco",
        "qwen/qwen3-coder-30b",
    ]
    assert not any(h in plain.headers for h in DEBUG_HEADERS)  # off by default
    rows = logged_calls(core)
    assert [r["endpoint"] for r in rows] == ["/v1/chat/completions"] * 3  # logged as the endpoint it is


def test_debug_anthropic_stream_and_errors(proxy, mock, core, token: str) -> None:  # type: ignore[no-untyped-def]
    mock.default = Reply(text="hi")
    body = {
        "model": "default",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=proxy.url, headers=headers, timeout=10) as client:
        ok = client.post("/debug/v1/messages?beta=true", json=body)
        mock.default = Reply(status=400, error="bad request upstream")
        failed = client.post("/debug/v1/messages", json=body)
        refused = client.post("/debug/v1/messages", json=body, headers={"x-api-key": "wrong"})
    assert ok.status_code == 200 and "message_stop" in ok.text
    assert (
        ok.headers["x-downshift-model"] == "qwen/qwen3-coder" and ok.headers["x-downshift-role"] == "default"
    )
    assert failed.status_code == 400 and failed.headers["x-downshift-provider"] == "cheapco"
    assert refused.status_code == 401 and "x-downshift-model" not in refused.headers  # nothing routed yet

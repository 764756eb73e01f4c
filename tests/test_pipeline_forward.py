"""The forward path every proxied call takes (app.proxy.pipeline): Anthropic `count_tokens` included, so a
count gets the same fallback as a generation when its first target is down, and leaves one row that says
which target served it."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from conftest import BACKUP_KEY, PREMIUM_KEY, logged_calls

from app.core import toolcheck
from app.testing.ports import dead_url
from app.testing.script import Reply, ToolCall

COUNT_BODY = {"model": "default", "messages": [{"role": "user", "content": "how many tokens is this?"}]}


@pytest.fixture
def config_path(tmp_path: Path, mock) -> Path:  # type: ignore[no-untyped-def]
    dead = dead_url()
    path = tmp_path / "config.toml"
    path.write_text(f"""
[proxy]
host = "127.0.0.1"
port = 0

[[providers]]
name = "deadant"
base_url = "{dead}"
api = "anthropic"
kind = "anthropic"
timeouts = {{ connect = 2, first_byte = 2, idle = 2 }}

[[providers]]
name = "premium"
base_url = "{mock.base_url}/v1"
api = "anthropic"
kind = "anthropic"

[[providers]]
name = "backup"
base_url = "{mock.base_url}/v1"

[[presets]]
name = "to_anthropic"
default = "deadant/claude-sonnet-4-6"
fallback = ["premium/claude-sonnet-4-6"]

[[presets]]
name = "to_local"
default = "deadant/claude-sonnet-4-6"
fallback = ["backup/deepseek/deepseek-chat"]

[[presets]]
name = "all_dead"
default = "deadant/claude-sonnet-4-6"

[[presets]]
name = "only_premium"
default = "premium/claude-sonnet-4-6"

[[presets]]
name = "plain"
default = "backup/deepseek/deepseek-chat"

[routing]
active = "to_anthropic"
""")
    return path


def count(proxy, token: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(
        f"{proxy.url}/v1/messages/count_tokens",
        headers={"x-api-key": token, "anthropic-version": "2023-06-01"},
        json=COUNT_BODY,
        timeout=30,
    )


def use(core, preset: str) -> None:  # type: ignore[no-untyped-def]
    core.config_store.update(lambda c: c.with_active(preset))


def test_count_tokens_falls_back_to_the_next_anthropic_target(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    core.set_provider_key("premium", PREMIUM_KEY)
    r = count(proxy, token)
    assert r.status_code == 200, r.text
    assert r.json()["input_tokens"] > 0
    (asked,) = mock.requests
    assert asked.path == "/v1/messages/count_tokens" and asked.model == "claude-sonnet-4-6"
    (row,) = logged_calls(core)
    assert (row["outcome"], row["status"], row["provider"], row["attempts"]) == ("ok", 200, "premium", 2)
    first, second = orjson.loads(row["fallback_chain"])
    assert first["target"] == "deadant/claude-sonnet-4-6" and first["error_kind"] == "connect_error"
    assert second["target"] == "premium/claude-sonnet-4-6" and second["error_kind"] is None
    assert row["cost_usd"] is None and not row["input_tokens"]  # counting is free: no tokens billed


def test_count_tokens_falls_back_to_a_local_count(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    """A chat-completions fallback has no count endpoint: the request is counted locally."""
    use(core, "to_local")
    r = count(proxy, token)
    assert r.status_code == 200, r.text
    assert r.json()["input_tokens"] > 0
    assert mock.requests == []
    (row,) = logged_calls(core)
    assert (row["outcome"], row["status"], row["provider"]) == ("ok", 200, "backup")
    assert [a["error_kind"] for a in orjson.loads(row["fallback_chain"])] == ["connect_error"]


def test_count_tokens_with_every_target_down_is_a_502_in_anthropic_shape(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    use(core, "all_dead")
    r = count(proxy, token)
    assert r.status_code == 502
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error" and body["error"]["message"]
    (row,) = logged_calls(core)
    assert (row["outcome"], row["status"], row["error_kind"]) == ("error", 502, "connect_error")


@pytest.mark.parametrize("status", [404, 405, 501])
def test_count_tokens_on_a_provider_without_the_endpoint_is_counted_locally(
    proxy, mock, token, core, status
) -> None:  # type: ignore[no-untyped-def]
    """An Anthropic-compatible provider that lacks `/messages/count_tokens` (many proxies and gateways) answers
    404: Claude Code gets a local count instead of an error it cannot act on, and the row says why."""
    core.set_provider_key("premium", PREMIUM_KEY)
    mock.enqueue(Reply(status=status, error="Not Found"), endpoint="/v1/messages/count_tokens")
    use(core, "only_premium")
    r = count(proxy, token)
    assert r.status_code == 200, r.text
    assert r.json()["input_tokens"] > 0
    (asked,) = mock.requests
    assert asked.path == "/v1/messages/count_tokens"
    (row,) = logged_calls(core)
    assert (row["outcome"], row["status"], row["provider"]) == ("ok", 200, "premium")
    (attempt,) = orjson.loads(row["fallback_chain"])
    assert attempt["error_kind"] == f"http_{status}"


def test_count_tokens_refused_for_another_reason_is_still_the_providers_error(
    proxy, mock, token, core
) -> None:  # type: ignore[no-untyped-def]
    """Only a missing endpoint is counted locally: a 400 (a request the provider refuses) is passed on."""
    core.set_provider_key("premium", PREMIUM_KEY)
    mock.enqueue(Reply(status=400, error="bad count"), endpoint="/v1/messages/count_tokens")
    use(core, "only_premium")
    r = count(proxy, token)
    assert r.status_code == 400, r.text


BASH = {
    "type": "function",
    "function": {
        "name": "bash",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_declared_tools_are_read_once_per_call(proxy, mock, token, core, monkeypatch, stream) -> None:  # type: ignore[no-untyped-def]
    """The request's tools are read once per call (to compile the called tools' schemas before the answer
    goes out, then to judge the calls), not once for each."""
    use(core, "plain")
    core.set_provider_key("backup", BACKUP_KEY)
    reads: list[int] = []
    real = toolcheck.declared_openai
    monkeypatch.setattr(toolcheck, "declared_openai", lambda body: reads.append(1) or real(body))
    mock.enqueue(Reply(tool_calls=[ToolCall("bash", {"command": "ls"})]))
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "model": "default",
            "messages": [{"role": "user", "content": "ls"}],
            "tools": [BASH],
            "stream": stream,
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    (row,) = logged_calls(core)
    assert row["outcome"] == "ok" and row["tool_calls"] == 1
    assert len(reads) == 1

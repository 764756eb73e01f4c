"""The forwarding proxy over real sockets, in front of the project's mock upstream (OpenAI format)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest
from conftest import BACKUP_KEY, PROVIDER_KEY, logged_calls, proxy_config_text

from app.cli import main as cli
from app.testing.script import Fault, Reply, ToolCall, Usage

MESSAGES = [{"role": "user", "content": "list the files"}]


def post(proxy, token: str, body: dict, **kw) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=20,
        **kw,
    )


def test_routes_by_role_pattern_explicit_and_default(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    for asked in ("plan", "claude-3-5-haiku-latest", "backup/some/explicit-model", "gpt-4o"):
        r = post(proxy, token, {"model": asked, "messages": MESSAGES})
        assert r.status_code == 200, r.text
    sent = [(req.path, req.model, req.api_key) for req in mock.requests]
    assert sent == [
        ("/v1/chat/completions", "deepseek/deepseek-chat", BACKUP_KEY),
        ("/v1/chat/completions", "qwen/qwen3-coder-30b", PROVIDER_KEY),
        ("/v1/chat/completions", "some/explicit-model", BACKUP_KEY),
        ("/v1/chat/completions", "qwen/qwen3-coder", PROVIDER_KEY),
    ]
    rows = logged_calls(core)
    assert [(r["role"], r["provider"], r["upstream_model"], r["outcome"]) for r in rows] == [
        ("plan", "backup", "deepseek/deepseek-chat", "ok"),
        ("background", "cheapco", "qwen/qwen3-coder-30b", "ok"),
        (None, "backup", "some/explicit-model", "ok"),
        ("default", "cheapco", "qwen/qwen3-coder", "ok"),
    ]
    assert all(r["requested_model"] for r in rows)


def test_preset_switch_applies_to_the_next_request_without_restart(
    proxy, mock, token, config_path: Path
) -> None:  # type: ignore[no-untyped-def]
    assert post(proxy, token, {"model": "default", "messages": MESSAGES}).status_code == 200
    assert cli(["use", "flaky", "--config", str(config_path)]) == 0
    mock.enqueue(Reply(text="from backup"))
    r = post(proxy, token, {"model": "default", "messages": MESSAGES})
    assert r.status_code == 200
    # the flaky preset's target refuses connections, so its fallback served the call
    assert mock.requests[-1].model == "deepseek/deepseek-chat"
    assert r.json()["choices"][0]["message"]["content"] == "from backup"


def test_streaming_is_forwarded_chunk_by_chunk(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(
        Reply(
            text=" ".join(f"word{i}" for i in range(10)),
            stream_chunks=10,
            chunk_delay=0.08,
            usage=Usage(prompt=120, completion=10, cached=20),
        )
    )
    arrivals: list[float] = []
    events: list[bytes] = []
    start = time.perf_counter()
    with httpx.stream(
        "POST",
        f"{proxy.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": "default", "messages": MESSAGES, "stream": True},
        timeout=20,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.perf_counter() - start)
                events.append(line[6:].encode())
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == " ".join(f"word{i}" for i in range(10))
    # the client did not ask for usage: the extra usage chunk the proxy asked for is hidden
    assert all(c.get("choices") for c in chunks)
    # chunks arrived as the upstream produced them (~80 ms apart), not all at once at the end
    content_times = [
        t
        for t, c in zip(arrivals, chunks, strict=False)
        if c["choices"] and c["choices"][0]["delta"].get("content")
    ]
    assert len(content_times) == 10
    assert content_times[-1] - content_times[0] > 0.5
    gaps = [b - a for a, b in zip(content_times, content_times[1:], strict=False)]
    assert min(gaps) > 0.03, gaps
    # ... and the upstream was asked for usage, which the log has
    assert mock.requests[-1].json["stream_options"] == {"include_usage": True}
    (row,) = logged_calls(core)
    assert row["streamed"] and row["outcome"] == "ok"
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (100, 20, 10)
    assert row["ttfb_ms"] is not None and row["ttfb_ms"] < row["duration_ms"]
    assert row["cost_usd"] is not None and row["cost_usd"] > 0


def test_usage_chunk_kept_when_the_client_asked(proxy, mock, token) -> None:  # type: ignore[no-untyped-def]
    with httpx.stream(
        "POST",
        f"{proxy.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "model": "default",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        timeout=20,
    ) as r:
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    usage_chunks = [orjson.loads(x) for x in lines[:-1] if orjson.loads(x).get("usage")]
    assert len(usage_chunks) == 1 and usage_chunks[0]["choices"] == []


def test_non_streamed_usage_and_cost_from_table_and_provider(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="a", usage=Usage(prompt=1_000_000, completion=1_000_000)))
    mock.enqueue(Reply(text="b", usage=Usage(prompt=1000, completion=100), cost=0.0123))
    assert post(proxy, token, {"model": "default", "messages": MESSAGES}).status_code == 200
    assert post(proxy, token, {"model": "default", "messages": MESSAGES}).status_code == 200
    table_row, billed_row = logged_calls(core)
    assert table_row["cost_source"] == "table" and not table_row["unpriced"]
    assert (
        table_row["cost_usd"] == pytest.approx(table_row["estimated_cost_usd"])
        and table_row["cost_usd"] > 0.1
    )
    assert billed_row["cost_source"] == "provider" and billed_row["cost_usd"] == pytest.approx(0.0123)
    assert (
        billed_row["billed_cost_usd"] == pytest.approx(0.0123)
        and billed_row["estimated_cost_usd"] is not None
    )


def test_unknown_model_price_is_flagged_not_zero(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    assert (
        post(proxy, token, {"model": "backup/nobody/knows-this-model", "messages": MESSAGES}).status_code
        == 200
    )
    (row,) = logged_calls(core)
    assert row["cost_usd"] is None and row["unpriced"] and row["cost_source"] == "unpriced"


@pytest.mark.parametrize(
    "failure", [Reply(status=429, headers={"Retry-After": "1"}), Reply(status=500), Reply(status=503)]
)
def test_fallback_on_429_and_5xx(proxy, mock, token, core, failure) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(failure, Reply(text="second try"))
    r = post(proxy, token, {"model": "default", "messages": MESSAGES})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "second try"
    assert [q.model for q in mock.requests] == ["qwen/qwen3-coder", "deepseek/deepseek-chat"]
    (row,) = logged_calls(core)
    chain = orjson.loads(row["fallback_chain"])
    assert [a["target"] for a in chain] == ["cheapco/qwen/qwen3-coder", "backup/deepseek/deepseek-chat"]
    assert chain[0]["status"] == failure.status and chain[1]["status"] == 200
    assert row["attempts"] == 2 and row["provider"] == "backup"


def test_fallback_on_connect_error_then_upstream_error_reaches_client(
    proxy, mock, token, core, config_path
) -> None:  # type: ignore[no-untyped-def]
    cli(["use", "flaky", "--config", str(config_path)])
    mock.enqueue(Reply(status=400, error="bad tool schema"))
    r = post(proxy, token, {"model": "default", "messages": MESSAGES})
    # the dead target failed to connect; the fallback's own 400 reaches the client with its status
    assert r.status_code == 400 and r.json()["error"]["message"] == "bad tool schema"
    (row,) = logged_calls(core)
    chain = orjson.loads(row["fallback_chain"])
    assert chain[0]["error_kind"] == "connect_error" and chain[1]["status"] == 400
    assert row["outcome"] == "error" and row["status"] == 400


def test_all_targets_unreachable_is_a_502_in_openai_shape(proxy, token, core, config_path, mock) -> None:  # type: ignore[no-untyped-def]
    cli(["use", "flaky", "--config", str(config_path)])
    mock.enqueue(Fault("refuse"))
    r = post(proxy, token, {"model": "default", "messages": MESSAGES})
    assert r.status_code == 502 and r.json()["error"]["type"] == "server_error"
    (row,) = logged_calls(core)
    assert row["outcome"] == "error" and row["attempts"] == 2


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"x-api-key": "wrong"}])
def test_bad_or_missing_token_is_401_openai_json_and_counted(proxy, mock, core, headers) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions", json={"model": "x", "messages": MESSAGES}, headers=headers
    )
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error" and "token" in r.json()["error"]["message"]
    assert mock.requests == []
    assert logged_calls(core) == []  # refusals are counted, not logged (tests/test_refusals.py)
    assert proxy.server.refusals.total == 1


def test_x_api_key_works_too(proxy, token) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "default", "messages": MESSAGES},
        headers={"x-api-key": token},
    )
    assert r.status_code == 200


def test_bad_config_is_rejected_and_proxy_keeps_last_good(
    proxy, mock, token, config_path: Path, core
) -> None:  # type: ignore[no-untyped-def]
    errors = []
    core.events.subscribe("config_error", errors.append)
    config_path.write_text(
        proxy_config_text(mock.base_url).replace(
            'default = "cheapco/qwen/qwen3-coder"', 'default = "ghost/x"'
        )
    )
    r = post(proxy, token, {"model": "default", "messages": MESSAGES})
    assert r.status_code == 200 and mock.requests[-1].model == "qwen/qwen3-coder"
    assert errors and "unknown provider 'ghost'" in str(errors[0]) and str(config_path) in str(errors[0])


def test_keys_never_reach_the_database(proxy, mock, token, core, tmp_path) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(status=500), Reply(text="ok"))
    post(proxy, token, {"model": "default", "messages": MESSAGES})
    with httpx.stream(
        "POST",
        f"{proxy.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": "default", "messages": MESSAGES, "stream": True},
    ) as r:
        r.read()
    logged_calls(core)
    core.db.dispose()
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("log.db*"))
    assert blob  # the log exists...
    for secret in (PROVIDER_KEY, BACKUP_KEY, token):
        assert secret.encode() not in blob  # ...and holds no key or token


def test_models_lists_roles_and_targets(proxy, token) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(f"{proxy.url}/v1/models", headers={"Authorization": f"Bearer {token}"})
    ids = [m["id"] for m in r.json()["data"]]
    assert r.json()["object"] == "list"
    assert ids[:4] == ["default", "plan", "background", "subagent"]
    assert "cheapco/qwen/qwen3-coder" in ids and "premium/claude-sonnet-4-6" in ids


def test_malformed_json_is_a_400_and_logged(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    r = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        content=b"{nope",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    (row,) = logged_calls(core)
    assert row["error_kind"] == "bad_json"


def test_tool_calls_are_checked_and_logged(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "parameters": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"],
                },
            },
        }
    ]
    mock.enqueue(
        Reply(
            tool_calls=[
                ToolCall("read_file", {"path": "a.py"}),
                ToolCall("read_file", {"file": 1}),
                ToolCall("rm_rf", {}),
                ToolCall("read_file", '{"path": '),
            ],
            stream_chunks=8,
        )
    )
    with httpx.stream(
        "POST",
        f"{proxy.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": "default", "messages": MESSAGES, "tools": tools, "stream": True},
    ) as r:
        r.read()
    (row,) = logged_calls(core)
    assert (row["tool_calls"], row["tool_failures"]) == (4, 3)

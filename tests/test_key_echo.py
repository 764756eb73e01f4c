"""Provider keys never reach the log, an export, a probe result or the agent (issue 14), whatever spelling a
provider echoes them in: raw, JSON \\u-escaped, with escaped slashes, mixed, inside a JSON string inside the
JSON, in a mid-stream SSE error event, in a 200 answer's text, in headers. Over real sockets (the proxy, the
mock upstream in its echo-the-key mode) and the real CLI; the database file is read as raw bytes."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
from conftest import logged_calls

from app.cli import main as cli
from app.testing.mock_upstream import ECHO_KEY_MODES

# Keys without any well-known prefix, so only the exact-value masking can catch them; with '/' and '+'.
KEYS = {
    "cheapco": "Zq7/mT0pRk+vW3xL9nB2cY5dF8gH1jK4",
    "backup": "Qw8/eR5tY+uI2oP7aS4dF1gH6jK9lZ3x",
    "premium": "Mn4/bV7cX+zL1kJ8hG5fD2sA9pO6iU3y",
}
CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
_ESCAPED = re.compile(rb"\\+u00([0-9a-fA-F]{2})|\\+(/)|%([0-9a-fA-F]{2})")


def _decode_all(data: bytes) -> bytes:
    """Undo every escaping layer a key could hide under (repeatedly: JSON inside JSON)."""
    for _ in range(4):
        decoded = _ESCAPED.sub(
            lambda m: bytes([int(m.group(1) or m.group(3), 16)]) if m.group(2) is None else b"/", data
        )
        if decoded == data:
            break
        data = decoded
    return data


def leaked(data: bytes | str) -> list[str]:
    """The keys found in `data`, in any spelling (a fragment of 12 characters counts: a half key is a leak)."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    plain = _decode_all(raw)
    found = []
    for name, key in KEYS.items():
        for piece in (key, key[:12], key[-12:]):
            if piece.encode() in raw or piece.encode() in plain:
                found.append(f"{name}:{piece}")
                break
    return found


@pytest.fixture
def store_bodies(config_path: Path) -> Path:
    config_path.write_text(config_path.read_text() + "\n[logging]\nstore_bodies = true\n")
    return config_path


@pytest.fixture
def echo_core(store_bodies, core):  # type: ignore[no-untyped-def]
    for name, key in KEYS.items():
        core.set_provider_key(name, key)
    return core


def _requests() -> list[tuple[str, str, dict]]:
    out = []
    for stream in (False, True):
        out.append(("/v1/chat/completions", "cheap", {**CHAT, "stream": stream}))
        out.append(("/v1/messages", "cheap", {**CHAT, "max_tokens": 10, "stream": stream}))
        out.append(("/v1/responses", "cheap", {"model": "default", "input": "hi", "stream": stream}))
        out.append(("/v1/messages", "premium", {**CHAT, "max_tokens": 10, "stream": stream}))
        out.append(("/v1/chat/completions", "premium", {**CHAT, "stream": stream}))
    return out


def test_an_upstream_echoing_the_key_in_every_spelling_leaks_it_nowhere(  # type: ignore[no-untyped-def]
    echo_core, proxy, mock, token, tmp_path: Path, caplog, capsys
) -> None:
    core = echo_core
    caplog.set_level(logging.DEBUG)
    answers: list[bytes] = []
    calls = 0
    for mode in ECHO_KEY_MODES:
        mock.echo_key = mode
        for path, preset, body in _requests():
            core.config_store.update(lambda c, p=preset: c.with_active(p))
            r = httpx.post(
                f"{proxy.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            calls += 1
            answers.append(f"{mode} {path} {preset} {r.status_code} {dict(r.headers)}\n".encode() + r.content)
    assert mock.requests and all(
        req.api_key in KEYS.values() for req in mock.requests
    )  # keys went where they belong
    rows = logged_calls(core)
    assert len(rows) == calls
    assert any(r["outcome"] == "ok" for r in rows) and any(r["error_message"] for r in rows)

    # the agent's answers, the CLI's views and exports
    outputs: dict[str, bytes] = {f"answer {i}": a for i, a in enumerate(answers)}
    args = ["--config", str(core.config_path), "--db", core.db_url]
    capsys.readouterr()
    for command in (
        ["calls", "--json", "--limit", "1000"],
        ["calls", "--limit", "1000"],
        ["stats", "--json"],
    ):
        assert cli([*command, *args]) == 0
        outputs[" ".join(command)] = capsys.readouterr().out.encode()
    from app.core.queries.calls import call_detail

    for row in rows:  # what the Calls page shows: the error, the fallback chain, the tool calls, the bodies
        outputs[f"detail {row['call_id']}"] = orjson.dumps(call_detail(core.db, row["call_id"]), default=str)
    for fmt in ("csv", "json"):
        out = tmp_path / f"calls.{fmt}"
        assert cli(["export", "calls", "--format", fmt, "--out", str(out), *args]) == 0
        outputs[f"export {fmt}"] = out.read_bytes()
    assert b"Incorrect API key provided" in outputs["export csv"]  # the errors are there, the keys are not

    # the database file itself, read raw (and its WAL)
    core.writer.flush()
    db_path = Path(core.db_url.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-journal"):
        f = db_path.with_name(db_path.name + suffix)
        if f.exists():
            outputs[f"file {f.name}"] = f.read_bytes()
    outputs["logs"] = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    ).encode()
    problems = {name: leaked(data) for name, data in outputs.items() if leaked(data)}
    for name in problems:
        print("LEAK", name, outputs[name][:3000])
    assert not problems, problems


def test_probe_results_and_model_listing_errors_leak_no_key(echo_core, mock, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from app.core.provider_models import ProviderCheckError, fetch_models

    core = echo_core
    args = ["--config", str(core.config_path), "--db", core.db_url]
    outputs: dict[str, bytes] = {}
    for mode in ECHO_KEY_MODES:
        mock.echo_key = mode
        for target in ("cheapco/qwen/qwen3-coder", "premium/claude-sonnet-4-6"):
            capsys.readouterr()
            assert cli(["probe", target, "--json", *args]) == 1  # every probe fails: the provider refuses
            outputs[f"probe {mode} {target}"] = capsys.readouterr().out.encode()
            assert cli(["probe", target, *args]) == 1
            outputs[f"probe table {mode} {target}"] = capsys.readouterr().out.encode()
        for name in KEYS:
            provider = core.config.providers[name]
            with pytest.raises(ProviderCheckError) as err:
                fetch_models(provider, KEYS[name])
            outputs[f"models {mode} {name}"] = str(err.value).encode()
    assert any(b"Incorrect API key provided" in v for k, v in outputs.items() if k.startswith("models"))
    core.writer.flush()
    db_path = Path(core.db_url.removeprefix("sqlite:///"))
    for suffix in ("", "-wal"):
        f = db_path.with_name(db_path.name + suffix)
        if f.exists():
            outputs[f"file {f.name}"] = f.read_bytes()
    with core.db.connect() as conn:
        details = [r[0] for r in conn.exec_driver_sql("SELECT detail FROM probe_results") if r[0]]
    assert details and any("request failed" in d for d in details)
    problems = {name: leaked(data) for name, data in outputs.items() if leaked(data)}
    assert not problems, problems


def test_redaction_stays_off_the_success_path(proxy, mock, token, core, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Successful answers never run the pattern redaction on the event loop (only the log writer's thread does,
    for stored bodies); they pay only the literal search for the exact keys, microseconds per 64 KB."""
    from app.core import redact as redaction
    from app.core.redact import known_secrets, scrub_known

    threads: list[str] = []
    real = redaction._mask_patterns

    def spy(data: bytes, pause=None) -> bytes:  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return real(data, pause)

    monkeypatch.setattr(redaction, "_mask_patterns", spy)
    h = {"Authorization": f"Bearer {token}"}
    for stream in (False, True):
        for _ in range(5):
            assert (
                httpx.post(
                    f"{proxy.url}/v1/chat/completions", json={**CHAT, "stream": stream}, headers=h
                ).status_code
                == 200
            )
            r = httpx.post(
                f"{proxy.url}/v1/messages", json={**CHAT, "max_tokens": 10, "stream": stream}, headers=h
            )
            assert r.status_code == 200
    logged_calls(core)
    assert "downshift-proxy" not in threads, threads

    # what the proxy searches a successful answer for: the serving provider's key and the local token
    body = orjson.dumps(
        {"choices": [{"message": {"content": "def f(x):\n    return x < 2 and 'ok'\n" * 1800}}]}
    )
    assert 60_000 < len(body) < 70_000
    secrets = known_secrets([KEYS["cheapco"].encode(), token.encode()])
    assert scrub_known(body.replace(b"def f", KEYS["cheapco"].encode()), secrets).count(b"[REDACTED]") == 1800
    timings = []
    for _ in range(200):  # the fastest of many runs: what it costs, not how busy the shared machine is
        start = time.perf_counter()
        assert scrub_known(body, secrets) is body  # nothing to mask: the same bytes, no copy
        timings.append(time.perf_counter() - start)
    per_64k_us = min(timings) * 1e6
    assert per_64k_us < 100, per_64k_us  # ~30 us on the shared 2-core machine (orjson.loads of it: ~25 us)


def test_redaction_lives_in_the_core() -> None:
    """The log writer (core) masks with the core's module, not the proxy's (layering; the old path still works)."""
    import ast

    from app.core import redact as core_redact
    from app.proxy import accounting

    root = Path(__file__).resolve().parent.parent
    for module in ("app/core/redact.py", "app/core/storage/writer.py", "app/core/provider_models.py"):
        tree = ast.parse((root / module).read_text())
        imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        assert not [m for m in imported if m.startswith("app.proxy")], module
    assert accounting.redact is core_redact.redact and accounting.redact_text is core_redact.redact_text
    assert accounting.REDACTED == core_redact.REDACTED == b"[REDACTED]"


def test_a_failed_tool_results_reason_is_stored_masked(echo_core, proxy, mock, token) -> None:  # type: ignore[no-untyped-def]
    """A failing tool's output is kept as the reason its call failed: `env` or a curl error can print the
    local token or a provider key there (Claude Code's shell has ANTHROPIC_AUTH_TOKEN in its environment)."""
    from app.testing.script import Reply, ToolCall

    headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
    tool = {"name": "bash", "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}}}
    mock.enqueue(Reply(tool_calls=[ToolCall("bash", {"cmd": "env"})]), Reply(text="done"))
    first = httpx.post(
        f"{proxy.url}/v1/messages",
        headers=headers,
        timeout=20,
        json={
            "model": "default",
            "max_tokens": 100,
            "tools": [tool],
            "messages": [{"role": "user", "content": "env"}],
        },
    )
    use = next(b for b in first.json()["content"] if b["type"] == "tool_use")
    output = f"env: exited 1: ANTHROPIC_AUTH_TOKEN={token} CHEAPCO={KEYS['cheapco']}"
    messages = [
        {"role": "user", "content": "env"},
        {"role": "assistant", "content": [use]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": use["id"], "is_error": True, "content": output}
            ],
        },
    ]
    assert (
        httpx.post(
            f"{proxy.url}/v1/messages",
            headers=headers,
            timeout=20,
            json={"model": "default", "max_tokens": 100, "tools": [tool], "messages": messages},
        ).status_code
        == 200
    )
    logged_calls(echo_core)
    echo_core.writer.flush()
    with echo_core.db.connect() as conn:
        from sqlalchemy import text

        reasons = [
            r for (r,) in conn.execute(text("SELECT result_reason FROM tool_calls WHERE result_failed"))
        ]
    assert reasons and all(token not in r and not leaked(r) for r in reasons), reasons

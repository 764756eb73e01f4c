"""The command line, run in-process as a user would type it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import PROVIDER_KEY, logged_calls

from app.cli import main as cli
from app.testing.ports import free_port
from app.testing.script import Reply, ToolCall, Usage


def run(capsys, *args: str) -> str:  # type: ignore[no-untyped-def]
    assert cli(list(args)) == 0
    return capsys.readouterr().out


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("downshift 0.")


def test_python_m_app_cli_still_runs_the_cli() -> None:
    """app/cli.py ran as `python -m app.cli`; the package it became keeps that working."""
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("downshift 0.")


def test_env_formats_and_agents_never_print_provider_keys(capsys, config_path: Path, core) -> None:  # type: ignore[no-untyped-def]
    token = core.token()
    bash = run(capsys, "env", "--config", str(config_path))
    assert (
        f"export OPENAI_API_KEY='{token}'" in bash
        and "export OPENAI_BASE_URL='http://127.0.0.1:0/v1'" in bash
    )
    claude = json.loads(
        run(capsys, "--config", str(config_path), "env", "--agent", "claude-code", "--format", "json")
    )
    assert claude["ANTHROPIC_AUTH_TOKEN"] == token and claude["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:0"
    assert (
        claude["ANTHROPIC_DEFAULT_OPUS_MODEL"],
        claude["ANTHROPIC_DEFAULT_SONNET_MODEL"],
        claude["ANTHROPIC_DEFAULT_HAIKU_MODEL"],
        claude["CLAUDE_CODE_SUBAGENT_MODEL"],
    ) == ("plan", "default", "background", "subagent")
    fish = run(capsys, "env", "--config", str(config_path), "--format", "fish", "--agent", "aider")
    assert f"set -gx OPENAI_API_KEY '{token}'" in fish
    ps = run(capsys, "env", "--config", str(config_path), "--format", "powershell")
    assert f"$env:OPENAI_API_KEY = '{token}'" in ps
    dotenv = run(capsys, "env", "--config", str(config_path), "--format", "dotenv", "--agent", "codex")
    assert f"DOWNSHIFT_API_KEY={token}" in dotenv and 'wire_api = "responses"' in dotenv
    for text in (bash, fish, ps, dotenv, json.dumps(claude)):
        assert PROVIDER_KEY not in text


def test_eval_env_in_a_real_shell(capsys, config_path: Path, core) -> None:  # type: ignore[no-untyped-def]
    script = run(capsys, "env", "--config", str(config_path), "--agent", "claude-code")
    out = subprocess.run(
        ["bash", "-c", script + '\necho "$ANTHROPIC_DEFAULT_HAIKU_MODEL|$ANTHROPIC_AUTH_TOKEN"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"background|{core.token()}"


def test_use_presets_providers(capsys, config_path: Path, core) -> None:  # type: ignore[no-untyped-def]
    assert "active preset: premium" in run(capsys, "use", "premium", "--config", str(config_path))
    presets = json.loads(run(capsys, "presets", "--json", "--config", str(config_path)))
    assert [p["name"] for p in presets if p["active"]] == ["premium"]
    table = run(capsys, "presets", "--config", str(config_path))
    assert "premium/claude-sonnet-4-6" in table and "PRESET" in table
    providers = json.loads(run(capsys, "providers", "--json", "--config", str(config_path)))
    assert {p["name"]: p["key"] for p in providers}["cheapco"] == "set"
    assert {p["name"]: p["key"] for p in providers}["deadco"] == "missing"
    assert cli(["use", "nope", "--config", str(config_path)]) == 2
    assert "no preset named 'nope'" in capsys.readouterr().err


def test_calls_stats_export(capsys, proxy, mock, token, core, config_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(
        Reply(text="hi", usage=Usage(prompt=500, completion=50)),
        Reply(tool_calls=[ToolCall("nope", {})], usage=Usage(prompt=400, completion=20)),
    )
    for _ in range(2):
        httpx.post(
            f"{proxy.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "model": "default",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [
                    {"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}
                ],
            },
        )
    logged_calls(core)
    db = core.db_url
    common = ["--config", str(config_path), "--db", db]
    calls = json.loads(run(capsys, "calls", "--json", *common))
    assert len(calls) == 2 and {c["upstream_model"] for c in calls} == {"qwen/qwen3-coder"}
    assert "SERVED BY" in run(capsys, "calls", *common)
    stats = json.loads(run(capsys, "stats", "--json", "--since", "1h", *common))
    assert (
        stats["total"]["calls"] == 2
        and stats["total"]["tool_calls"] == 1
        and stats["total"]["tool_failure_rate"] == 1.0
    )
    assert stats["models"][0]["model"] == "qwen/qwen3-coder"
    assert "tool-call failure rate 100.0%" in run(capsys, "stats", *common)
    out = tmp_path / "calls.csv"
    run(capsys, "export", "calls", "--format", "csv", "--out", str(out), *common)
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("id,call_id,started_at")
    exported = json.loads(run(capsys, "export", "calls", "--format", "json", *common))
    assert [c["call_id"] for c in exported] == [c["call_id"] for c in reversed(calls)]
    assert PROVIDER_KEY not in out.read_text()


def test_bad_since_is_a_clear_error(capsys, config_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli(["stats", "--since", "yesterday-ish", "--config", str(config_path)]) == 2
    assert "cannot read 'yesterday-ish' as a time" in capsys.readouterr().err


def test_key_set_reads_stdin_and_lands_in_keyring(
    monkeypatch, capsys, config_path: Path, memory_keyring
) -> None:  # type: ignore[no-untyped-def]
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("sk-from-stdin-123\n"))
    assert cli(["key", "set", "backup", "--config", str(config_path)]) == 0
    assert memory_keyring.store[("downshift", "provider:backup")] == "sk-from-stdin-123"
    assert "sk-from-stdin" not in config_path.read_text()
    assert cli(["key", "set", "ghost", "--config", str(config_path)]) == 2


@pytest.mark.timeout(60)
def test_serve_headless_subprocess(tmp_path: Path, mock, config_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os
    import time

    port = free_port()
    env = {**os.environ, "DOWNSHIFT_TOKEN": "tok-serve-test-123"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "serve",
            "--config",
            str(config_path),
            "--db",
            f"sqlite:///{tmp_path / 'serve.db'}",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert f"proxy on http://127.0.0.1:{port}" in line
        deadline = time.time() + 10
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health")
                break
            except httpx.ConnectError:
                assert time.time() < deadline
                time.sleep(0.05)
        assert r.json()["status"] == "ok"
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"Authorization": "Bearer tok-serve-test-123"},
            json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 200
    finally:
        proc.terminate()
        stderr = proc.communicate(timeout=10)[1]  # reads and closes both pipes
    assert proc.returncode == 0, stderr


def test_bad_config_is_one_line_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[proxy\nport = 1\n")
    for command in (["serve", "--port", "0"], ["stats"], ["presets"], ["env"]):
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "app",
                *command,
                "--config",
                str(bad),
                "--db",
                f"sqlite:///{tmp_path / 'x.db'}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 2, (command, run.stderr)
        assert "Traceback" not in run.stderr and "is not valid TOML" in run.stderr and str(bad) in run.stderr


def test_prices_refresh_from_a_providers_model_list(capsys, mock, config_path: Path, core) -> None:  # type: ignore[no-untyped-def]
    from app import paths
    from app.core import price_table

    mock.models = [
        {
            "id": "acme/coder-9000",
            "object": "model",
            "pricing": {"prompt": "0.0000005", "completion": "0.000002"},
        }
    ]
    try:
        out = run(capsys, "prices", "refresh", "--provider", "cheapco", "--config", str(config_path))
        assert "1 prices updated" in out and str(paths.data_dir() / "prices.json") in out
        assert mock.requests[-1].path == "/v1/models" and mock.requests[-1].api_key == PROVIDER_KEY
        refreshed = price_table.load_table(paths.data_dir() / "prices.json").lookup("acme/coder-9000")
        assert refreshed is not None and (refreshed.input, refreshed.output) == (0.5, 2.0)
        assert cli(["prices", "refresh", "--provider", "ghost", "--config", str(config_path)]) == 2
    finally:
        price_table.set_default_table(None)  # the next test reads the packaged table again

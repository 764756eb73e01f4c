"""Optional comparison targets, run against the same mock by the same load generator: LiteLLM's proxy and
claude-code-router. Each is installed on first use into `bench/.venvs/` (never into the project's
environment) and skipped with a printed reason when it cannot be installed or started.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import PROXY_CPU, VENVS, Skip, free_port, kill_tree, log, pinned, popen, wait_http

LITELLM_KEY = "sk-litellm-bench-0123456789"
CCR_KEY = "ccr-bench-0123456789"


@dataclass
class Peer:
    """A started comparison proxy: where it listens, which client paths it serves, how to stop it."""

    name: str
    version: str
    base_url: str
    proc: subprocess.Popen[Any]
    headers: dict[str, dict[str, str]]  # per path: the auth headers it wants
    paths: dict[str, str]  # our path name -> URL path on this peer
    models: dict[str, str] = field(default_factory=dict)  # our path name -> model to request

    def stop(self) -> None:
        kill_tree(self.proc)


def _run(cmd: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


# ----------------------------------------------------------------------------------------------- the floor


def start_relay(mock_url: str, work: Path, env: dict[str, str], key: str) -> Peer | Skip:
    """bench/bare_relay.py: aiohttp in and out, bytes through, nothing else (always available)."""
    import importlib.metadata
    import sys

    from bench.common import ROOT

    port = free_port()
    logf = open(work / "relay.log", "wb")  # noqa: SIM115
    proc = popen(
        pinned(
            [
                sys.executable,
                "-m",
                "bench.bare_relay",
                "--upstream",
                mock_url,
                "--port",
                str(port),
                "--key",
                key,
            ],
            PROXY_CPU,
        ),
        stdout=logf,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 30, proc, interval=0.02, ok=lambda s: s == 200)
    except (TimeoutError, RuntimeError) as exc:
        kill_tree(proc)
        return Skip("bare relay", f"did not start: {exc}")
    version = f"aiohttp {importlib.metadata.version('aiohttp')}"
    none: dict[str, str] = {}
    return Peer(
        "bare aiohttp relay (floor)",
        version,
        f"http://127.0.0.1:{port}",
        proc,
        headers={"openai": none, "anthropic": none},
        paths={"openai": "/v1/chat/completions", "anthropic": "/v1/messages"},
    )


# ----------------------------------------------------------------------------------------------- LiteLLM


def ensure_litellm() -> tuple[Path, str] | Skip:
    venv = VENVS / "litellm"
    exe = venv / "bin" / "litellm"
    py = venv / "bin" / "python"
    try:
        if not exe.exists():
            log("installing LiteLLM into bench/.venvs/litellm (first --compare run only; a few minutes)")
            base = shutil.which("python3") or shutil.which("python")
            if base is None:
                return Skip("litellm", "no python3 on PATH to create its virtual environment")
            r = _run([base, "-m", "venv", str(venv)], 120)
            if r.returncode != 0:
                return Skip("litellm", f"venv creation failed: {r.stderr.strip()[-300:]}")
            r = _run([str(py), "-m", "pip", "install", "-q", "litellm[proxy]"], 1200)
            if r.returncode != 0 or not exe.exists():
                return Skip(
                    "litellm", f"pip install 'litellm[proxy]' failed: {(r.stderr or r.stdout).strip()[-400:]}"
                )
        r = _run([str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"], 60)
        return exe, r.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Skip("litellm", f"install failed: {exc}")


def start_litellm(
    mock_url: str, work: Path, env: dict[str, str], upstream_model: str, models: dict[str, str]
) -> Peer | Skip:
    found = ensure_litellm()
    if isinstance(found, Skip):
        return found
    exe, version = found
    port = free_port()
    # One deployment per model the agents ask for, all pointing at the mock through LiteLLM's OpenAI client
    # (the same upstream model Downshift routes to); /v1/messages requests are translated by LiteLLM.
    lines = ["model_list:"]
    for requested in sorted(set(models.values())):
        lines += [
            f'  - model_name: "{requested}"',
            "    litellm_params:",
            f'      model: "openai/{upstream_model}"',
            f'      api_base: "{mock_url}/v1"',
            '      api_key: "sk-mock-upstream-key"',
        ]
    lines += [
        "litellm_settings:",
        "  drop_params: true",
        "  turn_off_message_logging: true",
        "general_settings:",
        f'  master_key: "{LITELLM_KEY}"',
    ]
    cfg = work / "litellm.yaml"
    cfg.write_text("\n".join(lines) + "\n")
    penv = {
        **env,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",
        "DISABLE_ADMIN_UI": "True",
        "NO_DOCS": "True",
        "TOKENIZERS_PARALLELISM": "false",
        # /v1/messages to an OpenAI deployment: chat completions (like the other proxies), not the Responses API
        "LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES": "True",
    }
    penv.pop("DATABASE_URL", None)
    logf = open(work / "litellm.log", "wb")  # noqa: SIM115
    proc = popen(
        pinned(
            [
                str(exe),
                "--config",
                str(cfg),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ],
            PROXY_CPU,
        ),
        stdout=logf,
        stderr=subprocess.STDOUT,
        env=penv,
        cwd=work,
        start_new_session=True,
    )
    try:
        wait_http(
            f"http://127.0.0.1:{port}/health/liveliness", 120, proc, interval=0.1, ok=lambda s: s == 200
        )
    except (TimeoutError, RuntimeError) as exc:
        kill_tree(proc)
        tail = (work / "litellm.log").read_text(errors="replace")[-400:]
        return Skip("litellm", f"LiteLLM {version} did not start: {exc}; log tail: {tail}")
    auth = {"Authorization": f"Bearer {LITELLM_KEY}"}
    return Peer(
        "LiteLLM",
        version,
        f"http://127.0.0.1:{port}",
        proc,
        headers={"openai": auth, "gateway": {"x-api-key": LITELLM_KEY}},
        paths={"openai": "/v1/chat/completions", "gateway": "/v1/messages"},
        models=models,
    )


# ----------------------------------------------------------------------------------------------- claude-code-router

CCR_PACKAGE = "@musistudio/claude-code-router"


def ensure_ccr() -> tuple[Path, str] | Skip:
    prefix = VENVS / "ccr"
    pkg = prefix / "node_modules" / "@musistudio" / "claude-code-router"
    cli = pkg / "dist" / "cli.js"
    node = shutil.which("node")
    if node is None:
        return Skip("claude-code-router", "node is not installed")
    try:
        if not cli.exists():
            npm = shutil.which("npm")
            if npm is None:
                return Skip("claude-code-router", "npm is not installed")
            log("installing claude-code-router into bench/.venvs/ccr (first --compare run only)")
            prefix.mkdir(parents=True, exist_ok=True)
            r = _run([npm, "install", "--no-fund", "--no-audit", "--prefix", str(prefix), CCR_PACKAGE], 600)
            if r.returncode != 0 or not cli.exists():
                return Skip(
                    "claude-code-router", f"npm install failed: {(r.stderr or r.stdout).strip()[-400:]}"
                )
        version = json.loads((pkg / "package.json").read_text()).get("version", "unknown")
        return cli, version
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return Skip("claude-code-router", f"install failed: {exc}")


def start_ccr(mock_url: str, work: Path, env: dict[str, str], upstream_model: str) -> Peer | Skip:
    found = ensure_ccr()
    if isinstance(found, Skip):
        return found
    cli, version = found
    port = free_port()
    home = work / "ccr-home"
    (home / ".claude-code-router").mkdir(parents=True, exist_ok=True)
    config = {
        "LOG": False,
        "HOST": "127.0.0.1",
        "PORT": port,
        "APIKEY": CCR_KEY,
        "API_TIMEOUT_MS": 120000,
        "NON_INTERACTIVE_MODE": True,
        "Providers": [
            {
                "name": "mock",
                "api_base_url": f"{mock_url}/v1/chat/completions",
                "api_key": "sk-mock-upstream-key",
                "models": [upstream_model],
            }
        ],
        "Router": {"default": f"mock,{upstream_model}", "background": f"mock,{upstream_model}"},
    }
    (home / ".claude-code-router" / "config.json").write_text(json.dumps(config, indent=1))
    penv = {**env, "HOME": str(home), "NODE_ENV": "production"}
    logf = open(work / "ccr.log", "wb")  # noqa: SIM115
    node = shutil.which("node") or "node"
    proc = popen(
        pinned([node, str(cli), "start"], PROXY_CPU),
        stdout=logf,
        stderr=subprocess.STDOUT,
        env=penv,
        cwd=home,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 60, proc, interval=0.05, ok=lambda s: s == 200)
    except (TimeoutError, RuntimeError) as exc:
        kill_tree(proc)
        tail = (work / "ccr.log").read_text(errors="replace")[-400:]
        return Skip(
            "claude-code-router", f"claude-code-router {version} did not start: {exc}; log tail: {tail}"
        )
    return Peer(
        "claude-code-router",
        version,
        f"http://127.0.0.1:{port}",
        proc,
        headers={"gateway": {"x-api-key": CCR_KEY}},
        paths={"gateway": "/v1/messages"},
    )


def node_version() -> str | None:
    node = shutil.which("node")
    if not node:
        return None
    try:
        return _run([node, "--version"], 10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None

"""Downshift's benchmark suite: one command, results in `docs/benchmarks.md` and `bench/out/`.

    python -m bench              # full run (about 6 minutes on 2 cores), writes docs/benchmarks.md
    python -m bench --compare    # also LiteLLM and claude-code-router, installed into bench/.venvs/
    python -m bench --smoke      # every scenario kind end to end with tiny counts (CI, a few seconds)

Layout of a run (see docs/benchmarks.md, "Method"):
- the project's mock upstream (`bench/mock_server.py`, MockUpstream on uvloop) and the load generator
  (`bench/loadgen.py`, aiohttp on uvloop) run as separate processes pinned to CPU 1, the proxy under test
  (`python -m app serve`, or a peer) pinned to CPU 0 (`taskset`);
- every scenario (client API x body size x answer shape x concurrency) is measured directly against the mock
  and through each proxy by the same load generator with the same body, so added latency = proxy - direct;
- the proxy's CPU seconds per call come from psutil cpu_times of its process around each measured phase;
- the call log writer, the headless start and the GUI start are measured on their own.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.common import (
    DRIVER_CPU,
    PROXY_CPU,
    PYTHON,
    ROOT,
    LineProcess,
    Skip,
    can_pin,
    free_port,
    log,
    pin_self,
    pinned,
    popen,
    stop_process,
    wait_http,
)

TOKEN = "ds-bench-local-token-0123456789abcdef"
UPSTREAM_KEY = "sk-bench-upstream-0123456789abcdef"
UPSTREAM_MODEL = "qwen/qwen3-coder"

# Client paths: what the agent speaks, where it sends it, the model it asks for, how its stream ends.
PATHS: dict[str, dict[str, str]] = {
    "openai": {
        "api": "openai",
        "url": "/v1/chat/completions",
        "model": "deepseek/deepseek-chat-v3.1",
        "title": "OpenAI chat completions -> OpenAI-format provider (passthrough)",
    },
    "anthropic": {
        "api": "anthropic",
        "url": "/v1/messages",
        "model": "claude-sonnet-4-6",
        "title": "Anthropic Messages -> Anthropic-format provider (passthrough)",
    },
    "gateway": {
        "api": "anthropic",
        "url": "/v1/messages",
        "model": "claude-haiku-4-5",
        "title": "Anthropic Messages -> OpenAI-format provider (translated: Claude Code on a cheap model)",
    },
    "responses": {
        "api": "responses",
        "url": "/v1/responses",
        "model": "gpt-5-codex",
        "title": "OpenAI Responses -> OpenAI-format provider (translated: Codex CLI on a cheap model)",
    },
}
# The direct baseline of each path: the mock in the client's own format (it renders the same reply).
DIRECT_OF = {"openai": "openai", "anthropic": "anthropic", "gateway": "anthropic", "responses": "openai"}

SHAPES: dict[str, dict[str, Any]] = {
    "ns": {"stream": False, "chunks": 20, "tool_call": False, "title": "whole answer"},
    "s20": {"stream": True, "chunks": 20, "tool_call": False, "title": "20 chunks"},
    "s200": {"stream": True, "chunks": 200, "tool_call": False, "title": "200 chunks"},
    "ns_tool": {"stream": False, "chunks": 20, "tool_call": True, "title": "whole answer + tool call"},
    "s20_tool": {"stream": True, "chunks": 20, "tool_call": True, "title": "20 chunks + tool call"},
}
NOISY = 0.15  # a run is noisy when our processes spent more than this share of their time waiting for a CPU


def noise_of(res: dict[str, Any]) -> float:
    """How much other processes got in the way: the larger share of time the proxy (or the mock and load
    generator) spent runnable but waiting for its CPU; falls back to other processes' share of our cores."""
    share = res.get("runqueue_wait_share") or {}
    vals = [v for v in share.values() if v is not None]
    if vals:
        return max(vals)
    return max(res.get("foreign_load") or [0.0])


SIZES = {30: {"tools": 10, "turns": 12}, 300: {"tools": 40, "turns": 60}}  # KiB -> agent_traffic knobs


@dataclass(frozen=True)
class Case:
    path: str
    size_kb: int
    shape: str
    concurrency: int

    @property
    def key(self) -> str:
        return f"{self.path}-{self.size_kb}k-{self.shape}-c{self.concurrency}"


@dataclass(frozen=True)
class Settings:
    smoke: bool
    warmup_s: float
    duration_s: dict[str, float]  # per shape kind: ns / s20 / s200
    chunk_delay_ms: float
    quiet_poll_s: float
    log_burst: int
    log_rate: int
    log_seconds: float
    start_repeats: int


FULL = Settings(
    smoke=False,
    warmup_s=0.4,
    duration_s={"ns": 2.0, "s20": 2.0, "s200": 3.0},
    chunk_delay_ms=2.0,
    quiet_poll_s=0.05,
    log_burst=30_000,
    log_rate=5_000,
    log_seconds=4.0,
    start_repeats=3,
)
SMOKE = Settings(
    smoke=True,
    warmup_s=0.0,
    duration_s={"ns": 0.0, "s20": 0.0, "s200": 0.0},
    chunk_delay_ms=0.1,
    quiet_poll_s=0.02,
    log_burst=400,
    log_rate=500,
    log_seconds=0.3,
    start_repeats=1,
)


def cases(smoke: bool) -> list[Case]:
    out: list[Case] = []
    for size in (30, 300):
        for shape in ("ns", "s20", "s200"):
            out += [Case("openai", size, shape, c) for c in (1, 8, 32)]
    for path in ("anthropic", "gateway"):
        for shape in ("ns", "s20"):
            out += [Case(path, 30, shape, c) for c in (1, 8, 32)]
        out += [Case(path, 30, "s200", 1), Case(path, 300, "ns", 1), Case(path, 300, "s20", 1)]
    for shape in (
        "ns",
        "s20",
    ):  # the Responses gateway (Codex CLI): not a target of issue 6 yet, measured anyway
        out += [Case("responses", 30, shape, c) for c in (1, 8, 32)] + [Case("responses", 300, shape, 1)]
    for path in ("openai", "gateway"):
        out += [Case(path, 30, "ns_tool", 1), Case(path, 30, "s20_tool", 1)]
    if smoke:  # every path, size and answer shape once at c=1; higher concurrency on one case per path
        out = [c for c in out if c.concurrency == 1 or (c.size_kb == 30 and c.shape == "s20")]
        out = [c for c in out if c.concurrency == 1 or c.path == "openai" or c.concurrency == 8]
    return out


# Comparison peers are measured on the cases that matter for an agent turn, where they serve the path.
COMPARE_CASES = [
    Case(p, 30, s, c) for p in ("openai", "anthropic", "gateway") for c in (1, 32) for s in ("ns", "s20")
]
SMOKE_COMPARE_CASES = [Case(p, 30, s, 1) for p in ("openai", "anthropic", "gateway") for s in ("ns", "s20")]


# ----------------------------------------------------------------------------------------------- the harness


def config_text(mock_url: str, port: int) -> str:
    """Downshift's config for the run: realistic routing (preset default, patterns) to the mock."""
    return f"""
[proxy]
host = "127.0.0.1"
port = {port}

[[providers]]
name = "cheap"
base_url = "{mock_url}/v1"
api = "openai"
kind = "openrouter"
api_key_env = "BENCH_UPSTREAM_KEY"

[[providers]]
name = "claude"
base_url = "{mock_url}/v1"
api = "anthropic"
kind = "anthropic"
api_key_env = "BENCH_UPSTREAM_KEY"

[[presets]]
name = "bench"
default = "cheap/{UPSTREAM_MODEL}"
plan = "claude/claude-sonnet-4-5"
background = "cheap/{UPSTREAM_MODEL}"
patterns = {{ "claude-sonnet*" = "plan", "*haiku*" = "background" }}

[[presets]]
name = "premium"
default = "claude/claude-sonnet-4-5"

[routing]
active = "bench"
premium = "premium"
"""


class Harness:
    """The mock and the load generator (CPU 1), scratch dirs, request bodies, and the env of every child."""

    def __init__(self, out: Path, settings: Settings) -> None:
        self.settings = settings
        self.out = out
        self.work = out / "work"
        if self.work.exists():
            shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        home = self.work / "home"
        self.env = dict(os.environ)
        for var, sub in (
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_DATA_HOME", "data"),
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_STATE_HOME", "state"),
        ):
            (home / sub).mkdir(parents=True, exist_ok=True)
            self.env[var] = str(home / sub)
        for var in (
            "DOWNSHIFT_CONFIG",
            "DOWNSHIFT_DB_URL",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "http_proxy",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        ):
            self.env.pop(var, None)
        self.env.update(
            {
                "DOWNSHIFT_TOKEN": TOKEN,
                "BENCH_UPSTREAM_KEY": UPSTREAM_KEY,
                "PYTHONPATH": str(ROOT),
                "NO_PROXY": "127.0.0.1,localhost",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        self.bodies: dict[tuple[str, int, bool], Path] = {}
        self.mock: LineProcess | None = None
        self.loadgen: LineProcess | None = None
        self._reply: dict[str, Any] | None = None
        self.direct_cache: dict[tuple[str, int, str, int], dict[str, Any]] = {}
        self.retry_budget = 0 if settings.smoke else 15

    def __enter__(self) -> Harness:
        self.mock = LineProcess(
            pinned([PYTHON, "-m", "bench.mock_server"], DRIVER_CPU),
            env=self.env,
            name="mock",
            stderr_path=self.work / "mock.log",
        )
        self.mock_url = f"http://127.0.0.1:{self.mock.hello['port']}"
        self.loadgen = LineProcess(
            pinned([PYTHON, "-m", "bench.loadgen"], DRIVER_CPU),
            env=self.env,
            name="loadgen",
            stderr_path=self.work / "loadgen.log",
        )
        return self

    def __exit__(self, *exc: object) -> None:
        for p in (self.loadgen, self.mock):
            if p is not None:
                p.close()

    def body(self, path: str, size_kb: int, stream: bool) -> Path:
        key = (path, size_kb, stream)
        if key not in self.bodies:
            import orjson

            from app.testing.agent_traffic import anthropic_agent_request, openai_agent_request

            knobs = SIZES[size_kb]
            model = PATHS[path]["model"]
            if PATHS[path]["api"] == "openai":
                data = openai_agent_request(size_kb, knobs["tools"], knobs["turns"], stream, model=model)
            elif PATHS[path]["api"] == "responses":
                data = responses_body(
                    openai_agent_request(size_kb, knobs["tools"], knobs["turns"], stream), model
                )
            else:
                data = anthropic_agent_request(size_kb, knobs["tools"], knobs["turns"], stream, model=model)
            file = self.work / "bodies" / f"{path}-{size_kb}k-{'stream' if stream else 'whole'}.json"
            file.parent.mkdir(exist_ok=True)
            file.write_bytes(orjson.dumps(data))
            self.bodies[key] = file
        return self.bodies[key]

    def set_reply(self, shape: str) -> None:
        spec = SHAPES[shape]
        reply = {
            "cmd": "reply",
            "chunks": spec["chunks"],
            "tool_call": spec["tool_call"],
            "text_chars": 1200,
            "chunk_delay_ms": self.settings.chunk_delay_ms if spec["stream"] else 0.0,
        }
        if reply != self._reply:
            assert self.mock is not None
            self.mock.call(reply)
            self._reply = reply

    def measure(
        self,
        case: Case,
        url: str,
        headers: dict[str, str],
        target_pids: list[int],
        body_path: str | None = None,
        direct: bool = False,
        warmup_s: float | None = None,
    ) -> dict[str, Any]:
        """One scenario against one target (a proxy, or the mock itself for the direct baseline). A run
        during which other processes used much of our two cores is repeated (within a budget), and the
        quietest attempt kept; its `foreign_load` says how noisy it still was."""
        assert self.loadgen is not None and self.mock is not None
        shape = SHAPES[case.shape]
        self.set_reply(case.shape)
        kind = case.shape.split("_")[0] if case.shape.startswith("s") else "ns"
        s = self.settings
        api = PATHS[case.path]["api"]
        hdrs = {"Content-Type": "application/json", **headers}
        if api == "anthropic":
            hdrs.setdefault("anthropic-version", "2023-06-01")
            hdrs.setdefault("User-Agent", "claude-cli/2.0.14 (external, cli)")
        elif api == "responses":
            hdrs.setdefault("User-Agent", "codex_cli_rs/0.46.0 (Debian 12; x86_64) bench")
        else:
            hdrs.setdefault("User-Agent", "aider/0.86.1")
        msg = {
            "cmd": "run",
            "url": url,
            "headers": hdrs,
            "body_file": body_path or str(self.body(case.path, case.size_kb, shape["stream"])),
            "stream": shape["stream"],
            "api": api,
            "concurrency": case.concurrency,
            "warmup_s": s.warmup_s if warmup_s is None else warmup_s,
            "duration_s": s.duration_s[kind],
            "min_calls": case.concurrency * (1 if s.smoke else 2),
            "max_calls": case.concurrency if s.smoke else None,
            "quiet_poll_s": s.quiet_poll_s,
            "pids": {"target": target_pids, "mock": [self.mock.pid]},
            "cores": (
                {
                    "target": int(DRIVER_CPU) if direct else int(PROXY_CPU),
                    "mock": int(DRIVER_CPU),
                    "loadgen": int(DRIVER_CPU),
                }
                if can_pin()
                else {}
            ),
        }
        best: dict[str, Any] | None = None
        for attempt in range(1, 3):
            res = self.loadgen.call(msg, timeout=600)["result"]
            res["attempt"] = attempt
            noise = noise_of(res)
            if best is None or noise < noise_of(best):
                best = res
            # Only c=1 runs are repeated: at higher concurrency our own processes queue for their CPU by design.
            if s.smoke or noise <= NOISY or self.retry_budget <= 0 or case.concurrency > 1:
                break
            self.retry_budget -= 1
            log(
                f"  {case.key}: our processes waited {noise * 100:.0f}% of their time for a CPU (other jobs on "
                "the machine); measuring again"
            )
        assert best is not None
        return best

    def direct(self, case: Case) -> dict[str, Any]:
        """The mock answering the same body itself, measured once per (format, size, shape, concurrency)."""
        assert self.mock is not None
        api_path = DIRECT_OF[case.path]
        key = (api_path, case.size_kb, case.shape, case.concurrency)
        if key not in self.direct_cache:
            headers = (
                {"Authorization": f"Bearer {UPSTREAM_KEY}"}
                if PATHS[api_path]["api"] == "openai"
                else {"x-api-key": UPSTREAM_KEY}
            )
            # The direct call sends the client's own body (same bytes the proxy receives for this case); for
            # the Responses path, which the mock does not speak, the chat completions body it is translated to.
            same = PATHS[case.path]["api"] == PATHS[api_path]["api"]
            body = str(self.body(case.path if same else api_path, case.size_kb, SHAPES[case.shape]["stream"]))
            self.direct_cache[key] = self.measure(
                case,
                self.mock_url + PATHS[api_path]["url"],
                headers,
                [self.mock.pid],
                body_path=body,
                direct=True,
            )
        return self.direct_cache[key]


# ----------------------------------------------------------------------------------------------- Downshift


class Serve:
    """`python -m app serve` pinned to the proxy's CPU, on the run's config, DB and token."""

    def __init__(
        self, h: Harness, name: str = "serve", mock_url: str | None = None, variant: str | None = None
    ) -> None:
        self.h = h
        self.variant = variant
        self.port = free_port()
        self.cfg = h.work / f"{name}.toml"
        self.cfg.write_text(config_text(mock_url or h.mock_url, self.port))
        self.db_url = f"sqlite:///{h.work / (name + '.db')}"
        self.log_path = h.work / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> float:
        """Start and wait for /health; returns seconds from spawn to the first good answer."""
        logf = open(self.log_path, "ab")  # noqa: SIM115
        entry = ["-m", "app"] if self.variant is None else ["-m", "bench.serve_variant", self.variant]
        cmd = pinned(
            [
                PYTHON,
                *entry,
                "serve",
                "--config",
                str(self.cfg),
                "--db",
                self.db_url,
                "--port",
                str(self.port),
            ],
            PROXY_CPU,
        )
        t0 = time.monotonic()
        self.proc = popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=self.h.env, cwd=ROOT)
        logf.close()
        t1 = wait_http(self.url + "/health", timeout, self.proc, interval=0.002, ok=lambda s: s == 200)
        return t1 - t0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc, 15)

    def rss_mb(self) -> float | None:
        try:
            import psutil

            return psutil.Process(self.pid).memory_info().rss / 2**20
        except Exception:
            return None

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-600:]
        return ""


def auth_headers(path: str) -> dict[str, str]:
    return {"x-api-key": TOKEN} if PATHS[path]["api"] == "anthropic" else {"Authorization": f"Bearer {TOKEN}"}


def responses_body(chat: dict[str, Any], model: str) -> dict[str, Any]:
    """A Codex CLI-style Responses API body carrying the same conversation as a chat completions body."""
    items: list[dict[str, Any]] = []
    instructions = None
    for m in chat["messages"]:
        role = m["role"]
        if role == "system":
            instructions = m["content"]
        elif role == "user":
            items.append(
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": m["content"]}]}
            )
        elif role == "assistant":
            if m.get("content"):
                items.append(
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": m["content"], "annotations": []}],
                    }
                )
            for call in m.get("tool_calls") or []:
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call["id"],
                        "name": call["function"]["name"],
                        "arguments": call["function"]["arguments"],
                    }
                )
        elif role == "tool":
            items.append(
                {"type": "function_call_output", "call_id": m["tool_call_id"], "output": m["content"]}
            )
    tools = [
        {
            "type": "function",
            "name": t["function"]["name"],
            "description": t["function"]["description"],
            "parameters": t["function"]["parameters"],
            "strict": False,
        }
        for t in chat["tools"]
    ]
    return {
        "model": model,
        "instructions": instructions,
        "input": items,
        "tools": tools,
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": bool(chat.get("stream")),
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0198c1f2-bench-session",
    }


def probe(url: str, path: str, body: Path) -> str | None:
    """None when the proxy serves this path (one whole call), else why not."""
    import urllib.request

    headers = {"Content-Type": "application/json", "anthropic-version": "2023-06-01", **auth_headers(path)}
    req = urllib.request.Request(
        url + PATHS[path]["url"], data=body.read_bytes(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def selected(items: list[Case], globs: str | None) -> list[Case]:
    if not globs:
        return items
    from fnmatch import fnmatchcase

    pats = [g.strip() for g in globs.split(",") if g.strip()]
    return [c for c in items if any(fnmatchcase(c.key, p) for p in pats)]


def run_proxy_matrix(h: Harness, results: dict[str, Any], smoke: bool, globs: str | None = None) -> None:
    serve = Serve(h)
    try:
        serve.start()
    except (TimeoutError, RuntimeError) as exc:
        results["skips"].append(
            asdict(Skip("downshift", f"`python -m app serve` did not start: {exc}; {serve.log_tail()}"))
        )
        return
    results["downshift"] = {"pid_cmd": "python -m app serve", "config": serve.cfg.read_text()}
    unavailable: dict[str, str] = {}
    for path in PATHS:
        why = probe(serve.url, path, h.body(path, 30, False))
        if why is not None:
            unavailable[path] = why
            results["skips"].append(asdict(Skip(f"downshift {path} path", f"not served yet: {why}")))
            log(f"skipping the {path} path: {why}")
    try:
        todo = [c for c in selected(cases(smoke), globs) if c.path not in unavailable]
        for i, case in enumerate(todo, 1):
            direct = h.direct(case)
            proxied = h.measure(
                case, serve.url + PATHS[case.path]["url"], auth_headers(case.path), [serve.pid]
            )
            results["scenarios"].append(
                {"case": asdict(case), "key": case.key, "direct": direct, "downshift": proxied}
            )
            log(f"[{i}/{len(todo)}] {case.key}: " + report.one_line(direct, proxied))
            if serve.proc is not None and serve.proc.poll() is not None:
                raise RuntimeError(f"the proxy exited with {serve.proc.returncode}: {serve.log_tail()}")
    finally:
        results["downshift"]["rss_mb_final"] = serve.rss_mb()
        serve.stop()


def run_peers(
    h: Harness, results: dict[str, Any], smoke: bool, names: list[str], globs: str | None = None
) -> None:
    """Other proxies on CPU 0, one at a time, on the comparison cases they serve. `relay` is the in-repo
    bare aiohttp relay (the floor, always measured); `litellm` and `ccr` are installed on first use."""
    from bench import compare

    if any(n != "relay" for n in names):
        results["versions"]["node"] = compare.node_version()
    wanted = selected(SMOKE_COMPARE_CASES if smoke else COMPARE_CASES, globs)
    if not wanted:
        return
    models = {p: PATHS[p]["model"] for p in ("openai", "gateway")}
    starters = {
        "relay": lambda: compare.start_relay(h.mock_url, h.work, h.env, UPSTREAM_KEY),
        "litellm": lambda: compare.start_litellm(h.mock_url, h.work, h.env, UPSTREAM_MODEL, models),
        "ccr": lambda: compare.start_ccr(h.mock_url, h.work, h.env, UPSTREAM_MODEL),
    }
    for name in names:
        log(f"starting {name}")
        peer = starters[name]()
        if isinstance(peer, Skip):
            log(f"skipping {peer.what}: {peer.reason}")
            results["skips"].append(asdict(peer))
            continue
        if name != "relay":
            results["versions"][peer.name] = peer.version
        try:
            for case in wanted:
                if case.path not in peer.paths:
                    continue
                direct = h.direct(case)
                url = peer.base_url + peer.paths[case.path]
                try:
                    # Peers import lazily on their first calls: a longer warm-up so that is not measured.
                    res = h.measure(
                        case,
                        url,
                        peer.headers[case.path],
                        [peer.proc.pid],
                        warmup_s=None if smoke else max(1.5, h.settings.warmup_s),
                    )
                except RuntimeError as exc:
                    results["skips"].append(asdict(Skip(f"{name} {case.key}", str(exc))))
                    continue
                results["comparisons"].append(
                    {
                        "peer": peer.name,
                        "version": peer.version,
                        "case": asdict(case),
                        "key": case.key,
                        "direct": direct,
                        "result": res,
                    }
                )
                log(f"{peer.name} {case.key}: " + report.one_line(direct, res))
        finally:
            peer.stop()


ABLATE_CASES = [
    Case("openai", 30, "ns", 1),
    Case("openai", 30, "s20", 1),
    Case("openai", 30, "ns", 32),
    Case("gateway", 30, "ns", 1),
    Case("gateway", 30, "s20", 1),
]


def run_ablation(h: Harness, results: dict[str, Any], smoke: bool, globs: str | None = None) -> None:
    """The same serve with one part switched off in its own process (bench/serve_variant.py): what each
    part of Downshift costs per call."""
    from bench.serve_variant import VARIANTS

    wanted = selected(ABLATE_CASES if not smoke else ABLATE_CASES[:2], globs)
    for variant in VARIANTS:
        serve = Serve(h, name=f"ablate-{variant}", variant=variant)
        try:
            serve.start()
        except (TimeoutError, RuntimeError) as exc:
            results["skips"].append(asdict(Skip(f"ablation {variant}", f"{exc}; {serve.log_tail()}")))
            continue
        try:
            for case in wanted:
                if probe(serve.url, case.path, h.body(case.path, 30, False)) is not None:
                    continue
                res = h.measure(
                    case, serve.url + PATHS[case.path]["url"], auth_headers(case.path), [serve.pid]
                )
                results["ablation"].append(
                    {
                        "variant": variant,
                        "key": case.key,
                        "case": asdict(case),
                        "direct": h.direct(case),
                        "result": res,
                    }
                )
                log(f"ablation {variant} {case.key}: " + report.one_line(h.direct(case), res))
        finally:
            serve.stop()


# ----------------------------------------------------------------------------------------------- log, start


def run_logging(h: Harness, results: dict[str, Any]) -> None:
    """The log writer as the proxy runs it (`core`: Core's writer with its analytics hooks) and bare."""
    s = h.settings
    out: dict[str, Any] = {}
    for mode in ("core", "writer"):
        cmd = pinned(
            [
                PYTHON,
                "-m",
                "bench.logbench",
                "--db-dir",
                str(h.work / "logbench"),
                "--mode",
                mode,
                "--burst",
                str(s.log_burst),
                "--rate",
                str(s.log_rate),
                "--seconds",
                str(s.log_seconds),
            ],
            PROXY_CPU,
        )
        proc = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=h.env, cwd=ROOT)
        stdout, stderr = proc.communicate(timeout=900)
        if proc.returncode != 0:
            results["skips"].append(
                asdict(Skip(f"logging ({mode})", f"logbench failed: {stderr.strip()[-600:]}"))
            )
            continue
        lg = out[mode] = json.loads(stdout.strip().splitlines()[-1])
        log(
            f"log writer ({mode}): burst {lg['burst']['rows_per_s']:.0f} rows/s; paced {lg['paced']['target_rate']} "
            f"calls/s -> {lg['paced']['rows_per_s']:.0f} rows/s (max queue {lg['paced']['max_queue_depth']}); "
            f"lost {lg['rows_lost']}"
        )
    results["logging"] = out or None


def run_statusline(h: Harness, results: dict[str, Any], smoke: bool) -> None:
    """`downshift statusline` as Claude Code runs it after every message, over a 1,000,000-call log (bench/statusline.py)."""
    cmd = [
        PYTHON,
        "-m",
        "bench.statusline",
        "--json",
        "--db",
        str(h.work / "statusline.db"),
        "--calls",
        "2000" if smoke else "1000000",
        "--runs",
        "5" if smoke else "300",
    ]
    proc = popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=h.env, cwd=ROOT)
    stdout, stderr = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        results["skips"].append(
            asdict(Skip("statusline", f"bench.statusline failed: {stderr.strip()[-600:]}"))
        )
        return
    sl = results["statusline"] = json.loads(stdout)
    log(
        f"statusline over {sl['calls']:,} calls: p50 {sl['process_ms']['p50']:.1f} ms, p99 {sl['process_ms']['p99']:.1f} ms"
    )


def _gui_launch(
    h: Harness, cfg: Path, port: int, label: str, results: dict[str, Any]
) -> dict[str, Any] | None:
    """One launch of the desktop app (offscreen, pinned like the proxy): time to its window, to its proxy's
    /health, and its resident memory once idle; None (and a skip noted) when it did not start."""
    import psutil

    shown = h.work / "gui-shown.json"
    shown.unlink(missing_ok=True)
    logp = h.work / "gui.log"
    logf = open(logp, "wb")  # noqa: SIM115
    env = {**h.env, "QT_QPA_PLATFORM": "offscreen", "BENCH_GUI_OUT": str(shown)}
    env["BENCH_T0"] = repr(time.time())
    t0 = time.monotonic()
    proc = popen(
        pinned(
            [PYTHON, "-m", "bench.gui_start", "--config", str(cfg), "--db", f"sqlite:///{h.work / 'gui.db'}"],
            PROXY_CPU,
        ),
        stdout=logf,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    logf.close()
    try:
        t1 = wait_http(f"http://127.0.0.1:{port}/health", 30, proc, interval=0.005, ok=lambda s: s == 200)
        deadline = time.monotonic() + 15
        while not shown.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(0.5 if h.settings.smoke else 2.0)
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        window = json.loads(shown.read_text()) if shown.exists() else None
        if window is None:
            results["skips"].append(
                asdict(
                    Skip(
                        "gui window",
                        f"{label}: no top-level window was shown within 15 s "
                        "of the proxy answering (started to the tray?); timed to /health only",
                    )
                )
            )
        return {
            "seconds_to_proxy_health": t1 - t0,
            "idle_rss_mb": rss,
            "seconds_to_window": window["seconds"] if window else None,
            "window": window["window"] if window else None,
        }
    except (TimeoutError, RuntimeError, psutil.Error) as exc:
        tail = logp.read_text(errors="replace").strip().splitlines()[-3:]
        results["skips"].append(
            asdict(Skip("gui start", f"`python -m app` (offscreen, {label}): {exc}; {' | '.join(tail)}"))
        )
        return None
    finally:
        stop_process(proc, 10)


def run_startup(h: Harness, results: dict[str, Any]) -> None:

    out: dict[str, Any] = {"serve": [], "serve_idle_rss_mb": None, "gui": None}
    for i in range(h.settings.start_repeats):
        serve = Serve(h, name=f"start{i}")  # a fresh DB each time: the first start migrates it
        try:
            seconds = serve.start(timeout=60)
            time.sleep(0.3 if h.settings.smoke else 3.0)  # serve loads its tokenizer 1 s after start
            rss = serve.rss_mb()
            out["serve"].append({"seconds": seconds, "idle_rss_mb": rss})
        except (TimeoutError, RuntimeError) as exc:
            results["skips"].append(asdict(Skip("serve start", f"{exc}; {serve.log_tail()}")))
        finally:
            serve.stop()
    if out["serve"]:
        out["serve_start_s"] = sorted(x["seconds"] for x in out["serve"])[len(out["serve"]) // 2]
        out["serve_idle_rss_mb"] = max(x["idle_rss_mb"] or 0 for x in out["serve"])
    # The GUI: `python -m app` offscreen, through bench/gui_start.py, which notes the first window shown
    # (the app has no hook for it); the embedded proxy's /health is timed too. Launched twice on the same
    # call log: the first launch creates it (Alembic runs), the second is every later day's launch.
    port = free_port()
    cfg = h.work / "gui.toml"
    cfg.write_text(config_text(h.mock_url, port))
    for key, label in (("gui", "first launch"), ("gui_again", "later launch")):
        out[key] = _gui_launch(h, cfg, port, label, results)
    results["startup"] = out
    if out["serve"]:
        log(
            f"serve start {out['serve_start_s'] * 1000:.0f} ms (median of {len(out['serve'])}), "
            f"idle RSS {out['serve_idle_rss_mb']:.0f} MB"
        )


# ----------------------------------------------------------------------------------------------- facts


def machine_facts() -> dict[str, Any]:
    import psutil

    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    freq = None
    with contextlib.suppress(Exception):
        f = psutil.cpu_freq()
        freq = round(f.current) if f else None
    packages = {}
    for name in (
        "aiohttp",
        "uvloop",
        "orjson",
        "SQLAlchemy",
        "alembic",
        "multidict",
        "yarl",
        "httpx",
        "psutil",
    ):
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    git: dict[str, Any] = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "app"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=10,
        ).stdout
        git["app_files_changed"] = len([x for x in status.splitlines() if x.strip()])
    from app import __version__

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": model,
        "cpu_mhz": freq,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "downshift": __version__,
        "packages": packages,
        "git": git,
        "pinned": can_pin(),
    }


# ----------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny counts, every scenario kind once (CI)")
    parser.add_argument("--compare", action="store_true", help="also measure LiteLLM and claude-code-router")
    parser.add_argument(
        "--out", type=Path, default=None, help="results folder (default bench/out, smoke: bench/out/smoke)"
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        help="markdown report to write (default docs/benchmarks.md for a full run; none for --smoke)",
    )
    parser.add_argument(
        "--ablate",
        action="store_true",
        help="also measure serve with parts switched off (analytics hooks, the log, GIL switch interval)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=("proxy", "compare", "ablate", "logging", "startup", "statusline"),
        help="run only these parts (repeatable)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=None,
        metavar="N",
        help="run the measured processes at this niceness (e.g. -10 as root on a shared machine)",
    )
    parser.add_argument(
        "--cases",
        default=None,
        metavar="GLOBS",
        help="only scenarios whose key matches one of these comma-separated globs, e.g. "
        "'openai-30k-*-c1,gateway-30k-s20-*' (keys: PATH-SIZEk-SHAPE-cN)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="RESULTS_JSON",
        help="measure nothing: re-write the markdown report from a results file (e.g. after editing "
        "bench/notes.md)",
    )
    args = parser.parse_args(argv)

    if args.render is not None:
        results = json.loads(args.render.read_text())
        results["targets"] = report.evaluate(results)
        target = args.docs or ROOT / "docs" / "benchmarks.md"
        target.write_text(report.markdown(results, notes=ROOT / "bench" / "notes.md"))
        log(f"wrote {target} from {args.render}")
        return 0

    settings = SMOKE if args.smoke else FULL
    out = args.out or (ROOT / "bench" / "out" / ("smoke" if args.smoke else ""))
    out.mkdir(parents=True, exist_ok=True)
    docs = args.docs if args.docs is not None else (None if args.smoke else ROOT / "docs" / "benchmarks.md")
    parts = set(
        args.only
        or ["proxy", "logging", "startup", "statusline"]
        + (["compare"] if args.compare else [])
        + (["ablate"] if args.ablate else [])
    )
    pin_self(DRIVER_CPU)
    if args.nice is not None:
        from bench import common

        common.NICE[:] = [args.nice]
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    t_start = time.monotonic()
    results: dict[str, Any] = {
        "schema": 1,
        "mode": "smoke" if args.smoke else "full",
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_facts(),
        "settings": {**asdict(settings), "nice": args.nice},
        "versions": {},
        "scenarios": [],
        "comparisons": [],
        "ablation": [],
        "logging": None,
        "startup": None,
        "statusline": None,
        "downshift": None,
        "skips": [],
    }
    if not can_pin():
        results["skips"].append(
            asdict(Skip("pinning", "taskset or a second CPU is missing: processes are not pinned"))
        )
    log(f"{results['mode']} run: {', '.join(sorted(parts))}; results in {out}")
    with Harness(out, settings) as h:
        if "proxy" in parts:
            run_proxy_matrix(h, results, args.smoke, args.cases)
        if "proxy" in parts or "compare" in parts:
            run_peers(
                h,
                results,
                args.smoke,
                ["relay"] + (["litellm", "ccr"] if "compare" in parts else []),
                args.cases,
            )
        if "ablate" in parts:
            run_ablation(h, results, args.smoke, args.cases)
        if "startup" in parts:
            run_startup(h, results)
    if "logging" in parts:
        run_logging(h, results)
    if "statusline" in parts:
        run_statusline(h, results, args.smoke)
    results["elapsed_s"] = time.monotonic() - t_start
    results["targets"] = report.evaluate(results)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(results, indent=1, default=str)
    (out / "latest.json").write_text(text)
    if not args.smoke:
        (out / f"results-{stamp}.json").write_text(text)
    md = report.markdown(results, notes=(ROOT / "bench" / "notes.md"))
    (out / "latest.md").write_text(md)
    if docs is not None:
        docs.parent.mkdir(parents=True, exist_ok=True)
        docs.write_text(md)
        log(f"wrote {docs}")
    for skip in results["skips"]:
        log(f"skipped {skip['what']}: {skip['reason'][:300]}")
    print(report.targets_text(results["targets"]), flush=True)
    log(f"done in {results['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

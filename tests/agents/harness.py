"""Run a real coding agent as a subprocess against the in-process proxy, sealed off from the developer's setup.

Each agent reads settings from its environment and its home folder. A developer's real API key, logged-in
account or auto-updater must never leak into a test, and a test's traffic must never leave 127.0.0.1; so
every run gets a fresh HOME and only the variables the test names (plus PATH and the locale).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import tomli_w

from app.testing.script import RecordedRequest, Reply

AGENTS_DIR = Path(__file__).resolve().parent
NODE_DIR = (
    AGENTS_DIR / "node"
)  # package.json + package-lock.json pin the npm agents (Codex, Claude Code, OpenCode, ...)
AIDER_VENV = AGENTS_DIR / "aider-venv"  # aider pins ~100 packages of its own: never in the project's venv
REPO = AGENTS_DIR.parent.parent
REQUIRE_ENV = "DOWNSHIFT_REQUIRE_AGENTS"  # set in CI: a missing agent fails instead of skipping
INSTALL_HINT = "bash tests/agents/install.sh"
AGENTS_MARKER = (
    "agents: drives a real coding agent binary installed by tests/agents/install.sh (skipped when absent)"
)
_INHERITED = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT")


def agents_mark() -> pytest.MarkDecorator:
    """`pytest.mark.agents`, registered first unless pyproject already registers it: under
    filterwarnings=error an unknown mark fails collection, and test modules apply marks at import time,
    before any plugin hook of theirs could run."""
    config = getattr(pytest.mark, "_config", None)
    if config is not None and not any(
        line.split(":", 1)[0].strip() == "agents" for line in config.getini("markers")
    ):
        config.addinivalue_line("markers", AGENTS_MARKER)
    return pytest.mark.agents


# ------------------------------------------------------------------------------------------- binaries


def codex_binary() -> Path | None:
    path = NODE_DIR / "node_modules" / ".bin" / "codex"
    return path if path.exists() else None


def claude_binary() -> Path | None:
    """The native executable of the platform package. The wrapper's bin/claude.exe is a placeholder until
    its postinstall script copies the binary over it, and npm may be configured to skip install scripts."""
    scope = NODE_DIR / "node_modules" / "@anthropic-ai"
    for candidate in sorted(scope.glob("claude-code-*/claude")):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def opencode_binary() -> Path | None:
    """The native executable of OpenCode's platform package (the wrapper's bin/opencode.exe is a placeholder
    until its postinstall script runs). The AVX2 build first, the baseline build on older CPUs."""
    arch = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(os.uname().machine, os.uname().machine)
    for variant in ("", "-baseline"):
        path = NODE_DIR / "node_modules" / f"opencode-linux-{arch}{variant}" / "bin" / "opencode"
        if os.access(path, os.X_OK) and (variant or _has_avx2()):
            return path
    return None


def _has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def cline_binary() -> Path | None:
    """Cline's compiled binary (Bun embedded) from its platform package; the bin/cline wrapper only finds it."""
    arch = {"x86_64": "x64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    path = NODE_DIR / "node_modules" / "@cline" / f"cli-linux-{arch}" / "bin" / "cline"
    return path if os.access(path, os.X_OK) else None


def node_script(package: str, script: str) -> list[str | Path] | None:
    """`node <package>/<script>` for agents shipped as JavaScript (Qwen Code, Continue's CLI), or None."""
    node = shutil.which("node")
    path = NODE_DIR / "node_modules" / package / script
    return [node, path] if node and path.exists() else None


def aider_binary() -> Path | None:
    path = AIDER_VENV / ("Scripts/aider.exe" if os.name == "nt" else "bin/aider")
    return path if path.exists() else None


def require(name: str, binary: Any) -> Any:
    """The agent's binary, or a skip that says how to install it (a failure when $DOWNSHIFT_REQUIRE_AGENTS
    is set, so CI cannot go green by silently skipping after a broken install)."""
    if binary is not None:
        return binary
    message = f"{name} is not installed under tests/agents/ (run `{INSTALL_HINT}`)"
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{message}; ${REQUIRE_ENV} is set, so a missing agent is a failure")
    pytest.skip(message)


# ------------------------------------------------------------------------------------------- running


def sealed_env(home: Path, variables: Mapping[str, str]) -> dict[str, str]:
    """A minimal environment: PATH and locale from the caller, a fresh home, then `variables`."""
    for sub in ("", ".config", ".local/share", ".cache", ".local/state"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local/state"),
        TERM="dumb",
        NO_COLOR="1",
    )
    env.update(variables)
    return env


@dataclass(frozen=True, slots=True)
class AgentRun:
    """What one agent process did; `report()` goes into assertion messages so a failure explains itself."""

    argv: Sequence[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def report(self, tail: int = 4000) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit {self.returncode} after {self.seconds:.1f} s\n"
            f"--- stdout (tail)\n{self.stdout[-tail:]}\n--- stderr (tail)\n{self.stderr[-tail:]}"
        )


def run_agent(
    argv: Sequence[str | Path], *, cwd: Path, env: Mapping[str, str], timeout: float = 90.0
) -> AgentRun:
    """Run to completion with no stdin (agents must not wait for a terminal). On timeout the agent's
    whole process group is killed, tool subprocesses included, and the test fails with its output."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(a) for a in argv],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        run = AgentRun([str(a) for a in argv], proc.returncode, out, err, time.monotonic() - started)
        pytest.fail(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s\n{run.report()}")
    return AgentRun([str(a) for a in argv], proc.returncode, out, err, time.monotonic() - started)


class Sandbox:
    """One agent's fresh working folder and sealed environment for a test (the set-up every agent's fixture
    shares): the fixture only says how the agent's command line reads. `run` goes under strace when given a
    log (a skip where strace is missing)."""

    def __init__(self, tmp_path: Path, variables: Mapping[str, str], *, home: Path | None = None) -> None:
        self.workdir = tmp_path / "work"
        self.workdir.mkdir()
        self.home = tmp_path / "home" if home is None else home
        self.env = sealed_env(self.home, variables)

    def run(
        self, argv: Sequence[str | Path], *, strace_log: Path | None = None, timeout: float = 90.0
    ) -> AgentRun:
        if strace_log is not None:
            argv = traced(argv, strace_log) or pytest.skip("strace is not installed")
        return run_agent(argv, cwd=self.workdir, env=self.env, timeout=timeout)


def installed_version(
    command: Sequence[str | Path],
    tmp_path: Path,
    *,
    variables: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> AgentRun:
    """`COMMAND --version` in a sealed, empty home: what each pinned-version test reads."""
    env = sealed_env(tmp_path / "home", variables or {})
    return run_agent([*command, "--version"], cwd=tmp_path, env=env, timeout=timeout)


def downshift_env(
    agent: str, config_path: Path, proxy_url: str, token: str, *, write_home: Path | None = None
) -> dict[str, str]:
    """What `downshift env --agent AGENT --format json` prints for the running proxy, from the real CLI, so
    the tests configure each agent exactly as a user following the README would. With `write_home`, the
    command also gets `--write` and that folder as HOME: the agent's settings file is written there."""
    config = tomllib.loads(config_path.read_text())
    config.setdefault("proxy", {})["port"] = urlsplit(proxy_url).port
    cli_config = config_path.with_name(f"cli-{config_path.name}")
    cli_config.write_text(tomli_w.dumps(config))
    argv = [
        sys.executable,
        "-m",
        "app",
        "env",
        "--config",
        str(cli_config),
        "--agent",
        agent,
        "--format",
        "json",
    ]
    env = {**os.environ, "DOWNSHIFT_TOKEN": token}
    if write_home is not None:
        argv.append("--write")
        env.update(HOME=str(write_home), USERPROFILE=str(write_home))
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"downshift env failed: {done.stderr}"
    variables = json.loads(done.stdout)
    assert isinstance(variables, dict)
    return {str(k): str(v) for k, v in variables.items()}


def stop_cline_hubs(workdir: Path) -> list[int]:
    """Kill the hub daemons a Cline run in `workdir` left behind (`cline --cline-hub-daemon --cwd WORKDIR`):
    they detach into a session of their own and outlive the CLI. Only those, by pid."""
    killed = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--cline-hub-daemon" in args and str(workdir).encode() in args:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
            except ProcessLookupError:
                pass
    return killed


# ------------------------------------------------------------------------------------------- network

_ENDPOINT = re.compile(
    r'sin6?_port=htons\((\d+)\).*?(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")'
)
LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


def traced(argv: Sequence[str | Path], log: Path) -> list[str] | None:
    """`argv` under strace recording every socket destination of every thread and child (None without
    strace): the only way to prove an agent talks to nobody but the proxy, DNS look-ups included."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    return [
        strace,
        "-f",
        "-qq",
        "-s",
        "256",
        "-e",
        "trace=connect,sendto,sendmsg,sendmmsg",
        "-o",
        str(log),
        *map(str, argv),
    ]


def remote_endpoints(log: Path) -> set[tuple[str, int]]:
    """(address, port) of every IPv4/IPv6 destination in an strace log; Unix sockets are local by nature."""
    found: set[tuple[str, int]] = set()
    for line in log.read_text(errors="replace").splitlines():
        for match in _ENDPOINT.finditer(line):
            found.add((match.group(2) or match.group(3), int(match.group(1))))
    return found


_PAYLOAD = re.compile(r'(?:iov_base=|sendto\(\d+, )"((?:[^"\\]|\\.)*)"')


def dns_names(log: Path) -> set[str]:
    """Host names the traced process looked up: the question of every DNS query in the strace log (its
    payloads are C-escaped strings; a query is a 12-byte header with one question, then the name)."""
    names: set[str] = set()
    for line in log.read_text(errors="replace").splitlines():
        for match in _PAYLOAD.finditer(line):
            data = _unescape(match.group(1))
            if len(data) < 17 or data[4:6] != b"\x00\x01":
                continue
            labels, i = [], 12
            while i < len(data) and 0 < data[i] < 64:
                label = data[i + 1 : i + 1 + data[i]]
                if not label.isascii():
                    break
                labels.append(label.decode())
                i += 1 + data[i]
            if labels and i < len(data) and data[i] == 0:
                names.add(".".join(labels))
    return names


def _unescape(text: str) -> bytes:
    out = bytearray()
    i = 0
    simple = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "\\": 92, '"': 34}
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out += ch.encode("utf-8", "replace")
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt == "x":
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            j = i + 1
            while j < min(i + 4, len(text)) and text[j] in "01234567":
                j += 1
            out.append(int(text[i + 1 : j] or "0", 8) & 0xFF)
            i = max(j, i + 2)
    return bytes(out)


def outside_destinations(log: Path, proxy_url: str) -> set[tuple[str, int]]:
    """Every socket destination that is not the proxy (DNS servers included)."""
    port = int(proxy_url.rsplit(":", 1)[1])
    return {(host, p) for host, p in remote_endpoints(log) if not (host in LOOPBACK and p == port)}


# ------------------------------------------------------------------------------------------- the log


def tool_call_rows(core: Any) -> list[dict[str, Any]]:
    """The tool_calls table (a failed tool result marks the row of the call that asked for it)."""
    from sqlalchemy import text

    core.writer.flush()
    with core.db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT call_id, tool_call_id, name, kind, result_failed, result_reason "
                "FROM tool_calls ORDER BY id"
            )
        )
        return [dict(r._mapping) for r in rows]


def task_rows(core: Any) -> list[dict[str, Any]]:
    from sqlalchemy import text

    core.writer.flush()
    with core.db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text("SELECT id, key, source FROM tasks ORDER BY id"))]


# ------------------------------------------------------------------------------------------- the model


def tool_round_trip(
    call: Reply, final: Reply, *, side: Reply | None = None
) -> Callable[[RecordedRequest], Reply]:
    """The model's side of one tool loop, decided by what each request carries rather than by arrival order,
    so an agent's extra calls cannot shift the script: a request that ends in a tool result gets `final`,
    any other request that offers tools gets `call`, and one without tools (a title or summary an agent asks
    its background model for) gets `side`."""

    def answer(request: RecordedRequest) -> Reply:
        body = request.json if isinstance(request.json, dict) else {}
        messages = body.get("messages") or []
        if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool":
            return final
        if not body.get("tools") and side is not None:
            return side
        return call

    return answer


def generation_requests(requests: Sequence[RecordedRequest]) -> list[RecordedRequest]:
    """The chat-completions calls the mock upstream served (not /v1/models look-ups)."""
    return [r for r in requests if r.path == "/v1/chat/completions"]

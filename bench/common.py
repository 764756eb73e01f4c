"""Shared pieces of the benchmark suite: paths, CPU pinning, child processes, stats.

Nothing here imports the proxy: the orchestrator, the load generator and the mock are separate processes,
and each imports only what it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENVS = BENCH / ".venvs"
PYTHON = sys.executable

# The proxy gets one core to itself; the mock upstream, the load generator and the orchestrator share the
# other, so the proxy's figures do not move with whatever drives it.
PROXY_CPU = "0"
DRIVER_CPU = "1"


def can_pin() -> bool:
    return (
        shutil.which("taskset") is not None
        and (os.cpu_count() or 1) >= 2
        and sys.platform.startswith("linux")
    )


# Scheduling priority of the measured processes (`--nice N`): on a shared machine a negative value (root only)
# keeps other people's jobs from skewing the figures. Linux schedules each session's "autogroup" as one
# entity, so a process's own nice value does not count against other sessions: each measured process gets a
# session of its own (start_new_session) and that autogroup gets the nice value.
NICE: list[int] = []


def pinned(cmd: Sequence[str], cpu: str) -> list[str]:
    """`cmd` run under `taskset -c cpu` where possible (taskset execs, so the pid stays the command's)."""
    return ["taskset", "-c", cpu, *cmd] if can_pin() else list(cmd)


def popen(cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
    """subprocess.Popen, at the `--nice` priority when one was asked for."""
    if NICE:
        kw["start_new_session"] = True
    proc = subprocess.Popen(list(cmd), **kw)
    if NICE:
        prioritize(proc.pid)
    return proc


def prioritize(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, NICE[0])
    with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as f:
        f.write(str(NICE[0]))


def pin_self(cpu: str) -> None:
    if can_pin():
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(0, {int(cpu)})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(
    url: str,
    timeout: float,
    proc: subprocess.Popen[Any] | None = None,
    interval: float = 0.005,
    ok=lambda status: status < 500,
) -> float:
    """Poll `url` until it answers; returns the monotonic time it first did. Raises on timeout or exit."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if ok(resp.status):
                    return time.monotonic()
        except urllib.error.HTTPError as exc:
            if ok(exc.code):
                return time.monotonic()
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:g} s")
        time.sleep(interval)


def wait_port(port: int, timeout: float, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} after {timeout:g} s")
        time.sleep(0.02)


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 5.0) -> None:
    """SIGTERM (then SIGKILL) one process we started, and its process group if it leads one."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout)


def kill_tree(proc: subprocess.Popen[Any] | None, timeout: float = 5.0) -> None:
    """Stop a process we started and every child it spawned (Node and LiteLLM fork workers)."""
    if proc is None:
        return
    try:
        import psutil

        children = psutil.Process(proc.pid).children(recursive=True)
    except Exception:
        children = []
    stop_process(proc, timeout)
    for child in children:
        with contextlib.suppress(Exception):
            child.terminate()
            child.wait(timeout)


class LineProcess:
    """A child speaking JSON lines on stdin/stdout (the load generator, the mock): call() is one round trip."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        name: str = "",
        stderr_path: Path | None = None,
    ) -> None:
        self.name = name or cmd[0]
        self._stderr = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = popen(
            list(cmd),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=ROOT,
            bufsize=0,
        )
        self._lock = threading.Lock()
        self.hello = self._read(60.0)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        result: list[bytes] = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not result:
            raise TimeoutError(f"{self.name}: no answer within {timeout:g} s")
        if not result[0]:
            raise RuntimeError(f"{self.name} exited (code {self.proc.poll()})")
        return json.loads(result[0])

    def call(self, msg: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
        with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
            self.proc.stdin.flush()
            answer = self._read(timeout)
        if not answer.get("ok", False):
            raise RuntimeError(f"{self.name}: {answer.get('error')}")
        return answer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)
        if self._stderr is not subprocess.DEVNULL:
            self._stderr.close()  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------------------- stats


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of an already sorted sequence."""
    n = len(sorted_values)
    if n == 0:
        return None
    if n == 1:
        return float(sorted_values[0])
    pos = (n - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    s = sorted(values)
    return {
        "n": len(s),
        "p50": percentile(s, 50),
        "p90": percentile(s, 90),
        "p99": percentile(s, 99),
        "mean": (sum(s) / len(s)) if s else None,
        "max": s[-1] if s else None,
    }


@dataclass
class Skip:
    """A part of the suite that could not run, and why (printed and written to the report)."""

    what: str
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

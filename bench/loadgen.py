"""The load generator: a separate process (pinned next to the mock, away from the proxy) driving one target.

aiohttp client on uvloop, closed loop: `concurrency` workers each send a call, wait for its whole answer,
send the next. Commands arrive as JSON lines on stdin, one result line goes back per command:

    {"cmd": "run", "url": ..., "headers": {...}, "body_file": ..., "stream": true, "api": "openai",
     "concurrency": 8, "warmup_s": 0.4, "duration_s": 2.0, "min_calls": 16, "max_calls": null,
     "pids": {"target": [123], "mock": [456]}}

A run is a warm-up (connections opened, caches warm, not recorded), a quiet pause, then the measured
phase: workers start calls until `duration_s` has passed and `min_calls` were started, and every started
call is awaited, so the CPU the watched processes spent between the two snapshots belongs to exactly the
calls counted (the quiet pauses let the proxy's log writer finish the previous phase's rows first).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from typing import Any

import aiohttp
import psutil

from bench.common import summary

perf = time.perf_counter


class Watched:
    """Processes whose CPU and memory a run reports: a target and everything it forked."""

    def __init__(self, pids: list[int]) -> None:
        self.procs: list[psutil.Process] = []
        for pid in pids:
            try:
                p = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
            self.procs.append(p)
            with contextlib.suppress(psutil.Error):
                self.procs += p.children(recursive=True)

    def cpu(self) -> float:
        """CPU seconds from psutil: complete (exited threads count) but in 10 ms clock ticks."""
        total = 0.0
        for p in self.procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def sched(self) -> tuple[float, float] | None:
        """(CPU seconds, seconds spent runnable but waiting for a CPU) from the scheduler
        (/proc/PID/task/*/schedstat, nanoseconds); None where unavailable. Precise enough for runs of a few
        calls, but it misses threads that exit between two readings. The wait is what other processes on our
        cores cost us: the measure of a noisy run."""
        run = wait = 0
        try:
            for p in self.procs:
                base = f"/proc/{p.pid}/task"
                for tid in os.listdir(base):
                    try:
                        with open(f"{base}/{tid}/schedstat", "rb") as f:
                            fields = f.read().split()
                        run += int(fields[0])
                        wait += int(fields[1])
                    except (FileNotFoundError, ProcessLookupError):
                        pass
        except (OSError, ValueError, IndexError):
            return None
        return run / 1e9, wait / 1e9

    def rss(self) -> int:
        total = 0
        for p in self.procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total


_DONE = {"openai": b"data: [DONE]", "anthropic": b"message_stop", "responses": b"response.completed"}


class Sample:
    __slots__ = ("latency", "ttfb", "gaps", "chunks", "error", "bytes")

    def __init__(self) -> None:
        self.latency = 0.0
        self.ttfb = 0.0
        self.gaps: list[float] = []
        self.chunks = 0
        self.error: str | None = None
        self.bytes = 0


async def one_call(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], stream: bool, api: str
) -> Sample:
    s = Sample()
    t0 = perf()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                text = await resp.read()
                s.error = f"HTTP {resp.status}: {text[:300].decode(errors='replace')}"
                return s
            if not stream:
                s.ttfb = perf() - t0
                data = await resp.read()
                end = perf()
                s.bytes = len(data)
                if not data.rstrip().endswith(b"}"):
                    s.error = f"truncated JSON answer ({len(data)} bytes)"
            else:
                first = last = 0.0
                done = _DONE.get(api, b"response.completed")
                keep = len(done)
                tail = b""
                finished = False
                gaps = s.gaps
                async for chunk in resp.content.iter_any():
                    now = perf()
                    if s.chunks == 0:
                        first = now
                    else:
                        gaps.append(now - last)
                    last = now
                    s.chunks += 1
                    s.bytes += len(chunk)
                    if not finished:
                        finished = done in tail + chunk
                    tail = (tail + chunk)[-max(keep, 120) :]
                end = perf()
                s.ttfb = (first or end) - t0
                if not finished:
                    s.error = f"stream ended without its terminator ({done.decode()}); tail {tail[-80:]!r}"
            s.latency = end - t0
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        s.error = f"{type(exc).__name__}: {exc}"
    return s


async def phase(
    session: aiohttp.ClientSession,
    spec: dict[str, Any],
    duration: float,
    min_calls: int,
    max_calls: int | None,
    first_body: list[bytes] | None = None,
) -> tuple[list[Sample], float]:
    url, headers, stream, api = spec["url"], spec["headers"], bool(spec["stream"]), spec["api"]
    body: bytes = spec["_body"]
    started = 0
    samples: list[Sample] = []
    t0 = perf()

    async def worker() -> None:
        nonlocal started
        while True:
            if max_calls is not None and started >= max_calls:
                return
            if started >= min_calls and perf() - t0 >= duration:
                return
            started += 1
            samples.append(await one_call(session, url, body, headers, stream, api))

    await asyncio.gather(*(worker() for _ in range(int(spec["concurrency"]))))
    return samples, perf() - t0


def cores_busy() -> list[float]:
    """Busy seconds of each CPU so far (everything but idle and iowait; guest time is inside user)."""
    out = []
    for t in psutil.cpu_times(percpu=True):
        d = t._asdict()
        total = sum(v for k, v in d.items() if k not in ("guest", "guest_nice"))
        out.append(total - d.get("idle", 0.0) - d.get("iowait", 0.0))
    return out


async def wait_quiet(w: Watched, poll: float = 0.05, limit: float = 3.0) -> None:
    """Until the target has (nearly) stopped using CPU: its log writer has caught up."""
    end = perf() + limit
    prev = w.cpu()
    while perf() < end:
        await asyncio.sleep(poll)
        now = w.cpu()
        if now - prev < 0.01 * poll:
            return
        prev = now


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    with open(spec["body_file"], "rb") as f:
        spec["_body"] = f.read()
    conc = int(spec["concurrency"])
    pids = spec.get("pids", {})
    groups = {name: Watched(list(p)) for name, p in pids.items()}
    groups["loadgen"] = Watched([os.getpid()])
    target = groups.get("target") or Watched([])
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=float(spec.get("timeout_s", 120)))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True) as session:
        warm, _ = await phase(session, spec, float(spec.get("warmup_s", 0.4)), conc, None)
        warm_errors = [s.error for s in warm if s.error]
        poll = float(spec.get("quiet_poll_s", 0.05))
        await wait_quiet(target, poll)
        cpu0 = {name: (g.cpu(), g.sched()) for name, g in groups.items()}
        busy0, w0 = cores_busy(), perf()
        samples, elapsed = await phase(
            session, spec, float(spec["duration_s"]), int(spec.get("min_calls", conc)), spec.get("max_calls")
        )
        rss = {name: g.rss() for name, g in groups.items()}
        await wait_quiet(target, poll)
        cpu1 = {name: (g.cpu(), g.sched()) for name, g in groups.items()}
        busy1, w1 = cores_busy(), perf()
    good = [s for s in samples if s.error is None]
    errors = [s.error for s in samples if s.error]
    cpu: dict[str, float] = {}
    cpu_source: dict[str, str] = {}
    waited: dict[str, float | None] = {}
    for name in groups:
        coarse = cpu1[name][0] - cpu0[name][0]
        a, b = cpu0[name][1], cpu1[name][1]
        fine = None if a is None or b is None else b[0] - a[0]
        waited[name] = None if a is None or b is None else b[1] - a[1]
        # Trust the scheduler's figure unless it disagrees with psutil's beyond its tick granularity.
        if fine is not None and abs(fine - coarse) <= max(
            0.02 * len(groups[name].procs) + 0.01, 0.1 * coarse
        ):
            cpu[name], cpu_source[name] = fine, "schedstat"
        else:
            cpu[name], cpu_source[name] = coarse, "psutil"
    # CPU used on each core by processes other than ours (other users of the machine, the kernel, the
    # hypervisor's steal): a run where it is high is a noisy run.
    placement: dict[str, int] = {k: int(v) for k, v in spec.get("cores", {}).items()}
    ours = [0.0] * len(busy0)
    counted: set[tuple[int, ...]] = set()
    for name, g in groups.items():
        ident = tuple(sorted(p.pid for p in g.procs))
        if ident in counted or name not in placement or placement[name] >= len(ours):
            continue
        counted.add(ident)
        ours[placement[name]] += cpu[name]
    window = w1 - w0
    foreign = [max(0.0, (b1 - b0) - mine) / window for b0, b1, mine in zip(busy0, busy1, ours, strict=True)]
    calls = len(samples)
    ms = 1000.0
    gaps = [g * ms for s in good for g in s.gaps]
    return {
        "calls": calls,
        "errors": len(errors),
        "warmup_errors": len(warm_errors),
        "first_error": (errors or warm_errors or [None])[0],
        "elapsed_s": elapsed,
        "throughput_rps": calls / elapsed if elapsed > 0 else None,
        "latency_ms": summary([s.latency * ms for s in good]),
        "ttfb_ms": summary([s.ttfb * ms for s in good]),
        "gap_ms": summary(gaps) if spec["stream"] else None,
        "reads_per_call": (sum(s.chunks for s in good) / len(good)) if (good and spec["stream"]) else None,
        "bytes_per_call": (sum(s.bytes for s in good) / len(good)) if good else None,
        "cpu_s": cpu,
        "cpu_source": cpu_source,
        "cpu_ms_per_call": {name: (v * ms / calls if calls else None) for name, v in cpu.items()},
        "utilisation": {name: (v / elapsed if elapsed > 0 else None) for name, v in cpu.items()},
        "rss_mb": {name: v / 2**20 for name, v in rss.items()},
        "foreign_load": foreign if placement else None,
        # Time our processes were ready to run but another process had the CPU, per call: interference.
        "runqueue_wait_ms_per_call": {
            name: (v * ms / calls if (v is not None and calls) else None) for name, v in waited.items()
        },
        "runqueue_wait_share": {
            name: (v / (v + cpu[name]) if (v is not None and v + cpu[name] > 0) else None)
            for name, v in waited.items()
        },
        "loadavg": os.getloadavg()[0],
    }


def main() -> int:
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        print(json.dumps({"ok": True, "pid": os.getpid()}), flush=True)
        for line in sys.stdin:
            try:
                msg = json.loads(line)
                if msg.get("cmd") == "run":
                    answer = {"ok": True, "result": runner.run(run(msg))}
                elif msg.get("cmd") == "quit":
                    break
                else:
                    answer = {"ok": False, "error": f"unknown command {msg.get('cmd')!r}"}
            except Exception as exc:  # report, keep serving: the orchestrator decides what to skip
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

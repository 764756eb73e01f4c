"""GUI responsiveness under load: does the event loop keep ticking while the proxy is busy?

The desktop app runs the proxy on a thread of the GUI process, and the dashboard refreshes its figures
every second from the same database the log writer fills. This benchmark reproduces that: the mock
upstream in its own process, the proxy and the dashboard (optionally the Calls page too) in this one,
and a sustained closed-loop load from a separate process (a mix of plain, streamed and tool-declaring
chat completions). A QTimer firing every 10 ms records the gap between its ticks; any gap well above
10 ms is time the GUI thread could not run (a query on the GUI thread, a long redraw, a GC pause, GIL
starvation). Figures printed: the load served, the largest gaps, and how often the dashboard refreshed.

    python bench/gui_responsiveness.py                      # 20 s of load, dashboard visible
    python bench/gui_responsiveness.py --quick              # 3 s (what the test runs)
    python bench/gui_responsiveness.py --pages dashboard,calls --prefill 1000000 --seconds 30

`--prefill N` first writes N synthetic calls (30 days of history, tests/test_queries_calls.py's
generator) so the dashboard's queries run against a large log. Runs offscreen unless a display is set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TICK_MS = 10
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]


# ---------------------------------------------------------------------------------- the load process


async def _load(url: str, token: str, seconds: float, concurrency: int) -> dict[str, Any]:
    import httpx

    bodies = [
        {
            "model": "default",
            "messages": [{"role": "user", "content": "list the files in src"}],
            "tools": TOOLS,
        },
        {
            "model": "default",
            "stream": True,
            "messages": [{"role": "user", "content": "explain the bug in a few words"}],
        },
        {"model": "plan", "messages": [{"role": "user", "content": "plan the refactor step by step"}]},
        {
            "model": "claude-3-5-haiku-latest",
            "messages": [{"role": "user", "content": "title for this chat"}],
        },
    ]
    headers = {"Authorization": f"Bearer {token}"}
    calls = errors = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def worker(n: int, client: httpx.AsyncClient) -> None:
        nonlocal calls, errors
        i = n
        while time.monotonic() < deadline:
            body = bodies[i % len(bodies)]
            i += 1
            t = time.perf_counter()
            try:
                if body.get("stream"):
                    async with client.stream(
                        "POST", f"{url}/v1/chat/completions", json=body, headers=headers
                    ) as r:
                        async for _ in r.aiter_bytes():
                            pass
                        ok = r.status_code == 200
                else:
                    ok = (
                        await client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
                    ).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t)
            calls += 1
            errors += not ok

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        await asyncio.gather(*(worker(n, client) for n in range(concurrency)))
    latencies.sort()
    return {
        "calls": calls,
        "errors": errors,
        "seconds": seconds,
        "rps": calls / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


def load_child(args: argparse.Namespace) -> int:
    token = os.environ["DOWNSHIFT_BENCH_TOKEN"]  # not on the command line, where `ps` would show it
    result = asyncio.run(_load(args.url, token, args.seconds, args.concurrency))
    print(json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------------------------ the GUI process

CONFIG = """
[proxy]
host = "127.0.0.1"
port = 0

[[providers]]
name = "cheapco"
base_url = "{mock}/v1"

[[providers]]
name = "backup"
base_url = "{mock}/v1"

[[presets]]
name = "cheap"
default = "cheapco/qwen/qwen3-coder"
background = "cheapco/qwen/qwen3-coder-30b"
plan = "backup/deepseek/deepseek-chat"
patterns = {{ "*haiku*" = "background" }}

[[presets]]
name = "premium"
default = "backup/claude-sonnet-4-5"

[routing]
active = "cheap"
premium = "premium"
"""


def start_mock() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.testing.mock_upstream",
            "--port",
            "0",
            "--text",
            "Here is the change, applied to src/app.py as asked.",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"the mock upstream did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def _schedstat() -> tuple[int, int]:
    """This thread's (nanoseconds on a CPU, nanoseconds runnable but waiting for one); zeros off Linux."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            on_cpu, waiting, _ = f.read().split()
        return int(on_cpu), int(waiting)
    except (OSError, ValueError):
        return 0, 0


class StallMeter:
    """Gaps between the ticks of a 10 ms timer on the GUI thread. Each gap is split with the GUI thread's
    scheduler counters (Linux /proc/thread-self/schedstat): time it ran (GUI work: events, paints, Python
    callbacks), time it was runnable but waiting for a CPU (the machine was busy: other processes, or this
    process's other threads on the other core), and the rest, when it was blocked: mostly waiting for the
    GIL, which another thread of this process held (the proxy, the log writer, a query, a collection)."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.gaps: list[float] = []
        self.parts: list[
            tuple[float, float, float, float]
        ] = []  # (gap, ran, waited for a CPU, blocked) in ms
        self._last = 0.0
        self._sched = (0, 0)
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._sched = _schedstat()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        sched = _schedstat()
        gap = (now - self._last) * 1000
        ran, waited = (sched[0] - self._sched[0]) / 1e6, (sched[1] - self._sched[1]) / 1e6
        self.gaps.append(gap)
        if gap > 2 * TICK_MS:
            self.parts.append((gap, ran, waited, max(0.0, gap - TICK_MS - ran - waited)))
        self._last, self._sched = now, sched

    def figures(self) -> dict[str, Any]:
        gaps = sorted(self.gaps) or [0.0]
        worst = sorted(self.parts, reverse=True)[:5]
        return {
            "ticks": len(self.gaps),
            "max_gap_ms": gaps[-1],
            "p99_gap_ms": gaps[int(len(gaps) * 0.99)],
            "p999_gap_ms": gaps[int(len(gaps) * 0.999)],
            "median_gap_ms": statistics.median(gaps),
            "gaps_over_50ms": sum(g > 50 for g in gaps),
            "gaps_over_100ms": sum(g > 100 for g in gaps),
            "worst_gaps": [
                {
                    "gap_ms": round(g, 1),
                    "ran_ms": round(r, 1),
                    "waited_for_cpu_ms": round(w, 1),
                    "blocked_ms": round(b, 1),
                }
                for g, r, w, b in worst
            ],
        }


class Machine:
    """How busy the machine was during the run: all CPUs, and the share of other processes (not this
    one, the load generator or the mock), which compete with the GUI thread for a core."""

    def __init__(self, pids: list[int]) -> None:
        from bench.loadgen import Watched

        self.ours = Watched(pids)
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        import psutil

        total = psutil.cpu_times()
        return time.monotonic(), sum(total) - total.idle - getattr(total, "iowait", 0.0), self.ours.cpu()

    def figures(self) -> dict[str, float]:
        import psutil

        t0, busy0, ours0 = self.start
        t1, busy1, ours1 = self._sample()
        wall = max(t1 - t0, 1e-9)
        return {
            "cpus": psutil.cpu_count() or 0,
            "busy_cores": (busy1 - busy0) / wall,
            "ours_cores": (ours1 - ours0) / wall,
            "others_cores": max(0.0, (busy1 - busy0 - ours1 + ours0) / wall),
        }


class Tracer:
    """With --trace: what held the GUI thread. Qt events that took over 30 ms (by receiver) and garbage
    collections over 10 ms (by thread: a collection on any thread holds the GIL, so it stalls the GUI)."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, float]] = []
        self.collections: list[tuple[float, str, int, float]] = []
        self._gc_started = 0.0

    def app_class(self) -> type:
        from PySide6.QtWidgets import QApplication

        tracer = self

        class TracingApplication(QApplication):
            def notify(self, receiver: Any, event: Any) -> bool:
                t = time.perf_counter()
                try:
                    return super().notify(receiver, event)
                finally:
                    took = time.perf_counter() - t
                    if took > 0.03:
                        tracer.events.append(
                            (t, f"{event.type().name} to {type(receiver).__name__}", took * 1000)
                        )

        return TracingApplication

    def gc_callback(self, phase: str, info: dict[str, Any]) -> None:
        import threading

        now = time.perf_counter()
        if phase == "start":
            self._gc_started = now
        elif now - self._gc_started > 0.01:
            self.collections.append(
                (
                    self._gc_started,
                    threading.current_thread().name,
                    info["generation"],
                    (now - self._gc_started) * 1000,
                )
            )

    def report(self, since: float) -> list[str]:
        lines = [f"  +{t - since:6.2f} s  {what}: {ms:.0f} ms" for t, what, ms in self.events if t >= since]
        lines += [
            f"  +{t - since:6.2f} s  gc gen{gen} on {thread}: {ms:.0f} ms"
            for t, thread, gen, ms in self.collections
            if t >= since
        ]
        return sorted(lines)


def run(
    seconds: float,
    concurrency: int,
    pages: list[str],
    prefill: int,
    *,
    tuning: bool = True,
    tracer: Tracer | None = None,
) -> dict[str, Any]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import gc

    from keyring.backends import fail
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.core.engine import Core
    from app.core.secrets import SecretStore
    from app.proxy.server import ProxyThread
    from app.ui.background import Background
    from app.ui.bridge import CoreBridge
    from app.ui.context import UiContext
    from app.ui.pages.calls import CallsPage
    from app.ui.pages.dashboard import DashboardPage

    app = QApplication.instance() or (tracer.app_class() if tracer else QApplication)([])
    tmp = Path(tempfile.mkdtemp(prefix="downshift-gui-bench-"))
    mock, mock_url = start_mock()
    core = proxy = ctx = None
    shown: list[Any] = []
    try:
        config = tmp / "config.toml"
        config.write_text(CONFIG.format(mock=mock_url))
        db = tmp / "log.db"
        if prefill:
            sys.path.insert(0, str(ROOT / "tests"))
            from test_queries_calls import fill_synthetic_calls

            t = time.perf_counter()
            fill_synthetic_calls(db, prefill, end=time.time() - 60, tool_rows=True)
            print(f"prefilled {prefill:,} calls in {time.perf_counter() - t:.1f} s", flush=True)
        # keys and token in the temp folder: a benchmark must not write to the user's keyring
        secrets = SecretStore(tmp / "secrets.json", backend=fail.Keyring())
        core = Core(config, f"sqlite:///{db}", secrets=secrets)
        core.set_provider_key("cheapco", "sk-bench-cheapco-0123456789")
        core.set_provider_key("backup", "sk-bench-backup-0123456789")
        proxy = ProxyThread(core, port=0).start()
        ctx = UiContext(core, proxy, CoreBridge(core.events), Background())
        logged = [0]
        core.events.subscribe("calls_logged", lambda recs: logged.__setitem__(0, logged[0] + len(recs)))
        dash = DashboardPage(ctx)
        dash.resize(1400, 900)
        dash.show()
        shown.append(dash)
        if "calls" in pages:
            calls_page = CallsPage(ctx)
            calls_page.resize(1400, 800)
            calls_page.show()
            shown.append(calls_page)

        loop = QEventLoop()

        def wait_until(done: Any, timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while not done() and time.monotonic() < deadline:
                app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
                time.sleep(0.005)
            return bool(done())

        if not wait_until(lambda: dash.refreshes >= 1, 60):
            raise RuntimeError("the dashboard never showed its figures")
        refreshes_before, skipped_before = dash.refreshes, dash.flight.skipped
        query_ms: list[float] = []
        original_apply = dash.apply

        def apply(data: dict[str, Any]) -> None:
            query_ms.append(data["query_ms"])
            original_apply(data)

        dash.apply = apply  # type: ignore[method-assign]
        if tuning:
            from app.ui import startup

            startup.settle_memory()  # what `downshift` does once its start-up is over (app/ui/startup.py)
        if tracer is not None:
            gc.callbacks.append(tracer.gc_callback)
        meter = StallMeter()
        env = {**os.environ, "DOWNSHIFT_BENCH_TOKEN": core.token()}
        load = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--load-child",
                "--url",
                proxy.url,
                "--seconds",
                str(seconds),
                "--concurrency",
                str(concurrency),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        machine = Machine([os.getpid(), load.pid, mock.pid])
        meter.start()
        load_started = time.perf_counter()
        poll = QTimer()
        poll.setInterval(50)
        poll.timeout.connect(lambda: loop.quit() if load.poll() is not None else None)
        poll.start()
        QTimer.singleShot(int((seconds + 60) * 1000), loop.quit)  # bound: a wedged load process ends the run
        loop.exec()
        poll.stop()
        meter.stop()
        busy = machine.figures()
        if load.poll() is None:
            load.kill()
        out = load.communicate(timeout=10)[0]
        served = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"calls": 0, "errors": 0}
        core.writer.flush()
        wait_until(lambda: logged[0] >= served["calls"], 10)
        if tracer is not None:
            gc.callbacks.remove(tracer.gc_callback)
        return {
            "seconds": seconds,
            "concurrency": concurrency,
            "pages": pages,
            "prefill": prefill,
            "tuning": tuning,
            "machine": busy,
            "trace": tracer.report(load_started) if tracer else None,
            "load": served,
            "logged": logged[0],
            "writer_dropped": core.writer.stats.dropped,
            "gui": meter.figures(),
            "dashboard": {
                "refreshes": dash.refreshes - refreshes_before,
                "skipped_ticks": dash.flight.skipped - skipped_before,
                "query_ms_mean": statistics.fmean(query_ms) if query_ms else None,
                "query_ms_max": max(query_ms) if query_ms else None,
            },
        }
    finally:
        for page in shown:
            page.hide()
        if ctx is not None:
            ctx.background.wait(10_000)
            ctx.bridge.close()
        if proxy is not None:
            proxy.stop()
        if core is not None:
            core.close()
        mock.terminate()
        mock.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def report(r: dict[str, Any]) -> str:
    g, load, d = r["gui"], r["load"], r["dashboard"]
    prefilled = f", {r['prefill']:,} calls prefilled" if r["prefill"] else ""
    prefilled += "" if r["tuning"] else ", without the app's start-up tuning (no gc.freeze)"
    lines = [
        f"load: {load['calls']:,} calls in {r['seconds']:.0f} s ({load.get('rps', 0):.0f}/s, {r['concurrency']} "
        f"concurrent, {load['errors']} errors, p50 {load.get('p50_ms') or 0:.1f} ms, p99 {load.get('p99_ms') or 0:.1f} ms); "
        f"logged {r['logged']:,}, dropped {r['writer_dropped']}",
        f"GUI thread ({', '.join(r['pages'])} visible{prefilled}): "
        f"{g['ticks']:,} ticks of {TICK_MS} ms; gap median {g['median_gap_ms']:.1f} ms, p99 {g['p99_gap_ms']:.1f} ms, "
        f"p99.9 {g['p999_gap_ms']:.1f} ms, max {g['max_gap_ms']:.1f} ms; gaps > 50 ms: {g['gaps_over_50ms']}, "
        f"> 100 ms: {g['gaps_over_100ms']}",
        f"dashboard: {d['refreshes']} refreshes, {d['skipped_ticks']} ticks skipped while a query ran, query "
        + (
            f"mean {d['query_ms_mean']:.0f} ms, max {d['query_ms_max']:.0f} ms"
            if d["query_ms_mean"] is not None
            else "-"
        ),
        "worst gaps (ms: GUI thread ran + waited for a CPU + blocked, e.g. on the GIL): "
        + (
            "; ".join(
                f"{w['gap_ms']:.0f} = {w['ran_ms']:.0f} + {w['waited_for_cpu_ms']:.0f} + {w['blocked_ms']:.0f}"
                for w in g.get("worst_gaps", [])
            )
            or "-"
        ),
        "machine: {busy_cores:.2f} of {cpus} cores busy, {ours_cores:.2f} by this run (GUI+proxy, load, mock), "
        "{others_cores:.2f} elsewhere (other processes, the kernel: loopback networking, disk)".format(
            **r["machine"]
        ),
        "verdict: "
        + (
            "PASS (no stall over 100 ms)"
            if g["max_gap_ms"] <= 100
            else f"FAIL (longest stall {g['max_gap_ms']:.0f} ms)"
        ),
    ]
    if r["trace"] is not None:
        lines += ["trace (GUI events over 30 ms, collections over 10 ms):", *(r["trace"] or ["  nothing"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the load (default 20)")
    parser.add_argument("--quick", action="store_true", help="3 s of load: a smoke run for tests")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight (default 8)")
    parser.add_argument("--pages", default="dashboard", help="visible pages: dashboard[,calls]")
    parser.add_argument("--prefill", type=int, default=0, help="synthetic calls written first (e.g. 1000000)")
    parser.add_argument(
        "--no-tuning",
        action="store_true",
        help="skip what the app does once started (app.ui.startup.settle_memory: gc.freeze)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="list the long GUI events and garbage collections"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--load-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_child:
        return load_child(args)
    seconds = 3.0 if args.quick else args.seconds
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    if unknown := set(pages) - {"dashboard", "calls"}:
        parser.error(f"unknown page(s): {', '.join(sorted(unknown))}")
    result = run(
        max(1.0, seconds),
        max(1, args.concurrency),
        pages,
        max(0, args.prefill),
        tuning=not args.no_tuning,
        tracer=Tracer() if args.trace else None,
    )
    print(json.dumps(result) if args.json else report(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

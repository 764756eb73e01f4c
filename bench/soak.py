"""Soak and crash runs of the real proxy process (`python -m app serve`), from one command.

    python bench/soak.py            # CI size: 2,000 calls at concurrency 64, then the crash run
    python bench/soak.py --full     # 20,000 calls at concurrency 64, then a bigger crash run
    python bench/soak.py --calls 5000 --concurrency 32 --json

Soak: a mix of streamed, whole, translated, failed (mid-stream resets, upstream 400s, malformed requests),
fallback and cancelled (client hangs up mid-stream) calls through the proxy, in front of the project's mock
upstream. Checked: every call has exactly one row with the outcome its scenario implies, the proxy's RSS
does not grow after warm-up, its file descriptors come back to where they were, no upstream request is
left running on the mock.

Crash: the proxy is SIGKILLed with slow streams in flight and quick calls going on; on restart the
database opens cleanly (integrity check), every stream whose start was logged is `interrupted`, every
call that finished before the kill (with the writer's batch interval to spare) has its final row, and the
only calls without a row are those in flight (or finishing) at the kill.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402

from app.testing.mock_upstream import MockUpstream  # noqa: E402
from app.testing.script import Fault, RecordedRequest, Reply, Usage  # noqa: E402

TOKEN = "ds-soak-token-0123456789abcdefghijkl"
KEYS = {
    "SOAK_CHEAP_KEY": "sk-soak-cheap-0123456789abcdef",
    "SOAK_BACKUP_KEY": "sk-soak-backup-0123456789abcdef",
}
WRITER_SLACK_S = 0.6  # the log writer commits every 0.1 s: a call finished this long before a kill is on disk
# Each quick worker of the crash test pauses this long between calls: 8 workers make up to ~800 calls/s, a heavy
# load that leaves the writer its share of the 2 cores. Flat out (~2,000 calls/s here, client, mock and proxy
# all CPU-bound on 2 cores) the writer thread can fall 1-2 s behind, the same before and after issue 16, and a
# SIGKILL then loses that backlog too: a limit of the GIL-shared writer, not of the crash handling tested here.
QUICK_PAUSE_S = 0.01

# scenario -> (client api, streamed, the outcome its row must have)
SCENARIOS: dict[str, tuple[str, bool, str]] = {
    "oa_stream": ("openai", True, "ok"),
    "oa_whole": ("openai", False, "ok"),
    "an_stream": ("anthropic", True, "ok"),
    "an_whole": ("anthropic", False, "ok"),
    "resp_stream": ("responses", True, "ok"),
    "fallback": ("openai", False, "ok"),
    "mid_reset": ("openai", True, "error"),
    "an_mid_reset": ("anthropic", True, "error"),
    "upstream_400": ("openai", False, "error"),
    "bad_json": ("openai", False, "error"),
    "cancel": ("openai", True, "cancelled"),
    "an_cancel": ("anthropic", True, "cancelled"),
}
MIX = list(SCENARIOS)


def config_text(mock_url: str) -> str:
    return f"""
[proxy]
host = "127.0.0.1"
port = 0

[[providers]]
name = "cheapco"
base_url = "{mock_url}/v1"
kind = "openrouter"
api_key_env = "SOAK_CHEAP_KEY"
timeouts = {{ connect = 5, first_byte = 20, idle = 10 }}

[[providers]]
name = "backup"
base_url = "{mock_url}/v1"
api_key_env = "SOAK_BACKUP_KEY"
timeouts = {{ connect = 5, first_byte = 20, idle = 10 }}

[[presets]]
name = "cheap"
default = "cheapco/qwen/qwen3-coder"
fallback = ["backup/deepseek/deepseek-chat"]

[routing]
active = "cheap"
"""


# ----------------------------------------------------------------------------------------------- the mock's script

_OK = Reply(text="one two three four five six seven eight", usage=Usage(prompt=120, completion=8))
_SLOW = Reply(
    text=" ".join(f"w{i}" for i in range(40)), stream_chunks=40, chunk_delay=0.05
)  # 2 s if read to the end
_RESET = Fault(
    "reset_mid_stream", after_chunks=3, reply=Reply(text="one two three four five six", chunk_delay=0.01)
)
_SLOW_CRASH = Reply(text=" ".join(f"s{i}" for i in range(200)), stream_chunks=200, chunk_delay=0.1)  # 20 s


def _marker(rec: RecordedRequest) -> str:
    body = rec.json if isinstance(rec.json, dict) else {}
    messages = body.get("messages") or []
    content = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else ""
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def script(rec: RecordedRequest) -> Reply | Fault:
    scenario = _marker(rec).removeprefix("soak:")
    if scenario == "fallback":
        return Reply(status=503) if rec.model == "qwen/qwen3-coder" else _OK
    if scenario in ("mid_reset", "an_mid_reset"):
        return _RESET
    if scenario == "upstream_400":
        return Reply(status=400, error="this model does not support that")
    if scenario in ("cancel", "an_cancel"):
        return _SLOW
    if scenario == "crash_slow":
        return _SLOW_CRASH
    return _OK


# ----------------------------------------------------------------------------------------------- the proxy process


@dataclass
class Proxy:
    proc: subprocess.Popen[str]
    url: str
    db: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_proxy(workdir: Path, mock_url: str, db: Path) -> Proxy:
    config = workdir / "config.toml"
    config.write_text(config_text(mock_url))
    home = workdir / "home"
    env = {
        **os.environ,
        **KEYS,
        "DOWNSHIFT_TOKEN": TOKEN,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DOWNSHIFT_DB_URL", None)
    env.pop("DOWNSHIFT_CONFIG", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app",
            "serve",
            "--config",
            str(config),
            "--db",
            f"sqlite:///{db}",
            "--port",
            "0",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"proxy on (http://\S+)", line)
    if not found:
        proc.kill()
        raise RuntimeError(f"the proxy did not start: {line}{proc.stderr.read() if proc.stderr else ''}")
    return Proxy(proc, found.group(1), db)


def stop_proxy(proxy: Proxy, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
    with contextlib.suppress(ProcessLookupError):
        proxy.proc.send_signal(sig)
    try:
        return proxy.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proxy.proc.kill()
        return proxy.proc.wait(5)
    finally:
        for stream in (proxy.proc.stdout, proxy.proc.stderr):
            if stream is not None:
                stream.close()


def resources(pid: int) -> dict[str, int]:
    p = psutil.Process(pid)
    return {"rss": p.memory_info().rss, "fds": p.num_fds(), "connections": len(p.net_connections(kind="tcp"))}


def db_rows(db: Path, prefix: str) -> list[tuple[str, str, int | None]]:
    """(user_agent, outcome, status) of the rows whose user agent starts with `prefix`."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(
            "SELECT user_agent, outcome, status FROM calls WHERE user_agent LIKE ?", (prefix + "%",)
        ).fetchall()
    finally:
        conn.close()


# ----------------------------------------------------------------------------------------------- calls


def _request(scenario: str) -> tuple[str, dict[str, str], bytes]:
    api, stream, _ = SCENARIOS[scenario]
    content = f"soak:{scenario}"
    if api == "anthropic":
        body: dict[str, Any] = {
            "model": "default",
            "max_tokens": 256,
            "stream": stream,
            "messages": [{"role": "user", "content": content}],
        }
        return (
            "/v1/messages",
            {"x-api-key": TOKEN, "anthropic-version": "2023-06-01"},
            json.dumps(body).encode(),
        )
    if api == "responses":
        return (
            "/v1/responses",
            {"Authorization": f"Bearer {TOKEN}"},
            json.dumps({"model": "default", "input": content, "stream": stream}).encode(),
        )
    if scenario == "bad_json":
        return (
            "/v1/chat/completions",
            {"Authorization": f"Bearer {TOKEN}"},
            b'{"model": "default", "messages": [',
        )
    body = {"model": "default", "stream": stream, "messages": [{"role": "user", "content": content}]}
    return "/v1/chat/completions", {"Authorization": f"Bearer {TOKEN}"}, json.dumps(body).encode()


async def one_call(session: aiohttp.ClientSession, base: str, scenario: str, ua: str) -> str:
    """Make one call as its scenario says; returns what the client saw (status, or 'hung-up')."""
    path, headers, body = _request(scenario)
    headers = {**headers, "Content-Type": "application/json", "User-Agent": ua}
    async with session.post(base + path, data=body, headers=headers) as resp:
        if SCENARIOS[scenario][2] == "cancelled":
            async for line in resp.content:  # read until the first words arrive, then hang up
                if b"w1" in line:
                    break
            resp.close()
            return "hung-up"
        await resp.read()
        return str(resp.status)


@dataclass
class SoakReport:
    calls: int
    concurrency: int
    seconds: float = 0.0
    rows: int = 0
    missing: int = 0
    duplicates: int = 0
    wrong_outcome: int = 0
    in_flight_left: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    client_errors: int = 0
    rss_mb: list[float] = field(default_factory=list)  # after warm-up, then every 10%, then idle at the end
    fds: list[int] = field(default_factory=list)
    rss_growth_mb: float = 0.0
    fd_growth: int = 0
    upstream_left_running: int = 0
    proxy_exit_code: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def _drive(
    base: str,
    scenarios: list[tuple[str, str]],
    concurrency: int,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, str], int]:
    """Run calls at `concurrency` in flight; returns ua -> what the client saw, and client-side errors."""
    seen: dict[str, str] = {}
    errors = 0
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for item in scenarios:
        queue.put_nowait(item)
    done = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def worker() -> None:
            nonlocal errors, done
            while not queue.empty():
                ua, scenario = queue.get_nowait()
                try:
                    seen[ua] = await one_call(session, base, scenario, ua)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    errors += 1
                    seen[ua] = f"client error: {exc!r}"
                done += 1
                if on_progress is not None:
                    on_progress(done)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return seen, errors


def run_soak(
    calls: int = 2000,
    concurrency: int = 64,
    workdir: Path | None = None,
    *,
    rss_growth_limit_mb: float | None = None,
    fd_slack: int = 16,
    log: Callable[[str], None] = print,
) -> SoakReport:
    report = SoakReport(calls, concurrency)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="downshift-soak-")))
        mock = stack.enter_context(MockUpstream(max_recorded=50, default=script))
        proxy = start_proxy(workdir, mock.base_url, workdir / "soak.db")
        try:
            warm = max(200, calls // 10)
            warm_plan = [(f"soak/warm/{i}", MIX[i % len(MIX)]) for i in range(warm)]
            plan = [(f"soak/main/{i}", MIX[i % len(MIX)]) for i in range(calls)]
            marks = {int(calls * k / 10) for k in range(1, 10)}

            def progress(n: int) -> None:
                if n in marks:
                    sample = resources(proxy.pid)
                    report.rss_mb.append(round(sample["rss"] / 2**20, 1))
                    report.fds.append(sample["fds"])

            asyncio.run(_drive(proxy.url, warm_plan, concurrency))
            time.sleep(0.5)
            base = resources(proxy.pid)
            report.rss_mb.append(round(base["rss"] / 2**20, 1))
            report.fds.append(base["fds"])
            log(f"warm-up: {warm} calls; proxy RSS {base['rss'] / 2**20:.1f} MB, {base['fds']} fds")
            start = time.monotonic()
            seen, report.client_errors = asyncio.run(_drive(proxy.url, plan, concurrency, progress))
            report.seconds = round(time.monotonic() - start, 2)
            log(
                f"soak: {calls} calls at concurrency {concurrency} in {report.seconds:.1f} s "
                f"({calls / max(report.seconds, 1e-9):.0f} calls/s)"
            )
            deadline = time.monotonic() + 10  # upstream requests the proxy let go of end on the mock at once
            while mock._tasks and time.monotonic() < deadline:
                time.sleep(0.05)
            report.upstream_left_running = len(mock._tasks)
            time.sleep(0.5)
            end = resources(proxy.pid)
            report.rss_mb.append(round(end["rss"] / 2**20, 1))
            report.fds.append(end["fds"])
            report.rss_growth_mb = round((end["rss"] - base["rss"]) / 2**20, 1)
            report.fd_growth = end["fds"] - base["fds"]
            rows = _settled_rows(proxy.db, "soak/main/", calls)
        finally:
            report.proxy_exit_code = stop_proxy(proxy)
    by_agent = Counter(ua for ua, _, _ in rows)
    outcome_of = {ua: outcome for ua, outcome, _ in rows}
    report.rows = len(rows)
    report.duplicates = sum(n - 1 for n in by_agent.values() if n > 1)
    report.missing = sum(1 for ua, _ in plan if ua not in by_agent)
    report.in_flight_left = sum(1 for _, outcome, _ in rows if outcome == "in_flight")
    report.wrong_outcome = sum(
        1 for ua, scenario in plan if ua in outcome_of and outcome_of[ua] != SCENARIOS[scenario][2]
    )
    report.outcomes = dict(Counter(outcome for _, outcome, _ in rows))
    _judge(report, rss_growth_limit_mb, fd_slack)
    return report


def _settled_rows(
    db: Path, prefix: str, expected: int, timeout: float = 15.0
) -> list[tuple[str, str, int | None]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = db_rows(db, prefix)
        if (
            len(rows) >= expected and not any(o == "in_flight" for _, o, _ in rows)
        ) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _judge(report: SoakReport, rss_growth_limit_mb: float | None, fd_slack: int) -> None:
    p = report.problems
    if report.missing or report.duplicates or report.rows != report.calls:
        p.append(
            f"rows: {report.rows} for {report.calls} calls ({report.missing} missing, {report.duplicates} duplicated)"
        )
    if report.wrong_outcome:
        p.append(f"{report.wrong_outcome} rows with an outcome their scenario does not imply")
    if report.in_flight_left:
        p.append(f"{report.in_flight_left} rows still in flight")
    if report.client_errors:
        p.append(f"{report.client_errors} calls failed on the client side")
    limit = rss_growth_limit_mb if rss_growth_limit_mb is not None else max(8.0, report.calls / 1000)
    if report.rss_growth_mb > limit:
        p.append(
            f"proxy RSS grew {report.rss_growth_mb} MB after warm-up (limit {limit} MB): {report.rss_mb}"
        )
    if report.fd_growth > fd_slack:
        p.append(f"proxy file descriptors grew by {report.fd_growth}: {report.fds}")
    if report.upstream_left_running:
        p.append(f"{report.upstream_left_running} upstream requests still running on the mock")
    if report.proxy_exit_code != 0:
        p.append(f"the proxy exited with {report.proxy_exit_code} on SIGTERM")


# ----------------------------------------------------------------------------------------------- crash


@dataclass
class CrashReport:
    slow_streams: int
    quick_finished: int = 0  # quick calls whose answer the client had before the kill
    quick_finished_early: int = 0  # ... more than WRITER_SLACK_S before it
    rows: int = 0
    interrupted: int = 0
    slow_interrupted: int = 0
    missing: int = 0
    missing_in_flight_at_kill: int = 0
    missing_answered_ms_before_kill: int = (
        0  # the oldest answer whose row was not on disk yet (writer batching)
    )
    early_missing_or_wrong: int = 0
    integrity: str = ""
    in_flight_after_restart: int = 0
    restart_status: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def run_crash(
    slow_streams: int = 24,
    quick_concurrency: int = 8,
    workdir: Path | None = None,
    log: Callable[[str], None] = print,
) -> CrashReport:
    report = CrashReport(slow_streams)
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="downshift-crash-")))
        mock = stack.enter_context(MockUpstream(max_recorded=50, default=script))
        db = workdir / "crash.db"
        proxy = start_proxy(workdir, mock.base_url, db)
        timeline: dict[str, tuple[float, float | None]] = {}  # ua -> (sent, answered)
        try:
            kill_at = asyncio.run(_crash_load(proxy, db, slow_streams, quick_concurrency, timeline))
        finally:
            stop_proxy(proxy, signal.SIGKILL)
        log(
            f"crash: SIGKILL with {slow_streams} streams in flight after {sum(1 for _, a in timeline.values() if a)} answers"
        )
        # restart the real thing on the same database: it must open cleanly and serve
        again = start_proxy(workdir, mock.base_url, db)
        try:
            body = json.dumps(
                {"model": "default", "messages": [{"role": "user", "content": "after the crash"}]}
            ).encode()
            report.restart_status = asyncio.run(_one_plain(again.url, body))
        finally:
            stop_proxy(again)
        conn = sqlite3.connect(db)
        try:
            report.integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
            rows = dict(
                conn.execute(
                    "SELECT user_agent, outcome FROM calls WHERE user_agent LIKE 'crash/%'"
                ).fetchall()
            )
            report.in_flight_after_restart = conn.execute(
                "SELECT count(*) FROM calls WHERE outcome = 'in_flight'"
            ).fetchone()[0]
        finally:
            conn.close()
    report.rows = len(rows)
    report.interrupted = sum(1 for o in rows.values() if o == "interrupted")
    slow = [ua for ua in timeline if ua.startswith("crash/slow/")]
    report.slow_interrupted = sum(1 for ua in slow if rows.get(ua) == "interrupted")
    quick = {ua: t for ua, t in timeline.items() if ua.startswith("crash/quick/")}
    report.quick_finished = sum(
        1 for _, answered in quick.values() if answered is not None and answered <= kill_at
    )
    early = [
        ua
        for ua, (_, answered) in quick.items()
        if answered is not None and answered < kill_at - WRITER_SLACK_S
    ]
    report.quick_finished_early = len(early)
    report.early_missing_or_wrong = sum(1 for ua in early if rows.get(ua) != "ok")
    missing = [ua for ua in timeline if ua not in rows]
    report.missing = len(missing)
    # a call may lack a row only if it was in flight at the kill or had just finished
    report.missing_in_flight_at_kill = sum(
        1 for ua in missing if timeline[ua][1] is None or timeline[ua][1] >= kill_at - WRITER_SLACK_S
    )
    report.missing_answered_ms_before_kill = max(
        [round((kill_at - timeline[ua][1]) * 1000) for ua in missing if timeline[ua][1] is not None] or [0]
    )
    p = report.problems
    if report.integrity != "ok":
        p.append(f"integrity check: {report.integrity}")
    if report.slow_interrupted != slow_streams:
        p.append(f"only {report.slow_interrupted} of {slow_streams} in-flight streams are marked interrupted")
    if report.early_missing_or_wrong:
        p.append(f"{report.early_missing_or_wrong} calls answered before the kill lack their final row")
    if report.missing != report.missing_in_flight_at_kill:
        p.append(f"{report.missing - report.missing_in_flight_at_kill} finished calls are missing")
    if report.in_flight_after_restart:
        p.append(f"{report.in_flight_after_restart} rows still in flight after the restart")
    if report.restart_status != 200:
        p.append(f"the restarted proxy answered {report.restart_status}")
    if report.quick_finished_early == 0:
        p.append("no call finished before the kill: the run proves nothing")
    return report


async def _one_plain(base: str, body: bytes) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            base + "/v1/chat/completions",
            data=body,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        ) as resp,
    ):
        await resp.read()
        return resp.status


async def _crash_load(
    proxy: Proxy,
    db: Path,
    slow_streams: int,
    quick_concurrency: int,
    timeline: dict[str, tuple[float, float | None]],
) -> float:
    """Slow streams plus a steady flow of quick calls; SIGKILL once the streams' starts are on disk."""
    stop = asyncio.Event()
    counter = iter(range(10**9))
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def tracked(ua: str, scenario: str, body: bytes, stream: bool) -> None:
        timeline[ua] = (time.monotonic(), None)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", "User-Agent": ua}
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.post(proxy.url + "/v1/chat/completions", data=body, headers=headers) as resp:
                await resp.read()
                if resp.status == 200 and not stream:
                    timeline[ua] = (timeline[ua][0], time.monotonic())

    async def quick_worker() -> None:
        body = json.dumps(
            {"model": "default", "messages": [{"role": "user", "content": "soak:oa_whole"}]}
        ).encode()
        while not stop.is_set():
            await tracked(f"crash/quick/{next(counter)}", "oa_whole", body, False)
            await asyncio.sleep(QUICK_PAUSE_S)

    slow_body = json.dumps(
        {"model": "default", "stream": True, "messages": [{"role": "user", "content": "soak:crash_slow"}]}
    ).encode()
    workers = [asyncio.create_task(quick_worker()) for _ in range(quick_concurrency)]
    streams = [
        asyncio.create_task(tracked(f"crash/slow/{i}", "crash_slow", slow_body, True))
        for i in range(slow_streams)
    ]
    started = time.monotonic()
    while True:  # the streams' start rows are committed, and quick calls have been going on for a while
        await asyncio.sleep(0.1)
        slow_logged = [o for _, o, _ in db_rows(db, "crash/slow/")] if db.exists() else []
        finished = sum(1 for ua, (_, a) in timeline.items() if a is not None)
        ready = slow_logged.count("in_flight") == slow_streams and finished >= 50
        if (ready and time.monotonic() - started > 2.0) or time.monotonic() - started > 30:
            break
    await asyncio.sleep(0.3)  # mid-load: more quick calls in every stage of their life
    kill_at = time.monotonic()
    os.kill(proxy.pid, signal.SIGKILL)
    stop.set()
    await asyncio.gather(*workers, *streams, return_exceptions=True)
    await session.close()
    return kill_at


# ----------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python bench/soak.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--full", action="store_true", help="20,000 calls and a bigger crash (the issue's size)"
    )
    parser.add_argument("--calls", type=int, help="soak calls (default 2,000; 20,000 with --full)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--no-crash", action="store_true", help="skip the crash run")
    parser.add_argument("--no-soak", action="store_true", help="skip the soak run")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    args = parser.parse_args(argv)
    calls = args.calls or (20_000 if args.full else 2_000)
    log = (lambda _msg: None) if args.json else (lambda msg: print(msg, flush=True))
    out: dict[str, Any] = {}
    ok = True
    if not args.no_soak:
        soak = run_soak(calls, args.concurrency, log=log)
        out["soak"] = asdict(soak)
        ok &= soak.ok
        log(
            f"soak: {soak.rows} rows for {soak.calls} calls, outcomes {soak.outcomes}, RSS after warm-up "
            f"{soak.rss_mb[0]} -> {soak.rss_mb[-1]} MB (samples {soak.rss_mb}), fds {soak.fds[0]} -> {soak.fds[-1]}: "
            f"{'OK' if soak.ok else 'FAILED: ' + '; '.join(soak.problems)}"
        )
    if not args.no_crash:
        crash = run_crash(
            slow_streams=64 if args.full else 24, quick_concurrency=16 if args.full else 8, log=log
        )
        out["crash"] = asdict(crash)
        ok &= crash.ok
        log(
            f"crash: integrity {crash.integrity}, {crash.slow_interrupted}/{crash.slow_streams} streams interrupted, "
            f"{crash.quick_finished_early} calls finished before the kill all logged ok, {crash.missing} missing "
            f"(all in flight at the kill), restart answered {crash.restart_status}: "
            f"{'OK' if crash.ok else 'FAILED: ' + '; '.join(crash.problems)}"
        )
    if args.json:
        print(json.dumps(out, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Shape 1, a proxy per developer and one team ledger: each finished call is also shipped to the team's
PostgreSQL, exactly once, off the hot path.

Handing over: a hook of the local log writer puts every ended call into the `outbox` table, in the same
transaction that writes its local row, so a call is in both or in neither (a crash between the two is
impossible). The proxy's event loop does nothing more than before.
Shipping: a thread of its own reads the outbox in order, batch by batch, and writes each batch to the ledger
in one transaction: the calls not yet there (looked up by call id) get their tasks, 15-minute slot and task
totals, tool calls and rows; calls already there are skipped, so a batch resent after a lost commit
acknowledgement adds nothing twice (idempotent on call id, `ON CONFLICT DO NOTHING` as the last guard).
Only after the commit are the batch's outbox rows deleted. While the ledger is unreachable the rows wait in the
outbox (on disk: they survive restarts), bounded by `max_rows`; past it the oldest are dropped and counted.
Prompt and answer bodies are never shipped.

The shipping loop runs in a process of its own (`python -m app.core.team_ship`, started by `TeamShipper.start`
for a local SQLite log), not in a thread of the proxy's: parsing, grouping and sending a batch is Python work,
and in a thread it held the interpreter's lock the proxy's event loop needs (the proxy's p90 latency rose by
~1 ms at 850 calls/s). The process reads the outbox from the same file (WAL: readers never block the writer),
is told of new rows and of the config's task idle gap on its stdin (the ledger URL with its password too, so
no secret is in its command line or environment), and reports each batch, failure and notice on its stdout;
it exits when its stdin closes, so it never outlives the proxy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import SQLAlchemyError

from app.core.analytics import executors as executor_totals
from app.core.analytics.rollup import BatchTotals, attribute_failed_results
from app.core.analytics.tasks import TaskGrouper
from app.core.records import Attempt, CallRecord, ToolCallResult
from app.core.storage.dialect import display_url, driver_cursor, pg
from app.core.storage.models import Call
from app.core.storage.writer import _CALL_COLUMNS, _TOOL_COLUMNS, call_row, tool_call_rows

log = logging.getLogger(__name__)

_OUTBOX_INSERT = "INSERT INTO outbox (call_id, payload, created_at) VALUES (?, ?, ?)"
_LEDGER_CALLS = pg(
    f"INSERT INTO calls ({', '.join(_CALL_COLUMNS)}) VALUES ({', '.join('?' for _ in _CALL_COLUMNS)})"
    " ON CONFLICT (call_id) DO NOTHING"
)
_LEDGER_TOOLS = pg(
    f"INSERT INTO tool_calls ({', '.join(_TOOL_COLUMNS)}) VALUES ({', '.join('?' for _ in _TOOL_COLUMNS)})"
)
_LEDGER_FAILED = (
    "UPDATE tool_calls SET result_failed = true, result_reason = %s WHERE tool_call_id = %s"
    " AND NOT result_failed"
)


def payload(rec: CallRecord) -> bytes:
    """What the ledger needs of a call: its row without bodies, plus what the ledger's own task grouping and
    totals read (the task key, the tool calls, the failed results the request reported)."""
    row = call_row(rec, bodies=False)
    row["task_id"] = None  # the ledger has its own tasks
    return orjson.dumps(
        {
            "row": row,
            "task_key": rec.task_key,
            "task_label": rec.task_label,
            "tools": [[t.tool_call_id, t.name, t.kind, t.detail] for t in rec.tool_calls],
            "failed": rec.failed_results,
        }
    )


def record(data: dict[str, Any]) -> CallRecord:
    """A CallRecord back from a payload: what the ledger's analytics read."""
    row = data["row"]
    rec = CallRecord(
        client_api=row["client_api"],
        endpoint=row["endpoint"],
        call_id=row["call_id"],
        started_at=row["started_at"],
    )
    for name in (
        "duration_ms",
        "role",
        "provider",
        "upstream_model",
        "outcome",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "cost_usd",
        "cost_source",
        "premium_cost_usd",
        "escalated",
        "usage_estimated",
        "member",
        "machine",
        "session_key",
    ):
        setattr(rec, name, row[name])
    # the attempts: a billed one without a known price makes the call's cost partial (CallRecord.unpriced)
    rec.attempts = [Attempt(**a) for a in orjson.loads(row.get("fallback_chain") or "[]")]
    rec.task_key = data["task_key"]
    rec.task_label = data.get("task_label")
    rec.tool_calls = [
        ToolCallResult(tcid, name, kind, detail or "") for tcid, name, kind, detail in data["tools"]
    ]
    rec.failed_results = [(tcid, reason) for tcid, reason in data["failed"]]
    return rec


SLICE = 25  # records handled between two hand-backs of the GIL


def _yield() -> None:
    time.sleep(0)  # let the proxy's event loop have the GIL between slices of a batch


LEDGER_PASSWORD = "team-ledger-password"  # the keyring entry `downshift team password` sets


def ledger_url(url: str, secrets: Any) -> str:
    """The ledger URL with its password from the keyring, if one is stored there (in memory only: logs and
    notices show `display_url`); else libpq takes it from PGPASSWORD or ~/.pgpass."""
    from sqlalchemy.engine import make_url

    from app.core.storage.dialect import normalize_url

    try:
        password = secrets.get(LEDGER_PASSWORD)
    except Exception:  # no keyring: the environment may still have it
        log.warning("could not read the team ledger password from the keyring", exc_info=True)
        password = None
    if not password:
        return url
    return make_url(normalize_url(url)).set(password=password).render_as_string(hide_password=False)


@dataclass
class ShipStats:
    shipped: int = 0  # calls now in the ledger (sent by this proxy)
    skipped: int = 0  # calls the ledger already had (a resend): not counted twice
    dropped: int = 0  # calls dropped from a full outbox
    failures: int = 0
    last_error: str | None = None
    outage_since: float | None = None
    lags: list[float] = field(default_factory=list)  # seconds from local write to ledger commit (last 10,000)


class TeamShipper:
    """The outbox hook for the local writer and the thread that empties the outbox into the ledger."""

    def __init__(
        self,
        local: Engine,
        ledger_url: str,
        *,
        idle_s: Callable[[], float] = lambda: 1800.0,
        max_rows: int = 200_000,
        batch: int = 500,
        interval: float = 0.2,
        notify: Callable[[str, str], None] | None = None,
        process: str | None = None,
    ) -> None:
        """`process`: the local log's URL, to ship from a process of its own (see the module docstring);
        None ships from a thread of this process (tests, benchmarks of the loop itself)."""
        self.local, self.ledger_url = local, ledger_url
        self.process_url = process
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc_lock = threading.Lock()  # writes to the process's stdin come from several threads
        self._synced = threading.Condition()
        self._sync_sent = self._sync_seen = 0
        self._idle_sent_at = 0.0
        self._base: dict[str, int] = {}
        self.ready = (
            threading.Event()
        )  # the loop runs (a process: started, imported, ledger connected or tried)
        self.on_step: Callable[[], None] | None = None  # after every turn of the loop: the process reports
        self.idle_s, self.max_rows, self.batch, self.interval = idle_s, max_rows, batch, interval
        self.notify = notify
        self.on_shipped: Callable[[list[str], float], None] | None = (
            None  # (call ids, commit time): benchmarks
        )
        self.stats = ShipStats()
        self._ledger: Engine | None = None
        self._grouper = TaskGrouper()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="downshift-team-shipper", daemon=True)

    def start(self) -> TeamShipper:
        if self.process_url is not None:
            try:
                self._spawn()
            except OSError as exc:  # no process to be had (a sandbox, a broken install): ship from a thread
                log.error("cannot start the team ledger shipping process (%s): shipping from a thread", exc)
                self._proc, self.process_url = None, None
        if self.process_url is None:
            self._thread.start()
            self.ready.set()
            return self
        self._thread = threading.Thread(
            target=self._read_reports, name="downshift-team-ship-reports", daemon=True
        )
        self._thread.start()
        return self

    # ------------------------------------------------------------------ the shipping process, seen from the proxy

    def _spawn(self) -> None:
        # a process counts from 0: what earlier ones did is kept under it
        self._base = {
            "shipped": self.stats.shipped,
            "skipped": self.stats.skipped,
            "failures": self.stats.failures,
        }
        root = str(Path(__file__).resolve().parents[2])  # where `app` is imported from, for the child too
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
        }
        frozen = getattr(sys, "frozen", False)  # the packaged app: its binary dispatches (packaging/entry.py)
        self._proc = subprocess.Popen(
            [sys.executable, "__team-ship-process"]
            if frozen
            else [sys.executable, "-m", "app.core.team_ship"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self._send(
            {
                "local": self.process_url,
                "ledger": self.ledger_url,
                "batch": self.batch,
                "interval": self.interval,
                "idle_s": self.idle_s(),
            }
        )

    def _send(self, msg: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        with self._proc_lock:
            try:
                proc.stdin.write(orjson.dumps(msg) + b"\n")
                proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):  # it is gone: `_read_reports` restarts it
                pass

    def _poke(self) -> None:
        """New rows in the outbox (the local writer's thread): one short line down the pipe, and the task idle
        gap at most every 10 s (reading it may check the config file)."""
        now = time.monotonic()
        if now - self._idle_sent_at > 10.0:
            self._idle_sent_at = now
            self._send({"idle_s": self.idle_s()})
        else:
            self._send({})

    def _read_reports(self) -> None:
        """The reports of the shipping process, until it ends; one that ends without being asked to is started
        again (after 1 s, then longer while it keeps ending within a minute)."""
        restarts = 0
        while True:
            proc = self._proc
            assert proc is not None and proc.stdout is not None
            began = time.monotonic()
            for line in proc.stdout:
                try:
                    self._report(orjson.loads(line))
                except Exception:
                    log.exception("team ledger shipper: bad report %r", line[:200])
            proc.wait()
            self._release(proc)
            restarts = restarts + 1 if time.monotonic() - began < 60 else 1
            while not self._stop.is_set():
                log.error(
                    "the team ledger shipping process ended (exit %s): starting it again", proc.returncode
                )
                if self._stop.wait(min(60.0, float(restarts))):
                    return
                try:
                    self._spawn()
                    break
                except OSError as exc:
                    log.error("cannot start the team ledger shipping process: %s", exc)
                    restarts += 1
            if self._stop.is_set():
                return

    def _release(self, proc: subprocess.Popen[bytes]) -> None:
        """An ended process's pipes closed (its reports are all read), so no file is left for the gc."""
        with self._proc_lock:
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    def _report(self, msg: dict[str, Any]) -> None:
        stats = msg.get("stats")
        if stats is not None:
            for name in ("shipped", "skipped", "failures", "last_error", "outage_since"):
                base = self._base.get(name)
                setattr(self.stats, name, stats[name] if base is None else base + stats[name])
        if msg.get("lags"):
            lags = self.stats.lags
            lags.extend(msg["lags"])
            if len(lags) > 10_000:
                del lags[: len(lags) - 10_000]
        if msg.get("ids") and self.on_shipped is not None:
            self.on_shipped(msg["ids"], msg["done"])
        if "notice" in msg:
            self._tell(*msg["notice"])
        if "ready" in msg:
            self.ready.set()
        if "sync" in msg:
            with self._synced:
                self._sync_seen = max(self._sync_seen, msg["sync"])
                self._synced.notify_all()

    def _sync(self, timeout: float) -> bool:
        """True once the process has reported everything it did before this call."""
        if self._proc is None:
            return True
        with self._synced:
            self._sync_sent += 1
            n = self._sync_sent
        self._send({"sync": n})
        with self._synced:
            return self._synced.wait_for(lambda: self._sync_seen >= n, timeout)

    # ------------------------------------------------------------------ the local writer's hook (its thread)

    def outbox_hook(self, conn: Connection, ends: Sequence[CallRecord]) -> None:
        """Inside the local writer's transaction: the batch's ended calls into the outbox, then the bound."""
        if not ends:
            return
        now = time.time()
        cur = driver_cursor(conn)
        try:
            cur.executemany(_OUTBOX_INSERT, [(r.call_id, payload(r), now) for r in ends])
            lo, hi = cur.execute("SELECT min(id), max(id) FROM outbox").fetchone()
            over = (
                (hi - lo + 1) - self.max_rows if lo is not None else 0
            )  # ids are contiguous: shipped from the front
            if over > 0:
                cur.execute("DELETE FROM outbox WHERE id < ?", (lo + over,))
                self.stats.dropped += over
                log.warning(
                    "team ledger outbox full (%d calls): the %d oldest were dropped", self.max_rows, over
                )
        finally:
            cur.close()
        if self._proc is not None:
            self._poke()
        else:
            self._wake.set()

    # ------------------------------------------------------------------ the shipping thread

    def pending(self) -> int:
        with self.local.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM outbox").scalar() or 0)

    def wait_empty(self, timeout: float = 30.0) -> bool:
        """Tests and shutdown: True once everything handed over so far is in the ledger."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return self._sync(max(0.1, deadline - time.monotonic()))  # and its report read
            if self._proc is not None:
                self._send({})
            else:
                self._wake.set()
            time.sleep(0.05)
        return False

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        proc = self._proc
        if proc is not None:
            with self._proc_lock:
                if proc.stdin is not None:
                    with contextlib.suppress(OSError):
                        proc.stdin.close()  # the process ends its batch, then exits
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if proc is not None and not self._thread.is_alive():  # its reader is done with the pipes
            self._release(proc)
        if self._ledger is not None:
            self._ledger.dispose()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.ship_once()
            except Exception as exc:  # the ledger is down, or anything else: the rows wait, we retry
                self._failed(exc)
                if self.on_step is not None:
                    self.on_step()
                self._stop.wait(min(5.0, 0.5 * self.stats.failures if self.stats.outage_since else 0.5))
                continue
            if self.stats.outage_since is not None:
                self._recovered()
            if sent < self.batch:
                self._wake.wait(self.interval)
                self._wake.clear()
            if self.on_step is not None:
                self.on_step()

    def _engine(self) -> Engine:
        if self._ledger is None:
            from app.core.storage.db import open_database

            self._ledger = open_database(
                self.ledger_url
            )  # no machine: a shipper never marks calls interrupted
        return self._ledger

    def ship_once(self) -> int:
        """Send up to one batch; returns how many outbox rows it took. The Python work is done in slices with
        the GIL handed back in between (`_yield`), so the proxy's event loop in the same process is not kept
        waiting for a whole batch (the default switch interval is 5 ms)."""
        with self.local.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT id, payload, created_at FROM outbox ORDER BY id LIMIT ?", (self.batch,)
            ).all()
        if not rows:
            return 0
        ledger = self._engine()
        payloads: dict[str, dict[str, Any]] = {}
        records: dict[str, CallRecord] = {}
        for n, (_id, raw, _at) in enumerate(rows):
            data = orjson.loads(raw)
            rec = record(data)
            payloads[rec.call_id], records[rec.call_id] = data, rec
            if n % SLICE == SLICE - 1:
                _yield()
        with ledger.begin() as conn:
            there = set(conn.execute(select(Call.call_id).where(Call.call_id.in_(list(records)))).scalars())
            new = [r for r in records.values() if r.call_id not in there]
            if new:
                self._grouper.assign(conn, new, self.idle_s())
                _yield()
                totals = BatchTotals()
                for rec in new:
                    totals.add_call(rec)
                attribute_failed_results(conn, new, totals)
                totals.write(conn)
                executor_totals.writer_hook(conn, new)  # the ledger's scorecard: totals by prompt size
                _yield()
                rows_out = []
                for n, rec in enumerate(new):
                    row = payloads[rec.call_id]["row"]
                    row["task_id"] = rec.task_id
                    rows_out.append(tuple(row[c] for c in _CALL_COLUMNS))
                    if n % SLICE == SLICE - 1:
                        _yield()
                cur = driver_cursor(conn)
                try:
                    for i in range(0, len(rows_out), SLICE):
                        cur.executemany(_LEDGER_CALLS, rows_out[i : i + SLICE])
                        _yield()
                    tools = tool_call_rows(new)
                    if tools:
                        cur.executemany(_LEDGER_TOOLS, tools)
                    failed = [(reason[:500], tcid) for r in new for tcid, reason in r.failed_results]
                    if failed:
                        cur.executemany(_LEDGER_FAILED, failed)
                finally:
                    cur.close()
        done = time.time()
        with self.local.begin() as conn:
            conn.exec_driver_sql("DELETE FROM outbox WHERE id <= ?", (rows[-1][0],))
        self.stats.shipped += len(new)
        self.stats.skipped += len(records) - len(new)
        lags = self.stats.lags
        lags.extend(done - at for _id, _p, at in rows)
        if len(lags) > 10_000:
            del lags[: len(lags) - 10_000]
        if self.on_shipped is not None:
            self.on_shipped(list(records), done)
        return len(rows)

    def _failed(self, exc: BaseException) -> None:
        self.stats.failures += 1
        self.stats.last_error = str(getattr(exc, "orig", None) or exc)[:300]
        if self.stats.outage_since is None:
            self.stats.outage_since = time.time()
            is_db = isinstance(exc, SQLAlchemyError)
            (log.warning if is_db else log.error)(
                "team ledger %s not written (%s); calls wait in the local outbox",
                display_url(self.ledger_url),
                self.stats.last_error,
                exc_info=not is_db,
            )
            self._tell(
                "Team ledger unreachable",
                f"Calls wait in the local outbox and are sent when "
                f"{display_url(self.ledger_url)} is back ({self.stats.last_error}).",
            )
            if self._ledger is not None:  # a fresh pool after the outage
                self._ledger.dispose()

    def _recovered(self) -> None:
        since = self.stats.outage_since or time.time()
        self.stats.outage_since = None
        log.warning("team ledger written again after %.0f s", time.time() - since)
        self._tell("Team ledger reachable again", f"Shipping resumed after {time.time() - since:.0f} s.")

    def _tell(self, title: str, message: str) -> None:
        if self.notify is not None:
            try:
                self.notify(title, message)
            except Exception:
                log.exception("team ledger notice failed")


# ---------------------------------------------------------------------- the shipping process itself


def child_main() -> int:
    """`python -m app.core.team_ship`: the loop of `TeamShipper` in a process of its own (see the module
    docstring). Reads its settings as the first line of stdin, then wake-ups, the idle gap and sync requests;
    writes one JSON line per report. Ends when stdin closes."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if hasattr(os, "nice"):  # background work: on a busy machine the proxy and the agents come first
        with contextlib.suppress(OSError):
            os.nice(10)
    from app.core.storage.db import create_db_engine

    settings = orjson.loads(sys.stdin.buffer.readline() or b"null")
    if not settings:
        return 2
    out = sys.stdout.buffer
    out_lock = threading.Lock()

    def send(msg: dict[str, Any]) -> None:
        with out_lock:
            out.write(orjson.dumps(msg) + b"\n")
            out.flush()

    local = create_db_engine(settings["local"])  # no migration and no marking: the proxy owns the log
    idle = [float(settings["idle_s"])]
    syncs: list[int] = []
    shipper = TeamShipper(
        local,
        settings["ledger"],
        idle_s=lambda: idle[0],
        batch=int(settings["batch"]),
        interval=float(settings["interval"]),
        notify=lambda title, message: send({"notice": [title, message]}),
    )

    def shipped(ids: list[str], done: float) -> None:
        lags = shipper.stats.lags  # this batch's only: the proxy keeps the history
        send({"stats": _stats(shipper.stats), "ids": ids, "done": done, "lags": lags})
        del lags[:]

    last: list[dict[str, Any]] = [{}]

    def step() -> None:
        now = _stats(shipper.stats)
        if now != last[0]:
            last[0] = now
            send({"stats": now})
        while syncs:
            send({"sync": syncs.pop(0)})

    shipper.on_shipped, shipper.on_step = shipped, step

    def commands() -> None:
        for line in sys.stdin.buffer:
            msg = orjson.loads(line) if line.strip() else {}
            if "idle_s" in msg:
                idle[0] = float(msg["idle_s"])
            if "sync" in msg:
                syncs.append(int(msg["sync"]))
            shipper._wake.set()
        shipper._stop.set()  # the proxy closed the pipe, or is gone
        shipper._wake.set()

    threading.Thread(target=commands, name="downshift-team-ship-commands", daemon=True).start()
    try:
        with contextlib.suppress(Exception):  # connect now, so the first batch does not wait for it
            shipper._engine()
        send({"ready": os.getpid()})
        shipper._run()
    finally:
        if shipper._ledger is not None:
            shipper._ledger.dispose()
        local.dispose()
    return 0


def _stats(stats: ShipStats) -> dict[str, Any]:
    return {
        "shipped": stats.shipped,
        "skipped": stats.skipped,
        "failures": stats.failures,
        "last_error": stats.last_error,
        "outage_since": stats.outage_since,
    }


if __name__ == "__main__":
    sys.exit(child_main())

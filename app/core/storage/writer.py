"""The background log writer: the proxy hands it records and never waits on the database.

Each call is announced when it starts and again when it ends. Both go through one FIFO queue (a deque: handing
a record over is an append that wakes nobody; the writer thread drains it every `interval`, 0.1 s). A call
that ends within START_ROW_AFTER_S of its start costs one insert of its final row. A call still running after
that gets an `in_flight` row first, which the next start marks `interrupted` if the process died; its end
then updates the row. So a crash can lose: calls in flight for less than START_ROW_AFTER_S, and calls
answered within the writer's last batch window. `flush()` writes the rows of every call it knows, an
`in_flight` row for each one still running.
When the database is locked or the disk is full, rows wait in a bounded queue and are retried; the writer
warns once when writing stops and once when it resumes (`notify`, which the proxy turns into a "notice"
event). If the bound is reached it counts exactly how many calls lost their row (`stats.dropped`); a start
announcement that does not fit is skipped without loss, since the call's end writes the whole row.
Stored bodies are redacted here, on the writer's thread, never on the proxy's event loop.
Rows are written with prepared SQL on the driver's cursor (SQLAlchemy's statement execution cost more per
batch than the inserts themselves); the analytics hooks run in the same transaction.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from app.core.records import CallRecord
from app.core.redact import redact, redact_text
from app.core.storage.dialect import DriverCursor, driver_cursor, pg
from app.core.storage.models import Call

log = logging.getLogger(__name__)

# What a database in trouble raises: through SQLAlchemy, or straight from the driver (hooks use its cursor).
_DB_ERRORS = (SQLAlchemyError, sqlite3.Error)
BatchHook = Callable[[Connection, Sequence[CallRecord]], None]

START_ROW_AFTER_S = 1.0  # a call running longer than this gets an `in_flight` row (crash evidence)

_CALL_COLUMNS = [c.name for c in Call.__table__.columns if c.name != "id"]
_UPDATE_COLUMNS = [c for c in _CALL_COLUMNS if c not in ("call_id", "started_at")]
_INSERT_CALLS = (
    f"INSERT INTO calls ({', '.join(_CALL_COLUMNS)}) VALUES ({', '.join('?' for _ in _CALL_COLUMNS)})"
)
_SQL_START = _INSERT_CALLS + " ON CONFLICT (call_id) DO NOTHING"
_SQL_END = (
    _INSERT_CALLS
    + " ON CONFLICT (call_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _UPDATE_COLUMNS)
)
_TOOL_COLUMNS = (
    "call_id",
    "tool_call_id",
    "name",
    "kind",
    "detail",
    "result_failed",
    "result_reason",
    "started_at",
    "upstream_model",
)
_SQL_TOOL = (
    f"INSERT INTO tool_calls ({', '.join(_TOOL_COLUMNS)}) VALUES ({', '.join('?' for _ in _TOOL_COLUMNS)})"
)
_SQL_RESULT_FAILED = (
    "UPDATE tool_calls SET result_failed = 1, result_reason = ? WHERE tool_call_id = ? AND result_failed IS 0"
)


@dataclass(frozen=True)
class _Statements:
    start: str
    end: str
    tool: str
    result_failed: str


_SQLITE_SQL = _Statements(_SQL_START, _SQL_END, _SQL_TOOL, _SQL_RESULT_FAILED)
# PostgreSQL: psycopg's placeholders, real booleans (executemany runs in pipeline mode: one round trip a batch)
_PG_SQL = _Statements(
    pg(_SQL_START),
    pg(_SQL_END),
    pg(_SQL_TOOL),
    "UPDATE tool_calls SET result_failed = true, result_reason = %s WHERE tool_call_id = %s"
    " AND NOT result_failed",
)


# ---------------------------------------------------------------------------------- what the queue carries
# A call that ended is queued as its CallRecord itself (its final row); every other item is a small class.
# started() and finished() run on the proxy's event loop for every call, so the commonest item costs no
# wrapper, and the others are slots classes (not frozen: a frozen __init__ is slower).


@dataclass(slots=True)
class _Start:
    """A call began: it gets an `in_flight` row if it is still running after START_ROW_AFTER_S."""

    rec: CallRecord


@dataclass(slots=True)
class _FailedResults:
    """Tool results a later request reported as failed: (tool_call_id, reason), redacted before writing."""

    results: list[tuple[str, str]]


@dataclass(slots=True)
class _Flush:
    """Write everything queued before this, then set `done`."""

    done: threading.Event


_Work = CallRecord | _Start | _FailedResults  # what a batch writes (a CallRecord: that call ended)
_Item = _Work | _Flush


def _db_errors(engine: Engine) -> tuple[type[BaseException], ...]:
    """What a database in trouble raises on this engine's driver (hooks use its cursor directly)."""
    if engine.dialect.name == "sqlite":
        return _DB_ERRORS
    import psycopg

    return (SQLAlchemyError, psycopg.Error)


@dataclass
class WriterStats:
    written: int = 0
    dropped: int = 0  # calls whose final row was lost because the queue was full
    skipped_starts: int = 0  # start announcements not queued (harmless: the end writes the row)
    failures: int = 0  # failed write attempts, ever
    last_error: str | None = None
    outage_since: float | None = None  # time.time() the current run of failures began; None when writing


def call_row(rec: CallRecord, bodies: bool = True) -> dict[str, object]:
    """The `calls` row for a record. Bodies are kept only if the proxy put them there (setting)."""
    return {
        "call_id": rec.call_id,
        "started_at": rec.started_at,
        "ttfb_ms": rec.ttfb_ms,
        "duration_ms": rec.duration_ms,
        "client_api": rec.client_api,
        "endpoint": rec.endpoint,
        "requested_model": rec.requested_model,
        "preset": rec.preset,
        "role": rec.role,
        "provider": rec.provider,
        "upstream_api": rec.upstream_api,
        "upstream_model": rec.upstream_model,
        "streamed": rec.streamed,
        "status": rec.status,
        "outcome": rec.outcome,
        "error_kind": rec.error_kind,
        "error_message": rec.error_message,
        "input_tokens": rec.input_tokens,
        "output_tokens": rec.output_tokens,
        "cache_read_tokens": rec.cache_read_tokens,
        "cache_write_tokens": rec.cache_write_tokens,
        "cache_write_1h_tokens": rec.cache_write_1h_tokens,
        "reasoning_tokens": rec.reasoning_tokens,
        "cost_usd": rec.cost_usd,
        "cost_source": rec.cost_source,
        "billed_cost_usd": rec.billed_cost_usd,
        "estimated_cost_usd": rec.estimated_cost_usd,
        "premium_cost_usd": rec.premium_cost_usd,
        "unpriced": rec.unpriced,
        "usage_estimated": rec.usage_estimated,
        "fallback_chain": orjson.dumps([a.as_json() for a in rec.attempts]).decode()
        if rec.attempts
        else None,
        "attempts": max(1, len(rec.attempts)),
        "bytes_in": rec.bytes_in,
        "bytes_out": rec.bytes_out,
        "session_key": rec.session_key,
        "task_id": rec.task_id,
        "user_agent": rec.user_agent,
        "tool_calls": len(rec.tool_calls),
        "tool_failures": rec.tool_failures,
        "escalated": rec.escalated,
        "request_body": rec.request_body if bodies else None,
        "response_body": rec.response_body if bodies else None,
        "member": rec.member,
        "machine": rec.machine,
    }


def _row_values(rec: CallRecord, in_flight: bool = False) -> tuple[object, ...]:
    """`call_row` as a tuple in `_CALL_COLUMNS` order; a start row says in_flight and has no bodies."""
    row = call_row(rec, bodies=not in_flight)
    if in_flight:
        row["outcome"] = "in_flight"
    return tuple(row[c] for c in _CALL_COLUMNS)


class LogWriter:
    """A daemon thread that batches call records into SQLite."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_pending: int = 200_000,
        batch_size: int = 1000,
        interval: float = 0.1,
        on_written: Callable[[Sequence[CallRecord]], None] | None = None,
        notify: Callable[[str, str], None] | None = None,
        start: bool = True,
    ) -> None:
        """`start=False`: no thread (a log opened read-only): nothing queued is ever written, `flush` returns
        at once."""
        self.engine = engine
        # the one branch on the database: SQLite keeps its statements, PostgreSQL gets its own (chosen here once)
        self._sql = _SQLITE_SQL if engine.dialect.name == "sqlite" else _PG_SQL
        self._db_errors = _db_errors(engine)
        self.stats = WriterStats()
        self.hooks: list[BatchHook] = []
        # (title, message) for the user when writing stops, resumes, or rows are dropped; set by the proxy
        self.notify = notify
        # exact secret values (provider keys, the local token) to mask in stored bodies; set by the proxy
        self.secrets: Callable[[], Iterable[bytes]] | None = None
        self.max_pending = max_pending
        # team mode: who and where, for rows whose call did not say (a member token does); set by Core
        self.member: str | None = None
        self.machine: str | None = None
        self._consecutive_failures = 0
        self._dropped_at_outage = 0
        self._last_drop_notice = 0.0
        self._redacted: set[str] = set()  # call ids whose bodies were redacted in the batch being retried
        self._skip_hooks = False  # the batch being retried broke a hook: it is written without them
        # Appended by any thread, drained by the writer: deque appends and pops are atomic and, unlike
        # queue.Queue, wake no one (a Condition.notify per call handed the GIL to the writer every time).
        self._items: deque[_Item] = deque()
        self._running: dict[str, CallRecord] = {}  # started, not ended, no row yet (oldest first)
        self._starts: list[CallRecord] = []  # the start rows of the batch being written
        self._batch_size = batch_size
        self._interval = interval
        self.start_row_after = START_ROW_AFTER_S
        self._on_written = on_written
        self._stop = threading.Event()
        self._wake = threading.Event()  # flush and close: write now rather than at the next tick
        self._thread = threading.Thread(target=self._run, name="downshift-log-writer", daemon=True)
        if start:
            self._thread.start()

    # ------------------------------------------------------------------ called from any thread, never blocks

    # started() and finished() run on the proxy's event loop for every call: one length check and one append
    # each, the rare full queue handled apart.

    def started(self, rec: CallRecord) -> None:
        if len(self._items) < self.max_pending:
            self._items.append(_Start(rec))
        else:
            self.stats.skipped_starts += 1  # harmless: the call's end writes the whole row

    def finished(self, rec: CallRecord) -> None:
        if len(self._items) < self.max_pending:
            self._items.append(rec)
        else:
            self._dropped_one()

    def failed_results(self, results: Sequence[tuple[str, str]]) -> None:
        """Tool results reported as failed in a later request: mark the tool calls that produced them."""
        if not results:
            return
        if len(self._items) < self.max_pending:
            self._items.append(_FailedResults(list(results)))
        else:
            self._dropped_one()

    def _dropped_one(self) -> None:
        """The queue is full (the database has been unwritable for a while): count the lost row, warn."""
        self.stats.dropped += 1
        dropped = self.stats.dropped
        if dropped in (1, 10, 100) or dropped % 1000 == 0:
            log.warning(
                "call log queue is full (%d waiting): %d rows dropped so far", self.max_pending, dropped
            )
        now = time.monotonic()
        if dropped == 1 or now - self._last_drop_notice > 30.0:
            self._last_drop_notice = now
            self._tell(
                "Call log rows dropped",
                f"The call log could not be written for a while and its queue of {self.max_pending} rows "
                f"is full: {dropped} call(s) will be missing from the log. Downshift keeps serving.",
            )

    def _tell(self, title: str, message: str) -> None:
        if self.notify is not None:
            try:
                self.notify(title, message)
            except Exception:  # a listener's bug must not stop the log
                log.exception("call log notice failed")

    @property
    def pending(self) -> int:
        return len(self._items)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown, exports): final rows for the calls
        that ended, an `in_flight` row for each call still running."""
        if not self._thread.is_alive():
            return not self._items  # never started (read-only) or stopped: nothing will write what waits
        done = threading.Event()
        self._items.append(_Flush(done))
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        carry: list[_Item] = []
        while not (self._stop.is_set() and not carry and not self._items):
            if not carry and not self._items:
                self._wake.wait(self._interval)  # the next tick, or sooner for flush and close
                self._wake.clear()
            items = carry or self._take()
            carry = []
            flushes = [item for item in items if isinstance(item, _Flush)]
            work = [item for item in items if not isinstance(item, _Flush)]
            wrote = False
            try:
                wrote = self._attempt(work, everything=bool(flushes))
            except self._db_errors as exc:  # locked, disk full, I/O, server gone: keep the batch and retry
                self._failed(exc, len(work))
                carry = [*work, *flushes]
                time.sleep(min(2.0, 0.05 * self._consecutive_failures))
                continue
            except Exception:  # a bug that would fail this batch forever: count it, never stop the thread
                self._drop(work)
                wrote = True
            self._skip_hooks = False
            self._redacted.clear()
            if self._consecutive_failures and wrote:
                self._recovered()
            for flush in flushes:
                flush.done.set()

    def _drop(self, work: list[_Work]) -> None:
        """Give up on a batch that fails for a reason retrying will not cure: count its calls as dropped."""
        ended = [item for item in work if isinstance(item, CallRecord)]
        self.stats.dropped += len(ended)
        for rec in ended:
            self._running.pop(rec.call_id, None)
        for rec in self._starts:  # never retried: it would fail again on every tick
            self._running.pop(rec.call_id, None)
        log.exception("call log batch of %d calls could not be written and is dropped", len(ended))

    def _attempt(self, work: list[_Work], everything: bool = False) -> bool:
        """Write the batch (and any start rows due); False when there was nothing to write."""
        only_starts = True
        for item in work:
            if isinstance(item, _Start):  # idempotent: a retried batch announces its starts again
                self._running[item.rec.call_id] = item.rec
            else:
                only_starts = False
        if only_starts and not self._due_starts(everything):
            return False
        self._redact(work)
        try:
            self._write(work, hooks=not self._skip_hooks, everything=everything)
        except self._db_errors:
            raise
        except Exception:
            if self._skip_hooks:
                raise
            # a hook's bug must not cost the calls their rows: write them without the hooks' extras
            log.exception("a call log hook failed; writing this batch without it")
            self._skip_hooks = True
            self._write(work, hooks=False, everything=everything)
        return True

    def _due_starts(self, everything: bool) -> bool:
        if not self._running:
            return False
        if everything:
            return True
        oldest = next(iter(self._running.values()))
        return time.perf_counter() - oldest.t0 >= self.start_row_after

    def _failed(self, exc: BaseException, batch: int) -> None:
        self.stats.failures += 1
        self._consecutive_failures += 1
        self.stats.last_error = str(getattr(exc, "orig", None) or exc)
        waiting = batch + len(self._items)
        if self._consecutive_failures == 1:
            self.stats.outage_since = time.time()
            self._dropped_at_outage = self.stats.dropped
            log.warning(
                "call log write failed (%s); %d rows waiting in memory, retrying",
                self.stats.last_error,
                waiting,
            )
            self._tell(
                "Call log paused",
                f"Downshift cannot write its call log ({self.stats.last_error}). It keeps serving and holds up "
                f"to {self.max_pending} rows in memory, written as soon as the database is available again.",
            )
        elif self._consecutive_failures in (10, 100) or self._consecutive_failures % 1000 == 0:
            log.warning("call log still not writable (%s); %d rows waiting", self.stats.last_error, waiting)

    def _recovered(self) -> None:
        since = self.stats.outage_since or time.time()
        dropped = self.stats.dropped - self._dropped_at_outage
        self._consecutive_failures = 0
        self.stats.outage_since = None
        lost = (
            f"; {dropped} call(s) could not be kept (the queue was full)" if dropped else "; no call was lost"
        )
        log.warning("call log writable again after %.0f s%s", time.time() - since, lost)
        self._tell(
            "Call log writing again",
            f"The call log is being written again after {time.time() - since:.0f} s{lost}.",
        )

    def _redact(self, work: list[_Work]) -> None:
        """Mask keys in stored bodies, error messages and tool-call details (once per call, even when the batch
        is retried): the exact values Downshift holds in every spelling, and key-like values. The proxy already
        masks the keys it knows in what it passes on; this is the safety net for what is stored."""
        secrets: list[bytes] | None = None
        for item in work:
            # a failing tool's output (`env` printing the token, a curl error...)
            if isinstance(item, _FailedResults):
                if item.results:
                    secrets = self._secret_values() if secrets is None else secrets
                    item.results[:] = _redacted_results(item.results, secrets)
                continue
            if not isinstance(item, CallRecord):
                continue
            rec = item
            if rec.call_id in self._redacted:
                continue
            texts = (
                rec.error_message
                or any(a.error_message for a in rec.attempts)
                or any(t.detail for t in rec.tool_calls)
                or rec.failed_results
            )
            if not texts and rec.request_body is None and rec.response_body is None:
                continue
            if secrets is None:
                secrets = self._secret_values()
            if texts:
                rec.error_message = redact_text(rec.error_message, secrets)
                for attempt in rec.attempts:
                    attempt.error_message = redact_text(attempt.error_message, secrets)
                for check in rec.tool_calls:
                    if check.detail:
                        check.detail = redact_text(check.detail, secrets) or ""
                if rec.failed_results:
                    rec.failed_results = _redacted_results(rec.failed_results, secrets)
            if rec.request_body is not None:
                rec.request_body = redact(rec.request_body, secrets, pause=_yield)
            if rec.response_body is not None:
                rec.response_body = redact(rec.response_body, secrets, pause=_yield)
            self._redacted.add(rec.call_id)

    def _secret_values(self) -> list[bytes]:
        try:
            return list(self.secrets()) if self.secrets is not None else []
        except Exception:  # the keyring went away: the patterns still apply
            log.exception("could not read the secrets to mask in stored bodies")
            return []

    def _take(self) -> list[_Item]:
        """Up to a batch of queued items, oldest first, ending at the first flush request."""
        items: list[_Item] = []
        pop = self._items.popleft
        while len(items) < self._batch_size:
            try:
                item = pop()
            except IndexError:
                break
            items.append(item)
            if isinstance(item, _Flush):
                break
        return items

    def _write(self, items: list[_Work], hooks: bool = True, everything: bool = False) -> None:
        ended: dict[str, CallRecord] = {}
        failed: list[tuple[str, str]] = []
        for item in items:
            if isinstance(item, CallRecord):
                ended[item.call_id] = item
            elif isinstance(item, _FailedResults):
                failed += item.results
        starts = self._starts = self._start_rows(ended, everything)
        ends = list(ended.values())
        if (
            self.member is not None or self.machine is not None
        ):  # team mode only: a single user's rows stay NULL
            for rec in (*starts, *ends):
                rec.member = rec.member or self.member
                rec.machine = rec.machine or self.machine
        failed += [r for rec in ends for r in rec.failed_results]
        with self.engine.begin() as conn:
            for hook in self.hooks if hooks else ():
                hook(conn, ends)
            cur = driver_cursor(conn)
            try:
                _insert(cur, self._sql, starts, ends, failed)
            finally:
                cur.close()
        running = self._running
        for rec in starts:
            running.pop(rec.call_id, None)
        for call_id in ended:
            running.pop(call_id, None)
        self.stats.written += len(ends)
        if ends and self._on_written:
            try:
                self._on_written(ends)
            except Exception:  # a listener's bug must not stop the log
                log.exception("call log listener failed")

    def _start_rows(self, ended: Mapping[str, CallRecord], everything: bool) -> list[CallRecord]:
        """Calls still running after START_ROW_AFTER_S (every running call, for a flush): they get an in_flight
        row. A start row always says in_flight, however far the live record has got by now: readers must never
        see an `ok` row without its tokens and cost (those arrive with the end row)."""
        starts: list[CallRecord] = []
        if self._running:
            cutoff = time.perf_counter() - self.start_row_after
            for call_id, rec in self._running.items():  # oldest first
                if not everything and rec.t0 > cutoff:
                    break
                if call_id not in ended:
                    starts.append(rec)
        return starts


def _insert(
    cur: DriverCursor,
    sql: _Statements,
    starts: Sequence[CallRecord],
    ends: Sequence[CallRecord],
    failed: Sequence[tuple[str, str]],
) -> None:
    """The batch's rows through the driver's cursor (sqlite3 or psycopg: `executemany` on both)."""
    if starts:
        cur.executemany(sql.start, [_row_values(r, in_flight=True) for r in starts])
    if ends:
        cur.executemany(sql.end, [_row_values(r) for r in ends])
        tool_rows = tool_call_rows(ends)
        if tool_rows:
            cur.executemany(sql.tool, tool_rows)
    if failed:
        cur.executemany(sql.result_failed, [(reason[:500], tool_call_id) for tool_call_id, reason in failed])


def tool_call_rows(records: Sequence[CallRecord]) -> list[tuple[object, ...]]:
    """The tool_calls rows of ended calls, in `_TOOL_COLUMNS` order (the local log and the team ledger)."""
    return [
        (
            r.call_id,
            t.tool_call_id,
            t.name,
            t.kind,
            t.detail or None,
            False,
            None,
            r.started_at,
            r.upstream_model,
        )
        for r in records
        for t in r.tool_calls
    ]


def _redacted_results(results: Sequence[tuple[str, str]], secrets: list[bytes]) -> list[tuple[str, str]]:
    return [(tool_call_id, redact_text(reason, secrets) or "") for tool_call_id, reason in results]


def _yield() -> None:
    time.sleep(0)  # let the proxy's event loop have the GIL between slices of a long redaction

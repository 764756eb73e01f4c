"""The background log writer: the proxy hands it records and never waits on the database.

Each call is announced when it starts and again when it ends. Both go through one FIFO queue; a batch that
holds both for a call writes a single row, so a quick call costs one insert. A call still running when its
batch is written gets an `in_flight` row, which the next start marks `interrupted` if the process died.
When the database is locked or the disk is full, rows wait in a bounded queue and are retried; if the bound
is reached the writer counts exactly how many rows it had to drop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, Engine, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from app.core.records import CallRecord
from app.core.storage.models import Call, ToolCallRow

log = logging.getLogger(__name__)

_START, _END, _FAILED_RESULTS, _FLUSH = 0, 1, 2, 3
BatchHook = Callable[[Connection, Sequence[CallRecord]], None]

_CALL_COLUMNS = [c.name for c in Call.__table__.columns if c.name != "id"]
_UPDATE_COLUMNS = [c for c in _CALL_COLUMNS if c not in ("call_id", "started_at")]


@dataclass
class WriterStats:
    written: int = 0
    dropped: int = 0
    failures: int = 0
    last_error: str | None = None


def call_row(rec: CallRecord) -> dict[str, object]:
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
        "unpriced": rec.cost_source == "unpriced",
        "fallback_chain": orjson.dumps([a.as_json() for a in rec.attempts]).decode() if rec.attempts else None,
        "attempts": max(1, len(rec.attempts)),
        "bytes_in": rec.bytes_in,
        "bytes_out": rec.bytes_out,
        "session_key": rec.session_key,
        "task_id": rec.task_id,
        "user_agent": rec.user_agent,
        "tool_calls": len(rec.tool_calls),
        "tool_failures": rec.tool_failures,
        "escalated": rec.escalated,
        "request_body": rec.request_body,
        "response_body": rec.response_body,
    }


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
    ) -> None:
        self.engine = engine
        self.stats = WriterStats()
        self.hooks: list[BatchHook] = []
        self._queue: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=max_pending)
        self._batch_size = batch_size
        self._interval = interval
        self._on_written = on_written
        self._stop = threading.Event()
        self._insert_start = sqlite_insert(Call).on_conflict_do_nothing(index_elements=["call_id"])
        stmt = sqlite_insert(Call)
        self._upsert_end = stmt.on_conflict_do_update(
            index_elements=["call_id"], set_={c: getattr(stmt.excluded, c) for c in _UPDATE_COLUMNS}
        )
        self._thread = threading.Thread(target=self._run, name="downshift-log-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ called from any thread, never blocks

    def started(self, rec: CallRecord) -> None:
        self._put(_START, rec)

    def finished(self, rec: CallRecord) -> None:
        self._put(_END, rec)

    def failed_results(self, results: Sequence[tuple[str, str]]) -> None:
        """Tool results reported as failed in a later request: mark the tool calls that produced them."""
        if results:
            self._put(_FAILED_RESULTS, list(results))

    def _put(self, kind: int, item: object) -> None:
        try:
            self._queue.put_nowait((kind, item))
        except queue.Full:
            self.stats.dropped += 1
            if self.stats.dropped in (1, 10, 100) or self.stats.dropped % 1000 == 0:
                log.warning("call log queue is full: %d rows dropped so far", self.stats.dropped)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown, exports)."""
        done = threading.Event()
        try:
            self._queue.put((_FLUSH, done), timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        self._stop.set()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        carry: list[tuple[int, object]] = []
        while not (self._stop.is_set() and not carry and self._queue.empty()):
            items = carry or self._take()
            carry = []
            if not items:
                continue
            flushes = [item for kind, item in items if kind == _FLUSH]
            work = [(kind, item) for kind, item in items if kind != _FLUSH]
            try:
                if work:
                    self._write(work)
            except SQLAlchemyError as exc:
                self.stats.failures += 1
                self.stats.last_error = str(exc.orig if hasattr(exc, "orig") else exc)
                if self.stats.failures in (1, 10) or self.stats.failures % 100 == 0:
                    log.warning("call log write failed (%s); %d rows waiting", self.stats.last_error, len(work))
                carry = work + [(_FLUSH, f) for f in flushes]
                time.sleep(min(2.0, 0.05 * self.stats.failures))
                continue
            for f in flushes:
                f.set()  # type: ignore[attr-defined]

    def _take(self) -> list[tuple[int, object]]:
        try:
            first = self._queue.get(timeout=self._interval)
        except queue.Empty:
            return []
        items = [first]
        deadline = time.monotonic() + self._interval
        while len(items) < self._batch_size:
            if first[0] == _FLUSH:
                break
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    items.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
            if items[-1][0] == _FLUSH:
                break
        return items

    def _write(self, items: list[tuple[int, object]]) -> None:
        ended: dict[str, CallRecord] = {}
        for kind, item in items:
            if kind == _END:
                rec = item  # type: ignore[assignment]
                ended[rec.call_id] = rec  # type: ignore[union-attr]
        starts = [call_row(item) for kind, item in items if kind == _START and item.call_id not in ended]  # type: ignore[union-attr]
        ends = list(ended.values())
        failed: list[tuple[str, str]] = [r for kind, item in items if kind == _FAILED_RESULTS for r in item]  # type: ignore[union-attr]
        failed += [r for rec in ends for r in rec.failed_results]
        with self.engine.begin() as conn:
            for hook in self.hooks:
                hook(conn, ends)
            if starts:
                conn.execute(self._insert_start, starts)
            if ends:
                conn.execute(self._upsert_end, [call_row(r) for r in ends])
                tool_rows = [
                    {
                        "call_id": r.call_id,
                        "tool_call_id": t.tool_call_id,
                        "name": t.name,
                        "kind": t.kind,
                        "detail": t.detail or None,
                        "result_failed": False,
                        "result_reason": None,
                        "started_at": r.started_at,
                        "upstream_model": r.upstream_model,
                    }
                    for r in ends
                    for t in r.tool_calls
                ]
                if tool_rows:
                    conn.execute(ToolCallRow.__table__.insert(), tool_rows)
            for tool_call_id, reason in failed:
                conn.execute(
                    update(ToolCallRow)
                    .where(ToolCallRow.tool_call_id == tool_call_id, ToolCallRow.result_failed.is_(False))
                    .values(result_failed=True, result_reason=reason[:500])
                )
        self.stats.written += len(ends)
        if ends and self._on_written:
            try:
                self._on_written(ends)
            except Exception:  # a listener's bug must not stop the log
                log.exception("call log listener failed")

"""Hourly usage totals and per-task totals, kept in step with the call log inside the writer's transaction.

Why: a chart over 30 days of a busy agent would otherwise scan millions of call rows, and retention
would make old charts lie. Every ended call (outcome ok, error or cancelled; not in-flight rows, nor
calls a crash interrupted, which never reach the writer as ended) adds its figures once to
`usage_slots` (the 15-minute slot it started in, by provider, model and role) and to its task's
`task_totals`. A tool result reported failed in a later request adds one `tool_result_failed` to the
slot and task of the call that emitted the tool call, unless that tool call had already failed
validation (a tool call fails at most once). Since these updates share the writer's transaction, a
rolled-back batch rolls them back too.

Tool-call failure rate = failed / emitted, where emitted counts every tool call the model produced
(structured calls and calls written as text), and failed counts validation failures (invalid_json,
unknown_tool, schema, text_form) plus valid calls whose result later came back failed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection

from app.core.records import CallRecord
from app.core.storage.dialect import driver_cursor, is_postgres, pg
from app.core.storage.models import TaskTotals, UsageSlot
from app.core.toolcheck import NOT_FAILURES

KIND_COLUMNS = {
    "invalid_json": "tool_invalid_json",
    "unknown_tool": "tool_unknown_tool",
    "schema": "tool_schema",
    "text_form": "tool_text_form",
}
FAILURE_COLUMNS = (*KIND_COLUMNS.values(), "tool_result_failed")
USAGE_KEYS = ("slot", "provider", "model", "role", "member")
USAGE_MEASURES = tuple(c.name for c in UsageSlot.__table__.columns if c.name not in USAGE_KEYS)
TASK_MEASURES = tuple(c.name for c in TaskTotals.__table__.columns if c.name not in ("task_id", "models"))

UsageKey = tuple[int, str, str, str, str]


SLOT = 900  # seconds; see UsageSlot


def slot_of(t: float) -> int:
    return int(t // SLOT) * SLOT


def usage_key(
    started_at: float, provider: str | None, model: str | None, role: str | None, member: str | None = None
) -> UsageKey:
    return (slot_of(started_at), provider or "", model or "", role or "", member or "")


def _zero(measures: Iterable[str]) -> dict[str, float]:
    return dict.fromkeys(measures, 0)


class BatchTotals:
    """What one writer batch adds to `usage_slots` and `task_totals`, summed in memory then upserted."""

    def __init__(self) -> None:
        self.usage: defaultdict[UsageKey, dict[str, float]] = defaultdict(lambda: _zero(USAGE_MEASURES))
        self.tasks: defaultdict[int, dict[str, float]] = defaultdict(lambda: _zero(TASK_MEASURES))
        self.task_models: dict[tuple[int, str], None] = {}  # ordered set: first use first

    def add_call(self, rec: CallRecord) -> None:
        u = self.usage[usage_key(rec.started_at, rec.provider, rec.upstream_model, rec.role, rec.member)]
        priced = rec.cost_usd or 0.0
        premium = (
            rec.premium_cost_usd if rec.cost_usd is not None and rec.premium_cost_usd is not None else None
        )
        # failed and cancelled calls (and failed attempts) are billed for what they produced
        unpriced = rec.unpriced
        estimated = rec.usage_estimated
        u["calls"] += 1
        u["errors"] += rec.outcome != "ok"
        u["input_tokens"] += rec.input_tokens
        u["output_tokens"] += rec.output_tokens
        u["cache_read_tokens"] += rec.cache_read_tokens
        u["cache_write_tokens"] += rec.cache_write_tokens + rec.cache_write_1h_tokens
        u["cost_usd"] += priced
        u["unpriced_calls"] += unpriced
        u["estimated_calls"] += estimated
        u["escalated"] += rec.escalated
        u["duration_ms"] += rec.duration_ms or 0.0
        u["tool_calls"] += len(rec.tool_calls)
        for check in rec.tool_calls:
            column = KIND_COLUMNS.get(check.kind)
            if column:
                u[column] += 1
        if premium is not None:
            u["premium_usd"] += premium
            u["savings_usd"] += premium - priced
        if rec.task_id is None:
            return
        t = self.tasks[rec.task_id]
        t["calls"] += 1
        t["errors"] += rec.outcome != "ok"
        t["input_tokens"] += rec.total_tokens - rec.output_tokens
        t["output_tokens"] += rec.output_tokens
        t["cost_usd"] += priced
        t["unpriced_calls"] += unpriced
        t["estimated_calls"] += estimated
        t["tool_calls"] += len(rec.tool_calls)
        t["tool_failures"] += rec.tool_failures
        t["escalated"] += rec.escalated
        if premium is not None:
            t["premium_usd"] += premium
            t["savings_usd"] += premium - priced
        if rec.provider:
            self.task_models[(rec.task_id, f"{rec.provider}/{rec.upstream_model}")] = None

    def add_result_failure(self, key: UsageKey, task_id: int | None) -> None:
        self.usage[key]["tool_result_failed"] += 1
        if task_id is not None:
            self.tasks[task_id]["tool_failures"] += 1

    def write(self, conn: Connection) -> None:
        """Plain SQL on the driver's cursor: this runs once per writer batch, which at agent pace is once per
        call, and building SQLAlchemy upserts cost ~2 ms a batch where these cost microseconds."""
        cur = driver_cursor(conn)
        if not is_postgres(conn):
            if self.usage:
                cur.executemany(
                    _USAGE_UPSERT, [(*k, *(v[m] for m in USAGE_MEASURES)) for k, v in self.usage.items()]
                )
            if self.tasks:
                cur.executemany(
                    _TASK_UPSERT, [(k, "", *(v[m] for m in TASK_MEASURES)) for k, v in self.tasks.items()]
                )
            if self.task_models:
                cur.executemany(_ADD_MODEL_SQL, [(m, m, m, t) for t, m in self.task_models])
            return
        # PostgreSQL, several writers at once: each upsert adds to the row atomically (ON CONFLICT DO UPDATE
        # locks it), and rows are taken in key order so two writers' batches never deadlock on each other.
        if self.usage:
            cur.executemany(
                _PG_USAGE_UPSERT,
                [(*k, *(v[m] for m in USAGE_MEASURES)) for k, v in sorted(self.usage.items())],
            )
        if self.tasks:
            cur.executemany(
                _PG_TASK_UPSERT,
                [(k, "", *(v[m] for m in TASK_MEASURES)) for k, v in sorted(self.tasks.items())],
            )
        if self.task_models:
            cur.executemany(_PG_ADD_MODEL_SQL, [(m, m, m, t) for t, m in self.task_models])


def _upsert_sql(
    table: str, keys: tuple[str, ...], extra: tuple[str, ...], measures: tuple[str, ...], qualify: str = ""
) -> str:
    columns = (*keys, *extra, *measures)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{m} = {qualify}{m} + excluded.{m}" for m in measures)
    )


_USAGE_UPSERT = _upsert_sql("usage_slots", USAGE_KEYS, (), USAGE_MEASURES)
_TASK_UPSERT = _upsert_sql("task_totals", ("task_id",), ("models",), TASK_MEASURES)
# PostgreSQL wants the stored row named in DO UPDATE (a bare column is ambiguous with `excluded`)
_PG_USAGE_UPSERT = pg(_upsert_sql("usage_slots", USAGE_KEYS, (), USAGE_MEASURES, "usage_slots."))
_PG_TASK_UPSERT = pg(_upsert_sql("task_totals", ("task_id",), ("models",), TASK_MEASURES, "task_totals."))
_ADD_MODEL_SQL = (
    "UPDATE task_totals SET models = CASE"
    " WHEN models = '' THEN ?"
    " WHEN instr(char(10) || models || char(10), char(10) || ? || char(10)) > 0 THEN models"
    " ELSE models || char(10) || ? END"
    " WHERE task_id = ?"
)
_PG_ADD_MODEL_SQL = (
    "UPDATE task_totals SET models = CASE"
    " WHEN models = '' THEN %s"
    " WHEN strpos(chr(10) || models || chr(10), chr(10) || %s || chr(10)) > 0 THEN models"
    " ELSE models || chr(10) || %s END"
    " WHERE task_id = %s"
)


def attribute_failed_results(conn: Connection, ends: Sequence[CallRecord], totals: BatchTotals) -> None:
    """Count the failed tool results these requests reported, mirroring the writer's update exactly.

    The writer marks every stored tool call with that id whose result was not yet marked (this batch's
    new rows included), so the same rows are counted here, each at most once; only calls that passed
    validation add a failure (the others already counted as one).
    """
    failed = [tcid for rec in ends for tcid, _reason in rec.failed_results]
    if not failed:
        return
    in_batch: dict[str, list[tuple[CallRecord, str]]] = defaultdict(list)
    for rec in ends:
        for t in rec.tool_calls:
            in_batch[t.tool_call_id].append((rec, t.kind))
    marked: set[str] = set()
    cur = driver_cursor(conn)
    stored_calls = _PG_STORED_CALLS if is_postgres(conn) else _STORED_CALLS
    for tcid in failed:
        if tcid in marked:
            continue  # the writer's second update for this id finds nothing left to mark
        marked.add(tcid)
        for kind, started_at, provider, model, role, member, task_id in cur.execute(
            stored_calls, (tcid,)
        ).fetchall():
            if kind in NOT_FAILURES:  # a valid (or unchecked) call whose result came back failed
                totals.add_result_failure(usage_key(started_at, provider, model, role, member), task_id)
        for rec, kind in in_batch.get(tcid, ()):
            if kind in NOT_FAILURES:  # a valid (or unchecked) call whose result came back failed
                totals.add_result_failure(
                    usage_key(rec.started_at, rec.provider, rec.upstream_model, rec.role, rec.member),
                    rec.task_id,
                )
    cur.close()


_STORED_CALLS = (
    "SELECT t.kind, c.started_at, c.provider, c.upstream_model, c.role, c.member, c.task_id FROM tool_calls t"
    " JOIN calls c ON c.call_id = t.call_id WHERE t.tool_call_id = ? AND NOT t.result_failed"
)
_PG_STORED_CALLS = pg(_STORED_CALLS)

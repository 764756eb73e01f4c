"""Executor totals by prompt size: what the scorecard reads to say up to what context a model holds up.

Every ended call adds its figures once to `executor_slots` (its UTC day, provider, model and prompt-size bin),
inside the log writer's transaction, like the usage totals of `rollup`. A tool result reported failed in
a later request adds one `tool_result_failed` to the bin of the call that emitted the tool call, unless
that tool call had already failed validation, by the same rule as the usage totals (so the scorecard's
failure rate is the dashboard's failure rate, split by prompt size).

Prompt tokens = input + cache read + cache write tokens: the whole prompt the model had to read, whatever
part of it the provider served from its cache.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Connection

from app.core.records import CallRecord
from app.core.storage.dialect import driver_cursor, is_postgres, pg
from app.core.toolcheck import NOT_FAILURES

SLOT = 86400  # a (UTC) day: 30 days of 10 models over ~20 bins are a few thousand rows, read in milliseconds
# Upper edges (prompt tokens) of the bins; the last bin is everything from the last edge up. Fine enough
# to say "holds up to 64K, fails above 96K"; the scorecard's four buckets are unions of these bins.
CTX_EDGES: tuple[int, ...] = (
    8_000,
    16_000,
    24_000,
    32_000,
    40_000,
    48_000,
    56_000,
    64_000,
    72_000,
    80_000,
    88_000,
    96_000,
    104_000,
    112_000,
    120_000,
    128_000,
    160_000,
    192_000,
    224_000,
    256_000,
)
BINS = len(CTX_EDGES) + 1
MEASURES = (
    "calls",
    "errors",
    "tool_calls",
    "tool_invalid",
    "tool_result_failed",
    "prompt_tokens",
    "cost_usd",
    "escalated",
)

Key = tuple[int, str, str, int]


def ctx_bin(prompt_tokens: int) -> int:
    """The bin of a prompt of this many tokens (0: under 8K ... BINS-1: 256K and over)."""
    return bisect_right(CTX_EDGES, prompt_tokens)


def bin_range(index: int) -> tuple[int, int | None]:
    """[low, high) prompt tokens of a bin; high is None for the open last bin."""
    low = CTX_EDGES[index - 1] if index > 0 else 0
    return low, CTX_EDGES[index] if index < len(CTX_EDGES) else None


def prompt_tokens(rec: CallRecord) -> int:
    return rec.input_tokens + rec.cache_read_tokens + rec.cache_write_tokens + rec.cache_write_1h_tokens


def key_of(started_at: float, provider: str | None, model: str | None, tokens: int) -> Key:
    return (int(started_at // SLOT) * SLOT, provider or "", model or "", ctx_bin(tokens))


class ExecutorTotals:
    """What one writer batch adds to `executor_slots`, summed in memory then upserted."""

    def __init__(self) -> None:
        self.rows: defaultdict[Key, dict[str, float]] = defaultdict(lambda: dict.fromkeys(MEASURES, 0))

    def add_call(self, rec: CallRecord) -> None:
        tokens = prompt_tokens(rec)
        row = self.rows[key_of(rec.started_at, rec.provider, rec.upstream_model, tokens)]
        row["calls"] += 1
        row["errors"] += rec.outcome != "ok"
        row["tool_calls"] += len(rec.tool_calls)
        row["tool_invalid"] += rec.tool_failures
        row["prompt_tokens"] += tokens
        row["cost_usd"] += rec.cost_usd or 0.0
        row["escalated"] += rec.escalated

    def add_result_failure(self, key: Key) -> None:
        self.rows[key]["tool_result_failed"] += 1

    def write(self, conn: Connection) -> None:
        if not self.rows:
            return
        cur = driver_cursor(conn)
        if is_postgres(conn):  # several writers on one ledger: rows taken in key order, so no deadlock
            cur.executemany(
                _PG_UPSERT, [(*k, *(v[m] for m in MEASURES)) for k, v in sorted(self.rows.items())]
            )
        else:
            cur.executemany(_UPSERT, [(*k, *(v[m] for m in MEASURES)) for k, v in self.rows.items()])
        cur.close()


_COLUMNS = ("slot", "provider", "model", "ctx", *MEASURES)


def _upsert(qualify: str = "") -> str:
    return (
        f"INSERT INTO executor_slots ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        " ON CONFLICT (slot, provider, model, ctx) DO UPDATE SET "
        + ", ".join(f"{m} = {qualify}{m} + excluded.{m}" for m in MEASURES)
    )


_UPSERT = _upsert()
# PostgreSQL wants the stored row named in DO UPDATE (a bare column is ambiguous with `excluded`)
_PG_UPSERT = pg(_upsert("executor_slots."))
_STORED_CALLS = (
    "SELECT t.kind, c.started_at, c.provider, c.upstream_model,"
    " c.input_tokens + c.cache_read_tokens + c.cache_write_tokens + c.cache_write_1h_tokens FROM tool_calls t"
    " JOIN calls c ON c.call_id = t.call_id WHERE t.tool_call_id = ? AND NOT t.result_failed"
)
_PG_STORED_CALLS = pg(_STORED_CALLS)


def writer_hook(conn: Connection, ends: Sequence[CallRecord]) -> None:
    """Executor totals for a batch of ended calls; runs before the writer inserts their rows and marks
    failed results, so the stored tool calls it finds are exactly the ones the writer will mark."""
    if not ends:
        return
    totals = ExecutorTotals()
    for rec in ends:
        totals.add_call(rec)
    failed = [tcid for rec in ends for tcid, _reason in rec.failed_results]
    if failed:
        in_batch: dict[str, list[tuple[CallRecord, str]]] = defaultdict(list)
        for rec in ends:
            for t in rec.tool_calls:
                in_batch[t.tool_call_id].append((rec, t.kind))
        cur = driver_cursor(conn)
        stored_calls = _PG_STORED_CALLS if is_postgres(conn) else _STORED_CALLS
        for tcid in dict.fromkeys(failed):  # an id reported twice is marked once
            for kind, started_at, provider, model, tokens in cur.execute(stored_calls, (tcid,)).fetchall():
                if kind in NOT_FAILURES:
                    totals.add_result_failure(key_of(started_at, provider, model, tokens or 0))
            for rec, kind in in_batch.get(tcid, ()):
                if kind in NOT_FAILURES:
                    totals.add_result_failure(
                        key_of(rec.started_at, rec.provider, rec.upstream_model, prompt_tokens(rec))
                    )
        cur.close()
    totals.write(conn)

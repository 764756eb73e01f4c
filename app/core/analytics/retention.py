"""Retention: detail rows (calls, tool calls, shadow runs) older than `retention_days` are pruned; totals stay.
The labels of tasks left without calls, cut from their first prompt, are cleared with them.

Nothing needs rolling up at pruning time, because `usage_slots` and `task_totals` already hold every
ended call's figures (see `rollup`). Pruning records the cutoff first (`analytics_meta.pruned_before`),
so from then on queries take the time before it from the totals, and only then deletes, in chunks:
the figures are identical before, during and after a prune (for whole 15-minute slots; see the dashboard queries).
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, Engine, text

CHUNK = 20_000
HOUR = 3600


def cutoff_for(now: float, retention_days: float) -> int:
    """The hour-aligned time before which detail may go."""
    return int((now - retention_days * 86400) // HOUR) * HOUR


def _mark(conn: Connection, cutoff: int) -> None:
    conn.execute(
        text(
            "INSERT INTO analytics_meta (key, value) VALUES ('pruned_before', :v) ON CONFLICT(key) DO UPDATE SET value ="
            " CASE WHEN CAST(analytics_meta.value AS DOUBLE PRECISION) < CAST(excluded.value AS DOUBLE PRECISION)"
            " THEN excluded.value ELSE analytics_meta.value END"
        ),
        {"v": str(cutoff)},
    )


def prune_chunk(conn: Connection, cutoff: int, limit: int = CHUNK) -> int:
    """Delete up to `limit` calls and `limit` tool calls started before `cutoff`; returns the larger count. The
    connections run with `secure_delete` on (app.core.storage.db): the pruned rows' text is overwritten."""
    _mark(conn, cutoff)
    counts = [
        conn.execute(
            text(f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE started_at < :c LIMIT :n)"),
            {"c": cutoff, "n": limit},
        ).rowcount
        for table in ("tool_calls", "calls", "shadow_calls")  # shadow runs are detail too (app.proxy.shadow)
    ]
    # A task's label is cut from its first prompt (app.core.analytics.tasks): once every call of the task is
    # pruned, that prompt text goes too. The task and its totals stay, unnamed.
    conn.execute(
        text(
            "UPDATE tasks SET label = NULL WHERE label IS NOT NULL AND last_at < :c AND source != 'manual'"
            " AND NOT EXISTS (SELECT 1 FROM calls WHERE calls.task_id = tasks.id)"
        ),
        {"c": cutoff},
    )
    return max(counts)


def prune(engine: Engine, retention_days: float, now: float | None = None) -> dict[str, int]:
    """Prune everything older than the retention period (the `downshift rollup` command)."""
    cutoff = cutoff_for(time.time() if now is None else now, retention_days)
    with engine.connect() as conn:
        calls = (
            conn.execute(text("SELECT count(*) FROM calls WHERE started_at < :c"), {"c": cutoff}).scalar()
            or 0
        )
    while True:
        with engine.begin() as conn:
            if prune_chunk(conn, cutoff) < CHUNK:
                break
    # the WAL still holds the pages as they were written: fold it in, empty it
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"cutoff": cutoff, "calls_pruned": int(calls)}


class RetentionClock:
    """Runs a prune chunk from the writer hook at most hourly (at once when the retention setting changes),
    and batch after batch while a backlog remains."""

    def __init__(self) -> None:
        self._next = 0.0
        self._days: float | None = None

    def maybe_run(self, conn: Connection, retention_days: float, now: float) -> None:
        if retention_days <= 0 or (now < self._next and retention_days == self._days):
            return
        self._days = retention_days
        n = prune_chunk(conn, cutoff_for(now, retention_days))
        self._next = now if n >= CHUNK else now + HOUR

"""Tasks: the task list, one task's calls, cost per task by outcome, and setting an outcome.

Task figures come from `task_totals` (kept by the log writer, never pruned), so they stay right after
retention deletes old call rows; `task_calls` lists only the calls whose rows are still kept.
"""

from __future__ import annotations

import statistics
from typing import Any

from sqlalchemy import Engine, text, update

from app.core.analytics.tasks import OUTCOMES
from app.core.storage.models import Task

_TASK_COLUMNS = """
    t.id, t.label, t.source, t.key, t.started_at, t.last_at, t.outcome, t.member,
    coalesce(tt.calls, 0) AS calls, coalesce(tt.errors, 0) AS errors, coalesce(tt.cost_usd, 0.0) AS cost_usd,
    coalesce(tt.unpriced_calls, 0) AS unpriced_calls, coalesce(tt.estimated_calls, 0) AS estimated_calls,
    coalesce(tt.savings_usd, 0.0) AS savings_usd,
    coalesce(tt.input_tokens, 0) AS input_tokens, coalesce(tt.output_tokens, 0) AS output_tokens,
    coalesce(tt.tool_calls, 0) AS tool_calls, coalesce(tt.tool_failures, 0) AS tool_failures,
    coalesce(tt.escalated, 0) AS escalated, coalesce(tt.models, '') AS models
"""


def _shape(row: Any) -> dict[str, Any]:
    d = dict(row._mapping)
    d["models"] = [m for m in d["models"].split("\n") if m]
    d["duration_s"] = max(0.0, d["last_at"] - d["started_at"])
    return d


def list_tasks(engine: Engine, *, since: float | None = None, limit: int = 500, member: str | None = None) -> list[dict[str, Any]]:
    """Tasks active since `since`, most recently active first; only `member`'s when given (team mode)."""
    conds = (["t.last_at >= :since"] if since is not None else []) + (["t.member = :member"] if member is not None else [])
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    sql = (f"SELECT {_TASK_COLUMNS} FROM tasks t LEFT JOIN task_totals tt ON tt.task_id = t.id {where}"
           " ORDER BY t.last_at DESC LIMIT :limit")
    with engine.connect() as conn:
        return [_shape(r) for r in conn.execute(text(sql), {"since": since, "limit": limit, "member": member})]


def get_task(engine: Engine, task_id: int) -> dict[str, Any] | None:
    sql = f"SELECT {_TASK_COLUMNS} FROM tasks t LEFT JOIN task_totals tt ON tt.task_id = t.id WHERE t.id = :id"
    with engine.connect() as conn:
        row = conn.execute(text(sql), {"id": task_id}).first()
    return None if row is None else _shape(row)


def task_calls(engine: Engine, task_id: int) -> list[dict[str, Any]]:
    """The task's calls still in the log, oldest first."""
    sql = ("SELECT call_id, started_at, duration_ms, requested_model, role, provider, upstream_model, outcome, status,"
           " input_tokens, output_tokens, cache_read_tokens, cost_usd, cost_source, usage_estimated, premium_cost_usd,"
           " tool_calls, tool_failures, escalated, session_key FROM calls WHERE task_id = :id ORDER BY started_at")
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), {"id": task_id})]


def set_outcome(engine: Engine, task_id: int, outcome: str | None) -> None:
    """Mark a task finished or abandoned (None reopens it). A closed task takes no more calls."""
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    with engine.begin() as conn:
        if conn.execute(update(Task).where(Task.id == task_id).values(outcome=outcome)).rowcount == 0:
            raise KeyError(f"no task with id {task_id}")


def rename_task(engine: Engine, task_id: int, label: str) -> None:
    """Give a task the user's own name (an empty name clears it: the task is shown by its id)."""
    label = " ".join(label.split())[:200]
    with engine.begin() as conn:
        if conn.execute(update(Task).where(Task.id == task_id).values(label=label or None)).rowcount == 0:
            raise KeyError(f"no task with id {task_id}")


def cost_per_task(engine: Engine, *, since: float, member: str | None = None) -> dict[str, Any]:
    """Cost of each task started since `since` (tasks with at least one call), and per outcome its count,
    mean and median, and how many of those tasks' calls had no price (left out of the cost) or were priced
    on estimated tokens; open tasks are grouped under "open"."""
    sql = ("SELECT t.id, t.label, t.outcome, tt.calls, tt.cost_usd, tt.unpriced_calls, tt.estimated_calls FROM tasks t"
           " JOIN task_totals tt ON tt.task_id = t.id WHERE t.started_at >= :since AND tt.calls > 0"
           + ("" if member is None else " AND t.member = :member") + " ORDER BY t.started_at")
    with engine.connect() as conn:
        result = conn.execute(text(sql), {"since": since, "member": member})
        keys = list(result.keys())
        tasks = [dict(zip(keys, row, strict=True)) for row in result.fetchall()]  # 20k rows: skip Row._mapping
    groups: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        groups.setdefault(task["outcome"] or "open", []).append(task)
    by_outcome = {}
    for outcome, members in sorted(groups.items()):
        costs = [t["cost_usd"] for t in members]
        by_outcome[outcome] = {"count": len(costs), "mean": statistics.fmean(costs), "median": statistics.median(costs),
                               "unpriced_calls": sum(t["unpriced_calls"] for t in members),
                               "estimated_calls": sum(t["estimated_calls"] for t in members)}
    return {"tasks": tasks, "by_outcome": by_outcome}

"""Tasks: the task list, one task's calls, cost per task by outcome, and setting an outcome.

Task figures come from `task_totals` (kept by the log writer, never pruned), so they stay right after
retention deletes old call rows; `task_calls` lists only the calls whose rows are still kept.
"""

from __future__ import annotations

import statistics
from typing import Any

from sqlalchemy import Engine, text, update

from app.core.analytics.tasks import OUTCOMES
from app.core.queries.dashboard import member_sql
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


def list_tasks(
    engine: Engine, *, since: float | None = None, limit: int = 500, member: str | None = None
) -> list[dict[str, Any]]:
    """Tasks active since `since`, most recently active first; only `member`'s when given (team mode)."""
    conds = (["t.last_at >= :since"] if since is not None else []) + (
        ["t.member = :member"] if member is not None else []
    )
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    sql = (
        f"SELECT {_TASK_COLUMNS} FROM tasks t LEFT JOIN task_totals tt ON tt.task_id = t.id {where}"
        " ORDER BY t.last_at DESC LIMIT :limit"
    )
    with engine.connect() as conn:
        return [
            _shape(r) for r in conn.execute(text(sql), {"since": since, "limit": limit, "member": member})
        ]


def get_task(engine: Engine, task_id: int) -> dict[str, Any] | None:
    sql = (
        f"SELECT {_TASK_COLUMNS} FROM tasks t LEFT JOIN task_totals tt ON tt.task_id = t.id WHERE t.id = :id"
    )
    with engine.connect() as conn:
        row = conn.execute(text(sql), {"id": task_id}).first()
    return None if row is None else _shape(row)


def task_calls(engine: Engine, task_id: int) -> list[dict[str, Any]]:
    """The task's calls still in the log, oldest first."""
    sql = (
        "SELECT call_id, started_at, duration_ms, requested_model, role, provider, upstream_model, outcome, status,"
        " input_tokens, output_tokens, cache_read_tokens, cost_usd, cost_source, usage_estimated, premium_cost_usd,"
        " tool_calls, tool_failures, escalated, session_key FROM calls WHERE task_id = :id ORDER BY started_at"
    )
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
    sql = (
        "SELECT t.id, t.label, t.outcome, tt.calls, tt.cost_usd, tt.unpriced_calls, tt.estimated_calls FROM tasks t"
        " JOIN task_totals tt ON tt.task_id = t.id WHERE t.started_at >= :since AND tt.calls > 0"
        + member_sql("t.member", member)
        + " ORDER BY t.started_at"
    )
    with engine.connect() as conn:
        result = conn.execute(text(sql), {"since": since, "member": member})
        keys = list(result.keys())
        tasks = [
            dict(zip(keys, row, strict=True)) for row in result.fetchall()
        ]  # 20k rows: skip Row._mapping
    groups: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        groups.setdefault(task["outcome"] or "open", []).append(task)
    by_outcome = {}
    for outcome, members in sorted(groups.items()):
        costs = [t["cost_usd"] for t in members]
        by_outcome[outcome] = {
            "count": len(costs),
            "mean": statistics.fmean(costs),
            "median": statistics.median(costs),
            "unpriced_calls": sum(t["unpriced_calls"] for t in members),
            "estimated_calls": sum(t["estimated_calls"] for t in members),
        }
    return {"tasks": tasks, "by_outcome": by_outcome}


def finished_cost_by_preset(
    engine: Engine, *, since: float, member: str | None = None
) -> list[dict[str, Any]]:
    """Per preset: finished tasks, mean cost per finished task and tool-failure rate, cheapest first.

    This is the comparison a preset choice rests on ("cheap: $0.03 per finished task at 6% tool failures").
    A task that ran under several presets counts under the one that served most of its calls, with all of
    its cost. It reads the call rows (they carry the preset), so tasks whose calls were pruned drop out.
    """
    sql = (
        "SELECT c.task_id, coalesce(c.preset, '') AS preset, count(*) AS calls, sum(coalesce(c.cost_usd, 0)) AS cost,"
        " sum(CASE WHEN c.unpriced OR c.cost_usd IS NULL THEN 1 ELSE 0 END) AS unpriced,"
        " sum(CASE WHEN c.usage_estimated OR c.cost_source = 'estimated' THEN 1 ELSE 0 END) AS estimated,"
        " sum(c.tool_calls) AS tool_calls, sum(c.tool_failures) AS tool_failures"
        " FROM calls c JOIN tasks t ON t.id = c.task_id"
        " WHERE t.outcome = 'finished' AND t.started_at >= :since"
        + ("" if member is None else " AND t.member = :member")
        + " GROUP BY c.task_id, coalesce(c.preset, '')"
    )
    with engine.connect() as conn:
        rows = conn.execute(text(sql), {"since": since, "member": member}).all()
    by_task: dict[int, list[Any]] = {}
    for row in rows:
        by_task.setdefault(row.task_id, []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for parts in by_task.values():
        preset = max(parts, key=lambda r: (r.calls, r.preset)).preset
        agg = out.setdefault(
            preset,
            {
                "preset": preset or None,
                "tasks": 0,
                "cost_usd": 0.0,
                "tool_calls": 0,
                "tool_failures": 0,
                "unpriced_calls": 0,
                "estimated_calls": 0,
            },
        )
        agg["tasks"] += 1
        for r in parts:
            agg["cost_usd"] += r.cost or 0.0
            agg["tool_calls"] += r.tool_calls or 0
            agg["tool_failures"] += r.tool_failures or 0
            agg["unpriced_calls"] += r.unpriced or 0
            agg["estimated_calls"] += r.estimated or 0
    for agg in out.values():
        agg["per_task"] = agg["cost_usd"] / agg["tasks"]
        agg["failure_rate"] = agg["tool_failures"] / agg["tool_calls"] if agg["tool_calls"] else None
    return sorted(out.values(), key=lambda a: (a["per_task"], a["preset"] or ""))


def preset_comparison_text(rows: list[dict[str, Any]], money: Any) -> str:
    """One line comparing presets: "cheap: $0.030 per finished task at 6% tool failures; premium: $0.210 at 1%".

    `money` formats a dollar figure (the UI's formatter, so an estimated cost keeps its "~")."""
    parts = []
    for i, r in enumerate(rows):
        cost = money(r["per_task"], estimated=bool(r["estimated_calls"]))
        rate = "no tool calls" if r["failure_rate"] is None else f"{r['failure_rate']:.0%} tool failures"
        n = f" ({r['tasks']} task{'s' if r['tasks'] != 1 else ''})"
        name = r["preset"] or "no preset"
        parts.append(
            f"{name}: {cost} per finished task at {rate}{n}" if i == 0 else f"{name}: {cost} at {rate}{n}"
        )
    return "; ".join(parts)

"""The dashboard's health row: how many calls failed or needed a fallback, what breaks tool calls most,
and how far each budget has got, in one background query.

Error and fallback rates read the calls table for the range (indexed by start time); tool-failure kinds
the tool_calls table; budgets the same spend figures `BudgetGuard` counts from (day or month so far).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Engine, text

from app.core.analytics.budgets import describe
from app.core.config import Budget
from app.core.queries.dashboard import member_sql, period_start, spend_by_member, spend_by_provider


def health(
    engine: Engine,
    budgets: tuple[Budget, ...],
    *,
    since: float,
    now: float | None = None,
    top_kinds: int = 3,
    member: str | None = None,
) -> dict[str, Any]:
    """The row's figures over [since, now]; with `member`, only that member's calls and tool calls ('' is the
    calls logged without a member). Budgets are the team's and are shown whatever the filter."""
    now = time.time() if now is None else now
    until = now + 1e-6
    params = {"s": since, "u": until, "k": top_kinds, "m": member}
    of_member = member_sql("c.member", member, "m")
    with engine.connect() as conn:
        calls, errors, fallbacks = conn.execute(
            # CASE, not a summed boolean: PostgreSQL has no sum(boolean)
            text(
                "SELECT count(*), coalesce(sum(CASE WHEN outcome NOT IN ('ok', 'in_flight') THEN 1 ELSE 0 END), 0),"
                " coalesce(sum(CASE WHEN attempts > 1 THEN 1 ELSE 0 END), 0)"
                f" FROM calls c WHERE started_at >= :s AND started_at < :u{of_member}"
            ),
            params,
        ).one()
        source = "tool_calls t" + ("" if member is None else " JOIN calls c ON c.call_id = t.call_id")
        kinds = conn.execute(
            text(
                f"SELECT t.kind, count(*) AS n FROM {source} WHERE t.started_at >= :s AND t.started_at < :u"
                f" AND t.kind != 'ok'{of_member} GROUP BY t.kind ORDER BY n DESC, t.kind LIMIT :k"
            ),
            params,
        ).all()
        rows = _budget_rows(conn, budgets, now, until)
    return {
        "calls": int(calls),
        "error_rate": errors / calls if calls else None,
        "fallback_rate": fallbacks / calls if calls else None,
        "errors": int(errors),
        "fallbacks": int(fallbacks),
        "tool_failure_kinds": [(kind, int(n)) for kind, n in kinds],
        "budgets": rows,
    }


def _budget_rows(
    conn: Connection, budgets: tuple[Budget, ...], now: float, until: float
) -> list[dict[str, Any]]:
    """Each budget's spend so far this day or month, counted as `BudgetGuard` counts it (a member's budget
    from that member's calls only)."""
    spent: dict[str, dict[str | None, float]] = {}
    by_member: dict[str, dict[str, float]] = {}
    rows = []
    for b in budgets:
        start = period_start(b.period, now)
        if b.member:
            if b.period not in by_member:
                by_member[b.period] = spend_by_member(conn, start, until)
            used = by_member[b.period].get(b.member, 0.0)
        else:
            if b.period not in spent:
                spent[b.period] = spend_by_provider(conn, start, until)
            used = spent[b.period].get(b.provider, 0.0) if b.provider else spent[b.period].get(None, 0.0)
        rows.append(
            {
                "label": describe(b),
                "limit": b.limit_usd,
                "action": b.action,
                "spent": used,
                "period": b.period,
                "period_start": start,
                "reached": used >= b.limit_usd,
            }
        )
    return rows


def budget_status(
    engine: Engine, budgets: tuple[Budget, ...], *, now: float | None = None
) -> list[dict[str, Any]]:
    """The Budgets page's figures: per budget its limit, spend this period, and whether it is reached."""
    now = time.time() if now is None else now
    with engine.connect() as conn:
        return _budget_rows(conn, budgets, now, now + 1e-6)

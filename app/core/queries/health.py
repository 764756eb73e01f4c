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
from app.core.queries.dashboard import period_start, spend_by_member, spend_by_provider


def health(
    engine: Engine, budgets: tuple[Budget, ...], *, since: float, now: float | None = None, top_kinds: int = 3
) -> dict[str, Any]:
    now = time.time() if now is None else now
    until = now + 1e-6
    with engine.connect() as conn:
        calls, errors, fallbacks = conn.execute(
            text(
                "SELECT count(*), coalesce(sum(outcome NOT IN ('ok', 'in_flight')), 0), coalesce(sum(attempts > 1), 0)"
                " FROM calls WHERE started_at >= :s AND started_at < :u"
            ),
            {"s": since, "u": until},
        ).one()
        kinds = conn.execute(
            text(
                "SELECT kind, count(*) AS n FROM tool_calls WHERE started_at >= :s AND started_at < :u AND kind != 'ok'"
                " GROUP BY kind ORDER BY n DESC, kind LIMIT :k"
            ),
            {"s": since, "u": until, "k": top_kinds},
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

"""What a demo run produced, read back from its call log: the figures the dashboard would show (printed by
the CLI, app.cli.demo)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, inspect, text

from app.core.queries import summary
from app.demo.agent import AgentStats


def demo_summary(engine: Engine, stats: AgentStats) -> dict[str, Any]:
    """Totals, per-model rows, tool-call failures by kind, fallbacks and tasks, JSON-ready."""
    data = summary(engine)
    tables = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT COALESCE(SUM(premium_cost_usd), 0), SUM(CASE WHEN attempts > 1 THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN streamed THEN 1 ELSE 0 END), COUNT(DISTINCT preset), COUNT(DISTINCT session_key) "
                "FROM calls"
            )
        ).one()
        kinds: dict[str, int] = {}
        if "tool_calls" in tables:
            kinds = {
                k: int(n)
                for k, n in conn.execute(
                    text(
                        "SELECT kind, COUNT(*) FROM tool_calls WHERE kind NOT IN ('ok', 'unchecked') GROUP BY kind ORDER BY kind"
                    )
                )
            }
        tasks = (
            {
                str(k or "open"): int(n)
                for k, n in conn.execute(
                    text("SELECT outcome, COUNT(*) FROM tasks GROUP BY outcome ORDER BY outcome")
                )
            }
            if "tasks" in tables
            else {}
        )
        clients = {
            k: int(n)
            for k, n in conn.execute(
                text("SELECT client_api, COUNT(*) FROM calls GROUP BY client_api ORDER BY client_api")
            )
        }
    return {
        "total": data["total"],
        "models": data["models"],
        "premium_equivalent_usd": float(row[0] or 0.0),
        "fallbacks": int(row[1] or 0),
        "streamed_calls": int(row[2] or 0),
        "presets_used": int(row[3] or 0),
        "sessions": int(row[4] or 0),
        "tool_failures_by_kind": kinds,
        "tasks_by_outcome": tasks,
        "calls_by_client_api": clients,
        "agent": {
            "tasks": stats.tasks,
            "calls": stats.calls,
            "by_persona": dict(stats.by_persona),
            "http_statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
            "preset_switches": list(stats.switches),
        },
    }

"""What a demo run produced, read back from its call log: the figures the dashboard would show."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, inspect, text

from app.core.pricing import caveat_text
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


def render_summary(data: dict[str, Any], seconds: float, speed: float) -> str:
    """The summary as a few lines and the per-model table of `downshift stats`."""
    from app.cli import table

    t = data["total"]
    agent = data["agent"]
    personas = ", ".join(f"{name} {n}" for name, n in sorted(agent["by_persona"].items())) or "none"
    saved = data["premium_equivalent_usd"] - t["cost_usd"]
    share = (
        f" ({saved / data['premium_equivalent_usd']:.0%} less)" if data["premium_equivalent_usd"] > 0 else ""
    )
    rate = "-" if t["tool_failure_rate"] is None else f"{t['tool_failure_rate']:.1%}"
    kinds = ", ".join(f"{k} {n}" for k, n in data["tool_failures_by_kind"].items()) or "none"
    apis = ", ".join(f"{k} {n}" for k, n in data["calls_by_client_api"].items())
    said = caveat_text(t["unpriced_calls"], t["estimated_calls"])  # a guess says it is one
    caveats = f" ({said})" if said else ""
    outcomes = ", ".join(f"{k} {n}" for k, n in data["tasks_by_outcome"].items()) or "none"
    lines = [
        f"Downshift demo: {seconds:g} s at speed {speed:g}, simulated provider, no key used",
        f"  agent tasks: {agent['tasks']} ({personas}); in the log: {outcomes}; preset switches: "
        f"{' -> '.join(['cheap', *agent['preset_switches']]) if agent['preset_switches'] else 'none'}",
        f"  calls logged: {t['calls']} ({apis}); {data['streamed_calls']} streamed; {t['errors']} failed; "
        f"{data['fallbacks']} served by a fallback",
        f"  cost: {'~' if t['estimated_calls'] else ''}${t['cost_usd']:.4f}{caveats}; the premium preset would have cost "
        f"${data['premium_equivalent_usd']:.4f}{share}",
        f"  tool calls: {t['tool_calls']}, failed {t['tool_failures']} ({rate}): {kinds}",
    ]
    rows = [
        {
            **m,
            "cost": f"{'~' if m['estimated_calls'] else ''}${m['cost_usd']:.4f}",
            "rate": None if m["tool_failure_rate"] is None else f"{m['tool_failure_rate']:.0%}",
        }
        for m in data["models"]
    ]
    lines.append(
        table(
            rows,
            [
                ("provider", "PROVIDER"),
                ("model", "MODEL"),
                ("calls", "CALLS"),
                ("errors", "FAILED"),
                ("input_tokens", "IN TOK"),
                ("output_tokens", "OUT TOK"),
                ("cost", "COST"),
                ("tool_calls", "TOOL CALLS"),
                ("rate", "TOOL FAIL %"),
            ],
        )
    )
    return "\n".join(lines)

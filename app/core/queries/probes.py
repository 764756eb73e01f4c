"""Executor-check results, shown beside a model wherever a target is picked."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, text


def probe_results(engine: Engine, target: str) -> dict[str, Any] | None:
    """The latest probe run of `target` ("provider/model"): per probe and summed; None if never probed."""
    with engine.connect() as conn:
        run = conn.execute(
            text(
                "SELECT run_id, started_at FROM probe_results WHERE target = :t"
                " ORDER BY started_at DESC, id DESC LIMIT 1"
            ),
            {"t": target},
        ).first()
        if run is None:
            return None
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                text(
                    "SELECT probe, passed, tool_calls, tool_failures, failure_kinds, latency_ms, input_tokens, output_tokens,"
                    " cost_usd, detail FROM probe_results WHERE run_id = :r ORDER BY id"
                ),
                {"r": run.run_id},
            )
        ]
    for row in rows:
        row["passed"] = bool(row["passed"])
        row["failure_kinds"] = orjson.loads(row["failure_kinds"]) if row["failure_kinds"] else {}
    emitted = sum(r["tool_calls"] for r in rows)
    failed = sum(r["tool_failures"] for r in rows)
    costs = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
    return {
        "target": target,
        "run_id": run.run_id,
        "started_at": run.started_at,
        "passed": sum(r["passed"] for r in rows),
        "probes": len(rows),
        "tool_calls": emitted,
        "tool_failures": failed,
        "validity": (emitted - failed) / emitted if emitted else None,
        "cost_usd": sum(costs) if costs else None,
        "results": rows,
    }


def latest_probes(engine: Engine) -> dict[str, dict[str, Any]]:
    """The latest run of every probed target, summed: what a model picker shows beside each model."""
    sql = (
        "SELECT p.target, p.run_id, min(p.started_at) AS started_at, sum(CASE WHEN p.passed THEN 1 ELSE 0 END) AS passed, count(*) AS probes,"
        " sum(p.tool_calls) AS tool_calls, sum(p.tool_failures) AS tool_failures, sum(p.cost_usd) AS cost_usd"
        " FROM probe_results p JOIN (SELECT target, max(started_at) AS at FROM probe_results GROUP BY target) last"
        " ON last.target = p.target AND last.at = p.started_at GROUP BY p.target, p.run_id"
    )
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text(sql))]
    out = {}
    for row in rows:
        emitted, failed = row["tool_calls"], row["tool_failures"]
        row["validity"] = (emitted - failed) / emitted if emitted else None
        out[row["target"]] = row
    return out

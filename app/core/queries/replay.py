"""Counterfactual replay: what another preset would have cost on the calls already logged. No call is sent.

Each logged call keeps the role it was routed by (default, plan, background, subagent); the other preset's
target for that role is priced on the call's stored token counts (fresh input, cache reads and writes,
output) with the same price sources the proxy uses (`app.core.pricing`). Calls sent to an explicit
provider/model keep their target: no preset would have routed them differently. A target with no known
price leaves its calls unpriced (counted, never as $0).

The caveat, stated with every result: the token counts are the serving model's; another model's tokenizer
counts the same text differently (often 5-35% apart), and another model would have answered differently
(longer or shorter, other tool calls, other retries). So this prices the same work, not the same outcome.
The other preset's escalation and long-context rules are not simulated: calls replay under their logged role.

Figures come from `usage_slots` for whole 15-minute slots (and anything older than retention) and from the
call rows for the partial slots at the range's edges, like the dashboard; `usage_slots` keeps both
cache-write tiers as one figure, which is priced at the 5-minute write price.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, text

from app.core.config import Config, Target
from app.core.pricing import price_call
from app.core.queries.dashboard import plan, pruned_before
from app.core.usage import Usage

CAVEAT = (
    "Re-priced from the token counts the serving models reported; another model's tokenizer counts the same "
    "text differently (often 5-35% apart) and would have answered differently, so this prices the same work, "
    "not the same outcome. No call was sent."
)
_ENDED = "outcome NOT IN ('in_flight', 'interrupted')"
_FIELDS = ("calls", "input", "output", "cache_read", "cache_write", "cache_write_1h", "cost", "unpriced")

Group = tuple[str, str, str]  # provider, model, role ('' for none)


def _groups(engine: Engine, since: float, until: float) -> dict[Group, dict[str, float]]:
    out: dict[Group, dict[str, float]] = defaultdict(lambda: dict.fromkeys(_FIELDS, 0))

    def add(rows: Any) -> None:
        for provider, model, role, *values in rows:
            g = out[(provider or "", model or "", role or "")]
            for name, value in zip(_FIELDS, values, strict=True):
                g[name] += value or 0

    with engine.connect() as conn:
        slots, detail = plan(since, until, pruned_before(conn), True)
        if slots is not None:
            add(
                conn.execute(
                    text(
                        "SELECT provider, model, role, sum(calls), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),"
                        " sum(cache_write_tokens), 0, coalesce(sum(cost_usd), 0.0), sum(unpriced_calls) FROM usage_slots"
                        " WHERE slot >= :a AND slot < :b GROUP BY 1, 2, 3"
                    ),
                    {"a": slots[0], "b": slots[1]},
                )
            )
        for a, b in detail:
            add(
                conn.execute(
                    text(
                        "SELECT provider, upstream_model, role, count(*), sum(input_tokens), sum(output_tokens),"
                        " sum(cache_read_tokens), sum(cache_write_tokens), sum(cache_write_1h_tokens), coalesce(sum(cost_usd), 0.0),"
                        f" sum(CASE WHEN unpriced AND outcome = 'ok' THEN 1 ELSE 0 END) FROM calls WHERE started_at >= :a AND started_at < :b AND {_ENDED}"
                        " GROUP BY 1, 2, 3"
                    ),
                    {"a": a, "b": b},
                )
            )
    return {
        k: v for k, v in out.items() if v["calls"] and (k[0] or k[1])
    }  # refused before routing: nothing to price


def replay(
    engine: Engine, config: Config, preset: str, *, since: float, until: float | None = None
) -> dict[str, Any]:
    """The logged calls since `since`, re-priced per role on `preset`'s targets, against what they cost."""
    other = config.presets.get(preset)
    if other is None:
        raise KeyError(f"no preset named {preset!r} (have: {', '.join(config.presets)})")
    until = time.time() + 1e-6 if until is None else until
    roles: dict[str, dict[str, Any]] = {}
    for (provider, model, role), g in sorted(_groups(engine, since, until).items()):
        target = other.target_for(role) if role else Target(provider, model)
        usage = Usage(
            input=int(g["input"]),
            cache_read=int(g["cache_read"]),
            cache_write=int(g["cache_write"]),
            cache_write_1h=int(g["cache_write_1h"]),
            output=int(g["output"]),
        )
        priced = price_call(usage, config, config.providers.get(target.provider), target.model)
        key = role or "(explicit target)"
        r = roles.setdefault(
            key,
            {
                "role": key,
                "calls": 0,
                "served_by": [],
                "actual_cost_usd": 0.0,
                "actual_unpriced_calls": 0,
                "target": str(target),
                "replay_cost_usd": 0.0,
                "replay_unpriced_calls": 0,
                "input_tokens": 0,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "output_tokens": 0,
            },
        )
        r["calls"] += int(g["calls"])
        served = f"{provider}/{model}"
        if served not in r["served_by"]:
            r["served_by"].append(served)
        if role == "" and str(target) != r["target"]:
            r["target"] = "(as logged)"
        r["actual_cost_usd"] += g["cost"]
        r["actual_unpriced_calls"] += int(g["unpriced"])
        r["input_tokens"] += usage.input
        r["cache_read_tokens"] += usage.cache_read
        r["cache_write_tokens"] += usage.cache_write + usage.cache_write_1h
        r["output_tokens"] += usage.output
        if priced.cost is None:
            r["replay_unpriced_calls"] += int(g["calls"])
        else:
            r["replay_cost_usd"] += priced.cost
    rows = list(roles.values())
    actual = sum(r["actual_cost_usd"] for r in rows)
    replayed = sum(r["replay_cost_usd"] for r in rows)
    unpriced = sum(r["replay_unpriced_calls"] for r in rows)
    return {
        "preset": preset,
        "active": config.active,
        "since": since,
        "until": until,
        "calls": sum(r["calls"] for r in rows),
        "actual_cost_usd": actual,
        "actual_unpriced_calls": sum(r["actual_unpriced_calls"] for r in rows),
        "replay_cost_usd": replayed,
        "replay_unpriced_calls": unpriced,
        "difference_usd": replayed - actual,
        "complete": unpriced
        == 0,  # False: some calls have no price on the replayed target, left out of its total
        "roles": rows,
        "caveat": CAVEAT,
    }

"""The executor scorecard: per model, from the user's own log, can it run the loop, up to what prompt size,
at what cost per finished task.

Figures per model (provider/model): calls, tool-call validity, failure rate by prompt size (four buckets,
and the fine bins behind them), cost per finished task, latency p50/p95, escalations, the latest probe
verdict, and shadow comparisons. A plain-language verdict says where the model holds up and where it
starts failing, with the number of tool calls behind it, and says nothing below MIN_TOOL_CALLS.

Sources: `executor_slots` (whole UTC days: a range is widened to the days it touches) for counts and failure
rates, so 1,000,000 calls are a few thousand rows; the latest LATENCY_SAMPLE calls per model for latency;
`tasks` + `task_totals` for cost per finished task; `probe_results`; `shadow_calls`.
Failure rate = failed / emitted tool calls, failed counting validation failures and valid calls whose
result came back failed (the dashboard's definition).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Engine, text

from app.core.analytics.executors import BINS, CTX_EDGES, SLOT, bin_range
from app.core.queries.probes import latest_probes

MIN_TOOL_CALLS = 50  # no verdict on fewer tool calls than this
SIDE_MIN = 20  # each side of a "holds up to / fails above" split needs this many tool calls
GOOD = 0.05  # a failure rate at or under this "holds up"
BAD = 0.10  # a failure rate at or over this (and at least twice the good side's) "fails"
LATENCY_SAMPLE = 2000  # latency percentiles over a model's latest calls in the range
BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("<16K", 0, 16_000),
    ("16-64K", 16_000, 64_000),
    ("64-128K", 64_000, 128_000),
    (">128K", 128_000, None),
)


def _k(tokens: int) -> str:
    return f"{tokens // 1000}K"


def _rate(failed: float, emitted: float) -> float | None:
    return failed / emitted if emitted else None


def _pct(rate: float) -> str:
    return f"{rate * 100:.0f}%" if rate >= 0.01 or rate == 0 else f"{rate * 100:.1f}%"


def _loglik(failed: float, n: float) -> float:
    """Binomial log-likelihood of `failed` of `n` at their own rate: how well one rate explains a side."""
    p = failed / n
    return (failed * math.log(p) if failed else 0.0) + ((n - failed) * math.log(1 - p) if n > failed else 0.0)


def buckets_of(bins: list[dict[str, float]]) -> list[dict[str, Any]]:
    """The four display buckets as sums of the fine bins."""
    out = []
    for label, low, high in BUCKETS:
        n = f = calls = 0.0
        for i, b in enumerate(bins):
            lo, _hi = bin_range(i)
            if lo >= low and (high is None or lo < high):
                n, f, calls = n + b["tool_calls"], f + b["failed"], calls + b["calls"]
        out.append(
            {
                "bucket": label,
                "calls": int(calls),
                "tool_calls": int(n),
                "failed": int(f),
                "failure_rate": _rate(f, n),
            }
        )
    return out


def verdict(bins: list[dict[str, float]], *, min_tool_calls: int = MIN_TOOL_CALLS) -> dict[str, Any]:
    """A plain-language verdict on fine bins (index = ctx bin; keys tool_calls, failed), with its evidence.

    `fails_above`: the bin edge that best splits the tool calls into a lower and a higher failure rate
    (maximum likelihood of one rate per side), among the edges where the rate above is at least BAD and
    twice the rate below, each side with SIDE_MIN tool calls; `holds_up_to`: the largest edge at or under
    that where the rate below is at most GOOD. `suggest_above_tokens` is where a long-context rule would start.
    """
    n = [b["tool_calls"] for b in bins]
    f = [b["failed"] for b in bins]
    total_n, total_f = sum(n), sum(f)
    out: dict[str, Any] = {
        "level": None,
        "text": "",
        "tool_calls": int(total_n),
        "min_tool_calls": min_tool_calls,
        "holds_up_to": None,
        "fails_above": None,
        "climbs_with_context": False,
        "suggest_above_tokens": None,
    }
    if total_n < min_tool_calls:
        out["text"] = f"no verdict yet: {int(total_n)} tool calls (a verdict needs {min_tool_calls})"
        return out
    top = max(i for i, v in enumerate(n) if v)
    lo, hi = bin_range(top)
    seen = f"up to {_k(hi)}" if hi is not None else f"over {_k(lo)}"
    below = [
        (sum(n[: j + 1]), sum(f[: j + 1])) for j in range(len(CTX_EDGES))
    ]  # bins 0..j: under CTX_EDGES[j]
    fails, best = None, -math.inf
    for j, (nb, fb) in enumerate(below):  # the best single change point (ties: the highest edge)
        na, fa = total_n - nb, total_f - fb
        if nb >= SIDE_MIN and na >= SIDE_MIN and fa / na >= max(BAD, 2 * fb / nb):
            fit = _loglik(fb, nb) + _loglik(fa, na)
            if fit >= best - 1e-9:
                fails, best = j, fit
    if fails is None:
        rate = total_f / total_n
        if rate <= GOOD:
            out.update(
                level="good",
                text=f"holds up across every prompt size seen ({seen} prompt tokens) at "
                f"{_pct(rate)} failures",
            )
        else:
            out.update(
                level="poor",
                text=f"fails {_pct(rate)} of tool calls at every prompt size seen ({seen} prompt tokens)",
            )
        out["text"] += f"; {int(total_n)} tool calls"
        return out
    holds = None
    for j in range(fails, -1, -1):
        nb, fb = below[j]
        if nb >= SIDE_MIN and fb / nb <= GOOD:
            holds = j
            break
    na, fa = total_n - below[fails][0], total_f - below[fails][1]
    edge_fail = CTX_EDGES[fails]
    above_text = f"above {_k(edge_fail)} fails {_pct(fa / na)} of tool calls"
    if holds is None:
        nb, fb = below[fails]
        text = f"fails {_pct(fb / nb)} of tool calls under {_k(edge_fail)} prompt tokens; {above_text}"
        level = "poor"
    else:
        nb, fb = below[holds]
        text = f"holds up to {_k(CTX_EDGES[holds])} prompt tokens at {_pct(fb / nb)} failures; {above_text}"
        level = "climbs"
    out.update(
        level=level,
        text=f"{text}; {int(total_n)} tool calls",
        climbs_with_context=True,
        holds_up_to=CTX_EDGES[holds] if holds is not None else None,
        fails_above=edge_fail,
        suggest_above_tokens=CTX_EDGES[holds] if holds is not None else edge_fail,
    )
    return out


def _candidate_verdict(comparisons: list[dict[str, Any]]) -> dict[str, Any]:
    """A model seen only as a shadow candidate: no verdict of its own, its comparisons in words."""
    parts = [
        f"{c['runs']} shadow runs against {c['served']}: valid {_pct(c['valid_rate'])}, same tool "
        f"{_pct(c['same_tool_rate'])}"
        if c["valid_rate"] is not None and c["same_tool_rate"] is not None
        else f"{c['runs']} shadow runs against {c['served']}"
        for c in comparisons
    ]
    return {
        "level": None,
        "text": "candidate only (served no calls): " + "; ".join(parts),
        "tool_calls": 0,
        "min_tool_calls": MIN_TOOL_CALLS,
        "holds_up_to": None,
        "fails_above": None,
        "climbs_with_context": False,
        "suggest_above_tokens": None,
    }


# ---------------------------------------------------------------------------------------------- queries


def _empty_bins() -> list[dict[str, float]]:
    """One model's zeroed totals for every prompt-size bin."""
    return [
        dict.fromkeys(("calls", "errors", "tool_calls", "invalid", "failed", "escalated", "prompt_tokens"), 0)
        | {"cost_usd": 0.0}
        for _ in range(BINS)
    ]


def _bins(conn: Connection, since: float, until: float) -> dict[str, list[dict[str, float]]]:
    rows = conn.execute(
        text(
            "SELECT provider, model, ctx, sum(calls), sum(errors), sum(tool_calls), sum(tool_invalid),"
            " sum(tool_result_failed), coalesce(sum(cost_usd), 0.0), sum(escalated), sum(prompt_tokens)"
            " FROM executor_slots WHERE slot >= :s AND slot < :u GROUP BY provider, model, ctx"
        ),
        {"s": int(since // SLOT) * SLOT, "u": until},
    ).all()
    out: dict[str, list[dict[str, float]]] = {}
    for provider, model, ctx, calls, errors, n, invalid, result_failed, cost, escalated, prompt in rows:
        if not provider and not model:
            continue  # calls refused before routing: no model to score
        bins = out.setdefault(f"{provider}/{model}", _empty_bins())
        b = bins[min(int(ctx), BINS - 1)]
        b["calls"] += calls
        b["errors"] += errors
        b["tool_calls"] += n
        b["invalid"] += invalid
        b["failed"] += invalid + result_failed
        b["cost_usd"] += cost
        b["escalated"] += escalated
        b["prompt_tokens"] += prompt
    return out


def _latency(conn: Connection, target: str, since: float, until: float) -> dict[str, float | None]:
    provider, _, model = target.partition("/")
    values = sorted(
        r[0]
        for r in conn.execute(
            text(
                "SELECT duration_ms FROM calls WHERE upstream_model = :m AND started_at >= :s AND started_at < :u"
                " AND provider = :p AND outcome = 'ok' AND duration_ms IS NOT NULL ORDER BY started_at DESC LIMIT :n"
            ),
            {"m": model, "p": provider, "s": since, "u": until, "n": LATENCY_SAMPLE},
        )
    )
    if not values:
        return {"p50_ms": None, "p95_ms": None, "sample": 0}
    return {
        "p50_ms": values[len(values) // 2],
        "p95_ms": values[min(len(values) - 1, int(len(values) * 0.95))],
        "sample": len(values),
    }


def _tasks(conn: Connection, since: float, until: float) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Finished-task costs per model that worked on them, and per model the tasks that escalated away from it."""
    costs: dict[str, list[float]] = defaultdict(list)
    for cost, models in conn.execute(
        text(
            "SELECT tt.cost_usd, tt.models FROM tasks t JOIN task_totals tt ON tt.task_id = t.id"
            " WHERE t.outcome = 'finished' AND t.started_at >= :s AND t.started_at < :u AND tt.calls > 0"
        ),
        {"s": since, "u": until},
    ):
        for m in (models or "").split("\n"):
            if m:
                costs[m].append(cost)
    escalated: dict[str, int] = defaultdict(int)
    for (target,) in conn.execute(
        text(
            "SELECT DISTINCT c.provider || '/' || c.upstream_model FROM calls c WHERE c.task_id IN ("
            " SELECT t.id FROM tasks t JOIN task_totals tt ON tt.task_id = t.id"
            " WHERE tt.escalated > 0 AND t.last_at >= :s AND t.started_at < :u)"
            " AND c.role = 'default' AND NOT c.escalated AND c.provider IS NOT NULL"
        ),
        {"s": since, "u": until},
    ):
        escalated[target] += 1
    return costs, escalated


def shadow_comparisons(conn: Connection, since: float, until: float) -> dict[str, list[dict[str, Any]]]:
    """Per candidate (shadow target), one row per served model it was compared with."""
    rows = conn.execute(
        text(
            "SELECT provider || '/' || model AS target, coalesce(served_provider, '') || '/' || coalesce(served_model, '') AS served,"
            " count(*) AS runs, sum(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END) AS answered, sum(CASE WHEN outcome = 'timeout' THEN 1 ELSE 0 END) AS timeouts,"
            " sum(CASE WHEN outcome = 'ok' AND valid THEN 1 ELSE 0 END) AS valid, sum(CASE WHEN served_valid THEN 1 ELSE 0 END) AS served_valid,"
            " sum(CASE WHEN outcome = 'ok' AND same_tool THEN 1 ELSE 0 END) AS same_tool,"
            " sum(CASE WHEN outcome = 'ok' AND same_tool IS NOT NULL THEN 1 ELSE 0 END) AS compared,"
            " sum(CASE WHEN outcome = 'ok' AND args_valid THEN 1 ELSE 0 END) AS args_valid,"
            " sum(CASE WHEN outcome = 'ok' AND args_valid IS NOT NULL THEN 1 ELSE 0 END) AS with_args,"
            " avg(CASE WHEN outcome = 'ok' THEN latency_ms END) AS latency_ms, avg(served_latency_ms) AS served_latency_ms,"
            " coalesce(sum(cost_usd), 0.0) AS cost_usd, coalesce(sum(served_cost_usd), 0.0) AS served_cost_usd,"
            " sum(CASE WHEN cost_usd IS NULL AND outcome = 'ok' THEN 1 ELSE 0 END) AS unpriced"
            " FROM shadow_calls WHERE started_at >= :s AND started_at < :u GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        {"s": since, "u": until},
    )
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        d = dict(r._mapping)
        answered = d["answered"] or 0
        d["valid_rate"] = _rate(d["valid"] or 0, answered)
        d["served_valid_rate"] = _rate(d["served_valid"] or 0, d["runs"])
        d["same_tool_rate"] = _rate(d["same_tool"] or 0, d["compared"] or 0)
        d["args_valid_rate"] = _rate(d["args_valid"] or 0, d["with_args"] or 0)
        out[d.pop("target")].append(d)
    return dict(out)


def evaluation_spend(engine: Engine, *, since: float, until: float | None = None) -> dict[str, Any]:
    """What shadow runs cost (never part of spend totals): total, per candidate, and shadow runs counted."""
    until = time.time() + 1e-6 if until is None else until
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT provider || '/' || model, count(*), coalesce(sum(cost_usd), 0.0),"
                " sum(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) FROM shadow_calls"
                " WHERE started_at >= :s AND started_at < :u GROUP BY 1 ORDER BY 1"
            ),
            {"s": since, "u": until},
        ).all()
    targets = {t: {"runs": n, "cost_usd": c, "unpriced": u} for t, n, c, u in rows}
    return {
        "cost_usd": sum(v["cost_usd"] for v in targets.values()),
        "runs": sum(v["runs"] for v in targets.values()),
        "targets": targets,
    }


def scorecard(
    engine: Engine, *, since: float, until: float | None = None, min_tool_calls: int = MIN_TOOL_CALLS
) -> dict[str, Any]:
    """Every model that served calls (or was shadowed) since `since`: figures, buckets, bins and verdict."""
    until = time.time() + 1e-6 if until is None else until
    with engine.connect() as conn:
        bins = _bins(conn, since, until)
        task_costs, escalated_tasks = _tasks(conn, since, until)
        shadows = shadow_comparisons(conn, since, until)
        latency = {t: _latency(conn, t, since, until) for t in bins}
    probes = latest_probes(engine)
    models = []
    for target in sorted(set(bins) | set(shadows)):
        b = bins.get(target) or _empty_bins()
        calls = sum(x["calls"] for x in b)
        n = sum(x["tool_calls"] for x in b)
        invalid = sum(x["invalid"] for x in b)
        failed = sum(x["failed"] for x in b)
        costs = task_costs.get(target, [])
        probe = probes.get(target)
        models.append(
            {
                "target": target,
                "calls": int(calls),
                "errors": int(sum(x["errors"] for x in b)),
                "tool_calls": int(n),
                "tool_failures": int(failed),
                "validity": _rate(n - invalid, n),
                "failure_rate": _rate(failed, n),
                "cost_usd": sum(x["cost_usd"] for x in b),
                "avg_prompt_tokens": sum(x["prompt_tokens"] for x in b) / calls if calls else None,
                "buckets": buckets_of(b),
                "bins": [
                    {
                        "low": bin_range(i)[0],
                        "high": bin_range(i)[1],
                        "calls": int(x["calls"]),
                        "tool_calls": int(x["tool_calls"]),
                        "failed": int(x["failed"]),
                        "failure_rate": _rate(x["failed"], x["tool_calls"]),
                    }
                    for i, x in enumerate(b)
                    if x["calls"]
                ],
                "finished_tasks": len(costs),
                "cost_per_finished_task": statistics.fmean(costs) if costs else None,
                "latency": latency.get(target, {"p50_ms": None, "p95_ms": None, "sample": 0}),
                # calls it served as the escalation target
                "escalation_calls": int(sum(x["escalated"] for x in b)),
                "escalated_tasks": escalated_tasks.get(target, 0),  # tasks whose loop escalated away from it
                "probe": None
                if probe is None
                else {
                    "passed": int(probe["passed"] or 0),
                    "probes": int(probe["probes"]),
                    "validity": probe["validity"],
                    "at": probe["started_at"],
                },
                "shadow": shadows.get(target, []),
                "verdict": _candidate_verdict(shadows[target])
                if not calls and target in shadows
                else verdict(b, min_tool_calls=min_tool_calls),
            }
        )
    return {
        "since": since,
        "until": until,
        "min_tool_calls": min_tool_calls,
        "buckets": [b[0] for b in BUCKETS],
        "models": models,
    }

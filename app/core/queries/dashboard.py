"""Dashboard tiles and charts: spend, savings and tool-call failure rate, bucketed over time.

Figures come from two sources that agree by construction (`app.core.analytics.rollup`):
`usage_slots`, the totals per 15-minute slot the log writer keeps, serves every whole slot of a range and
every slot older than the retention cutoff (detail pruned); the detail rows (`calls`, `tool_calls`)
serve the partial slots at the edges of a range and buckets that are not a multiple of 15 minutes. So a
30-day chart reads a few thousand rows per model instead of a million calls, and stays the same after old
detail is pruned. Two consequences, by design: a range or bucket that starts mid-slot inside the pruned
period is widened to whole slots, and calls
still in flight or interrupted by a crash are not counted (they have no settled figures).

Buckets are aligned to multiples of `bucket_s` in local time (the UTC offset at query time); each bucket
holds the whole bucket, including any part before `since`.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from app.core.analytics.rollup import FAILURE_COLUMNS, KIND_COLUMNS, SLOT
from app.core.storage.dialect import floor_bucket

DIMS = {"model": "model", "provider": "provider", "role": "role", "member": "member"}
_DETAIL_COL = {"model": "upstream_model", "provider": "provider", "role": "role", "member": "member"}
# Portable SQL (SQLite and PostgreSQL): coalesce(sum()) for SQLite's total(), CASE for summed booleans.
_CALL_MEASURES = {
    "calls": "count(*)",
    "errors": "sum(CASE WHEN outcome != 'ok' THEN 1 ELSE 0 END)",
    "input_tokens": "coalesce(sum(input_tokens), 0)",
    "output_tokens": "coalesce(sum(output_tokens), 0)",
    "cache_read_tokens": "coalesce(sum(cache_read_tokens), 0)",
    "cache_write_tokens": "coalesce(sum(cache_write_tokens + cache_write_1h_tokens), 0)",
    "cost_usd": "coalesce(sum(cost_usd), 0.0)",
    "unpriced_calls": "sum(CASE WHEN unpriced THEN 1 ELSE 0 END)",
    "estimated_calls": "sum(CASE WHEN usage_estimated THEN 1 ELSE 0 END)",
    "premium_usd": "coalesce(sum(CASE WHEN cost_usd IS NOT NULL THEN premium_cost_usd END), 0.0)",
    "savings_usd": "coalesce(sum(premium_cost_usd - cost_usd), 0.0)",
    "escalated": "sum(CASE WHEN escalated THEN 1 ELSE 0 END)",
    "duration_ms": "coalesce(sum(duration_ms), 0.0)",
}
_TOOL_MEASURES = {
    "tool_calls": "count(*)",
    **{
        column: f"sum(CASE WHEN t.kind = '{kind}' THEN 1 ELSE 0 END)" for kind, column in KIND_COLUMNS.items()
    },
    # toolcheck.NOT_FAILURES
    "tool_result_failed": "sum(CASE WHEN t.kind IN ('ok', 'unchecked') AND t.result_failed THEN 1 ELSE 0 END)",
}
_ENDED = "outcome NOT IN ('in_flight', 'interrupted')"

Key = tuple[int | None, str | None]  # (bucket start, dimension value)


def member_sql(col: str, member: str | None, param: str = "member") -> str:
    """` AND col = :param`: one member's rows, or '' for no filter (None). Call and task rows of a single user
    carry no member (NULL) where slots carry '', so the member '' matches both."""
    if member is None:
        return ""
    return f" AND coalesce({col}, '') = :{param}" if member == "" else f" AND {col} = :{param}"


def member_names(engine: Engine, *, since: float) -> list[str]:
    """The members with calls since `since` ('' for calls without one), sorted: the dashboard offers a member
    filter when there is more than one. Read from the slot totals (a few rows per 15 minutes, by key)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT DISTINCT member FROM usage_slots WHERE slot >= :s"), {"s": since - SLOT}
        ).scalars()
        return sorted(m or "" for m in rows)


def local_offset(now: float | None = None) -> int:
    """Seconds east of UTC at `now`; buckets of a day or more start at local midnight."""
    moment = datetime.fromtimestamp(time.time() if now is None else now).astimezone()
    offset = moment.utcoffset()
    return int(offset.total_seconds()) if offset else 0


def pruned_before(conn: Connection) -> int:
    """Detail rows older than this (unix seconds, slot-aligned) may be gone; 0 when nothing was pruned."""
    value = conn.execute(text("SELECT value FROM analytics_meta WHERE key = 'pruned_before'")).scalar()
    return int(float(value)) if value else 0


def plan(
    since: float, until: float, cutoff: int, whole_slots: bool
) -> tuple[tuple[int, int] | None, list[tuple[float, float]]]:
    """Which slots `usage_slots` serves and which intervals the detail rows serve, for [since, until).

    Slot totals serve every slot before `cutoff` that overlaps the range and, when `whole_slots`, every
    slot inside it; detail serves the rest (never anything before `cutoff`).
    """
    if until <= since:
        return None, []
    first = int(since // SLOT) * SLOT
    lo, hi = None, None
    if first < cutoff:
        lo, hi = first, min(-int(-until // SLOT) * SLOT, cutoff)
    if whole_slots:
        f_lo, f_hi = -int(-since // SLOT) * SLOT, int(until // SLOT) * SLOT
        if f_lo < f_hi:
            lo = f_lo if lo is None else lo
            hi = f_hi if hi is None else max(hi, f_hi)
    if lo is None or hi is None or lo >= hi:
        return None, [(since, until)]
    detail = [(a, b) for a, b in ((since, float(lo)), (float(hi), until)) if a < b]
    return (lo, hi), detail


def collect(
    conn: Connection,
    since: float,
    until: float,
    measures: list[str],
    *,
    bucket_s: int | None = None,
    offset: int = 0,
    dim: str | None = None,
    member: str | None = None,
) -> dict[Key, dict[str, float]]:
    """Sum `measures` (columns of usage_slots) over [since, until), grouped by bucket and/or dimension; only
    `member`'s calls when given (team mode; '' is the calls logged without a member)."""
    whole = bucket_s is None or (bucket_s % SLOT == 0 and offset % SLOT == 0)
    slots, detail = plan(since, until, pruned_before(conn), whole)
    out: dict[Key, dict[str, float]] = defaultdict(lambda: dict.fromkeys(measures, 0))
    params: dict[str, Any] = {"b": bucket_s or 1, "off": offset, "member": member}

    def of_member(col: str) -> str:
        return member_sql(col, member)

    def add(rows: Any, names: list[str]) -> None:
        for row in rows:
            slot = out[(row[0], row[1])]
            for name, value in zip(names, row[2:], strict=True):
                slot[name] += value or 0

    def group(time_col: str, dim_expr: str | None) -> tuple[str, str]:
        bucket = floor_bucket(conn, time_col) if bucket_s else "NULL"
        return f"{bucket} AS bucket, {dim_expr or 'NULL'} AS dim", "GROUP BY bucket, dim"

    if slots is not None:
        head, tail = group("slot", DIMS[dim] if dim else None)
        cols = ", ".join(f"coalesce(sum({m}), 0)" for m in measures)
        add(
            conn.execute(
                text(
                    f"SELECT {head}, {cols} FROM usage_slots WHERE slot >= :s0 AND slot < :s1{of_member('member')} {tail}"
                ),
                {**params, "s0": slots[0], "s1": slots[1]},
            ),
            measures,
        )
    call_measures = [m for m in measures if m in _CALL_MEASURES]
    tool_measures = [m for m in measures if m in _TOOL_MEASURES]
    for a, b in detail:
        p = {**params, "a": a, "b0": b}
        if call_measures:
            head, tail = group("started_at", f"coalesce({_DETAIL_COL[dim]}, '')" if dim else None)
            cols = ", ".join(_CALL_MEASURES[m] for m in call_measures)
            add(
                conn.execute(
                    text(
                        f"SELECT {head}, {cols} FROM calls WHERE started_at >= :a AND started_at < :b0"
                        f" AND {_ENDED}{of_member('member')} {tail}"
                    ),
                    p,
                ),
                call_measures,
            )
        if tool_measures:
            cols = ", ".join(_TOOL_MEASURES[m] for m in tool_measures)
            # tool_calls rows carry the model; provider, role and member need their call
            table = "t" if dim in (None, "model") and member is None else "c"
            head, tail = group(
                "t.started_at",
                f"coalesce({'t' if dim == 'model' else table}.{_DETAIL_COL[dim]}, '')" if dim else None,
            )
            source = "tool_calls t" if table == "t" else "tool_calls t JOIN calls c ON c.call_id = t.call_id"
            add(
                conn.execute(
                    text(
                        f"SELECT {head}, {cols} FROM {source} WHERE t.started_at >= :a AND t.started_at < :b0"
                        f"{of_member('c.member')} {tail}"
                    ),
                    p,
                ),
                tool_measures,
            )
    return out


def failures(row: dict[str, float]) -> float:
    return sum(row.get(c, 0) for c in FAILURE_COLUMNS)


def _day_start(now: float) -> float:
    return datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _month_start(now: float) -> float:
    return datetime.fromtimestamp(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def period_start(period: str, now: float) -> float:
    """Local start of the current 'day' or 'month' (what budgets and the spend tiles count from)."""
    return _day_start(now) if period == "day" else _month_start(now)


def spend_by_member(conn: Connection, since: float, until: float) -> dict[str, float]:
    """Spend per member ('' for calls without one): what per-member budgets count from."""
    rows = collect(conn, since, until, ["cost_usd"], dim="member")
    return {member or "": v["cost_usd"] for (_b, member), v in rows.items()}


def spend_by_provider(conn: Connection, since: float, until: float) -> dict[str | None, float]:
    """Spend per provider ('' for none) plus the overall total under None."""
    rows = collect(conn, since, until, ["cost_usd"], dim="provider")
    out: dict[str | None, float] = {None: 0.0}
    for (_b, provider), v in rows.items():
        out[provider] = out.get(provider, 0.0) + v["cost_usd"]
        out[None] += v["cost_usd"]
    return out


HOUR = 3600


def hourly_costs(
    conn: Connection, since: float, until: float, rates: Mapping[str, float], member: str | None = None
) -> dict[str, Any]:
    """What local providers with an `hourly_cost` cost over [since, until): their rate for every clock hour
    in which they served at least one call (a box costs its rate while it runs, whatever it serves; the
    hours it served in are the ones the log can vouch for). Per-call figures leave it out (a local call
    costs $0 per token), so the savings totals subtract it."""
    rates = {name: rate for name, rate in rates.items() if rate}
    if not rates:
        return {"usd": 0.0, "providers": {}}
    rows = collect(conn, since, until, ["calls"], bucket_s=HOUR, dim="provider", member=member)
    hours: dict[str, int] = {}
    for (_bucket, provider), row in rows.items():
        if provider in rates and row["calls"]:
            hours[provider] = hours.get(provider, 0) + 1
    providers = {
        p: {"hours": h, "hourly_cost": rates[p], "usd": h * rates[p]} for p, h in sorted(hours.items())
    }
    return {"usd": sum(v["usd"] for v in providers.values()), "providers": providers}


def hourly_rates(config: Any) -> dict[str, float]:
    """`hourly_cost` of every provider that has one (local boxes, rented GPUs)."""
    return {p.name: p.hourly_cost for p in config.providers.values() if p.hourly_cost}


def tiles(
    engine: Engine,
    *,
    since: float,
    now: float | None = None,
    hourly: Mapping[str, float] | None = None,
    member: str | None = None,
) -> dict[str, Any]:
    """The dashboard's headline figures for [since, now]; spend today/month count from local midnight / the 1st.
    `savings_range` is net of the hourly cost of local providers (`hourly`: provider -> USD per hour). With
    `member`, only that member's calls and tasks (a local box's hours: those it served that member in)."""
    now = time.time() if now is None else now
    until = now + 1e-6
    measures = [
        "calls",
        "cost_usd",
        "unpriced_calls",
        "estimated_calls",
        "savings_usd",
        "tool_calls",
        *FAILURE_COLUMNS,
    ]
    with engine.connect() as conn:
        total = collect(conn, since, until, measures, member=member).get((None, None)) or dict.fromkeys(
            measures, 0
        )
        boxes = hourly_costs(conn, since, until, hourly or {}, member)
        spend = ["cost_usd", "estimated_calls"]
        today = collect(conn, _day_start(now), until, spend, member=member).get(
            (None, None)
        ) or dict.fromkeys(spend, 0)
        month = collect(conn, _month_start(now), until, spend, member=member).get(
            (None, None)
        ) or dict.fromkeys(spend, 0)
        finished, finished_unpriced, finished_estimated = conn.execute(
            text(
                "SELECT avg(tt.cost_usd), coalesce(sum(tt.unpriced_calls), 0), coalesce(sum(tt.estimated_calls), 0)"
                " FROM tasks t JOIN task_totals tt ON tt.task_id = t.id"
                " WHERE t.outcome = 'finished' AND t.started_at >= :s AND t.started_at < :u"
                + member_sql("t.member", member, "m")
            ),
            {"s": since, "u": until, "m": member},
        ).one()
    return {
        "spend_today": today["cost_usd"],
        "spend_month": month["cost_usd"],
        # calls in the figure priced on guessed tokens
        "spend_today_estimated_calls": int(today["estimated_calls"]),
        "spend_month_estimated_calls": int(month["estimated_calls"]),
        "spend_range": total["cost_usd"],
        "savings_range": total["savings_usd"] - boxes["usd"],
        "savings_gross": total["savings_usd"],
        "hourly_cost_usd": boxes["usd"],
        "tool_failure_rate": failures(total) / total["tool_calls"] if total["tool_calls"] else None,
        "cost_per_finished_task": finished,
        # calls of those tasks left out of the average (no price) or priced on estimated tokens
        "finished_task_unpriced_calls": int(finished_unpriced or 0),
        "finished_task_estimated_calls": int(finished_estimated or 0),
        "calls": int(total["calls"]),
        "unpriced_calls": int(total["unpriced_calls"]),
        "estimated_calls": int(total["estimated_calls"]),
    }


def _buckets(since: float, until: float, bucket_s: int, offset: int) -> list[int]:
    first = int((since + offset) // bucket_s) * bucket_s - offset
    return list(range(first, math.ceil(until), bucket_s)) or [first]


def _series(
    rows: dict[Key, dict[str, float]], buckets: list[int], value: Any, empty: Any
) -> dict[str, list[Any]]:
    index = {b: i for i, b in enumerate(buckets)}
    series: dict[str, list[Any]] = {}
    for (bucket, name), row in sorted(rows.items(), key=lambda kv: (kv[0][1] or "", kv[0][0] or 0)):
        slot = index.get(int(bucket)) if bucket is not None else None
        if slot is None:
            continue
        series.setdefault(name or "(none)", [empty] * len(buckets))[slot] = value(row)
    return series


def _check_bucket(bucket_s: int) -> None:
    if bucket_s < 1:
        raise ValueError("bucket_s must be at least 1 second")


def spend_over_time(
    engine: Engine,
    *,
    since: float,
    until: float | None = None,
    bucket_s: int,
    by: str = "model",
    member: str | None = None,
) -> dict[str, Any]:
    """Spend (USD) per bucket, one series per model, provider, role or member."""
    if by not in DIMS:
        raise ValueError(f"by must be one of {', '.join(DIMS)}, got {by!r}")
    _check_bucket(bucket_s)
    until = time.time() if until is None else until
    offset = local_offset(until)
    with engine.connect() as conn:
        rows = collect(
            conn, since, until, ["cost_usd", "calls"], bucket_s=bucket_s, offset=offset, dim=by, member=member
        )
    buckets = _buckets(since, until, bucket_s, offset)
    calls = [0] * len(buckets)  # what each bar stands on, for its tooltip
    for n in _series(rows, buckets, lambda r: int(r["calls"]), 0).values():
        calls = [a + b for a, b in zip(calls, n, strict=True)]
    return {
        "buckets": buckets,
        "series": _series(rows, buckets, lambda r: r["cost_usd"], 0.0),
        "calls": calls,
    }


def failure_rate_over_time(
    engine: Engine, *, since: float, until: float | None = None, bucket_s: int, member: str | None = None
) -> dict[str, Any]:
    """Tool-call failure rate (failed / emitted) per bucket and model; None where a model emitted nothing."""
    _check_bucket(bucket_s)
    until = time.time() if until is None else until
    offset = local_offset(until)
    measures = ["tool_calls", *FAILURE_COLUMNS]
    with engine.connect() as conn:
        rows = collect(
            conn, since, until, measures, bucket_s=bucket_s, offset=offset, dim="model", member=member
        )
    rows = {k: v for k, v in rows.items() if v["tool_calls"]}
    buckets = _buckets(since, until, bucket_s, offset)
    return {
        "buckets": buckets,
        "series": _series(rows, buckets, lambda r: failures(r) / r["tool_calls"], None),
        "tool_calls": _series(rows, buckets, lambda r: int(r["tool_calls"]), 0),
    }  # what each point stands on


def first_activity(engine: Engine, *, since: float) -> float | None:
    """When the oldest call since `since` started (None for none): the dashboard's default range fits it.
    Usage slots outlive pruned call rows, so they are asked first (both reads are indexed)."""
    with engine.connect() as conn:
        slot = conn.execute(
            text("SELECT min(slot) FROM usage_slots WHERE slot >= :s"), {"s": since - SLOT}
        ).scalar()
        call = conn.execute(
            text("SELECT min(started_at) FROM calls WHERE started_at >= :s"), {"s": since}
        ).scalar()
    if call is not None and (slot is None or call < slot + SLOT):
        return float(call)  # the exact time, where the oldest slot is the one holding the oldest call
    return None if slot is None else max(float(slot), since)


def reliability(
    engine: Engine, *, since: float | None = None, until: float | None = None, member: str | None = None
) -> dict[str, Any]:
    """Tool calls emitted and failed, by kind, overall and per model (the exact definition: see rollup)."""
    until = time.time() + 1e-6 if until is None else until
    measures = ["tool_calls", *FAILURE_COLUMNS]
    with engine.connect() as conn:
        rows = collect(conn, since or 0.0, until, measures, dim="model", member=member)

    def shape(row: dict[str, float]) -> dict[str, Any]:
        failed = failures(row)
        kinds = {kind: int(row[col]) for kind, col in KIND_COLUMNS.items()}
        kinds["result_failed"] = int(row["tool_result_failed"])
        return {
            "tool_calls": int(row["tool_calls"]),
            "failed": int(failed),
            "failure_rate": failed / row["tool_calls"] if row["tool_calls"] else None,
            "by_kind": kinds,
        }

    total = dict.fromkeys(measures, 0.0)
    for row in rows.values():
        for m in measures:
            total[m] += row[m]
    models = {
        name or "(none)": shape(row)
        for (_b, name), row in sorted(rows.items(), key=lambda kv: kv[0][1] or "")
        if row["tool_calls"]
    }
    return {"total": shape(total), "models": models}


def savings(
    engine: Engine,
    *,
    since: float,
    until: float | None = None,
    by: str = "day",
    hourly: Mapping[str, float] | None = None,
    member: str | None = None,
) -> dict[str, Any]:
    """Actual spend against the premium preset's price for the same tokens, per day, provider, model or role.

    `savings_usd` = premium equivalent - actual cost, over calls for which both are known; `cost_usd` is
    the whole spend (calls with no premium price included). The total also gives the hourly cost of local
    providers (`hourly_costs`) and `net_savings_usd`, the savings once it is paid.
    """
    if by not in (*DIMS, "day"):
        raise ValueError(f"by must be day, provider, model, role or member, got {by!r}")
    until = time.time() + 1e-6 if until is None else until
    measures = ["calls", "cost_usd", "premium_usd", "savings_usd"]
    with engine.connect() as conn:
        if by == "day":
            rows = collect(
                conn, since, until, measures, bucket_s=86400, offset=local_offset(until), member=member
            )
        else:
            rows = collect(conn, since, until, measures, dim=by, member=member)
    out = []
    for (bucket, name), row in sorted(rows.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or "")):
        key: Any = (
            datetime.fromtimestamp(bucket).date().isoformat()
            if by == "day" and bucket is not None
            else (name or "(none)")
        )
        out.append(
            {
                "key": key,
                "calls": int(row["calls"]),
                "cost_usd": row["cost_usd"],
                "premium_usd": row["premium_usd"],
                "savings_usd": row["savings_usd"],
            }
        )
    total: dict[str, Any] = {
        m: sum(r[m] for r in out) for m in ("calls", "cost_usd", "premium_usd", "savings_usd")
    }
    with engine.connect() as conn:
        boxes = hourly_costs(conn, since, until, hourly or {}, member)
    total.update(hourly_cost_usd=boxes["usd"], net_savings_usd=total["savings_usd"] - boxes["usd"])
    return {
        "since": since,
        "until": until,
        "by": by,
        "rows": out,
        "total": total,
        "hourly": boxes["providers"],
    }


def members(engine: Engine, *, since: float, until: float | None = None) -> list[dict[str, Any]]:
    """The per-member table of a team ledger: calls, spend, savings, tool-call failure rate and cost per
    finished task of each member over [since, until), biggest spender first ('' is calls without a member)."""
    until = time.time() + 1e-6 if until is None else until
    measures = [
        "calls",
        "errors",
        "cost_usd",
        "unpriced_calls",
        "savings_usd",
        "tool_calls",
        *FAILURE_COLUMNS,
    ]
    with engine.connect() as conn:
        rows = collect(conn, since, until, measures, dim="member")
        finished: dict[str | None, float | None] = dict(
            conn.execute(
                text(
                    "SELECT t.member, avg(tt.cost_usd) FROM tasks t JOIN task_totals tt ON tt.task_id = t.id"
                    " WHERE t.outcome = 'finished' AND t.started_at >= :s AND t.started_at < :u GROUP BY t.member"
                ),
                {"s": since, "u": until},
            ).all()
        )
    out = []
    for (_bucket, name), row in rows.items():
        if not row["calls"]:
            continue
        failed = failures(row)
        out.append(
            {
                "member": name or "",
                "calls": int(row["calls"]),
                "errors": int(row["errors"]),
                "cost_usd": row["cost_usd"],
                "unpriced_calls": int(row["unpriced_calls"]),
                "savings_usd": row["savings_usd"],
                "tool_calls": int(row["tool_calls"]),
                "tool_failures": int(failed),
                "tool_failure_rate": failed / row["tool_calls"] if row["tool_calls"] else None,
                "cost_per_finished_task": finished.get(name or ""),
            }
        )
    return sorted(out, key=lambda r: (-r["cost_usd"], r["member"]))

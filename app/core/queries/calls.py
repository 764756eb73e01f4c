"""Calls: listing, filtering, summaries and export over the call log.

Every function takes an Engine and returns plain dicts/lists (JSON-ready), so the CLI's `--json` output,
the GUI's models and the exports all see the same figures.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, and_, func, select, true

from app.core.storage.models import Call

# Columns shown by `downshift calls` and exported; bodies are never exported.
EXPORT_COLUMNS = [c.name for c in Call.__table__.columns if c.name not in ("request_body", "response_body")]


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """'1h', '24h', '7d', '30m', '2w' or an ISO date -> unix seconds; None means all time."""
    if not text:
        return None
    now = time.time() if now is None else now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return now - float(text[:-1]) * units[text[-1]]
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a time: use e.g. 1h, 24h, 7d or 2026-11-01") from None


def recent_calls(engine: Engine, limit: int = 50, *, since: float | None = None, failures_only: bool = False) -> list[dict[str, Any]]:
    cols = [Call.__table__.c[name] for name in EXPORT_COLUMNS]
    stmt = select(*cols).order_by(Call.started_at.desc()).limit(limit)
    if since is not None:
        stmt = stmt.where(Call.started_at >= since)
    if failures_only:
        stmt = stmt.where((Call.outcome != "ok") | (Call.tool_failures > 0))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(stmt)]


def iter_calls(engine: Engine, *, since: float | None = None, batch: int = 5000):  # type: ignore[no-untyped-def]
    """All calls oldest first, streamed in batches so an export of millions of rows stays small in memory."""
    cols = [Call.__table__.c[name] for name in EXPORT_COLUMNS]
    last_id = 0
    while True:
        cond = [Call.id > last_id] + ([Call.started_at >= since] if since is not None else [])
        stmt = select(*cols).where(and_(true(), *cond)).order_by(Call.id).limit(batch)
        with engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(stmt)]
        if not rows:
            return
        yield from rows
        last_id = rows[-1]["id"]


def summary(engine: Engine, *, since: float | None = None) -> dict[str, Any]:
    """Totals and a per-model breakdown: calls, errors, tokens, cost, tool calls and their failure rate."""
    cond = [Call.started_at >= since] if since is not None else []
    cost = func.coalesce(func.sum(Call.cost_usd), 0.0)
    fields = (
        func.count().label("calls"),
        func.sum(Call.outcome != "ok").label("errors"),
        func.coalesce(func.sum(Call.input_tokens + Call.cache_read_tokens + Call.cache_write_tokens + Call.cache_write_1h_tokens), 0).label("input_tokens"),
        func.coalesce(func.sum(Call.output_tokens), 0).label("output_tokens"),
        cost.label("cost_usd"),
        func.sum(Call.unpriced & (Call.outcome == "ok")).label("unpriced_calls"),
        func.coalesce(func.sum(Call.tool_calls), 0).label("tool_calls"),
        func.coalesce(func.sum(Call.tool_failures), 0).label("tool_failures"),
    )
    with engine.connect() as conn:
        total = dict(conn.execute(select(*fields).where(and_(true(), *cond))).one()._mapping)
        per_model = [
            dict(r._mapping)
            for r in conn.execute(
                select(Call.provider, Call.upstream_model.label("model"), *fields)
                .where(and_(true(), *cond))
                .group_by(Call.provider, Call.upstream_model)
                .order_by(cost.desc())
            )
        ]
    for row in [total, *per_model]:
        row["errors"] = int(row["errors"] or 0)
        row["unpriced_calls"] = int(row["unpriced_calls"] or 0)
        row["tool_failure_rate"] = (row["tool_failures"] / row["tool_calls"]) if row["tool_calls"] else None
    return {"since": since, "total": total, "models": per_model}

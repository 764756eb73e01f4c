"""Calls: listing, filtering, summaries and export over the call log.

Every function takes an Engine and returns plain dicts/lists (JSON-ready), so the CLI's `--json` output,
the GUI's models and the exports all see the same figures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Engine, and_, case, func, or_, select, true, tuple_

from app.core.storage.dialect import contains_text
from app.core.storage.models import Call, Task, ToolCallRow

# Columns shown by `downshift calls` and exported; bodies are never exported.
EXPORT_COLUMNS = [c.name for c in Call.__table__.columns if c.name not in ("request_body", "response_body")]


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """'1h', '24h', '7d', '30m', '2w' or an ISO date -> unix seconds; None means all time."""
    if not text:
        return None
    now = time.time() if now is None else now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        since = now - float(text[:-1]) * units[text[-1]]
        if not since >= 0:  # also NaN and -inf: before 1970 there is no call, and no date to show
            raise ValueError(f"{text!r} reaches back before 1970: use a smaller value, e.g. 30d or 52w")
        return since
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"cannot read {text!r} as a time: use e.g. 1h, 24h, 7d or 2026-11-01") from None


def _of_member(member: str | None) -> list[ColumnElement[bool]]:
    """Only `member`'s calls (team mode); '' is the calls logged without a member."""
    if member is None:
        return []
    return [Call.member.is_(None) | (Call.member == "")] if member == "" else [Call.member == member]


def recent_calls(
    engine: Engine,
    limit: int = 50,
    *,
    since: float | None = None,
    failures_only: bool = False,
    member: str | None = None,
) -> list[dict[str, Any]]:
    cols = [Call.__table__.c[name] for name in EXPORT_COLUMNS]
    stmt = (
        select(*cols).where(and_(true(), *_of_member(member))).order_by(Call.started_at.desc()).limit(limit)
    )
    if since is not None:
        stmt = stmt.where(Call.started_at >= since)
    if failures_only:
        stmt = stmt.where((Call.outcome != "ok") | (Call.tool_failures > 0))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(stmt)]


def iter_calls(
    engine: Engine, *, since: float | None = None, batch: int = 5000, member: str | None = None
) -> Iterator[dict[str, Any]]:
    """All calls oldest first (by start time), streamed in keyset batches so an export of millions of rows
    stays small in memory. Row ids are not call order: a long call's row may be written before a quick one."""
    cols = [Call.__table__.c[name] for name in EXPORT_COLUMNS]
    after: tuple[float, int] = (since if since is not None else float("-inf"), 0)
    while True:
        stmt = (
            select(*cols)
            .where(tuple_(Call.started_at, Call.id) > tuple_(*after), *_of_member(member))
            .order_by(Call.started_at, Call.id)
            .limit(batch)
        )
        with engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(stmt)]
        if not rows:
            return
        yield from rows
        after = (rows[-1]["started_at"], rows[-1]["id"])


def summary(engine: Engine, *, since: float | None = None, member: str | None = None) -> dict[str, Any]:
    """Totals and a per-model breakdown: calls, errors, tokens, cost, tool calls and their failure rate."""
    cond = [Call.started_at >= since] if since is not None else []
    cond += _of_member(member)
    cost = func.coalesce(func.sum(Call.cost_usd), 0.0)
    fields = (
        func.count().label("calls"),
        func.sum(case((Call.outcome != "ok", 1), else_=0)).label("errors"),
        func.coalesce(
            func.sum(
                Call.input_tokens
                + Call.cache_read_tokens
                + Call.cache_write_tokens
                + Call.cache_write_1h_tokens
            ),
            0,
        ).label("input_tokens"),
        func.coalesce(func.sum(Call.output_tokens), 0).label("output_tokens"),
        cost.label("cost_usd"),
        func.sum(case((Call.unpriced, 1), else_=0)).label("unpriced_calls"),  # failed calls are billed too
        func.sum(case((Call.usage_estimated, 1), else_=0)).label("estimated_calls"),
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
        row["estimated_calls"] = int(row["estimated_calls"] or 0)
        row["tool_failure_rate"] = (row["tool_failures"] / row["tool_calls"]) if row["tool_calls"] else None
    return {"since": since, "total": total, "models": per_model}


# ------------------------------------------------------------------------------------------ Calls page

# What the Calls table shows per row; the detail pane asks `call_detail` for the rest.
LIST_COLUMNS = [
    "id",
    "call_id",
    "started_at",
    "ttfb_ms",
    "duration_ms",
    "client_api",
    "requested_model",
    "role",
    "provider",
    "upstream_model",
    "streamed",
    "status",
    "outcome",
    "error_kind",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "cost_usd",
    "cost_source",
    "unpriced",
    "usage_estimated",
    "attempts",
    "task_id",
    "tool_calls",
    "tool_failures",
]
_LIST = [Call.__table__.c[name] for name in LIST_COLUMNS]
_DETAIL = [c for c in Call.__table__.columns if c.name not in ("request_body", "response_body")]
BODY_PREVIEW_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What the Calls page (or any other caller) narrows the log to. Empty fields do not filter."""

    since: float | None = None
    until: float | None = None
    model: str | None = None  # upstream model, exact
    provider: str | None = None
    outcome: str | None = None  # ok | error | cancelled | interrupted | in_flight
    status: int | None = None  # HTTP status returned to the client
    task_id: int | None = None
    failures_only: bool = False  # outcome not ok, or at least one failed tool call
    search: str | None = None  # substring of the requested model, case-insensitive
    member: str | None = None  # team mode: only this member's calls

    def conditions(self, *, outcome_index: bool = True) -> list[ColumnElement[bool]]:
        """SQL conditions. `outcome_index=False` keeps SQLite off the outcome index (see `calls_page`)."""
        cond: list[ColumnElement[bool]] = []
        if self.since is not None:
            cond.append(Call.started_at >= self.since)
        if self.until is not None:
            cond.append(Call.started_at < self.until)
        if self.model:
            cond.append(Call.upstream_model == self.model)
        if self.provider:
            cond.append(Call.provider == self.provider)
        if self.outcome:
            column = Call.outcome if outcome_index else Call.outcome.concat("")  # `x || ''` is not indexed
            cond.append(column == self.outcome)
        if self.status is not None:
            cond.append(Call.status == self.status)
        if self.task_id is not None:
            cond.append(Call.task_id == self.task_id)
        if self.failures_only:
            cond.append(or_(Call.outcome != "ok", Call.tool_failures > 0))
        cond += _of_member(self.member)
        if self.search:
            escaped = self.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            cond.append(contains_text(Call.requested_model, f"%{escaped}%"))  # ASCII case-insensitive
        return cond


def calls_page(
    engine: Engine,
    flt: CallFilter | None = None,
    *,
    before_id: int | None = None,
    before_started_at: float | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """One page of calls, newest first, continuing after the row `before_id` (keyset pagination).

    Rows are ordered by (started_at, id), not id alone: every filter column has an index ending in
    started_at, so SQLite reads one page from an index whatever the filter. At 1,000,000 rows a page
    takes milliseconds; ordering by id made a model filter sort a third of the table (1.6 s).
    Pass `before_started_at` (the last row's) to save the lookup of `before_id`'s time.
    """
    flt = flt or CallFilter()
    with engine.connect() as conn:
        cond = flt.conditions(outcome_index=_outcome_is_rare(conn, flt.outcome))
        if before_id is not None:
            if before_started_at is None:
                before_started_at = conn.execute(select(Call.started_at).where(Call.id == before_id)).scalar()
            if before_started_at is None:  # the row was pruned meanwhile: fall back to id order
                cond.append(Call.id < before_id)
            else:
                cond += [
                    Call.started_at <= before_started_at,
                    or_(Call.started_at < before_started_at, Call.id < before_id),
                ]
        stmt = (
            select(*_LIST)
            .where(and_(true(), *cond))
            .order_by(Call.started_at.desc(), Call.id.desc())
            .limit(limit)
        )
        return [dict(row._mapping) for row in conn.execute(stmt)]


RARE_OUTCOME_ROWS = 5000


def _outcome_is_rare(conn: Connection, outcome: str | None) -> bool:
    """Whether to let SQLite use the outcome index. It then sorts every matching row by time, which is
    cheap for a few thousand rows (interrupted calls) and ruinous for most of the table (400 ms per
    page for 40k errors, seconds for 'ok'); walking the time index and skipping non-matching rows is
    the better plan for common outcomes. Counting one outcome reads only its range of the index."""
    if not outcome or outcome == "ok":
        return False
    n = conn.execute(select(func.count()).select_from(Call).where(Call.outcome == outcome)).scalar() or 0
    return n <= RARE_OUTCOME_ROWS


def calls_by_call_id(
    engine: Engine, call_ids: Sequence[str], flt: CallFilter | None = None
) -> list[dict[str, Any]]:
    """The listed calls (by their `call_id`) that match the filter, newest first: what a live table adds
    when the writer reports freshly logged calls."""
    if not call_ids:
        return []
    cond = (flt or CallFilter()).conditions()
    stmt = (
        select(*_LIST)
        .where(Call.call_id.in_(list(call_ids)), *cond)
        .order_by(Call.started_at.desc(), Call.id.desc())
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(stmt)]


def count_calls(engine: Engine, flt: CallFilter | None = None) -> int:
    """How many calls match. Counting reads an index for single-column filters (milliseconds at 1M rows);
    `failures_only` or a text search read the table (about half a second at 1M rows)."""
    cond = (flt or CallFilter()).conditions()
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(Call).where(and_(true(), *cond))).scalar() or 0
        )


_DISTINCT_SQL = """
WITH RECURSIVE v(x) AS (
    SELECT min({col}) FROM calls
    UNION ALL
    SELECT (SELECT min({col}) FROM calls WHERE {col} > v.x) FROM v WHERE v.x IS NOT NULL
)
SELECT x FROM v WHERE x IS NOT NULL
"""


def call_facets(engine: Engine) -> dict[str, list[str]]:
    """The models and providers present in the log, for filter menus. Each is a skip-scan of the column's
    index (one seek per distinct value), so it costs microseconds at 1M rows where DISTINCT costs 150 ms."""
    with engine.connect() as conn:
        return {
            "models": list(conn.exec_driver_sql(_DISTINCT_SQL.format(col="upstream_model")).scalars()),
            "providers": list(conn.exec_driver_sql(_DISTINCT_SQL.format(col="provider")).scalars()),
        }


def _body_text(body: bytes | None) -> str | None:
    if body is None:
        return None
    text = body[:BODY_PREVIEW_BYTES].decode("utf-8", errors="replace")
    return text + (
        f"\n… ({len(body) - BODY_PREVIEW_BYTES} more bytes)" if len(body) > BODY_PREVIEW_BYTES else ""
    )


def _fallback(chain: str | None) -> list[dict[str, Any]]:
    if not chain:
        return []
    try:
        parsed = orjson.loads(chain)
    except orjson.JSONDecodeError:
        return [{"target": "?", "error_message": f"unreadable fallback chain: {chain[:200]}"}]
    return [a for a in parsed if isinstance(a, dict)] if isinstance(parsed, list) else []


def call_detail(engine: Engine, call: int | str) -> dict[str, Any]:
    """Everything about one call (by row id or `call_id`): its columns, the parsed fallback chain under
    `fallback`, its tool calls with their validation kind and any failed result under `tool_call_rows`, its
    task under `task`, and the logged bodies (a preview) only when body logging kept them.
    Raises LookupError when no such call exists (pruned, or another database)."""
    where = Call.id == call if isinstance(call, int) else Call.call_id == call
    with engine.connect() as conn:
        row = conn.execute(select(*_DETAIL, Call.request_body, Call.response_body).where(where)).first()
        if row is None:
            raise LookupError(f"call {call} is not in the log (it may have been pruned)")
        detail = dict(row._mapping)
        bodies = {name: detail.pop(name) for name in ("request_body", "response_body")}
        tools = conn.execute(
            select(
                ToolCallRow.tool_call_id,
                ToolCallRow.name,
                ToolCallRow.kind,
                ToolCallRow.detail,
                ToolCallRow.result_failed,
                ToolCallRow.result_reason,
            )
            .where(ToolCallRow.call_id == detail["call_id"])
            .order_by(ToolCallRow.id)
        )
        detail["tool_call_rows"] = [dict(t._mapping) for t in tools]
        task = None
        if detail["task_id"] is not None:
            found = conn.execute(
                select(Task.id, Task.label, Task.source, Task.outcome).where(Task.id == detail["task_id"])
            ).first()
            task = dict(found._mapping) if found else None
    detail["task"] = task
    detail["fallback"] = _fallback(detail["fallback_chain"])
    for name, body in bodies.items():
        if body is not None:
            detail[name] = _body_text(body)
    return detail

"""The call log's schema (SQLAlchemy 2). Changes go through an Alembic migration in `migrations/`."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Call(Base):
    """One row per call that reached the proxy, failed and cancelled ones included."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(32), unique=True)
    started_at: Mapped[float] = mapped_column(Float)  # unix seconds: cheap to bucket and compare
    ttfb_ms: Mapped[float | None] = mapped_column(Float)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    client_api: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str] = mapped_column(String(64))
    requested_model: Mapped[str | None] = mapped_column(String(200))
    preset: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str | None] = mapped_column(String(32))
    provider: Mapped[str | None] = mapped_column(String(100))
    upstream_api: Mapped[str | None] = mapped_column(String(16))
    upstream_model: Mapped[str | None] = mapped_column(String(200))
    streamed: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    error_kind: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_1h_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    cost_source: Mapped[str | None] = mapped_column(String(16))
    billed_cost_usd: Mapped[float | None] = mapped_column(Float)
    estimated_cost_usd: Mapped[float | None] = mapped_column(Float)
    premium_cost_usd: Mapped[float | None] = mapped_column(Float)
    unpriced: Mapped[bool] = mapped_column(Boolean, default=False)
    fallback_chain: Mapped[str | None] = mapped_column(Text)  # JSON list of attempts
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    bytes_in: Mapped[int] = mapped_column(Integer, default=0)
    bytes_out: Mapped[int] = mapped_column(Integer, default=0)
    session_key: Mapped[str | None] = mapped_column(String(200))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    user_agent: Mapped[str | None] = mapped_column(String(200))
    tool_calls: Mapped[int] = mapped_column(Integer, default=0)
    tool_failures: Mapped[int] = mapped_column(Integer, default=0)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    request_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    # the provider reported no usage (or only part): the tokens, and so the cost, are an estimate
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    member: Mapped[str | None] = mapped_column(String(100))  # team mode: whose call (config or member token)
    machine: Mapped[str | None] = mapped_column(String(100))  # team mode: which proxy logged it

    __table_args__ = (
        Index("ix_calls_started_at", "started_at"),
        Index("ix_calls_model_time", "upstream_model", "started_at"),
        Index("ix_calls_provider_time", "provider", "started_at"),
        Index("ix_calls_task", "task_id"),
        Index("ix_calls_outcome", "outcome"),
        Index("ix_calls_member_time", "member", "started_at"),
    )


class ToolCallRow(Base):
    """One tool call a model emitted, with its validation result; a later failed tool result marks it."""

    __tablename__ = "tool_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(32))
    tool_call_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # ok | invalid_json | unknown_tool | schema | text_form
    detail: Mapped[str | None] = mapped_column(Text)
    result_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    result_reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[float] = mapped_column(Float)
    upstream_model: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_tool_calls_call", "call_id"),
        Index("ix_tool_calls_tcid", "tool_call_id"),
        Index("ix_tool_calls_model_time", "upstream_model", "started_at"),
    )


class Task(Base):
    """A unit of agent work; its totals are sums over its calls, so nothing is counted twice."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))  # header | session | fingerprint | manual | idle
    label: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[float] = mapped_column(Float)
    last_at: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str | None] = mapped_column(String(16))  # finished | abandoned | None (open)
    member: Mapped[str] = mapped_column(String(100), default="", server_default="")  # team mode; '' for none

    __table_args__ = (Index("ix_tasks_key", "key"), Index("ix_tasks_started", "started_at"))


# ---------------------------------------------------------------------------------------------- analytics (0002)


class UsageSlot(Base):
    """Totals per 15-minute slot by provider, model and role, kept in step with the call log by the writer hook.

    Charts read these instead of scanning millions of call rows, and they survive retention pruning, so
    figures stay exact after old detail rows are deleted. 15 minutes: any bucket that is a multiple of it
    (15 min, hours, days) is served from here, and 30 days are ~3,000 slots per model. Empty strings stand
    for "none" (SQLite treats NULLs as distinct in a primary key, which would break the upsert).
    """

    __tablename__ = "usage_slots"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True)  # unix seconds of the slot's start
    provider: Mapped[str] = mapped_column(String(100), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    member: Mapped[str] = mapped_column(
        String(100), primary_key=True, server_default=""
    )  # team mode; '' for none
    calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    errors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    unpriced_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    premium_usd: Mapped[float] = mapped_column(
        Float, default=0.0, server_default="0"
    )  # premium equivalent of priced calls
    savings_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    escalated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    tool_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tool_invalid_json: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tool_unknown_tool: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tool_schema: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tool_text_form: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tool_result_failed: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0"
    )  # valid calls whose result failed
    estimated_calls: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0"
    )  # usage estimated, not reported


class TaskTotals(Base):
    """Running totals of a task (one row per task), so task lists and cost per task survive pruning."""

    __tablename__ = "task_totals"

    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    errors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    unpriced_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    premium_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    savings_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    tool_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tool_failures: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0"
    )  # validation failures + failed results
    escalated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    models: Mapped[str] = mapped_column(
        Text, default="", server_default=""
    )  # "provider/model" joined by "\n", first use first
    estimated_calls: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0"
    )  # usage estimated, not reported


class AnalyticsMeta(Base):
    """Small key/value state of the analytics (e.g. `pruned_before`: detail older than this is gone)."""

    __tablename__ = "analytics_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ProbeResult(Base):
    """One probe of one executor check (`downshift probe`), so a model's record shows where it is picked."""

    __tablename__ = "probe_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(300))  # provider/model
    probe: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean, default=False)
    tool_calls: Mapped[int] = mapped_column(Integer, default=0)
    tool_failures: Mapped[int] = mapped_column(Integer, default=0)
    failure_kinds: Mapped[str | None] = mapped_column(Text)  # JSON {kind: count}
    latency_ms: Mapped[float | None] = mapped_column(Float)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_probe_target", "target", "started_at"),)


# ------------------------------------------------------------------------------------------- team mode (0005)


class MemberToken(Base):
    """A member of a shared team gateway and their token, stored hashed (see app.core.members)."""

    __tablename__ = "member_tokens"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    salt: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)


class OutboxRow(Base):
    """A finished call waiting to be shipped to the team ledger (shape 1; see app.core.team_ship)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(32))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[float] = mapped_column(Float)


# Task look-ups done by the writer hook and the task list (the tasks table itself is from 0001).
Index("ix_tasks_last", Task.last_at)
Index("ix_tasks_source", Task.source, Task.id)
# Cost per task over a range reads tasks by start time: covering, so 20k tasks need no table look-ups.
Index("ix_tasks_started_cover", Task.started_at, Task.id, Task.outcome, Task.label)
# Sub-slot failure-rate charts and retention read tool calls by time; covering, so no table look-ups.
Index(
    "ix_tool_calls_time",
    ToolCallRow.started_at,
    ToolCallRow.upstream_model,
    ToolCallRow.kind,
    ToolCallRow.result_failed,
)


# ---------------------------------------------------------------------------------------------- executors (0004)


class ExecutorSlot(Base):
    """Per (UTC) day, model and prompt-size bin: calls and tool-call outcomes, kept by the writer hook.

    The executor scorecard asks "up to what prompt size does this model drive the tools cleanly?", which
    needs failure rates by context size over weeks of calls; these totals answer it from a few thousand
    rows instead of a million, and survive retention pruning. `ctx` is the index of the prompt-size bin
    (`app.core.analytics.executors.CTX_EDGES`); prompt tokens = input + cache read + cache writes.
    """

    __tablename__ = "executor_slots"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True)  # unix seconds of the UTC day's start
    provider: Mapped[str] = mapped_column(String(100), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    ctx: Mapped[int] = mapped_column(Integer, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    errors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tool_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tool_invalid: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # failed validation
    tool_result_failed: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0"
    )  # valid, result failed
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    escalated: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ShadowCall(Base):
    """One shadow run: a served loop call sent again to a candidate model after the agent had its answer.

    Kept apart from `calls` on purpose: a shadow call is evaluation, never part of the agent's work, so no
    spend total, budget, task or savings figure can count it by accident. Its cost is "evaluation spend".
    """

    __tablename__ = "shadow_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(32))  # the served call it shadows
    started_at: Mapped[float] = mapped_column(Float)
    preset: Mapped[str | None] = mapped_column(String(100))
    served_provider: Mapped[str | None] = mapped_column(String(100))
    served_model: Mapped[str | None] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)  # the served call's prompt size
    outcome: Mapped[str] = mapped_column(String(16))  # ok | error | timeout
    status: Mapped[int | None] = mapped_column(Integer)
    error_kind: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    served_latency_ms: Mapped[float | None] = mapped_column(Float)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    cost_source: Mapped[str | None] = mapped_column(String(16))
    served_cost_usd: Mapped[float | None] = mapped_column(Float)
    tool_calls: Mapped[int] = mapped_column(Integer, default=0)
    tool_failures: Mapped[int] = mapped_column(Integer, default=0)
    served_tool_calls: Mapped[int] = mapped_column(Integer, default=0)
    served_tool_failures: Mapped[int] = mapped_column(Integer, default=0)
    valid: Mapped[bool | None] = mapped_column(Boolean)  # every shadow tool call passed the checks
    served_valid: Mapped[bool | None] = mapped_column(Boolean)
    same_tool: Mapped[bool | None] = mapped_column(
        Boolean
    )  # same tool names chosen (None: neither called one)
    args_valid: Mapped[bool | None] = mapped_column(
        Boolean
    )  # the shadow's arguments fit the declared schemas
    served_tool: Mapped[str | None] = mapped_column(String(200))
    shadow_tool: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_shadow_time", "started_at"),
        Index("ix_shadow_target", "provider", "model", "started_at"),
    )

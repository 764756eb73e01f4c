"""The record of one proxied call, filled in as the call progresses and handed to the log writer."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Attempt:
    """One try at one target; a call that fell back has several."""

    target: str
    status: int | None = None
    error_kind: str | None = None
    error_message: str | None = None
    duration_ms: float | None = None
    # an attempt that produced part of an answer before failing is billed for it: its own cost (None when it
    # cost nothing or no price is known), the source of that figure, and its tokens
    cost_usd: float | None = None
    cost_source: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    def as_json(self) -> dict[str, Any]:
        out = {
            k: getattr(self, k) for k in ("target", "status", "error_kind", "error_message", "duration_ms")
        }
        if self.cost_source is not None:  # only attempts that were costed carry the figures
            out.update(
                cost_usd=self.cost_usd,
                cost_source=self.cost_source,
                input_tokens=self.input_tokens,
                output_tokens=self.output_tokens,
            )
        return out


@dataclass(slots=True)
class ToolCallResult:
    tool_call_id: str
    name: str
    kind: str  # ok | unchecked | invalid_json | unknown_tool | schema | text_form
    detail: str = ""


@dataclass(slots=True)
class CallRecord:
    """Everything the call log keeps about one call. Never holds keys or tokens."""

    client_api: str  # openai | anthropic | responses
    endpoint: str
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.perf_counter)
    ttfb_ms: float | None = None
    duration_ms: float | None = None
    requested_model: str | None = None
    preset: str | None = None
    role: str | None = None
    provider: str | None = None
    upstream_api: str | None = None
    upstream_model: str | None = None
    streamed: bool = False
    status: int | None = None
    outcome: str = "in_flight"  # ok | error | cancelled | interrupted | in_flight
    error_kind: str | None = None
    error_message: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    cost_source: str | None = None  # provider | table | override | local | unpriced | estimated
    billed_cost_usd: float | None = None
    estimated_cost_usd: float | None = None
    premium_cost_usd: float | None = None
    usage_estimated: bool = False  # the provider reported no usage (or only part of it): tokens are a guess
    attempts: list[Attempt] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    session_key: str | None = None
    task_key: str | None = None
    task_id: int | None = None
    task_label: str | None = None  # cut from the first user prompt; names the task if this call opens one
    user_agent: str | None = None
    tool_calls: list[ToolCallResult] = field(default_factory=list)
    # (tool_call_id, reason) seen in the request
    failed_results: list[tuple[str, str]] = field(default_factory=list)
    escalated: bool = False
    request_body: bytes | None = None
    response_body: bytes | None = None
    member: str | None = None  # team mode: set by a member token; else the log writer's [team] member
    machine: str | None = None  # team mode: the proxy that served it (the log writer fills it in)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0

    def mark_first_byte(self) -> None:
        if self.ttfb_ms is None:
            self.ttfb_ms = self.elapsed_ms()

    def finish(self, outcome: str, status: int | None = None) -> None:
        self.outcome = outcome
        if status is not None:
            self.status = status
        self.duration_ms = self.elapsed_ms()

    @property
    def unpriced(self) -> bool:
        """Part or all of the call's cost has no known price: the call itself, or an attempt before it that
        was billed for a partial answer (a fallback). `cost_usd` then holds only the priced part, and every
        figure built on it says so ("N without a known price"), never a complete total."""
        if self.cost_source == "unpriced":
            return True
        attempts = self.attempts  # one attempt: its figures are the call's own (the common case: no scan)
        return len(attempts) > 1 and any(a.cost_source == "unpriced" for a in attempts)

    @property
    def tool_failures(self) -> int:
        # unchecked: not the model's fault
        return sum(1 for t in self.tool_calls if t.kind not in ("ok", "unchecked"))

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
            + self.cache_write_1h_tokens
            + self.output_tokens
        )

"""Settling a finished call into its log record: tokens, cost, tool-call verdicts, redacted bodies.

Runs once per call after the answer has gone to the client, so none of it adds to the agent's latency.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from typing import Any

from app.core import toolcheck
from app.core.config import Config, Provider
from app.core.pricing import premium_cost, price_call
from app.core.records import CallRecord, ToolCallResult
from app.core.usage import normalize_anthropic, normalize_openai
from app.proxy.observe import AnthropicObserver, OpenAIObserver

log = logging.getLogger(__name__)


class SeenIds:
    """Tool-call ids already judged: agents resend the whole history every turn, each result counts once."""

    def __init__(self, limit: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def fresh(self, items: list[tuple[str, str]]) -> list[tuple[str, str]]:
        out = []
        for tool_call_id, reason in items:
            if tool_call_id and tool_call_id not in self._ids:
                self._ids[tool_call_id] = None
                out.append((tool_call_id, reason))
        while len(self._ids) > self._limit:
            self._ids.popitem(last=False)
        return out


def note_tool_results(rec: CallRecord, data: dict[str, Any], client_api: str, config: Config, seen: SeenIds) -> None:
    """Tool results in this request that report failure, attributed later to the calls that made them."""
    patterns = config.tool_failure_patterns or toolcheck.DEFAULT_ERROR_PATTERNS
    found = toolcheck.failed_results(data, client_api, patterns)
    if found:
        rec.failed_results = seen.fresh(found)


def settle(
    rec: CallRecord,
    observer: OpenAIObserver | AnthropicObserver,
    upstream_body: dict[str, Any],
    provider: Provider,
    config: Config,
) -> None:
    """Fill in tokens, cost and tool-call verdicts. A failure here is a bug of ours: it is logged and the
    call keeps its row (without those figures) rather than failing an answer the client already has."""
    try:
        _settle(rec, observer, upstream_body, provider, config)
    except Exception:
        log.exception("could not account for call %s", rec.call_id)
        rec.cost_source = rec.cost_source or "unpriced"


def _settle(
    rec: CallRecord,
    observer: OpenAIObserver | AnthropicObserver,
    upstream_body: dict[str, Any],
    provider: Provider,
    config: Config,
) -> None:
    if provider.api == "anthropic":
        usage = normalize_anthropic(observer.usage or {})
        declared = toolcheck.declared_anthropic(upstream_body)
    else:
        usage = normalize_openai(observer.usage or {}, provider.kind)
        declared = toolcheck.declared_openai(upstream_body)
    rec.input_tokens = usage.input
    rec.output_tokens = usage.output
    rec.cache_read_tokens = usage.cache_read
    rec.cache_write_tokens = usage.cache_write
    rec.cache_write_1h_tokens = usage.cache_write_1h
    rec.reasoning_tokens = usage.reasoning
    priced = price_call(usage, config, provider, rec.upstream_model or "")
    rec.cost_usd, rec.cost_source = priced.cost, priced.source
    rec.billed_cost_usd, rec.estimated_cost_usd = priced.billed, priced.estimated
    rec.premium_cost_usd = premium_cost(usage, config)
    calls = [toolcheck.ToolCall(i, n, a) for i, n, a in observer.tool_calls()]
    if calls or declared:
        rec.tool_calls = [
            ToolCallResult(c.call_id or "", c.name, c.kind, c.detail)
            for c in toolcheck.check_calls(declared, calls, observer.text)
        ]


_SECRET_PATTERNS = re.compile(
    rb'("(?:authorization|x-api-key|api[_-]?key|token|password|secret)"\s*:\s*")[^"]*(")'
    rb"|\b(sk-(?:ant-|or-v1-|proj-)?)[A-Za-z0-9_\-]{16,}"
    rb"|\b(ds-)[A-Za-z0-9_\-]{20,}"
    rb"|\b(Bearer\s+)[A-Za-z0-9._\-]{16,}",
    re.IGNORECASE,
)


def _mask(match: re.Match[bytes]) -> bytes:
    if match.group(1) is not None:
        return match.group(1) + b"[REDACTED]" + match.group(2)
    prefix = next(g for g in match.groups()[2:] if g is not None)
    return prefix + b"[REDACTED]"


def redacted_body(body: bytes, limit: int) -> bytes:
    """A body fit to store: truncated to `limit` bytes, with key-like values masked."""
    clipped = body[:limit]
    return _SECRET_PATTERNS.sub(_mask, clipped)

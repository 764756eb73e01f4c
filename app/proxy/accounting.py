"""Settling a finished call into its log record: tokens, cost, tool-call verdicts, redacted bodies.

Runs once per call after the answer has gone to the client, so none of it adds to the agent's latency.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from typing import Any

from app.core import toolcheck
from app.core.config import Config, Provider
from app.core.pricing import premium_cost, price_call
from app.core.records import CallRecord, ToolCallResult
from app.core.redact import REDACTED, redact, redact_text  # noqa: F401 - moved to the core; the old path still works
from app.core.usage import Usage, normalize_anthropic, normalize_openai
from app.proxy.observe import AnthropicObserver, OpenAIObserver

log = logging.getLogger(__name__)


class SeenIds:
    """Tool-call ids already judged, ok or failed: agents resend the whole history every turn, so each result
    is read (and a failure counted) once, and a turn scans only the results that are new since the last one.
    Least recently seen ids go first past `limit`; an active conversation's ids stay (every turn touches them)."""

    def __init__(self, limit: int = 20_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def first(self, tool_call_id: str) -> bool:
        """True the first time an id is judged (it is remembered from now on); False for one judged before,
        and for an empty id (nothing to attribute it to)."""
        if not tool_call_id:
            return False
        ids = self._ids
        if tool_call_id in ids:
            ids.move_to_end(tool_call_id)
            return False
        ids[tool_call_id] = None
        if len(ids) > self._limit:
            ids.popitem(last=False)
        return True

    def fresh(self, items: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(tool_call_id, reason) for tool_call_id, reason in items if self.first(tool_call_id)]


def note_tool_results(rec: CallRecord, data: dict[str, Any], client_api: str, config: Config, seen: SeenIds) -> None:
    """Tool results in this request that report failure, attributed later to the calls that made them. Only
    results not judged before are read. Runs once the answer has gone out (it is not needed before)."""
    patterns = config.tool_failure_patterns or toolcheck.DEFAULT_ERROR_PATTERNS
    found = toolcheck.failed_results(data, client_api, patterns, fresh=seen.first)
    if found:
        rec.failed_results = found


async def prepare_checks(
    observer: OpenAIObserver | AnthropicObserver, upstream_body: dict[str, Any], provider: Provider
) -> None:
    """Compile the schemas of the tools the model called, off the event loop and time-capped (tool schemas are
    untrusted input, see app.core.toolcheck), so that `settle` finds them. No work when nothing was called."""
    calls = observer.tool_calls()
    if not calls:
        return
    try:
        if provider.api == "anthropic":
            declared = toolcheck.declared_anthropic(upstream_body)
        else:
            declared = toolcheck.declared_openai(upstream_body)
        schemas = toolcheck.called_schemas(declared, (name for _, name, _ in calls))
        if schemas:
            await toolcheck.prepare(schemas)
    except Exception:  # settle reports these calls "unchecked"; the call is not affected
        log.exception("could not prepare the tool checks of a call")


def settle(
    rec: CallRecord,
    observer: OpenAIObserver | AnthropicObserver,
    upstream_body: dict[str, Any],
    provider: Provider,
    config: Config,
    payload_len: int = 0,
) -> None:
    """Fill in tokens, cost and tool-call verdicts. A failure here is a bug of ours: it is logged and the
    call keeps its row (without those figures) rather than failing an answer the client already has.
    A failed or cancelled answer gets the usage seen so far (see `estimate_partial`)."""
    try:
        _settle(rec, observer, upstream_body, provider, config, payload_len)
    except Exception:
        log.exception("could not account for call %s", rec.call_id)
        rec.cost_source = rec.cost_source or "unpriced"


def _settle(
    rec: CallRecord,
    observer: OpenAIObserver | AnthropicObserver,
    upstream_body: dict[str, Any],
    provider: Provider,
    config: Config,
    payload_len: int,
) -> None:
    if provider.api == "anthropic":
        usage = normalize_anthropic(observer.usage or {})
        declared = toolcheck.declared_anthropic(upstream_body)
    else:
        usage = normalize_openai(observer.usage or {}, provider.kind)
        declared = toolcheck.declared_openai(upstream_body)
    if rec.outcome != "ok":
        estimate_partial(observer, usage, payload_len)
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
            for c in toolcheck.check_calls(declared, calls, observer.text, compile=False)
        ]


# ------------------------------------------------------------------------------------------- partial usage


def estimate_partial(observer: OpenAIObserver | AnthropicObserver, usage: Usage, payload_len: int) -> None:
    """Fill in the tokens of an answer that broke off or was abandoned, from what was seen of it.

    A provider bills a stream it started even when it never got to report usage (OpenAI-format streams
    report it only in the last chunk; Anthropic's `message_start` has the input but not the final
    output). Input tokens the provider did not report are estimated from the request size (~4 bytes per
    token); output tokens are counted from the text and tool-call arguments that went by. Runs only for
    failed and cancelled answers."""
    if usage.prompt == 0 and payload_len > 0:
        usage.input = max(1, payload_len // 4)
    complete = bool(observer.usage) if isinstance(observer, OpenAIObserver) else observer.finish_reason is not None
    if not complete:
        seen = _count_tokens(observer.text) + sum(_count_tokens(args) for _, _, args in observer.tool_calls())
        if seen > usage.output:
            usage.output = seen


def _count_tokens(text: str) -> int:
    if not text:
        return 0
    if not tokenizer_ready():  # not loaded yet (~0.3-1 s of CPU, +40 MB): never on the event loop
        _load_tokenizer_soon()
        return max(1, len(text) // 4)
    from app.core import tokens

    return tokens.count_text(text)


# The tokenizer is loaded on first need, not at start: most proxies never need it (it serves Anthropic
# count_tokens answered locally and the output estimate of streams that broke off), and it costs ~40 MB.
_tokenizer_loader: threading.Thread | None = None


def tokenizer_ready() -> bool:
    tokens = sys.modules.get("app.core.tokens")
    return tokens is not None and getattr(tokens, "_encoding", None) is not None


def load_tokenizer() -> None:
    """Blocking: import and load the tokenizer (for an executor or a background thread)."""
    from app.core import tokens

    tokens.encoding()


def _load_tokenizer_soon() -> None:
    """Start loading the tokenizer on a background thread (once), so later estimates count tokens."""
    global _tokenizer_loader
    if _tokenizer_loader is not None:
        return

    def run() -> None:
        try:
            load_tokenizer()
        except Exception:  # estimates stay at ~4 bytes per token
            log.warning("could not load the tokenizer", exc_info=True)

    _tokenizer_loader = threading.Thread(target=run, name="downshift-tokenizer", daemon=True)
    _tokenizer_loader.start()


def clip_body(body: bytes, limit: int) -> bytes:
    """The part of a body the log keeps when bodies are stored; redacted later by the log writer."""
    return bytes(body[:limit])

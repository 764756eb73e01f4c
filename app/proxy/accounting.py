"""Settling a finished call into its log record: tokens, cost, tool-call verdicts, redacted bodies.

Runs once per call after the answer has gone to the client, so none of it adds to the agent's latency.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.core import premium_split, toolcheck
from app.core.config import Config, Provider
from app.core.pricing import ESTIMATED, Priced, premium_cost, price_call, served_by_premium
from app.core.records import Attempt, CallRecord, ToolCallResult
from app.core.redact import REDACTED as REDACTED  # moved to the core; the old path still works
from app.core.redact import redact as redact
from app.core.redact import redact_text as redact_text
from app.core.usage import Usage, normalize_anthropic, normalize_openai
from app.proxy.leg import Declared, Leg
from app.proxy.observe import Observer

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


def note_tool_results(
    rec: CallRecord, data: dict[str, Any], client_api: str, config: Config, seen: SeenIds
) -> None:
    """Tool results in this request that report failure, attributed later to the calls that made them. Only
    results not judged before are read. Runs once the answer has gone out (it is not needed before)."""
    patterns = config.tool_failure_patterns or toolcheck.DEFAULT_ERROR_PATTERNS
    found = toolcheck.failed_results(data, client_api, patterns, fresh=seen.first)
    if found:
        rec.failed_results = found


def _usage(observer: Observer, provider: Provider) -> Usage:
    """The usage the upstream reported, in its own format (zeros where it reported none)."""
    raw = observer.usage or {}
    return normalize_anthropic(raw) if provider.api == "anthropic" else normalize_openai(raw, provider.kind)


def _declared(leg: Leg) -> Declared:
    """The tools the request declared, read in the upstream's format: once per leg, whoever asks first."""
    declared = leg.declared
    if declared is None:
        body = leg.upstream_body
        if leg.provider.api == "anthropic":
            declared = toolcheck.declared_anthropic(body)
        else:
            declared = toolcheck.declared_openai(body)
        leg.declared = declared
    return declared


async def prepare_checks(leg: Leg) -> None:
    """Compile the schemas of the tools the model called, off the event loop and time-capped (tool schemas are
    untrusted input, see app.core.toolcheck), so that `settle` finds them. No work when nothing was called."""
    calls = leg.observer.tool_calls()
    if not calls:
        return
    try:
        schemas = toolcheck.called_schemas(_declared(leg), (name for _, name, _ in calls))
        if schemas:
            await toolcheck.prepare(schemas)
    except Exception:  # settle reports these calls "unchecked"; the call is not affected
        log.exception("could not prepare the tool checks of a call")


def settle(leg: Leg) -> None:
    """Fill in tokens, cost and tool-call verdicts. A failure here is a bug of ours: it is logged and the
    call keeps its row (without those figures) rather than failing an answer the client already has.
    An answer whose provider reported no usage (or only part: a stream cut short, a cancelled call, a stream
    without its usage chunk) gets estimated tokens (see `estimate_partial`) and is marked estimated: its
    cost says `estimated`, never a price-table figure passed off as known."""
    try:
        _settle(leg)
    except Exception:
        rec = leg.rec
        log.exception("could not account for call %s", rec.call_id)
        rec.cost_source = rec.cost_source or "unpriced"


def _settle(leg: Leg) -> None:
    rec, observer, provider, config = leg.rec, leg.observer, leg.provider, leg.config
    usage = _usage(observer, provider)
    declared = _declared(leg)
    estimated = False
    if rec.outcome != "ok" or not observer.usage_complete:
        estimated = estimate_partial(observer, usage, leg.payload_len, leg.seen_tokens)
    rec.usage_estimated = estimated
    rec.input_tokens = usage.input
    rec.output_tokens = usage.output
    rec.cache_read_tokens = usage.cache_read
    rec.cache_write_tokens = usage.cache_write
    rec.cache_write_1h_tokens = usage.cache_write_1h
    rec.reasoning_tokens = usage.reasoning
    priced = price_call(usage, config, provider, rec.upstream_model or "")
    rec.cost_usd, rec.cost_source = priced.cost, cost_source(priced, estimated)
    rec.billed_cost_usd, rec.estimated_cost_usd = priced.billed, priced.estimated
    if served_by_premium(config, rec.role, rec.provider, rec.upstream_model):
        # the premium model itself: nothing saved (no re-split of its cache)
        rec.premium_cost_usd = rec.cost_usd
    else:
        rec.premium_cost_usd = premium_cost(usage, config, rec.role, premium_split.split(config))
    if rec.outcome == "ok" and not estimated:  # guessed tokens carry no cache split: they'd skew the share
        premium_split.observe(rec.provider, rec.upstream_model, usage)
    _add_failed_attempts(rec, rec.attempts[:-1])
    calls = [toolcheck.ToolCall(i, n, a) for i, n, a in observer.tool_calls()]
    if calls or declared:
        rec.tool_calls = [
            ToolCallResult(c.call_id or "", c.name, c.kind, c.detail)
            for c in toolcheck.check_calls(declared, calls, observer.text, compile=False)
        ]


def cost_attempt(leg: Leg) -> None:
    """Cost an attempt that began answering and then failed before a byte reached the client (the next
    target then served the call): the provider bills what it generated, so the call's cost includes it.
    Its usage is what went by, estimated where the provider did not report it (it rarely got to)."""
    attempt, observer, provider = leg.attempt, leg.observer, leg.provider
    try:
        usage = _usage(observer, provider)
        estimated = estimate_partial(observer, usage, leg.payload_len, leg.seen_tokens)
        priced = price_call(usage, leg.config, provider, leg.rec.upstream_model or "")
        attempt.cost_usd, attempt.cost_source = priced.cost, cost_source(priced, estimated)
        attempt.input_tokens, attempt.output_tokens = usage.input, usage.output  # fresh input, like a call's
    except Exception:  # a bug of ours must not stop the fallback
        log.exception("could not cost a failed attempt on %s", provider.name)


def settle_failed_attempts(rec: CallRecord) -> None:
    """A call no target could serve still costs what its attempts that began answering were billed."""
    try:
        _add_failed_attempts(rec, rec.attempts)
    except Exception:
        log.exception("could not account for the attempts of call %s", rec.call_id)


def _add_failed_attempts(rec: CallRecord, attempts: list[Attempt]) -> None:
    """Add the cost of attempts that were billed for a partial answer to the call's cost. Such a figure is
    nearly always an estimate, and the call then says so; a call left without a serving attempt takes the
    attempts' tokens as its own."""
    costed = [a for a in attempts if a.cost_source is not None]
    if not costed:
        return
    known = [a.cost_usd for a in costed if a.cost_usd is not None]
    if rec.cost_source is None:  # nothing served the call: its figures are the attempts'
        rec.input_tokens = sum(a.input_tokens for a in costed)
        rec.output_tokens = sum(a.output_tokens for a in costed)
        rec.cost_usd = sum(known) if known else None
        rec.cost_source = ESTIMATED if known else "unpriced"
        rec.usage_estimated = True
        return
    if rec.cost_usd is not None and known:
        rec.cost_usd += sum(known)
    if any(a.cost_source == ESTIMATED for a in costed):
        rec.usage_estimated = True
        if rec.cost_source not in ("unpriced", "local"):
            rec.cost_source = ESTIMATED


def cost_source(priced: Priced, estimated: bool) -> str:
    """`estimated` for a cost computed from guessed tokens; a billed, local or unpriced figure keeps its
    source (the provider's own bill stands; a local call costs 0 whatever its tokens; no price is no price)."""
    if estimated and priced.billed is None and priced.cost is not None and priced.source != "local":
        return ESTIMATED
    return priced.source


# ------------------------------------------------------------------------------------------- partial usage


def estimate_partial(observer: Observer, usage: Usage, payload_len: int, seen: int | None = None) -> bool:
    """Fill in the tokens the provider did not report, from what was seen of the answer; True when any
    figure is a guess.

    A provider bills a stream it started even when it never got to report usage (OpenAI-format streams
    report it only in the last chunk, and some servers not at all; Anthropic's `message_start` has the
    input but not the final output). Input tokens the provider did not report are estimated from the
    request size (~4 bytes per token); output tokens are counted from the text and tool-call arguments
    that went by (`seen`: already counted, off the event loop, by `count_seen`)."""
    guessed = False
    if usage.prompt == 0 and payload_len > 0:
        usage.input = max(1, payload_len // 4)
        guessed = True
    if not observer.usage_complete:
        guessed = True
        if seen is None:
            seen = _count_all(_seen_texts(observer))
        if seen > usage.output:
            usage.output = seen
    return guessed


# Below this many characters the count (~30 us of CPU per KB with the tokenizer) costs the loop no more than
# the hop to a thread and back (~35 us of the loop's CPU, measured): it is done in place.
COUNT_OFF_LOOP_FROM = 1024
_counter: ThreadPoolExecutor | None = None


def _seen_texts(observer: Observer) -> list[str]:
    return [observer.text, *(args for _, _, args in observer.tool_calls())]


def _count_all(texts: list[str]) -> int:
    return sum(_count_tokens(text) for text in texts)


async def count_seen(leg: Leg) -> None:
    """Count the output of an answer whose provider did not report it (a stream without its usage chunk, a
    stream cut short) on a worker thread, for `settle`/`cost_attempt` to use: the tokenizer takes ~1-5 ms
    per 30 KB, which on the event loop every other call would wait for. Nothing to do (one check) when the
    provider reported its usage, when the tokenizer is not loaded yet (the estimate is then ~4 bytes per
    token, no CPU to speak of) or for a short answer. Cancelled while counting (the client hung up, and the
    handler with it), it still waits for the count it started, so the row keeps its figures; then re-raises."""
    observer = leg.observer
    if observer.usage_complete or not tokenizer_ready():
        return
    texts = _seen_texts(observer)
    if sum(len(text) for text in texts) < COUNT_OFF_LOOP_FROM:
        return
    global _counter
    if _counter is None:
        _counter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="downshift-count")
    counted = asyncio.wrap_future(_counter.submit(_count_all, texts))
    try:
        try:
            leg.seen_tokens = await asyncio.shield(counted)
        except asyncio.CancelledError:
            # the client hung up (aiohttp cancels the handler): the count goes on off the loop and the row
            # waits for it (milliseconds); then the cancellation goes on. Cancelled again: settle counts
            leg.seen_tokens = await counted
            raise
    except asyncio.CancelledError:
        raise
    except Exception:  # a bug of ours: settle counts in place
        log.exception("could not count the output of call %s", leg.rec.call_id)


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


async def ensure_tokenizer() -> None:
    """Load the tokenizer in an executor if it is not loaded yet (~0.3-1 s of CPU: never on the event loop),
    before a token count served locally."""
    if not tokenizer_ready():
        await asyncio.get_running_loop().run_in_executor(None, load_tokenizer)


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

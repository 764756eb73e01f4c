"""Token usage normalised across providers, so cost and statistics never depend on a wire format.

The one trap: OpenAI-style `prompt_tokens` INCLUDE cached tokens (and, on OpenRouter, cache writes),
while Anthropic's `input_tokens` EXCLUDE both cache reads and cache creation. `Usage.input` is always
the uncached, non-cache-write part, billed at the base input price.

Provider shapes covered (all read from whatever is present, no provider switch needed):

- OpenAI chat: `prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`
  (reasoning is part of `completion_tokens`). Responses API: `input_tokens`, `output_tokens`,
  `input_tokens_details.cached_tokens`, `output_tokens_details.reasoning_tokens`.
- OpenRouter: the above plus `prompt_tokens_details.cache_write_tokens`, `cost` (USD billed) and
  `cost_details` (e.g. `upstream_inference_cost`). With the user's own provider key (BYOK, `is_byok`),
  `cost` is only OpenRouter's fee and the provider bills `cost_details.upstream_inference_cost` on top:
  the call cost the sum.
- DeepSeek: `prompt_cache_hit_tokens` / `prompt_cache_miss_tokens` (hit + miss = prompt).
- Moonshot/Kimi: `cached_tokens` at the top level of `usage`; streams put usage in `choices[0].usage`.
- Groq: streamed usage in `x_groq.usage` of the last chunk.
- xAI: `completion_tokens` EXCLUDES `reasoning_tokens` (total = prompt + completion + reasoning), and
  the billed cost comes as `cost_in_usd_ticks` (1 USD = 1e10 ticks). Detected from `total_tokens`
  whenever it adds up that way (Gemini's OpenAI layer has done the same), or forced by the `xai` hint.
- Anthropic: `cache_read_input_tokens`, `cache_creation_input_tokens`, split by TTL in
  `cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`; streamed across
  `message_start` (input and cache counts) and `message_delta` (cumulative output, sometimes
  updated input counts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REASONING_OUTSIDE_COMPLETION = frozenset({"xai", "grok"})
"""Profile hints of providers whose completion_tokens leave reasoning out."""

USD_TICKS = 10_000_000_000


@dataclass(slots=True)
class Usage:
    """Tokens of one call, split the way prices are: every field is a disjoint bucket except `reasoning`."""

    input: int = 0  # uncached prompt tokens, cache writes excluded
    cache_read: int = 0
    cache_write: int = 0  # 5-minute (or the provider's only) cache-write tier
    cache_write_1h: int = 0
    output: int = 0  # includes reasoning
    reasoning: int = 0  # the part of `output` spent thinking
    cost: float | None = None  # what the provider says it billed, in USD
    cost_details: dict[str, Any] | None = None

    @property
    def prompt(self) -> int:
        """All prompt tokens, whatever their cache status (OpenAI's `prompt_tokens`)."""
        return self.input + self.cache_read + self.cache_write + self.cache_write_1h

    @property
    def total(self) -> int:
        return self.prompt + self.output


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float):
        return max(int(value), 0)
    if isinstance(value, str):
        try:
            return max(int(float(value)), 0)
        except ValueError:
            return 0
    return 0


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _details(usage: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    for key in keys:
        value = usage.get(key)
        if isinstance(value, Mapping):
            return value
    return {}


def normalize_openai(usage: Mapping[str, Any] | None, profile_hint: str | None = None) -> Usage:
    """Usage from an OpenAI-style `usage` object (chat or Responses API, and the compatible providers)."""
    if not usage:
        return Usage()
    responses_shape = "input_tokens" in usage and "prompt_tokens" not in usage
    prompt = _int(usage.get("input_tokens") if responses_shape else usage.get("prompt_tokens"))
    completion = _int(usage.get("output_tokens") if responses_shape else usage.get("completion_tokens"))
    pdet = _details(usage, "input_tokens_details", "prompt_tokens_details")
    cdet = _details(usage, "output_tokens_details", "completion_tokens_details")

    cache_read = _int(pdet.get("cached_tokens"))
    if not cache_read:
        cache_read = _int(usage.get("prompt_cache_hit_tokens")) or _int(usage.get("cached_tokens"))
    cache_write = _int(pdet.get("cache_write_tokens")) or _int(usage.get("cache_creation_input_tokens"))
    if "prompt_cache_miss_tokens" in usage and "prompt_cache_hit_tokens" in usage:
        uncached = _int(usage.get("prompt_cache_miss_tokens"))
        prompt = max(prompt, uncached + cache_read)
    else:
        uncached = max(prompt - cache_read - cache_write, 0)

    reasoning = _int(cdet.get("reasoning_tokens")) or _int(usage.get("reasoning_tokens"))
    output = completion
    if reasoning and _reasoning_outside(usage, prompt, completion, reasoning, profile_hint):
        output = completion + reasoning
    reasoning = min(reasoning, output)

    cost = billed_cost(usage)
    if cost is None and usage.get("cost_in_usd_ticks") is not None:
        ticks = _float(usage.get("cost_in_usd_ticks"))
        cost = ticks / USD_TICKS if ticks is not None else None
    details = usage.get("cost_details")
    return Usage(
        input=uncached,
        cache_read=cache_read,
        cache_write=cache_write,
        output=output,
        reasoning=reasoning,
        cost=cost,
        cost_details=dict(details) if isinstance(details, Mapping) else None,
    )


def billed_cost(usage: Mapping[str, Any]) -> float | None:
    """What the call cost the user by the provider's own account: `cost`, plus, on OpenRouter with the
    user's own provider key (BYOK), the provider's charge `cost_details.upstream_inference_cost` (OpenRouter
    then bills only its fee in `cost`). Without BYOK that field is null, or is the share of `cost` paid on to
    the provider (`is_byok` false): never added twice."""
    cost = _float(usage.get("cost"))
    if cost is None:
        return None
    details = usage.get("cost_details")
    if isinstance(details, Mapping) and usage.get("is_byok") is not False:
        upstream = _float(details.get("upstream_inference_cost"))
        if upstream:
            cost += upstream
    return cost


def _reasoning_outside(
    usage: Mapping[str, Any], prompt: int, completion: int, reasoning: int, hint: str | None
) -> bool:
    if hint and hint.lower() in REASONING_OUTSIDE_COMPLETION:
        return True
    if reasoning > completion:
        return True  # a part cannot exceed its whole: the provider counted them apart
    total = _int(usage.get("total_tokens"))
    return bool(total) and total != prompt + completion and total == prompt + completion + reasoning


def normalize_anthropic(usage: Mapping[str, Any] | None) -> Usage:
    """Usage from an Anthropic Messages `usage` object: input_tokens already exclude both cache buckets."""
    if not usage:
        return Usage()
    creation = _int(usage.get("cache_creation_input_tokens"))
    split = usage.get("cache_creation")
    one_hour = 0
    five_min = creation
    if isinstance(split, Mapping):
        one_hour = _int(split.get("ephemeral_1h_input_tokens"))
        five_min = _int(split.get("ephemeral_5m_input_tokens")) if "ephemeral_5m_input_tokens" in split else 0
        if creation and five_min + one_hour != creation:
            five_min = max(creation - one_hour, 0)  # trust the total when the split does not add up
    details = usage.get("cost_details")
    return Usage(
        input=_int(usage.get("input_tokens")),
        cache_read=_int(usage.get("cache_read_input_tokens")),
        cache_write=five_min,
        cache_write_1h=one_hour,
        output=_int(usage.get("output_tokens")),
        cost=billed_cost(usage),
        cost_details=dict(details) if isinstance(details, Mapping) else None,
    )


def _merge(into: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Later non-null values win: every streamed usage field is cumulative, so the latest is the truth."""
    for key, value in update.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


class StreamUsage:
    """Collects usage spread over a stream's events; feed each parsed SSE `data` object in order.

    For callers holding parsed events (tests, tools). The proxy reads the same places in its stream
    observers (app.proxy.observe), which look beyond a chunk's top level only on the few chunks that can
    carry usage there, to keep the per-chunk cost down.

    `api` is "anthropic", "openai" (chat completions) or "responses". `result()` is None when the
    stream carried no usage at all (e.g. the client did not ask for `stream_options.include_usage`).
    """

    __slots__ = ("_api", "_hint", "_raw")

    def __init__(self, api: str, profile_hint: str | None = None) -> None:
        self._api = api
        self._hint = profile_hint
        self._raw: dict[str, Any] | None = None

    def _take(self, usage: Any) -> None:
        if isinstance(usage, Mapping) and usage:
            if self._raw is None:
                self._raw = {}
            _merge(self._raw, usage)

    def feed(self, event: Mapping[str, Any]) -> None:
        if not isinstance(event, Mapping):
            return
        if self._api == "anthropic":
            kind = event.get("type")
            if kind == "message_start":
                message = event.get("message")
                if isinstance(message, Mapping):
                    self._take(message.get("usage"))
            elif kind == "message_delta":
                self._take(event.get("usage"))
            return
        if self._api == "responses":
            response = event.get("response")
            if isinstance(response, Mapping) and response.get("usage"):
                self._take(response.get("usage"))
            return
        self._take(event.get("usage"))
        groq = event.get("x_groq")
        if isinstance(groq, Mapping):
            self._take(groq.get("usage"))
        for choice in event.get("choices") or ():
            if isinstance(choice, Mapping):
                self._take(choice.get("usage"))  # Moonshot puts the final usage on the choice

    def raw(self) -> dict[str, Any] | None:
        """The merged provider usage object, for storing alongside the normalised numbers."""
        return self._raw

    def result(self) -> Usage | None:
        if self._raw is None:
            return None
        if self._api == "anthropic":
            return normalize_anthropic(self._raw)
        return normalize_openai(self._raw, self._hint)

"""What a call cost, where that figure came from, and what the premium model would have cost instead.

One price per model, everywhere: `resolve_price` is the only place a price is chosen, for the proxy's
per-call cost, the Providers page, the Presets pickers, `downshift prices show` and the break-even. The
order: a price override in the config; then the cost the provider billed (OpenRouter's `usage.cost`),
which is per call and so only in `price_call`; then the price the provider lists for the model in its own
model list (`listed`, kept from the Providers page's "Test connection"); then the bundled (or refreshed)
table. A local provider costs 0 per token. A call no source can price is marked `unpriced` and left out
of totals, never counted as $0. When the provider billed and a price is also known, both are kept so
mismatches show.

A call whose provider reported no usage is priced on estimated tokens and its source says `estimated`
(chosen where the tokens are settled, app.proxy.accounting, through `ESTIMATED`).

Every `cost_source` value is named here: provider | override | listed | table | local | unpriced | estimated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from app.core import listed_prices, price_table
from app.core.config import Config, Provider

SOURCES = ("provider", "override", "listed", "table", "local", "unpriced")
SOURCE_LABELS = {
    "provider": "billed by the provider",
    "override": "config override",
    "listed": "provider's model list",
    "table": "price table",
    "local": "local (no per-token cost)",
    "unpriced": "no known price",
}


class PerMillion(Protocol):
    """USD per million tokens, read-only: config prices, listed prices and the price table all fit."""

    @property
    def input(self) -> float: ...
    @property
    def output(self) -> float: ...
    @property
    def cache_read(self) -> float | None: ...
    @property
    def cache_write(self) -> float | None: ...
    @property
    def cache_write_1h(self) -> float | None: ...


class Tokens(Protocol):
    """A call's token counts (and the cost its provider billed, if any), read-only."""

    @property
    def input(self) -> int: ...
    @property
    def output(self) -> int: ...
    @property
    def cache_read(self) -> int: ...
    @property
    def cache_write(self) -> int: ...
    @property
    def cache_write_1h(self) -> int: ...
    @property
    def cost(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Priced:
    cost: float | None
    source: str  # provider | override | listed | table | local | unpriced (| estimated, see ESTIMATED)
    billed: float | None
    estimated: float | None


ESTIMATED = "estimated"
"""cost_source of a call priced on estimated tokens: the provider reported no usage, or only part of it."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """The price a model resolves to on a provider, which source gave it, and when that source was read."""

    price: PerMillion | None
    source: str  # override | listed | table | local | unpriced
    date: str = ""  # YYYY-MM(-DD) the price was read; '' for an override or a local provider
    detail: str = ""  # where, in words (the table entry's source, the provider whose list it is...)

    @property
    def label(self) -> str:
        """`price table: Anthropic pricing page, 2026-11` - for tooltips and `prices show`."""
        head = SOURCE_LABELS.get(self.source, self.source)
        tail = ", ".join(x for x in (self.detail, self.date) if x)
        return f"{head}: {tail}" if tail else head


@dataclass(frozen=True, slots=True)
class _Zero:
    input: float = 0.0
    output: float = 0.0
    cache_read: float | None = 0.0
    cache_write: float | None = 0.0
    cache_write_1h: float | None = 0.0


ZERO = _Zero()


def tier_for(price: PerMillion, prompt_tokens: int) -> PerMillion:
    """The prices that apply to a call with this many prompt tokens (long-context tiers, when the entry has them)."""
    chosen = price
    for tier in getattr(price, "tiers", ()):
        if prompt_tokens > tier.above:
            chosen = tier
    return chosen


def cost_at(tokens: Tokens, price: PerMillion) -> float:
    """USD for these tokens at these per-million prices. Cache prices default the way providers bill them;
    a prompt above a long-context threshold is billed, whole, at that tier's prices."""
    price = tier_for(price, tokens.input + tokens.cache_read + tokens.cache_write + tokens.cache_write_1h)
    cache_read = price.cache_read if price.cache_read is not None else price.input
    cache_write = price.cache_write if price.cache_write is not None else price.input
    cache_write_1h = price.cache_write_1h if price.cache_write_1h is not None else cache_write
    return (
        tokens.input * price.input
        + tokens.output * price.output
        + tokens.cache_read * cache_read
        + tokens.cache_write * cache_write
        + tokens.cache_write_1h * cache_write_1h
    ) / 1_000_000


# Hosts whose own prices the table keeps under a provider key, for accounts added as "custom".
_HOST_KINDS = (
    ("dashscope", "alibaba"), ("aliyuncs.com", "alibaba"), ("openrouter.ai", "openrouter"),
    ("api.anthropic.com", "anthropic"), ("api.openai.com", "openai"), ("api.deepseek.com", "deepseek"),
    ("together.xyz", "together"), ("fireworks.ai", "fireworks"), ("groq.com", "groq"),
)  # fmt: skip
_kinds: dict[tuple[str, str], str | None] = {}


def price_kind(provider: Provider | None) -> str | None:
    """Which provider's prices apply: its `kind`, or for a custom account the host it points at (Alibaba's
    DashScope endpoint bills Alibaba's prices whatever the account is called). Memoised per account."""
    if provider is None:
        return None
    key = (provider.kind, provider.base_url)
    if key not in _kinds:
        kind: str | None = provider.kind if provider.kind not in ("", "custom") else None
        if kind is None:
            host = (urlsplit(provider.base_url).hostname or "").lower()
            kind = next((k for marker, k in _HOST_KINDS if marker in host), None)
        _kinds[key] = kind
    return _kinds[key]


def override_for(config: Config, provider: Provider | None, model: str) -> PerMillion | None:
    """The config's `[prices."provider/model"]` (or `[prices."model"]`) for this model, if any."""
    prices: Mapping[str, PerMillion] = config.prices
    if not prices:
        return None
    found = prices.get(f"{provider.name}/{model}") if provider else None
    return found if found is not None else prices.get(model)


def resolve_price(config: Config, provider: Provider | None, model: str) -> Resolved:
    """The price of `model` on `provider`: override, then the provider's listed price, then the table.
    (The provider's billed cost, when a call has one, comes between the override and the listed price:
    see `price_call`.) Runs per call: a few dict probes."""
    if provider is not None and provider.local:
        return Resolved(ZERO, "local")
    override = override_for(config, provider, model)
    if override is not None:
        key = (
            f"{provider.name}/{model}" if provider and f"{provider.name}/{model}" in config.prices else model
        )
        return Resolved(override, "override", "", f'[prices."{key}"] in the config')
    if provider is not None:
        listed = listed_prices.lookup(provider.name, model)
        if listed is not None:
            return Resolved(listed, "listed", listed.date, f"{provider.name}'s model list")
    entry = price_table.lookup(model, price_kind(provider))
    if entry is None:
        return Resolved(None, "unpriced")
    return Resolved(entry, "table", entry.date, entry.source)


def find_price(config: Config, provider: Provider | None, model: str) -> tuple[PerMillion | None, str]:
    """The price of `model` and which source it came from (`resolve_price` without the details)."""
    resolved = resolve_price(config, provider, model)
    return resolved.price, resolved.source


def price_call(tokens: Tokens, config: Config, provider: Provider | None, model: str) -> Priced:
    if provider is not None and provider.local:
        return Priced(0.0, "local", None, 0.0)
    resolved = resolve_price(config, provider, model)
    estimated = cost_at(tokens, resolved.price) if resolved.price is not None else None
    if resolved.source == "override":  # the user's own figure wins, even over the provider's bill
        return Priced(estimated, "override", tokens.cost, estimated)
    if tokens.cost is not None:
        return Priced(tokens.cost, "provider", tokens.cost, estimated)
    return Priced(estimated, resolved.source, None, estimated)


# ------------------------------------------------------------------------------------------------ savings


@dataclass(frozen=True, slots=True)
class CacheSplit:
    """Shares of prompt tokens by cache status, measured on the premium model's own calls."""

    cache_read: float
    cache_write: float
    cache_write_1h: float
    calls: int


@dataclass(slots=True)
class _Premium:
    input: int
    output: int
    cache_read: int
    cache_write: int
    cache_write_1h: int
    cost: float | None = None


def premium_tokens(tokens: Tokens, split: CacheSplit | None) -> Tokens:
    """The call's tokens as the premium model would have seen them: the same prompt and output, with the
    prompt's cache split measured on premium calls when there is one, else the call's own split."""
    if split is None:
        return tokens
    prompt = tokens.input + tokens.cache_read + tokens.cache_write + tokens.cache_write_1h
    read = round(prompt * split.cache_read)
    write = round(prompt * split.cache_write)
    write_1h = min(round(prompt * split.cache_write_1h), prompt - read - write)
    return _Premium(prompt - read - write - write_1h, tokens.output, read, write, write_1h)


def premium_cost(
    tokens: Tokens, config: Config, role: str | None = None, split: CacheSplit | None = None
) -> float | None:
    """What the same tokens would have cost on the premium preset's target for the call's role (a background
    call against the premium preset's background model, a plan call against its plan model, its default
    when it has none for that role). A local premium target costs 0 per token."""
    premium = config.presets.get(config.premium)
    if premium is None:
        return None
    target = premium.target_for(role or "default")
    provider = config.providers.get(target.provider)
    if provider is not None and provider.local:
        return 0.0
    price = resolve_price(config, provider, target.model).price
    return cost_at(premium_tokens(tokens, split), price) if price is not None else None


def served_by_premium(config: Config, role: str | None, provider: str | None, model: str | None) -> bool:
    """The call ran on the premium preset's own target for its role: what premium would have cost is what it
    cost (re-pricing it with another cache split would invent savings)."""
    premium = config.presets.get(config.premium)
    if premium is None or provider is None:
        return False
    target = premium.target_for(role or "default")
    return target.provider == provider and target.model == model


# ------------------------------------------------------------------------------------------------ display


def caveat_text(unpriced: int, estimated: int) -> str:
    """What a cost figure leaves out or guesses, e.g. "2 calls unpriced, 1 estimated"; "" when nothing."""
    parts = [
        f"{unpriced} call{'s' if unpriced != 1 else ''} unpriced" if unpriced else "",
        f"{estimated} estimated" if estimated else "",
    ]
    return ", ".join(p for p in parts if p)


def price_fields(price: PerMillion) -> dict[str, float | None]:
    """The five per-million prices of any price object (table entry, listed price, config override)."""
    return {
        name: getattr(price, name, None)
        for name in ("input", "output", "cache_read", "cache_write", "cache_write_1h")
    }


def price_tiers(price: PerMillion) -> list[dict[str, float | int | None]]:
    """Long-prompt tiers as plain dicts: `above` (prompt tokens) and the five prices."""
    return [{"above": tier.above, **price_fields(tier)} for tier in getattr(price, "tiers", ())]


def fmt_per_million(value: float | None) -> str:
    """$0.30, $22.50, $0.028: two decimals, more only when the price has them."""
    if value is None:
        return "-"
    text = f"{value:,.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def describe_price(price: PerMillion) -> str:
    """`$3 in, $15 out, cache read $0.30, cache write $3.75 (1 h $6) per M tokens; above 200K prompt tokens...`"""

    def one(p: PerMillion) -> str:
        parts = [f"{fmt_per_million(p.input)} in", f"{fmt_per_million(p.output)} out"]
        if p.cache_read is not None:
            parts.append(f"cache read {fmt_per_million(p.cache_read)}")
        if p.cache_write is not None:
            one_hour = f" (1 h {fmt_per_million(p.cache_write_1h)})" if p.cache_write_1h is not None else ""
            parts.append(f"cache write {fmt_per_million(p.cache_write)}{one_hour}")
        return ", ".join(parts)

    text = one(price) + " per M tokens"
    for tier in getattr(price, "tiers", ()):
        text += f"; above {tier.above // 1000}K prompt tokens {one(tier)}"
    return text

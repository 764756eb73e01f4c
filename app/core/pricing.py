"""What a call cost, and where that figure came from.

Sources, in order: the cost the provider billed (OpenRouter's `usage.cost`), a user override in the config,
the bundled (or refreshed) price table. A local provider costs 0 per token. A call no source can price is
marked `unpriced` and left out of totals, never counted as $0. When the provider billed and a price is also
known, both are kept so mismatches show. A call whose provider reported no usage is priced on estimated
tokens and its source says `estimated` (set where the tokens are settled, app.proxy.accounting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.core.config import Config, Provider


class PerMillion(Protocol):
    input: float
    output: float
    cache_read: float | None
    cache_write: float | None
    cache_write_1h: float | None


class Tokens(Protocol):
    input: int
    output: int
    cache_read: int
    cache_write: int
    cache_write_1h: int
    cost: float | None


@dataclass(frozen=True, slots=True)
class Priced:
    cost: float | None
    source: str  # provider | override | table | local | unpriced (| estimated, see ESTIMATED)
    billed: float | None
    estimated: float | None


ESTIMATED = "estimated"
"""cost_source of a call priced on estimated tokens: the provider reported no usage, or only part of it."""


def cost_at(tokens: Tokens, price: PerMillion) -> float:
    """USD for these tokens at these per-million prices. Cache prices default the way providers bill them."""
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


def find_price(config: Config, provider: Provider | None, model: str) -> tuple[PerMillion | None, str]:
    """The price of `model` (override first, then table) and which source it came from."""
    from app.core import price_table

    override = config.prices.get(f"{provider.name}/{model}" if provider else model) or config.prices.get(model)
    if override is not None:
        return override, "override"
    entry = price_table.lookup(model, provider.kind if provider else None)
    return (entry, "table") if entry is not None else (None, "unpriced")


def price_call(tokens: Tokens, config: Config, provider: Provider | None, model: str) -> Priced:
    if provider is not None and provider.local:
        return Priced(0.0, "local", None, 0.0)
    price, source = find_price(config, provider, model)
    estimated = cost_at(tokens, price) if price is not None else None
    if tokens.cost is not None:
        return Priced(tokens.cost, "provider", tokens.cost, estimated)
    return Priced(estimated, source, None, estimated)


def premium_cost(tokens: Tokens, config: Config) -> float | None:
    """What the same tokens would have cost on the premium preset's default model (for savings)."""
    premium = config.presets.get(config.premium)
    if premium is None:
        return None
    target = premium.default
    provider = config.providers.get(target.provider)
    if provider is not None and provider.local:
        return 0.0
    price, _ = find_price(config, provider, target.model)
    return cost_at(tokens, price) if price is not None else None

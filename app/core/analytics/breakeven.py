"""Break-even for self-hosting: above what volume does a provider with an hourly cost beat the API?

A local or rented-GPU provider (`hourly_cost` USD per hour, token price 0) costs the same whatever it
serves; an API target costs per token. With the token mix the local provider actually served (input,
cache reads, 5-minute and 1-hour cache writes each at their own price, output; 3:1 input:output when it
served nothing yet), the API's price per token
of that mix gives the break-even: hourly_cost / price per token = tokens per hour above which the box
is cheaper. The observed volume over the range says on which side of it the user is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from app.core.config import Config, Target
from app.core.pricing import cost_at, find_price
from app.core.queries.dashboard import collect

DEFAULT_MIX = (3.0, 0.0, 0.0, 1.0)  # input, cache_read, cache_write, output


@dataclass(slots=True)
class _Tokens:
    input: int
    cache_read: int
    cache_write: int
    output: int
    cache_write_1h: int = 0
    cost: float | None = None


def default_against(config: Config) -> Target | None:
    """The API target to compare with: the premium preset's default model."""
    preset = config.presets.get(config.premium)
    return preset.default if preset is not None else None


def break_even(
    engine: Engine,
    config: Config,
    provider_name: str,
    *,
    against: Target | None = None,
    since: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    provider = config.providers.get(provider_name)
    if provider is None:
        raise KeyError(f"no provider named {provider_name!r}")
    if not provider.hourly_cost:
        raise ValueError(f"provider {provider_name!r} has no hourly_cost in the config")
    now = time.time() if now is None else now
    since = now - 30 * 86400 if since is None else since
    against = against or default_against(config)
    if against is None:
        raise ValueError("no API target to compare with: pass one, or configure the premium preset")
    price, source = find_price(config, config.providers.get(against.provider), against.model)
    if price is None:
        raise ValueError(f'no known price for {against}: add [prices."{against}"] to the config')
    measures = ["calls", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens"]
    with engine.connect() as conn:
        rows = collect(conn, since, now, measures, dim="provider")
        # the slot totals keep all cache writes together: the 1-hour ones come from the call rows (kept for
        # the retention period; writes of pruned days are priced at the 5-minute rate)
        write_1h = int(
            conn.execute(
                text(
                    "SELECT coalesce(sum(cache_write_1h_tokens), 0) FROM calls WHERE provider = :p AND started_at >= :s"
                    " AND started_at < :u AND outcome NOT IN ('in_flight', 'interrupted')"
                ),
                {"p": provider_name, "s": since, "u": now},
            ).scalar()
            or 0
        )
    served = next((v for (_b, p), v in rows.items() if p == provider_name), dict.fromkeys(measures, 0))
    counts = [int(served[m]) for m in measures[1:]]  # input, cache_read, cache_write (both tiers), output
    write_1h = min(write_1h, counts[2])
    served_mix = _Tokens(counts[0], counts[1], counts[2] - write_1h, counts[3], write_1h)
    mix = served_mix if any(counts) else _Tokens(*(int(x) for x in DEFAULT_MIX))
    total = mix.input + mix.cache_read + mix.cache_write + mix.output + mix.cache_write_1h
    usd_per_token = cost_at(mix, price) / total if total else 0.0
    hours = max((now - since) / 3600, 1e-9)
    served_tokens = sum(counts)
    api_usd = cost_at(served_mix, price)
    return {
        "provider": provider_name,
        "hourly_cost": provider.hourly_cost,
        "against": str(against),
        "price_source": source,
        "usd_per_million_tokens": usd_per_token * 1e6,
        "break_even_tokens_per_hour": provider.hourly_cost / usd_per_token if usd_per_token else None,
        "observed_tokens_per_hour": served_tokens / hours,
        "observed_calls": int(served["calls"]),
        "self_hosted_usd": provider.hourly_cost * hours,
        "api_equivalent_usd": api_usd,
        "cheaper": "self-hosted" if api_usd > provider.hourly_cost * hours else "api",
        "since": since,
        "until": now,
    }

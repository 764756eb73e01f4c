"""How the premium model's prompts split by cache status, measured on the user's own premium calls.

The savings figure prices each cheap call's tokens on the premium model. Cache behaviour differs by
provider (Anthropic caches only what the client marks, DeepSeek caches on its own, some hosts not at
all), so the cheap call's own split of cache reads and writes can flatter or harm the premium side.
When the log holds at least MIN_PREMIUM_CALLS successful calls served by the premium preset's models,
their measured shares of cache reads and writes are used instead (`app.core.pricing.premium_tokens`).

The proxy keeps running totals per (provider, model): seeded from the last LOOKBACK_DAYS of the log when
it starts (one grouped query, before it serves), then one addition per settled call. One set of totals
per process: the proxy that starts last seeds it.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, text

from app.core.config import Config
from app.core.pricing import CacheSplit, Tokens

MIN_PREMIUM_CALLS = 20
LOOKBACK_DAYS = 30

_lock = threading.Lock()
_totals: dict[tuple[str, str], list[int]] = {}  # (provider, model) -> [calls, prompt, read, write, write_1h]


_cached: tuple[Config, CacheSplit | None] | None = None  # the last split and the config it was for


def reset() -> None:
    global _cached
    with _lock:
        _totals.clear()
        _cached = None


def _rows(engine: Engine, since: float) -> list[tuple[str, str, list[int]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT provider, upstream_model, count(*), coalesce(sum(input_tokens), 0), coalesce(sum(cache_read_tokens), 0),"
                " coalesce(sum(cache_write_tokens), 0), coalesce(sum(cache_write_1h_tokens), 0) FROM calls"
                " WHERE outcome = 'ok' AND NOT usage_estimated AND started_at >= :s AND provider IS NOT NULL AND upstream_model IS NOT NULL"
                " AND input_tokens + cache_read_tokens + cache_write_tokens + cache_write_1h_tokens > 0"
                " GROUP BY provider, upstream_model"
            ),
            {"s": since},
        ).all()
    return [
        (provider, model, [int(calls), int(inp + read + write + w1h), int(read), int(write), int(w1h)])
        for provider, model, calls, inp, read, write, w1h in rows
    ]


def seed(engine: Engine, now: float | None = None) -> None:
    """Start from the log's successful calls of the last LOOKBACK_DAYS (all models: the premium preset may
    change while the proxy runs)."""
    global _cached
    rows = _rows(engine, (time.time() if now is None else now) - LOOKBACK_DAYS * 86400)
    with _lock:
        _totals.clear()
        _cached = None
        for provider, model, row in rows:
            _totals[(provider, model)] = row


_keys: tuple[Config | None, tuple[tuple[str, str], ...]] = (None, ())


def _premium_keys(config: Config) -> tuple[tuple[str, str], ...]:
    """The premium preset's (provider, model) targets; remembered for the current config (a reload is a new
    object), since the proxy asks on every call."""
    global _keys
    if _keys[0] is not config:
        premium = config.presets.get(config.premium)
        targets = {(t.provider, t.model) for t in premium.roles.values()} if premium is not None else set()
        _keys = (config, tuple(sorted(targets)))
    return _keys[1]


def _split(rows: list[list[int]]) -> tuple[CacheSplit | None, int]:
    calls, prompt, read, write, write_1h = (sum(col) for col in zip(*rows, strict=True)) if rows else (0,) * 5
    if calls < MIN_PREMIUM_CALLS or prompt <= 0:
        return None, calls
    return CacheSplit(read / prompt, write / prompt, write_1h / prompt, calls), calls


def measured(engine: Engine, config: Config, now: float | None = None) -> tuple[CacheSplit | None, int]:
    """From the log (for the dashboard and `stats`, which may run without the proxy): the premium split the
    proxy uses now, and how many premium calls it was measured on."""
    keys = _premium_keys(config)
    rows = _rows(engine, (time.time() if now is None else now) - LOOKBACK_DAYS * 86400)
    return _split([row for provider, model, row in rows if (provider, model) in keys])


def describe(split: CacheSplit | None, calls: int) -> str:
    """Which cache assumption the premium side uses now, in one sentence."""
    if split is not None:
        return (
            f"Now: the premium side uses the cache split measured on {calls} premium calls "
            f"({split.cache_read:.0%} of prompt tokens read from cache, "
            f"{split.cache_write + split.cache_write_1h:.0%} written to it)."
        )
    return (
        f"Now: each call's own cache split (the log holds {calls} of the {MIN_PREMIUM_CALLS} premium calls "
        "needed to measure the premium model's)."
    )


def observe(provider: str | None, model: str | None, tokens: Tokens) -> None:
    """Count one successful call (a few additions: runs per call)."""
    global _cached
    prompt = tokens.input + tokens.cache_read + tokens.cache_write + tokens.cache_write_1h
    if not provider or not model or prompt <= 0:
        return
    with _lock:
        if (provider, model) in _keys[1]:
            _cached = None  # a premium call: the split moves
        row = _totals.setdefault((provider, model), [0, 0, 0, 0, 0])
        row[0] += 1
        row[1] += prompt
        row[2] += tokens.cache_read
        row[3] += tokens.cache_write
        row[4] += tokens.cache_write_1h


def split(config: Config) -> CacheSplit | None:
    """The cache split measured on calls served by the premium preset's models, or None below MIN_PREMIUM_CALLS."""
    global _cached
    cached = _cached
    if cached is not None and cached[0] is config:
        return cached[1]
    keys = _premium_keys(config)
    with _lock:
        rows = [list(_totals[key]) for key in keys if key in _totals]
        result = _split(rows)[0]
        _cached = (config, result)
    return result

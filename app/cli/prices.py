"""`downshift prices`: list the price table, show which price a model is charged at, refresh it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.cli.args import AddCommand, reads_only
from app.cli.context import config_store, secret_store
from app.cli.format import print_json, table


def cmd_prices(args: argparse.Namespace) -> int:
    """`prices` (list the table), `prices show PROVIDER/MODEL`, `prices refresh`."""
    if args.action == "refresh":
        return cmd_prices_refresh(args)
    if args.action == "show":
        return _prices_show(args)
    return _prices_list(args)


def _prices_list(args: argparse.Namespace) -> int:
    from app.core import price_table
    from app.core.pricing import fmt_per_million, price_fields, price_tiers

    table_ = price_table.default_table()
    where = price_table.table_origin()
    needle = (args.target or "").lower()
    rows: list[dict[str, Any]] = []
    for model_id, entry in sorted(table_.models.items()):
        if needle and needle not in model_id.lower() and not any(needle in a.lower() for a in entry.aliases):
            continue
        for host, sub in (("", entry), *sorted(entry.providers.items())):
            rows.append(
                {
                    "model": model_id,
                    "on": host or None,
                    **price_fields(sub),
                    "tiers": price_tiers(sub),
                    "source": sub.source,
                    "date": sub.date,
                    "aliases": list(entry.aliases) if not host else [],
                }
            )
    if args.json:
        print_json({"updated": table_.updated, "table": where, "unit": "USD per 1M tokens", "models": rows})
        return 0
    for r in rows:
        for key in ("input", "output", "cache_read", "cache_write", "cache_write_1h"):
            r[key + "_"] = None if r[key] is None else fmt_per_million(r[key])
        r["long"] = (
            "; ".join(
                f">{t['above'] // 1000}K {fmt_per_million(t['input'])}/{fmt_per_million(t['output'])}"
                for t in r["tiers"]
            )
            or None
        )
        r["model_"] = r["model"] if not r["on"] else f"  on {r['on']}"
        r["source_"] = r["source"][:60] + ("…" if len(r["source"]) > 60 else "")
    print(
        table(
            rows,
            [
                ("model_", "MODEL"),
                ("input_", "IN $/M"),
                ("output_", "OUT $/M"),
                ("cache_read_", "CACHE READ"),
                ("cache_write_", "CACHE WRITE"),
                ("cache_write_1h_", "1H WRITE"),
                ("long", "LONG PROMPTS"),
                ("date", "READ"),
                ("source_", "SOURCE"),
            ],
        )
    )
    print(
        f"{len(rows)} prices from the {where} table of {table_.updated}. Which one a call is charged: "
        "`downshift prices show PROVIDER/MODEL`."
    )
    return 0


def _prices_show(args: argparse.Namespace) -> int:
    from app.core.config import Target
    from app.core.pricing import SOURCE_LABELS, describe_price, price_fields, price_tiers, resolve_price

    if not args.target:
        print("downshift: usage: downshift prices show PROVIDER/MODEL", file=sys.stderr)
        return 2
    try:
        target = Target.parse(args.target)
    except ValueError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 2
    config = config_store(args).current()
    provider = config.providers.get(target.provider)
    if provider is None:
        known = ", ".join(config.providers) or "none configured"
        print(f"downshift: no provider named {target.provider!r} (known: {known})", file=sys.stderr)
        return 2
    resolved = resolve_price(config, provider, target.model)
    billed_first = resolved.source not in ("override", "local")
    if args.json:
        print_json(
            {
                "target": str(target),
                "source": resolved.source,
                "date": resolved.date or None,
                "detail": resolved.detail or None,
                "price": price_fields(resolved.price) if resolved.price is not None else None,
                "tiers": price_tiers(resolved.price) if resolved.price is not None else [],
                "billed_cost_first": billed_first,
            }
        )
        return 0
    if resolved.price is None:
        print(
            f"{target}: no known price. Calls are logged as unpriced (left out of totals) unless the provider "
            f'bills them; set one with [prices."{target}"] input = ..., output = ... in the config.'
        )
        return 0
    print(f"{target}: {describe_price(resolved.price)}")
    print(f"source: {resolved.label}")
    if billed_first:
        print(
            f"a call's cost: what {provider.name} bills for it when its answer reports a cost (OpenRouter does), "
            f"else this price ({SOURCE_LABELS[resolved.source]})"
        )
    return 0


def cmd_prices_refresh(args: argparse.Namespace) -> int:
    from app import paths
    from app.core import price_table
    from app.core.secrets import provider_key

    config = config_store(args).current()
    provider = config.providers.get(args.provider)
    if provider is None:
        print(f"downshift: no provider named {args.provider!r}", file=sys.stderr)
        return 2
    key = provider_key(secret_store(), provider.name, provider.api_key_env)
    target = paths.data_dir() / "prices.json"
    try:
        _table, changes = price_table.refresh(provider.base_url, key, out_path=target)
    except Exception as exc:  # network and format problems, reported in one line
        print(f"downshift: price refresh from {provider.base_url} failed: {exc}", file=sys.stderr)
        return 1
    print(f"{len(changes)} prices updated from {provider.base_url}/models -> {target}")
    return 0


def register(add: AddCommand) -> None:
    p = add(
        "prices",
        cmd_prices,
        "the price table: list it, show which price a model is charged at, or refresh it "
        "from a provider that publishes prices (OpenRouter)",
    )
    p.add_argument("action", nargs="?", choices=("list", "show", "refresh"), default="list")
    reads_only(p, lambda args: args.action != "refresh")
    p.add_argument(
        "target", nargs="?", help="show: PROVIDER/MODEL; list: only models whose name contains this"
    )
    p.add_argument("--provider", default="openrouter", help="refresh: the provider whose model list to read")
    p.add_argument("--json", action="store_true")

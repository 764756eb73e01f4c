"""The call log: `calls` (recent calls), `stats` (spend and failures per model) and `export`."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
from collections.abc import Iterable
from typing import Any

from app.cli import analytics
from app.cli.args import LIMIT, AddCommand, add_member_option, reads_only
from app.cli.context import open_core
from app.cli.format import csv_safe, millis, models_table, money, print_json, rate, table, when


def cmd_calls(args: argparse.Namespace) -> int:
    from app.core.queries import recent_calls

    core = open_core(args)
    rows = recent_calls(core.db, args.limit, failures_only=args.failures, member=args.member)
    core.close()
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        guess = (
            "~" if r["usage_estimated"] else ""
        )  # the provider reported no usage: tokens and cost are guesses
        r["when"] = when(r["started_at"], seconds=True)
        prompt = (
            r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_tokens"] + r["cache_write_1h_tokens"]
        )
        r["tokens"] = f"{guess}{prompt}/{r['output_tokens']}"
        cache = (r["cache_read_tokens"], r["cache_write_tokens"], r["cache_write_1h_tokens"])
        r["cache"] = "/".join(str(n) for n in cache) if any(cache) else None
        r["cost"] = money(r["cost_usd"], r["usage_estimated"], unpriced=r["unpriced"])
        r["ms"] = millis(r["duration_ms"])
        r["target"] = f"{r['provider']}/{r['upstream_model']}" if r["provider"] else None
    print(
        table(
            rows,
            [
                ("when", "WHEN"),
                ("client_api", "API"),
                ("requested_model", "ASKED"),
                ("target", "SERVED BY"),
                ("outcome", "OUTCOME"),
                ("status", "HTTP"),
                ("tokens", "IN/OUT"),
                ("cache", "CACHE R/W/W1H"),
                ("cost", "COST"),
                ("ms", "MS"),
                ("tool_failures", "TOOL FAIL"),
            ],
        )
    )
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from app.core.queries import parse_since, summary

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 2
    core = open_core(args)
    data = summary(core.db, since=since, member=args.member)
    data.update(analytics.stats_extra(core.db, since, core.config, member=args.member))
    core.close()
    if args.json:
        print_json(data)
        return 0
    t = data["total"]
    print(
        f"since {when(since, seconds=True) if since else 'the beginning'}: {t['calls']} calls, {t['errors']} failed, "
        f"{money(t['cost_usd'], t['estimated_calls'])}, tool-call failure rate {rate(t['tool_failure_rate'])}"
    )
    if t["unpriced_calls"]:
        print(
            f"  {t['unpriced_calls']} calls have no known price, in whole or in part (an attempt before a fallback), "
            "and that part is not in the total (`downshift prices show PROVIDER/MODEL` says why)"
        )
    if t["estimated_calls"]:
        print(
            f"  ~ {t['estimated_calls']} calls' tokens are estimated (the provider reported no usage): "
            "their cost is an estimate"
        )
    print(models_table(data["models"]))
    analytics.print_stats_extra(data)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from app.core.queries import EXPORT_COLUMNS, iter_calls, parse_since

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 2
    try:
        out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    except OSError as exc:
        print(f"downshift: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    core = open_core(args)
    count = 0
    try:
        core.writer.flush()
        rows: Iterable[dict[str, Any]] = iter_calls(core.db, since=since, member=args.member)
        if args.format == "csv":
            writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            for count, row in enumerate(rows, 1):  # noqa: B007 - count is reported below
                writer.writerow({k: csv_safe(v) for k, v in row.items()})
        else:
            out.write("[")
            for row in rows:
                out.write(("," if count else "") + "\n  " + json.dumps(row, default=str))
                count += 1
            out.write("\n]\n")
        out.flush()
        if args.out:
            out.close()
    except OSError as exc:  # a full disk, a device that refuses the write: say so, keep no half file
        if args.out:
            with contextlib.suppress(OSError):
                out.close()
            _remove_partial(args.out)
        print(
            f"downshift: cannot write {args.out or 'the output'}: {exc.strerror or exc}; nothing exported",
            file=sys.stderr,
        )
        return 2
    finally:
        core.close()
    if args.out:
        print(f"{count} calls written to {args.out}", file=sys.stderr)
    return 0


def _remove_partial(name: str) -> None:
    """Remove a half-written export, if it is a regular file (never /dev/full or a pipe)."""
    import os
    import stat

    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.stat(name).st_mode):
            os.unlink(name)


def register(add: AddCommand) -> None:
    p = add("calls", cmd_calls, "recent calls from the log")
    reads_only(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=LIMIT, default=20)
    p.add_argument(
        "--failures", action="store_true", help="only failed calls and calls with tool-call failures"
    )
    add_member_option(p)
    p = add(
        "stats",
        cmd_stats,
        "spend, tokens and tool-call failure rate, per model (and per member on a team ledger)",
    )
    reads_only(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--since", help="e.g. 1h, 24h, 7d, 2026-11-01 (default: all time)")
    add_member_option(p)
    p = add("export", cmd_export, "export the call log")
    reads_only(p)  # the log; the output file is written, of course
    p.add_argument("what", choices=("calls",))
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--out", metavar="FILE")
    p.add_argument("--since")
    add_member_option(p)

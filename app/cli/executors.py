"""The executor commands of the `downshift` CLI: `executors` (the scorecard) and `replay` (what another
preset would have cost). Registered through `register`; JSON shapes in README ("Picking an
executor")."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.cli.args import AddCommand, reads_only
from app.cli.context import open_core
from app.cli.format import money, print_json, rate, table


def _since(text: str | None) -> float | None:
    """Unix seconds for --since (0.0 for all time); None after printing why it cannot be read."""
    from app.core.queries import parse_since

    try:
        return parse_since(text) or 0.0
    except ValueError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return None


def _seconds(ms: float | None) -> str:
    """A latency percentile in seconds ("1.2s"); "-" when there were no timed calls."""
    return "-" if ms is None else f"{ms / 1000:.1f}s"


def cmd_executors(args: argparse.Namespace) -> int:
    from app.core.queries.executors import evaluation_spend, scorecard

    since = _since(args.since)
    if since is None:
        return 2
    core = open_core(args)
    core.writer.flush()
    data = scorecard(core.db, since=since, min_tool_calls=args.min_tool_calls)
    data["evaluation_spend"] = evaluation_spend(core.db, since=since)
    core.close()
    if args.json:
        print_json(data)
        return 0
    rows: list[dict[str, Any]] = []
    for m in data["models"]:
        rows.append(
            {
                "target": m["target"],
                "calls": m["calls"],
                "tools": m["tool_calls"],
                "valid": rate(m["validity"]),
                **{f"b{i}": rate(b["failure_rate"]) for i, b in enumerate(m["buckets"])},
                "task": money(m["cost_per_finished_task"]),
                "p50": _seconds(m["latency"]["p50_ms"]),
                "p95": _seconds(m["latency"]["p95_ms"]),
                "esc": m["escalated_tasks"],
                "probe": "-" if m["probe"] is None else f"{m['probe']['passed']}/{m['probe']['probes']}",
            }
        )
    labels = data["buckets"]
    print(
        table(
            rows,
            [
                ("target", "MODEL"),
                ("calls", "CALLS"),
                ("tools", "TOOL CALLS"),
                ("valid", "VALID"),
                *((f"b{i}", f"FAIL {label}") for i, label in enumerate(labels)),
                ("task", "$/FINISHED TASK"),
                ("p50", "P50"),
                ("p95", "P95"),
                ("esc", "ESCALATED"),
                ("probe", "PROBE"),
            ],
        )
    )
    print()
    for m in data["models"]:
        print(f"{m['target']}: {m['verdict']['text']}")
        for s in m["shadow"]:
            print(
                f"  shadowing {s['served']}: {s['runs']} runs, valid {rate(s['valid_rate'])} (served"
                f" {rate(s['served_valid_rate'])}), same tool {rate(s['same_tool_rate'])}, evaluation spend"
                f" {money(s['cost_usd'])}"
            )
    if not data["models"]:
        print("no calls in this range")
    ev = data["evaluation_spend"]
    if ev["runs"]:
        print(
            f"evaluation spend (shadow runs, never in spend totals): {money(ev['cost_usd'])} over {ev['runs']} runs"
        )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from app.core.queries.replay import replay

    since = _since(args.since)
    if since is None:
        return 2
    core = open_core(args)
    try:
        core.writer.flush()
        data = replay(core.db, core.config, args.preset, since=since)
    except KeyError as exc:
        print(f"downshift: {exc.args[0]}", file=sys.stderr)
        return 2
    finally:
        core.close()
    if args.json:
        print_json(data)
        return 0
    rows = [
        {
            **r,
            "served": ", ".join(r["served_by"][:2])
            + (f" +{len(r['served_by']) - 2}" if len(r["served_by"]) > 2 else ""),
            "actual": money(r["actual_cost_usd"]),
            "replay": money(r["replay_cost_usd"])
            + (f" ({r['replay_unpriced_calls']} unpriced)" if r["replay_unpriced_calls"] else ""),
        }
        for r in data["roles"]
    ]
    print(
        table(
            rows,
            [
                ("role", "ROLE"),
                ("calls", "CALLS"),
                ("served", "SERVED BY"),
                ("actual", "COST"),
                ("target", f"ON {args.preset.upper()}"),
                ("replay", "WOULD COST"),
            ],
        )
    )
    diff = data["difference_usd"]
    print(
        f"\n{data['calls']:,} calls since {args.since}: {money(data['actual_cost_usd'])} as served, "
        f"{money(data['replay_cost_usd'])} on preset {args.preset!r} ({'+' if diff >= 0 else '-'}{money(abs(diff))})"
    )
    if not data["complete"]:
        print(
            f"  {data['replay_unpriced_calls']} calls have no known price on {args.preset!r} and are not in its total"
        )
    if data["actual_unpriced_calls"]:
        print(
            f"  {data['actual_unpriced_calls']} served calls had no known price and are not in the served total"
        )
    print(f"  {data['caveat']}")
    return 0


def register(add: AddCommand) -> None:
    p = add(
        "executors",
        cmd_executors,
        "the executor scorecard: per model, tool-call failures by prompt size, cost per "
        "finished task, latency, and a verdict",
    )
    reads_only(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--since", default="30d", help="e.g. 24h, 7d, 2026-11-01 (default: 30d)")
    p.add_argument(
        "--min-tool-calls", type=int, default=50, help="no verdict on fewer tool calls (default: 50)"
    )
    p = add(
        "replay",
        cmd_replay,
        "what another preset would have cost on the calls already logged (no call is sent)",
    )
    reads_only(p)
    p.add_argument("--preset", required=True, help="the preset to price the logged calls on")
    p.add_argument("--since", default="7d", help="e.g. 24h, 7d, 2026-11-01 (default: 7d)")
    p.add_argument("--json", action="store_true")

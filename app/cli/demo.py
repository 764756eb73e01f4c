"""`downshift demo`: the app on a simulated provider and scripted agents (app.demo), with a window (the
desktop app, through app.cli.gui) or `--headless` with a summary printed here."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli import gui
from app.cli.args import AddCommand, positive_number
from app.cli.format import caveats, models_table, money, rate


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run

    return run(args, render=render_summary, window=None if args.headless else gui.demo_window)


def render_summary(data: dict[str, Any], seconds: float, speed: float) -> str:
    """The summary as a few lines and the per-model table of `downshift stats`."""
    t = data["total"]
    agent = data["agent"]
    personas = ", ".join(f"{name} {n}" for name, n in sorted(agent["by_persona"].items())) or "none"
    saved = data["premium_equivalent_usd"] - t["cost_usd"]
    share = (
        f" ({saved / data['premium_equivalent_usd']:.0%} less)" if data["premium_equivalent_usd"] > 0 else ""
    )
    failure_rate = rate(t["tool_failure_rate"])
    kinds = ", ".join(f"{k} {n}" for k, n in data["tool_failures_by_kind"].items()) or "none"
    apis = ", ".join(f"{k} {n}" for k, n in data["calls_by_client_api"].items())
    outcomes = ", ".join(f"{k} {n}" for k, n in data["tasks_by_outcome"].items()) or "none"
    lines = [
        f"Downshift demo: {seconds:g} s at speed {speed:g}, simulated provider, no key used",
        f"  agent tasks: {agent['tasks']} ({personas}); in the log: {outcomes}; preset switches: "
        f"{' -> '.join(['cheap', *agent['preset_switches']]) if agent['preset_switches'] else 'none'}",
        f"  calls logged: {t['calls']} ({apis}); {data['streamed_calls']} streamed; {t['errors']} failed; "
        f"{data['fallbacks']} served by a fallback",
        f"  cost: {money(t['cost_usd'], t['estimated_calls'])}{caveats(t['unpriced_calls'], t['estimated_calls'])}; "
        f"the premium preset would have cost {money(data['premium_equivalent_usd'])}{share}",
        f"  tool calls: {t['tool_calls']}, failed {t['tool_failures']} ({failure_rate}): {kinds}",
    ]
    lines.append(models_table(data["models"], rate_places=0))
    return "\n".join(lines)


def register(add: AddCommand) -> None:
    p = add(
        "demo",
        cmd_demo,
        "the app on a simulated provider and scripted agents, in a throw-away config and log",
    )
    p.add_argument("--headless", action="store_true", help="no window: run the traffic, then print a summary")
    p.add_argument(
        "--seconds",
        type=positive_number(86_400),
        help="stop after this long (default: 20 headless, until quit with a window)",
    )
    p.add_argument(
        "--speed", type=positive_number(1_000), default=1.0, help="run the simulation this many times faster"
    )
    p.add_argument("--keep", action="store_true", help="keep the demo's config and call log, and print where")
    p.add_argument("--json", action="store_true", help="with --headless: the summary as JSON")

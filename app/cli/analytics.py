"""The analytics commands: tasks, task, probe, rollup, breakeven, and the extra figures of `stats`.
JSON shapes are documented in README ("JSON output")."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from app.cli.args import LIMIT, AddCommand, add_member_option, positive_number, reads_only
from app.cli.context import open_core
from app.cli.format import caveats, millis, money, print_json, printable, rate, table, when

if TYPE_CHECKING:
    from sqlalchemy import Engine


def stats_extra(
    engine: Engine, since: float | None, config: Any = None, member: str | None = None
) -> dict[str, Any]:
    """Keys `stats --json` adds to the summary: tool-call reliability by kind, savings (net of local providers'
    hourly cost, with the cache assumption used), cost per finished task, and on a team ledger the per-member
    table (`members`: calls, spend, savings, tool-call failure rate, cost per finished task)."""
    from app.core import premium_split
    from app.core.queries.dashboard import hourly_rates, members, reliability, savings
    from app.core.queries.tasks import cost_per_task

    start = since or 0.0
    per_task = cost_per_task(engine, since=start, member=member)["by_outcome"]
    finished = per_task.get("finished")
    saved = savings(
        engine,
        since=start,
        by="model",
        hourly=hourly_rates(config) if config is not None else None,
        member=member,
    )
    if config is not None:
        split, calls = premium_split.measured(engine, config)
        saved["method"] = premium_split.describe(split, calls)
    team = [m for m in members(engine, since=start) if member is None or m["member"] == member]
    return {
        "members": team if any(m["member"] for m in team) else [],
        "tools": reliability(engine, since=start, member=member),
        "savings": saved,
        "cost_per_finished_task": finished["mean"] if finished else None,
        "cost_per_finished_task_unpriced_calls": finished["unpriced_calls"] if finished else 0,
        "cost_per_finished_task_estimated_calls": finished["estimated_calls"] if finished else 0,
        "tasks_by_outcome": per_task,
    }


def print_stats_extra(data: dict[str, Any]) -> None:
    tools = data["tools"]["total"]
    if tools["tool_calls"]:
        kinds = ", ".join(f"{k} {v}" for k, v in tools["by_kind"].items() if v) or "none"
        print(
            f"tool calls: {tools['tool_calls']} emitted, {tools['failed']} failed ({tools['failure_rate']:.1%}"
            f" incl. failed results) - {kinds}"
        )
    s = data["savings"]["total"]
    print(
        f"savings against premium: {money(s['savings_usd'])} (premium equivalent {money(s['premium_usd'])})"
    )
    if s.get("hourly_cost_usd"):
        hours = ", ".join(
            f"{name} {v['hours']} h x ${v['hourly_cost']:.2f}"
            for name, v in data["savings"]["hourly"].items()
        )
        print(
            f"  less local providers' hourly cost {money(s['hourly_cost_usd'])} ({hours}):"
            f" net {money(s['net_savings_usd'])}"
        )
    if data["savings"].get("method"):
        print(f"  {data['savings']['method']}")
    unpriced, estimated = (
        data["cost_per_finished_task_unpriced_calls"],
        data["cost_per_finished_task_estimated_calls"],
    )
    print(
        f"cost per finished task: {money(data['cost_per_finished_task'], estimated)}{caveats(unpriced, estimated)}"
    )
    if data.get("members"):
        rows = [
            {
                **m,
                "member": m["member"] or "(none)",
                "cost": money(m["cost_usd"]),
                "saved": money(m["savings_usd"]),
                "rate": rate(m["tool_failure_rate"]),
                "per_task": money(m["cost_per_finished_task"]),
            }
            for m in data["members"]
        ]
        print(
            table(
                rows,
                [
                    ("member", "MEMBER"),
                    ("calls", "CALLS"),
                    ("errors", "FAILED"),
                    ("cost", "SPEND"),
                    ("saved", "SAVED"),
                    ("rate", "TOOL FAIL %"),
                    ("per_task", "PER FINISHED TASK"),
                ],
            )
        )


# ----------------------------------------------------------------------------------------------- tasks


def cmd_tasks(args: argparse.Namespace) -> int:
    from app.core.queries import parse_since
    from app.core.queries.tasks import list_tasks

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 2
    core = open_core(args)
    core.writer.flush()
    rows = list_tasks(core.db, since=since, limit=args.limit, member=args.member)
    core.close()
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        r["when"] = when(r["started_at"])
        r["cost"] = money(r["cost_usd"], r["estimated_calls"]) + caveats(
            r["unpriced_calls"], r["estimated_calls"]
        )
        r["dur"] = f"{r['duration_s'] / 60:.1f}m"
        r["fails"] = f"{r['tool_failures']}/{r['tool_calls']}"
        r["name"] = r["label"] or r["key"][:24]
        more = len(r["models"]) - 2
        r["models_"] = ", ".join(r["models"][:2]) + (f" +{more}" if more > 0 else "")
    print(
        table(
            rows,
            [
                ("id", "ID"),
                ("when", "STARTED"),
                ("source", "BY"),
                ("name", "TASK"),
                ("outcome", "OUTCOME"),
                ("calls", "CALLS"),
                ("cost", "COST"),
                ("fails", "TOOL FAIL"),
                ("dur", "TIME"),
                ("models_", "MODELS"),
            ],
        )
    )
    return 0


def cmd_task(args: argparse.Namespace) -> int:
    from app.core.analytics.tasks import new_manual_task
    from app.core.queries.tasks import set_outcome

    core = open_core(args)
    try:
        if args.action == "new":
            label = " ".join(args.arg) or None
            task_id = new_manual_task(core.db, label)
            print(
                f"task {task_id} started{f' ({printable(label)})' if label else ''}: calls without a task header or session"
                f" id join it until you mark it done or it is idle for {core.config.task_idle_minutes:g} minutes"
            )
            return 0
        if len(args.arg) != 1 or not args.arg[0].isascii() or not args.arg[0].isdigit():
            print(f"downshift: usage: downshift task {args.action} ID", file=sys.stderr)
            return 2
        task_id = int(args.arg[0])
        if task_id > MAX_ID:  # SQLite's largest integer: no such task, rather than an overflow
            raise KeyError(f"no task with id {task_id}")
        outcome = {"done": "finished", "abandon": "abandoned", "reopen": None}[args.action]
        set_outcome(core.db, task_id, outcome)
        print(f"task {args.arg[0]}: {outcome or 'open'}")
        return 0
    except KeyError as exc:
        print(f"downshift: {exc.args[0]}", file=sys.stderr)
        return 2
    finally:
        core.close()


# ----------------------------------------------------------------------------------------------- probe


def cmd_probe(args: argparse.Namespace) -> int:
    from app.core.analytics.probe import run_probes, store
    from app.core.config import Target
    from app.core.queries.probes import probe_results

    try:
        target = Target.parse(args.target)
    except ValueError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 2
    core = open_core(args)
    try:
        if target.provider not in core.config.providers:
            print(f"downshift: no provider named {target.provider!r}", file=sys.stderr)
            return 2
        outcomes = run_probes(core.config, target, core.provider_key(target.provider), timeout=args.timeout)
        store(core.db, target, outcomes)
        result = probe_results(core.db, str(target))
    finally:
        core.close()
    assert result is not None
    if args.json:
        print_json(result)
    else:
        rows = [
            {
                **r,
                "ok": "pass" if r["passed"] else "FAIL",
                "ms": millis(r["latency_ms"]),
                "cost": money(r["cost_usd"]),
                "tools": f"{r['tool_calls'] - r['tool_failures']}/{r['tool_calls']}",
            }
            for r in result["results"]
        ]
        print(
            table(
                rows,
                [
                    ("probe", "PROBE"),
                    ("ok", "RESULT"),
                    ("tools", "VALID CALLS"),
                    ("ms", "MS"),
                    ("cost", "COST"),
                    ("detail", "WHY"),
                ],
            )
        )
        print(
            f"{target}: {result['passed']}/{result['probes']} probes passed, tool-call validity {rate(result['validity'], 0)},"
            f" cost {money(result['cost_usd'])}"
        )
    return 0 if result["passed"] == result["probes"] else 1


# ----------------------------------------------------------------------------------------------- retention, break-even


def cmd_rollup(args: argparse.Namespace) -> int:
    """Prune call detail older than N days. More than a day's worth of calls goes only with --yes or a typed
    'yes': a slip (`--days 0.01` for `--days 100`) must not cost the log its detail."""
    from app.core.analytics.retention import cutoff_for, prune

    core = open_core(args)
    try:
        days = args.days if args.days is not None else core.config.retention_days
        if not days > 0:
            print(
                "downshift: retention is off (logging.retention_days = 0): pass --days N to prune call detail "
                "older than N days",
                file=sys.stderr,
            )
            return 2
        core.writer.flush()
        cutoff = cutoff_for(time.time(), days)
        count, first, last = _prunable(core.db, cutoff)
        if count and last - first > DAY and not args.yes and not _confirmed(count, first, last):
            return 2
        result = prune(core.db, days)
    finally:
        core.close()
    if args.json:
        print_json(result)
    else:
        print(
            f"{result['calls_pruned']} calls older than {when(result['cutoff'])} pruned; their totals stay in the charts"
        )
    return 0


DAY = 86_400
MAX_ID = 2**63 - 1


def _prunable(engine: Engine, cutoff: float) -> tuple[int, float, float]:
    """How many calls a prune at `cutoff` removes, and the first and last start time among them."""
    from sqlalchemy import text

    with engine.connect() as conn:
        count, first, last = conn.execute(
            text("SELECT count(*), min(started_at), max(started_at) FROM calls WHERE started_at < :c"),
            {"c": cutoff},
        ).one()
    return int(count or 0), float(first or 0), float(last or 0)


def _confirmed(count: int, first: float, last: float) -> bool:
    what = (
        f"the detail of {count} calls from {when(first)} to {when(last)} ({(last - first) / DAY:.1f} days;"
        " their totals stay in the charts)"
    )
    if not sys.stdin or not sys.stdin.isatty():
        print(f"downshift: this would prune {what}; run it again with --yes to confirm", file=sys.stderr)
        return False
    answer = input(f"Prune {what}? Type yes to go on: ").strip().lower()
    if answer != "yes":
        print("downshift: nothing pruned", file=sys.stderr)
        return False
    return True


def cmd_breakeven(args: argparse.Namespace) -> int:
    from app.core.analytics.breakeven import break_even
    from app.core.config import Target
    from app.core.queries import parse_since

    core = open_core(args)
    try:
        config = core.config
        names = (
            [args.provider] if args.provider else [p.name for p in config.providers.values() if p.hourly_cost]
        )
        if not names:
            print("downshift: no provider has an hourly_cost in the config", file=sys.stderr)
            return 2
        against = Target.parse(args.against) if args.against else None
        since = parse_since(args.since)
        results = [break_even(core.db, config, n, against=against, since=since) for n in names]
    except (KeyError, ValueError) as exc:
        print(f"downshift: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    finally:
        core.close()
    if args.json:
        print_json(results)
        return 0
    for r in results:
        be = r["break_even_tokens_per_hour"]
        print(
            f"{r['provider']} at ${r['hourly_cost']:.2f}/h vs {r['against']} (${r['usd_per_million_tokens']:.2f}/M tokens):"
            f" break-even {be:,.0f} tokens/hour"
            if be
            else f"{r['provider']}: the API target costs nothing per token"
        )
        print(
            f"  served {r['observed_tokens_per_hour']:,.0f} tokens/hour since {when(r['since'])}: self-hosted"
            f" {money(r['self_hosted_usd'])} vs API {money(r['api_equivalent_usd'])} -> {r['cheaper']} is cheaper"
        )
    return 0


def register(add: AddCommand) -> None:
    p = add(
        "tasks", cmd_tasks, "tasks (units of agent work) with their calls, cost, tool failures and outcome"
    )
    reads_only(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--since", help="e.g. 24h, 7d (default: all time)")
    p.add_argument("--limit", type=LIMIT, default=50)
    add_member_option(p, "tasks")
    p = add("task", cmd_task, "start a task by hand, or mark one done / abandoned")
    p.add_argument("action", choices=("new", "done", "abandon", "reopen"))
    p.add_argument("arg", nargs="*", help="new: an optional label; done/abandon/reopen: the task id")
    p = add("probe", cmd_probe, "run the tool-use probes against PROVIDER/MODEL (direct to the provider)")
    p.add_argument("target", metavar="PROVIDER/MODEL")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--timeout",
        type=positive_number(600),
        help="seconds per request (default: the provider's first_byte timeout)",
    )
    p = add("rollup", cmd_rollup, "apply retention now: prune call detail older than logging.retention_days")
    p.add_argument(
        "--days", type=positive_number(36_500), help="override retention_days for this run (above 0)"
    )
    p.add_argument(
        "--yes", action="store_true", help="prune without asking, even more than a day's worth of calls"
    )
    p.add_argument("--json", action="store_true")
    p = add("breakeven", cmd_breakeven, "self-hosting break-even for providers with an hourly_cost")
    reads_only(p)
    p.add_argument("provider", nargs="?")
    p.add_argument(
        "--against", metavar="PROVIDER/MODEL", help="API target to compare with (default: the premium preset)"
    )
    p.add_argument("--since", default="30d")
    p.add_argument("--json", action="store_true")

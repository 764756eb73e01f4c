"""The `downshift` command line. With no command it starts the desktop app; `serve` runs headless.

Human output is aligned tables; `--json` output is stable and documented in README ("JSON output").
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import getpass
import json
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NoReturn

from app import __version__
from app import cli_analytics as analytics_cli
from app import cli_executors as executors_cli
from app.cli_analytics import _core, _print_json  # one of each for every command

Handler = Callable[[argparse.Namespace], int]


# ----------------------------------------------------------------------------------------------- helpers


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Rows as an aligned text table; columns are (key, heading)."""
    cells = [[heading for _, heading in columns]]
    for row in rows:
        cells.append([_cell(row.get(key)) for key, _ in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.0f}"
    return printable(str(value))


# C0 and C1 controls (escape sequences that recolour, move the cursor or retitle the terminal; newlines and
# tabs that break the table) and the bidirectional overrides that reorder what is shown
_UNPRINTABLE = {
    c: "?" for c in (*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}


def printable(text: str) -> str:
    """`text` fit for a terminal: client-chosen strings (model names, labels, user agents) can hold escape
    sequences; each control character becomes '?'."""
    return text.translate(_UNPRINTABLE)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (model names and user agents are the client's
    choice) gets a leading apostrophe, which spreadsheets show as text; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from app import paths
    from app.core.config import ConfigStore, default_config, save_config

    path = paths.config_path(args.config)
    if not path.exists():
        save_config(default_config(), path)
    return ConfigStore(path)


def _secrets():  # type: ignore[no-untyped-def]
    from app import paths
    from app.core.secrets import SecretStore

    return SecretStore(paths.data_dir() / "secrets.json")


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


# ----------------------------------------------------------------------------------------------- commands


def cmd_gui(args: argparse.Namespace) -> int:
    from app.ui.launch import run_gui

    return run_gui(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from app.core.storage.dialect import display_url
    from app.proxy.server import ProxyThread

    core = _core(args)
    core.events.subscribe(
        "config_error", lambda exc: print(f"downshift: config not applied: {exc}", file=sys.stderr)
    )
    proxy = ProxyThread(core, host=args.host, port=args.port)
    try:
        proxy.start()
    except OSError as exc:
        print(
            f"downshift: cannot listen on {args.host or core.config.host}:{args.port or core.config.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        core.close()
        return 1
    if not core.secrets.uses_keyring:
        print(
            f"downshift: no OS keyring found; secrets are kept in a {core.secrets.describe()}",
            file=sys.stderr,
        )
    if proxy.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"downshift: WARNING: listening on {proxy.host}, reachable from other machines", file=sys.stderr
        )
    gc.freeze()  # start-up objects live forever: keep them out of every later collection's scan
    print(
        f"Downshift {__version__} proxy on {proxy.url} (preset: {core.config.active or 'none'})", flush=True
    )
    print(f"  config: {core.config_path}\n  log:    {display_url(core.db_url)}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    print("stopping...", flush=True)
    proxy.stop()
    core.close()
    return 0


def _kept(written: Any) -> str:
    """What the CLI says about a settings file it replaced (app.core.agent_config.Written)."""
    return f" (the old file is kept as {written.backup})" if written.backup else ""


def cmd_env(args: argparse.Namespace) -> int:
    from app.core.envexport import export_text
    from app.core.secrets import local_token

    base = _proxy_base(_store(args))  # where the proxy really is, else where the config says
    if args.debug:
        from app.core.envexport import DEBUG_PREFIX

        base += (
            DEBUG_PREFIX  # the same endpoints, whose answers name the preset, role and model (X-Downshift-*)
        )
    token = local_token(_secrets())
    if args.write:
        from app.core.agent_config import write_agent_config
        from app.core.envexport import FILE_AGENTS

        if args.agent not in FILE_AGENTS:
            print(
                f"downshift: --write is for agents configured by a file ({', '.join(FILE_AGENTS)}); "
                f'{args.agent} takes variables: eval "$(downshift env --agent {args.agent})"',
                file=sys.stderr,
            )
            return 2
        try:
            written = write_agent_config(args.agent, base, token)
        except (OSError, ValueError) as exc:
            print(f"downshift: {exc}", file=sys.stderr)
            return 1
        kept = _kept(written)
        print(f"{args.agent}: wrote {written.path}{kept}", file=sys.stderr)
    sys.stdout.write(export_text(args.agent, args.format, base, token))
    return 0


def _proxy_base(store) -> str:  # type: ignore[no-untyped-def]
    """The proxy's root URL: where it listens now, else where the config says it will."""
    from app.core import runtime
    from app.core.envexport import proxy_base_url

    config = store.current()
    host, port = runtime.listening(store.path) or (config.host, config.port)
    return proxy_base_url(host, port)


def cmd_connect(args: argparse.Namespace) -> int:
    from app.core.connect import ConnectError, connect

    try:
        done = connect(args.agent, _proxy_base(_store(args)), args.shell)
    except ConnectError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 1
    backup = f" (the previous file is kept as {done.backup})" if done.backup else ""
    print(
        f"connected {args.agent}: wrote Downshift's settings into {done.path}{backup}, no token in it.\n"
        f"The agent reads the token from ${done.token_var}; add this line to your shell's rc file so every new "
        f"shell has it (and follows a token rotation or a port change):\n\n    {done.rc_line}\n\n"
        f"Undo with: downshift disconnect {args.agent}"
    )
    return 0


def cmd_disconnect(args: argparse.Namespace) -> int:
    from app.core.connect import ConnectError, disconnect

    try:
        path = disconnect(args.agent)
    except ConnectError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 1
    print(
        f"disconnected {args.agent}: {path} has its previous settings back. Remove the "
        f"`downshift env --agent {args.agent}` line from your shell's rc file too."
    )
    return 0


def cmd_use(args: argparse.Namespace) -> int:
    from app.core.config import ConfigError

    store = _store(args)
    try:
        store.update(lambda c: c.with_active(args.preset))
    except ConfigError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 2
    print(f"active preset: {args.preset} (applies to the next request)")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    config = _store(args).current()
    rows = [
        {
            "name": p.name,
            "active": p.name == config.active,
            "roles": {r: str(t) for r, t in p.roles.items()},
            "patterns": dict(p.patterns),
            "fallback": [str(t) for t in p.fallback],
            "description": p.description,
            "long_context": None if p.long_context is None else vars(p.long_context),
            "shadow": None if p.shadow is None else {**vars(p.shadow), "target": str(p.shadow.target)},
        }
        for p in config.presets.values()
    ]
    if args.json:
        _print_json(rows)
        return 0
    flat = [
        {
            **r,
            "active": "*" if r["active"] else "",
            "default": r["roles"].get("default"),
            "plan": r["roles"].get("plan"),
            "background": r["roles"].get("background"),
            "fallback": ", ".join(r["fallback"]) or None,
        }
        for r in rows
    ]
    print(
        table(
            flat,
            [
                ("active", ""),
                ("name", "PRESET"),
                ("default", "DEFAULT"),
                ("plan", "PLAN"),
                ("background", "BACKGROUND"),
                ("fallback", "FALLBACK"),
            ],
        )
    )
    from app.core.shadow_info import describe as describe_shadow

    for p in config.presets.values():  # a shadow run sends code to one more provider: say so
        notice = describe_shadow(p)
        if notice:
            print(f"{p.name}: {notice}")
    return 0


def cmd_providers(args: argparse.Namespace) -> int:
    from app.core.secrets import provider_key

    config = _store(args).current()
    secrets = _secrets()
    rows = []
    for p in config.providers.values():
        has_key = provider_key(secrets, p.name, p.api_key_env) is not None
        rows.append(
            {
                "name": p.name,
                "api": p.api,
                "base_url": p.base_url,
                "kind": p.kind,
                "local": p.local,
                "key": "set" if has_key else ("not needed" if p.local else "missing"),
                "key_source": f"${p.api_key_env}" if p.api_key_env else "keyring",
            }
        )
    if args.json:
        _print_json(rows)
    else:
        print(
            table(
                rows,
                [
                    ("name", "PROVIDER"),
                    ("api", "API"),
                    ("base_url", "BASE URL"),
                    ("key", "KEY"),
                    ("key_source", "FROM"),
                ],
            )
        )
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    from app.core.secrets import SecretStoreError, provider_key_name

    config = _store(args).current()
    if args.provider not in config.providers:
        print(
            f"downshift: no provider named {args.provider!r} (have: {', '.join(config.providers)})",
            file=sys.stderr,
        )
        return 2
    secrets = _secrets()
    try:
        if args.action == "delete":
            secrets.delete(provider_key_name(args.provider))
            print(f"key for {args.provider} deleted")
            return 0
        value = (
            sys.stdin.readline().strip()
            if not sys.stdin.isatty()
            else getpass.getpass(f"API key for {args.provider}: ")
        )
        if not value:
            print("downshift: no key given", file=sys.stderr)
            return 2
        secrets.set(provider_key_name(args.provider), value)
    except SecretStoreError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 1
    print(f"key for {args.provider} stored in the {secrets.describe()}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from app.core.secrets import local_token, rotate_token

    secrets = _secrets()
    if args.action == "rotate":
        rotate_token(secrets)
        print(
            "token rotated: re-export your agent's environment (`downshift env`); the running proxy picks it up"
        )
        return 0
    print(local_token(secrets))
    return 0


def cmd_calls(args: argparse.Namespace) -> int:
    from app.core.queries import recent_calls

    core = _core(args)
    rows = recent_calls(core.db, args.limit, failures_only=args.failures, member=args.member)
    core.close()
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        guess = (
            "~" if r["usage_estimated"] else ""
        )  # the provider reported no usage: tokens and cost are estimates
        r["when"] = _when(r["started_at"])
        prompt = (
            r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_tokens"] + r["cache_write_1h_tokens"]
        )
        r["tokens"] = f"{guess}{prompt}/{r['output_tokens']}"
        cache = (r["cache_read_tokens"], r["cache_write_tokens"], r["cache_write_1h_tokens"])
        r["cache"] = "/".join(str(n) for n in cache) if any(cache) else None
        r["cost"] = (
            ("unpriced" if r["unpriced"] else None)
            if r["cost_usd"] is None
            else f"{guess}${r['cost_usd']:.5f}"
        )
        r["ms"] = None if r["duration_ms"] is None else f"{r['duration_ms']:.0f}"
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
    core = _core(args)
    data = summary(core.db, since=since, member=args.member)
    data.update(analytics_cli.stats_extra(core.db, since, core.config, member=args.member))
    core.close()
    if args.json:
        _print_json(data)
        return 0
    t = data["total"]
    rate = "-" if t["tool_failure_rate"] is None else f"{t['tool_failure_rate']:.1%}"
    print(
        f"since {_when(since) if since else 'the beginning'}: {t['calls']} calls, {t['errors']} failed, "
        f"{'~' if t['estimated_calls'] else ''}${t['cost_usd']:.4f}, tool-call failure rate {rate}"
    )
    if t["unpriced_calls"]:
        print(
            f"  {t['unpriced_calls']} calls have no known price and are not in the total (`downshift prices show PROVIDER/MODEL` says why)"
        )
    if t["estimated_calls"]:
        print(
            f"  ~ {t['estimated_calls']} calls' tokens are estimated (the provider reported no usage): "
            "their cost is an estimate"
        )
    rows = [
        {
            **m,
            "rate": None if m["tool_failure_rate"] is None else f"{m['tool_failure_rate']:.1%}",
            "cost": f"{'~' if m['estimated_calls'] else ''}${m['cost_usd']:.4f}",
        }
        for m in data["models"]
    ]
    print(
        table(
            rows,
            [
                ("provider", "PROVIDER"),
                ("model", "MODEL"),
                ("calls", "CALLS"),
                ("errors", "FAILED"),
                ("input_tokens", "IN TOK"),
                ("output_tokens", "OUT TOK"),
                ("cost", "COST"),
                ("tool_calls", "TOOL CALLS"),
                ("rate", "TOOL FAIL %"),
            ],
        )
    )
    analytics_cli.print_stats_extra(data)
    return 0


def _add_member_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--member", metavar="NAME", help="team mode: only this member's calls")


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
    core = _core(args)
    count = 0
    try:
        core.writer.flush()
        rows: Iterable[dict[str, Any]] = iter_calls(core.db, since=since, member=args.member)
        if args.format == "csv":
            writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            for count, row in enumerate(rows, 1):  # noqa: B007 - count is reported below
                writer.writerow({k: _csv_safe(v) for k, v in row.items()})
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
        _print_json({"updated": table_.updated, "table": where, "unit": "USD per 1M tokens", "models": rows})
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
    config = _store(args).current()
    provider = config.providers.get(target.provider)
    if provider is None:
        known = ", ".join(config.providers) or "none configured"
        print(f"downshift: no provider named {target.provider!r} (known: {known})", file=sys.stderr)
        return 2
    resolved = resolve_price(config, provider, target.model)
    billed_first = resolved.source not in ("override", "local")
    if args.json:
        _print_json(
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


def _remove_partial(name: str) -> None:
    """Remove a half-written export, if it is a regular file (never /dev/full or a pipe)."""
    import os
    import stat

    with contextlib.suppress(OSError):
        if stat.S_ISREG(os.stat(name).st_mode):
            os.unlink(name)


def cmd_prices_refresh(args: argparse.Namespace) -> int:
    from app import paths
    from app.core import price_table
    from app.core.secrets import provider_key

    config = _store(args).current()
    provider = config.providers.get(args.provider)
    if provider is None:
        print(f"downshift: no provider named {args.provider!r}", file=sys.stderr)
        return 2
    key = provider_key(_secrets(), provider.name, provider.api_key_env)
    target = paths.data_dir() / "prices.json"
    try:
        _table, changes = price_table.refresh(provider.base_url, key, out_path=target)
    except Exception as exc:  # network and format problems, reported in one line
        print(f"downshift: price refresh from {provider.base_url} failed: {exc}", file=sys.stderr)
        return 1
    print(f"{len(changes)} prices updated from {provider.base_url}/models -> {target}")
    return 0


def cmd_statusline(args: argparse.Namespace) -> int:
    if args.action is None:
        from app.statusline import main as show

        return show()
    from app import statusline_install

    try:
        if args.action == "install":
            written = statusline_install.install()
            kept = _kept(written)
            print(f"Claude Code status line installed in {written.path}{kept}")
        else:
            done = statusline_install.uninstall()
            if done is None:
                print(f"no Downshift status line in {statusline_install.settings_path()}: nothing to do")
            else:
                kept = _kept(done)
                print(f"Claude Code status line removed from {done.path}{kept}")
    except (OSError, ValueError) as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_codex_notify(args: argparse.Namespace) -> int:
    from app.codex_notify import main as notify

    return notify(args.payload)


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run

    return run(args)


def cmd_doctor(args: argparse.Namespace) -> int:
    from app.doctor import run

    return run(args)


# ----------------------------------------------------------------------------------------------- parser


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: a mistyped value gets one clear line and exit code 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: use {low} to {high:,}")
        return value

    parse.__name__ = "whole number"
    return parse


def positive_number(high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and 0 < value <= high):
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: use a number above 0, at most {high:g}"
            )
        return value

    parse.__name__ = "number"
    return parse


LIMIT = whole_number(1, 1_000_000)


def build_parser() -> argparse.ArgumentParser:
    from app.core.envexport import AGENTS, FORMATS

    def options(default: object) -> argparse.ArgumentParser:
        # Sub-commands repeat the options with SUPPRESS so `downshift --db X stats` keeps X.
        p = argparse.ArgumentParser(add_help=False)
        p.add_argument(
            "--config",
            metavar="FILE",
            default=default,
            help="config file (default: $DOWNSHIFT_CONFIG or the user config dir)",
        )
        p.add_argument(
            "--db",
            metavar="URL",
            default=default,
            help="database URL (default: $DOWNSHIFT_DB_URL or the user data dir)",
        )
        return p

    common = options(argparse.SUPPRESS)
    parser = Parser(
        prog="downshift",
        description="Route your coding agent's loop to a cheaper model.",
        parents=[options(None)],
    )
    parser.add_argument("--version", action="version", version=f"downshift {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="the desktop app: open the log read-only, no proxy (a PostgreSQL team ledger always opens so)",
    )
    parser.set_defaults(handler=cmd_gui)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, parents=[common], description=help_)
        p.set_defaults(handler=handler)
        return p

    p = add("serve", cmd_serve, "run the proxy headless (no window)")
    p.add_argument("--host", help="address to listen on (default from config: 127.0.0.1)")
    p.add_argument(
        "--port", type=whole_number(0, 65535), help="port (default from config: 8765; 0 picks a free one)"
    )
    p = add("env", cmd_env, 'print the variables that point an agent at the proxy: eval "$(downshift env)"')
    p.add_argument("--format", choices=FORMATS, default="bash")
    p.add_argument("--agent", choices=AGENTS, default="generic")
    p.add_argument(
        "--debug",
        action="store_true",
        help="point the agent at the proxy's /debug endpoints: answers carry X-Downshift-Preset/Role/Model",
    )
    p.add_argument(
        "--write",
        action="store_true",
        help="qwen-code, cline, continue: write (merge into) the agent's settings file, backing up the old one",
    )
    from app.core.connect import CONNECTABLE

    p = add(
        "connect",
        cmd_connect,
        "write Downshift into an agent's own settings file (merged, backed up, no token)",
    )
    p.add_argument("agent", choices=list(CONNECTABLE))
    p.add_argument(
        "--shell",
        choices=("bash", "fish", "powershell"),
        default="bash",
        help="the shell whose rc line to print",
    )
    p = add("disconnect", cmd_disconnect, "undo `downshift connect`: the agent's settings as they were")
    p.add_argument("agent", choices=list(CONNECTABLE))
    p = add("use", cmd_use, "switch the active routing preset (applies to the next request)")
    p.add_argument("preset")
    p = add("presets", cmd_presets, "list routing presets")
    p.add_argument("--json", action="store_true")
    p = add("providers", cmd_providers, "list provider accounts and whether their key is set")
    p.add_argument("--json", action="store_true")
    p = add(
        "key", cmd_key, "store or delete a provider's API key in the OS keyring (read from stdin or a prompt)"
    )
    p.add_argument("action", choices=("set", "delete"))
    p.add_argument("provider")
    p = add("token", cmd_token, "show or rotate the local token agents use to reach the proxy")
    p.add_argument("action", choices=("show", "rotate"), nargs="?", default="show")
    p = add("calls", cmd_calls, "recent calls from the log")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=LIMIT, default=20)
    p.add_argument(
        "--failures", action="store_true", help="only failed calls and calls with tool-call failures"
    )
    _add_member_option(p)
    p = add(
        "stats",
        cmd_stats,
        "spend, tokens and tool-call failure rate, per model (and per member on a team ledger)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--since", help="e.g. 1h, 24h, 7d, 2026-11-01 (default: all time)")
    _add_member_option(p)
    p = add("export", cmd_export, "export the call log")
    p.add_argument("what", choices=("calls",))
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--out", metavar="FILE")
    p.add_argument("--since")
    _add_member_option(p)
    p = add(
        "prices",
        cmd_prices,
        "the price table: list it, show which price a model is charged at, or refresh it "
        "from a provider that publishes prices (OpenRouter)",
    )
    p.add_argument("action", nargs="?", choices=("list", "show", "refresh"), default="list")
    p.add_argument(
        "target", nargs="?", help="show: PROVIDER/MODEL; list: only models whose name contains this"
    )
    p.add_argument("--provider", default="openrouter", help="refresh: the provider whose model list to read")
    p.add_argument("--json", action="store_true")
    p = add(
        "statusline",
        cmd_statusline,
        "one status line for Claude Code (reads its status JSON on stdin); "
        "`install` / `uninstall` set it in Claude Code's settings.json",
    )
    p.add_argument("action", choices=("install", "uninstall"), nargs="?")
    p = add(
        "codex-notify",
        cmd_codex_notify,
        "Codex's notify program: this session's figures as a desktop "
        'notification and in codex-status.txt (notify = ["downshift", "codex-notify"] in config.toml)',
    )
    p.add_argument("payload", nargs="*", help="the JSON Codex passes after a finished turn")
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
    p = add(
        "doctor", cmd_doctor, "check config, keyring, database, port, providers and Qt, and say what to fix"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--timeout",
        type=positive_number(600),
        default=5.0,
        help="seconds to wait for each provider (default: 5)",
    )
    p.add_argument("--offline", action="store_true", help="do not contact the providers")
    p.add_argument("--no-qt", action="store_true", help="do not probe Qt (it starts a child process)")
    analytics_cli.register(add)
    executors_cli.register(add)
    from app import cli_team

    cli_team.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad value (already said in one line)
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from app.core.config import ConfigError
    from app.core.secrets import SecretStoreError
    from app.core.storage.db import DatabaseOpenError

    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except (
        ConfigError,
        DatabaseOpenError,
        SecretStoreError,
    ) as exc:  # the user's to fix: one line, no traceback
        print(f"downshift: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the command needs: which, and why
        where = f" {exc.filename}" if exc.filename else ""
        print(f"downshift:{where} {exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line (the traceback with --verbose)
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(
            f"downshift: unexpected error: {type(exc).__name__}: {exc} (run with -v for the details)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The `downshift` command line. With no command it starts the desktop app; `serve` runs headless.

Human output is aligned tables; `--json` output is stable and documented in README ("JSON output").
"""

from __future__ import annotations

import argparse
import csv
import gc
import getpass
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from app import __version__
from app import cli_analytics as analytics_cli
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
    return str(value)


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
    from app.proxy.server import ProxyThread

    core = _core(args)
    core.events.subscribe("config_error", lambda exc: print(f"downshift: config not applied: {exc}", file=sys.stderr))
    proxy = ProxyThread(core, host=args.host, port=args.port)
    try:
        proxy.start()
    except OSError as exc:
        print(f"downshift: cannot listen on {args.host or core.config.host}:{args.port or core.config.port}: {exc.strerror or exc}",
              file=sys.stderr)
        core.close()
        return 1
    if not core.secrets.uses_keyring:
        print(f"downshift: no OS keyring found; secrets are kept in a {core.secrets.describe()}", file=sys.stderr)
    if proxy.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"downshift: WARNING: listening on {proxy.host}, reachable from other machines", file=sys.stderr)
    gc.freeze()  # start-up objects live forever: keep them out of every later collection's scan
    print(f"Downshift {__version__} proxy on {proxy.url} (preset: {core.config.active or 'none'})", flush=True)
    print(f"  config: {core.config_path}\n  log:    {core.db_url}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    print("stopping...", flush=True)
    proxy.stop()
    core.close()
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    from app.core.envexport import export_text
    from app.core.secrets import local_token

    base = _proxy_base(_store(args))  # where the proxy really is, else where the config says
    sys.stdout.write(export_text(args.agent, args.format, base, local_token(_secrets())))
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
    print(f"connected {args.agent}: wrote Downshift's settings into {done.path}{backup}, no token in it.\n"
          f"The agent reads the token from ${done.token_var}; add this line to your shell's rc file so every new "
          f"shell has it (and follows a token rotation or a port change):\n\n    {done.rc_line}\n\n"
          f"Undo with: downshift disconnect {args.agent}")
    return 0


def cmd_disconnect(args: argparse.Namespace) -> int:
    from app.core.connect import ConnectError, disconnect

    try:
        path = disconnect(args.agent)
    except ConnectError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 1
    print(f"disconnected {args.agent}: {path} has its previous settings back. Remove the "
          f"`downshift env --agent {args.agent}` line from your shell's rc file too.")
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
        }
        for p in config.presets.values()
    ]
    if args.json:
        _print_json(rows)
        return 0
    flat = [
        {**r, "active": "*" if r["active"] else "", "default": r["roles"].get("default"), "plan": r["roles"].get("plan"),
         "background": r["roles"].get("background"), "fallback": ", ".join(r["fallback"]) or None}
        for r in rows
    ]
    print(table(flat, [("active", ""), ("name", "PRESET"), ("default", "DEFAULT"), ("plan", "PLAN"),
                       ("background", "BACKGROUND"), ("fallback", "FALLBACK")]))
    return 0


def cmd_providers(args: argparse.Namespace) -> int:
    from app.core.secrets import provider_key

    config = _store(args).current()
    secrets = _secrets()
    rows = []
    for p in config.providers.values():
        has_key = provider_key(secrets, p.name, p.api_key_env) is not None
        rows.append({"name": p.name, "api": p.api, "base_url": p.base_url, "kind": p.kind, "local": p.local,
                     "key": "set" if has_key else ("not needed" if p.local else "missing"),
                     "key_source": f"${p.api_key_env}" if p.api_key_env else "keyring"})
    if args.json:
        _print_json(rows)
    else:
        print(table(rows, [("name", "PROVIDER"), ("api", "API"), ("base_url", "BASE URL"), ("key", "KEY"), ("key_source", "FROM")]))
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    from app.core.secrets import SecretStoreError, provider_key_name

    config = _store(args).current()
    if args.provider not in config.providers:
        print(f"downshift: no provider named {args.provider!r} (have: {', '.join(config.providers)})", file=sys.stderr)
        return 2
    secrets = _secrets()
    try:
        if args.action == "delete":
            secrets.delete(provider_key_name(args.provider))
            print(f"key for {args.provider} deleted")
            return 0
        value = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass(f"API key for {args.provider}: ")
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
        print("token rotated: re-export your agent's environment (`downshift env`); the running proxy picks it up")
        return 0
    print(local_token(secrets))
    return 0


def cmd_calls(args: argparse.Namespace) -> int:
    from app.core.queries import recent_calls

    core = _core(args)
    rows = recent_calls(core.db, args.limit, failures_only=args.failures)
    core.close()
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        r["when"] = _when(r["started_at"])
        r["tokens"] = f"{r['input_tokens'] + r['cache_read_tokens'] + r['cache_write_tokens']}/{r['output_tokens']}"
        r["cost"] = None if r["cost_usd"] is None else f"${r['cost_usd']:.5f}"
        r["ms"] = None if r["duration_ms"] is None else f"{r['duration_ms']:.0f}"
        r["target"] = f"{r['provider']}/{r['upstream_model']}" if r["provider"] else None
    print(table(rows, [("when", "WHEN"), ("client_api", "API"), ("requested_model", "ASKED"), ("target", "SERVED BY"),
                       ("outcome", "OUTCOME"), ("status", "HTTP"), ("tokens", "IN/OUT"), ("cost", "COST"), ("ms", "MS"),
                       ("tool_failures", "TOOL FAIL")]))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from app.core.queries import parse_since, summary

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 2
    core = _core(args)
    data = summary(core.db, since=since)
    data.update(analytics_cli.stats_extra(core.db, since))
    core.close()
    if args.json:
        _print_json(data)
        return 0
    t = data["total"]
    rate = "-" if t["tool_failure_rate"] is None else f"{t['tool_failure_rate']:.1%}"
    print(f"since {_when(since) if since else 'the beginning'}: {t['calls']} calls, {t['errors']} failed, "
          f"${t['cost_usd']:.4f}, tool-call failure rate {rate}")
    if t["unpriced_calls"]:
        print(f"  {t['unpriced_calls']} calls have no known price and are not in the total (see `downshift prices`)")
    rows = [{**m, "rate": None if m["tool_failure_rate"] is None else f"{m['tool_failure_rate']:.1%}",
             "cost": f"${m['cost_usd']:.4f}"} for m in data["models"]]
    print(table(rows, [("provider", "PROVIDER"), ("model", "MODEL"), ("calls", "CALLS"), ("errors", "FAILED"),
                       ("input_tokens", "IN TOK"), ("output_tokens", "OUT TOK"), ("cost", "COST"), ("tool_calls", "TOOL CALLS"),
                       ("rate", "TOOL FAIL %")]))
    analytics_cli.print_stats_extra(data)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from app.core.queries import EXPORT_COLUMNS, iter_calls, parse_since

    core = _core(args)
    core.writer.flush()
    rows: Iterable[dict[str, Any]] = iter_calls(core.db, since=parse_since(args.since))
    out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    try:
        if args.format == "csv":
            writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            count = 0
            for count, row in enumerate(rows, 1):  # noqa: B007 - count is reported below
                writer.writerow(row)
        else:
            out.write("[")
            count = 0
            for row in rows:
                out.write(("," if count else "") + "\n  " + json.dumps(row, default=str))
                count += 1
            out.write("\n]\n")
    finally:
        if args.out:
            out.close()
        core.close()
    if args.out:
        print(f"{count} calls written to {args.out}", file=sys.stderr)
    return 0


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


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run

    return run(args)


def cmd_doctor(args: argparse.Namespace) -> int:
    from app.doctor import run

    return run(args)


# ----------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from app.core.envexport import AGENTS, FORMATS

    def options(default: object) -> argparse.ArgumentParser:
        # Sub-commands repeat the options with SUPPRESS so `downshift --db X stats` keeps X.
        p = argparse.ArgumentParser(add_help=False)
        p.add_argument("--config", metavar="FILE", default=default,
                       help="config file (default: $DOWNSHIFT_CONFIG or the user config dir)")
        p.add_argument("--db", metavar="URL", default=default,
                       help="database URL (default: $DOWNSHIFT_DB_URL or the user data dir)")
        return p

    common = options(argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="downshift", description="Route your coding agent's loop to a cheaper model.",
                                     parents=[options(None)])
    parser.add_argument("--version", action="version", version=f"downshift {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.set_defaults(handler=cmd_gui)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, parents=[common], description=help_)
        p.set_defaults(handler=handler)
        return p

    p = add("serve", cmd_serve, "run the proxy headless (no window)")
    p.add_argument("--host", help="address to listen on (default from config: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default from config: 8765; 0 picks a free one)")
    p = add("env", cmd_env, "print the variables that point an agent at the proxy: eval \"$(downshift env)\"")
    p.add_argument("--format", choices=FORMATS, default="bash")
    p.add_argument("--agent", choices=AGENTS, default="generic")
    from app.core.connect import CONNECTABLE

    p = add("connect", cmd_connect, "write Downshift into an agent's own settings file (merged, backed up, no token)")
    p.add_argument("agent", choices=list(CONNECTABLE))
    p.add_argument("--shell", choices=("bash", "fish", "powershell"), default="bash",
                   help="the shell whose rc line to print")
    p = add("disconnect", cmd_disconnect, "undo `downshift connect`: the agent's settings as they were")
    p.add_argument("agent", choices=list(CONNECTABLE))
    p = add("use", cmd_use, "switch the active routing preset (applies to the next request)")
    p.add_argument("preset")
    p = add("presets", cmd_presets, "list routing presets")
    p.add_argument("--json", action="store_true")
    p = add("providers", cmd_providers, "list provider accounts and whether their key is set")
    p.add_argument("--json", action="store_true")
    p = add("key", cmd_key, "store or delete a provider's API key in the OS keyring (read from stdin or a prompt)")
    p.add_argument("action", choices=("set", "delete"))
    p.add_argument("provider")
    p = add("token", cmd_token, "show or rotate the local token agents use to reach the proxy")
    p.add_argument("action", choices=("show", "rotate"), nargs="?", default="show")
    p = add("calls", cmd_calls, "recent calls from the log")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--failures", action="store_true", help="only failed calls and calls with tool-call failures")
    p = add("stats", cmd_stats, "spend, tokens and tool-call failure rate, per model")
    p.add_argument("--json", action="store_true")
    p.add_argument("--since", help="e.g. 1h, 24h, 7d, 2026-11-01 (default: all time)")
    p = add("export", cmd_export, "export the call log")
    p.add_argument("what", choices=("calls",))
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--out", metavar="FILE")
    p.add_argument("--since")
    p = add("prices", cmd_prices_refresh, "refresh the price table from a provider that publishes prices (OpenRouter)")
    p.add_argument("action", choices=("refresh",))
    p.add_argument("--provider", default="openrouter")
    p = add("demo", cmd_demo, "the app on a simulated provider and scripted agents, in a throw-away config and log")
    p.add_argument("--headless", action="store_true", help="no window: run the traffic, then print a summary")
    p.add_argument("--seconds", type=float, help="stop after this long (default: 20 headless, until quit with a window)")
    p.add_argument("--speed", type=float, default=1.0, help="run the simulation this many times faster")
    p.add_argument("--keep", action="store_true", help="keep the demo's config and call log, and print where")
    p.add_argument("--json", action="store_true", help="with --headless: the summary as JSON")
    p = add("doctor", cmd_doctor, "check config, keyring, database, port, providers and Qt, and say what to fix")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each provider (default: 5)")
    p.add_argument("--offline", action="store_true", help="do not contact the providers")
    p.add_argument("--no-qt", action="store_true", help="do not probe Qt (it starts a child process)")
    analytics_cli.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from app.core.config import ConfigError
    from app.core.secrets import SecretStoreError
    from app.core.storage.db import DatabaseOpenError

    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except (ConfigError, DatabaseOpenError, SecretStoreError) as exc:  # the user's to fix: one line, no traceback
        print(f"downshift: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


"""The `downshift` parser and dispatch: global options, then each command module's `register`. With no
command it starts the desktop app (app.cli.gui); every other command is headless.

Human output is aligned tables (app.cli.format); `--json` output is stable and documented in README
("JSON output").
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from app import __version__
from app.cli import agents, analytics, demo, doctor, executors, gui, hooks, log, prices, serve, settings, team
from app.cli.args import Handler, Parser, only_reads


def build_parser() -> argparse.ArgumentParser:
    def options(default: object) -> Parser:
        # Sub-commands repeat the options with SUPPRESS so `downshift --db X stats` keeps X.
        p = Parser(add_help=False)
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
        p.add_argument(
            "--read-only",
            action="store_true",
            default=False if default is None else default,
            help="open the log read-only and write nothing: the desktop app without a proxy, or a command "
            "that only reads (calls, stats, export, tasks, ...); a PostgreSQL team ledger is read-only "
            "unless the command writes",
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
    parser.set_defaults(handler=gui.cmd_gui)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, parents=[common], description=help_)
        p.set_defaults(handler=handler)
        return p

    # in the order `downshift --help` lists them
    for module in (serve, agents, settings, log, prices, hooks, demo, doctor, analytics, executors, team):
        module.register(add)
    readers = sorted(name for name, p in sub.choices.items() if p.get_default("reads_only") is not None)
    parser.set_defaults(read_only_commands=tuple(readers))  # for --read-only's refusal
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
    handler: Handler = args.handler
    if args.read_only and args.command is not None and not only_reads(args):
        print(
            f"downshift: `{args.command}` writes (the call log, the config or a secret) and --read-only writes "
            f"nothing; run it without --read-only (read-only: {', '.join(args.read_only_commands)})",
            file=sys.stderr,
        )
        return 2
    return run(handler, args)


def run(handler: Handler, args: argparse.Namespace) -> int:
    """Run one command; what goes wrong is one line on stderr and an exit code, never a traceback (unless
    --verbose asks for it)."""
    from app.core.config import ConfigError
    from app.core.secrets import SecretStoreError
    from app.core.storage.db import DatabaseOpenError

    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except (ConfigError, DatabaseOpenError, SecretStoreError) as exc:  # the user's to fix: one line
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

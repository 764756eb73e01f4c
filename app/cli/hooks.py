"""What agents run after a turn: Claude Code's `statusline` (and its `install` / `uninstall`) and Codex's
`codex-notify`."""

from __future__ import annotations

import argparse
import sys

from app.cli.args import AddCommand
from app.cli.context import kept


def cmd_statusline(args: argparse.Namespace) -> int:
    if args.action is None:
        from app.statusline import main as show

        return show()
    from app import statusline_install

    try:
        if args.action == "install":
            written = statusline_install.install()
            note = kept(written)
            print(f"Claude Code status line installed in {written.path}{note}")
        else:
            done = statusline_install.uninstall()
            if done is None:
                print(f"no Downshift status line in {statusline_install.settings_path()}: nothing to do")
            else:
                note = kept(done)
                print(f"Claude Code status line removed from {done.path}{note}")
    except (OSError, ValueError) as exc:
        print(f"downshift: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_codex_notify(args: argparse.Namespace) -> int:
    from app.codex_notify import main as notify

    return notify(args.payload)


def register(add: AddCommand) -> None:
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

"""`downshift doctor`: config, keyring, database, port, providers and Qt checked, each with what to fix
(the checks are app.doctor)."""

from __future__ import annotations

import argparse

from app.cli.args import AddCommand, positive_number


def cmd_doctor(args: argparse.Namespace) -> int:
    from app.doctor import run

    return run(args)


def register(add: AddCommand) -> None:
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

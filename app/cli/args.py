"""Argument parsing shared by the command modules: the one-line-error parser, number types, and the
`add` callback each module registers its commands through."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

Handler = Callable[[argparse.Namespace], int]
AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]
ReadsOnly = Callable[[argparse.Namespace], bool]  # whether a command, given its arguments, only reads


def reads_only(p: argparse.ArgumentParser, when: ReadsOnly = lambda _args: True) -> None:
    """Mark a command as one that only reads (for the arguments `when` accepts): `--read-only` may run it, on
    a log opened read-only, and it opens a PostgreSQL team ledger read-only by itself (as the app does).
    A command not marked writes something, and `--read-only` refuses it."""
    p.set_defaults(reads_only=when)


def only_reads(args: argparse.Namespace) -> bool:
    """Whether the parsed command is marked read-only for these arguments (see `reads_only`)."""
    when: ReadsOnly | None = getattr(args, "reads_only", None)
    return when is not None and when(args)


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


def add_member_option(p: argparse.ArgumentParser, what: str = "calls") -> None:
    p.add_argument("--member", metavar="NAME", help=f"team mode: only this member's {what}")

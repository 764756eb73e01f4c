"""Argument parsing shared by the command modules: the one-line-error parser, number types, and the
`add` callback each module registers its commands through."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

Handler = Callable[[argparse.Namespace], int]
AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]


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

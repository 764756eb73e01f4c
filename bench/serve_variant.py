"""`python -m app serve` with one part of Downshift switched off, to measure what that part costs.

    python -m bench.serve_variant VARIANT serve --config ... --db ... --port ...

Only this wrapper process is patched (the app's code is unchanged); variants:
- `as-is`: nothing changed (the same as `python -m app serve`);
- `no-hooks`: the log writer without the analytics hooks `Core` adds (tasks, usage and task totals);
- `no-log`: no call log at all (`writer.started` / `writer.finished` do nothing);
- `switch-0.5ms`: the interpreter hands the GIL over every 0.5 ms instead of 5 ms (`sys.setswitchinterval`),
  so the event loop waits less behind the log writer thread.
"""

from __future__ import annotations

import sys

VARIANTS = ("as-is", "no-hooks", "no-log", "switch-0.5ms")


def apply(variant: str) -> None:
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    if variant == "switch-0.5ms":
        sys.setswitchinterval(0.0005)
        return
    if variant == "as-is":
        return
    from app.core import engine

    original = engine.Core.__init__

    def patched(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        if variant == "no-hooks":
            self.writer.hooks.clear()
        elif variant == "no-log":
            self.writer.started = lambda rec: None
            self.writer.finished = lambda rec: None

    engine.Core.__init__ = patched  # type: ignore[method-assign]


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    apply(sys.argv[1])
    from app.cli import main as app_main

    return app_main(sys.argv[2:])


if __name__ == "__main__":
    raise SystemExit(main())

"""The desktop app: `downshift` with no command, and the window of `downshift demo`. The only CLI module
that reaches into the Qt layer (app.ui), and only when a window is asked for: every other command runs
where Qt's libraries are missing."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.demo.workspace import DemoWorkspace


def cmd_gui(args: argparse.Namespace) -> int:
    from app.ui.launch import run_gui

    return run_gui(args)


def demo_window(workspace: DemoWorkspace, args: argparse.Namespace, speed: float) -> int:
    """app.demo.WindowRunner: the desktop app on the demo's workspace."""
    try:
        from app.ui.demo_window import run_demo_window
    except ImportError as exc:  # PySide6 or Qt's system libraries missing: the headless demo still runs
        print(
            f"downshift: the desktop app cannot start ({exc}); try `downshift demo --headless`",
            file=sys.stderr,
        )
        return 1
    return run_demo_window(workspace, args, speed)

"""`downshift demo` with a window: the normal desktop app on the demo's throw-away workspace, fed by the
scripted agents. The headless demo and the workspace are app.demo (no Qt); this is the Qt side."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.demo import GUI_CYCLE, say
from app.demo.agent import ScriptedAgents
from app.demo.workspace import DemoWorkspace
from app.ui.launch import no_display, run_gui


def run_demo_window(workspace: DemoWorkspace, args: argparse.Namespace, speed: float) -> int:
    """The windowed demo (app.demo.WindowRunner); returns the exit code."""
    if no_display():
        print(
            "downshift: no display found, so the desktop app cannot start; "
            "`downshift demo --headless` runs the same traffic and prints a summary",
            file=sys.stderr,
        )
        return 2
    agents = ScriptedAgents(
        workspace.proxy_url,
        workspace.token,
        workspace.config_path,
        speed=speed,
        cycle=GUI_CYCLE,
        say=say,
        db_url=workspace.db_url,
    ).start()
    print(
        f"Downshift demo: simulated provider and agents; config and log in {workspace.root} "
        f"({'kept' if args.keep else 'deleted on exit'})",
        flush=True,
    )
    if args.seconds is not None:
        _quit_after(float(args.seconds))
    gui_args: dict[str, Any] = {**vars(args), "config": str(workspace.config_path), "db": workspace.db_url}
    try:
        code = run_gui(argparse.Namespace(**gui_args))
    finally:
        agents.stop(drain=2.0)
    if agents.error is not None:
        print(f"downshift: the demo agents stopped: {agents.error}", file=sys.stderr)
    return code


def _quit_after(seconds: float) -> None:
    """Quit the Qt event loop after `seconds` (a timed demo, and the packaged app's offscreen smoke test).

    The application object is made here, on the main thread, so the timer lives on the GUI thread;
    `run_gui` reuses it."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    QTimer.singleShot(int(seconds * 1000), app, app.quit)

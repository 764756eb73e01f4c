"""`downshift demo`: the app running on simulated traffic, so it can be seen alive without any key.

A simulated provider (the project's mock upstream, scripted per model) and scripted agents (aider-,
Claude Code- and Codex-like clients) run against the real proxy, in a throw-away config and call log
under a temp folder. With a window: the normal desktop app on that config. `--headless`: the proxy
alone for `--seconds`, then a summary of what the call log recorded (for CI and a quick look).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from typing import Any

from app.demo.agent import ScriptedAgents
from app.demo.provider import SimulatedProvider
from app.demo.summary import demo_summary, render_summary
from app.demo.workspace import DemoWorkspace

log = logging.getLogger(__name__)

HEADLESS_SECONDS = 20.0
GUI_CYCLE = 150.0  # seconds of demo time for one round cheap -> plan-high -> premium


def run(args: argparse.Namespace) -> int:
    """Entry point of `downshift demo`; returns the exit code."""
    speed = float(args.speed)
    if speed <= 0:
        print("downshift: --speed must be more than 0", file=sys.stderr)
        return 2
    provider = SimulatedProvider(speed=speed)
    provider.start()
    workspace = DemoWorkspace.create(provider.mock.base_url)
    try:
        with workspace.activated():
            if args.headless:
                return _headless(workspace, args, speed)
            return _with_window(workspace, args, speed)
    finally:
        provider.stop()
        if args.keep:
            print(
                f"demo files kept in {workspace.root} (config.toml, demo.db): "
                f"downshift --config {workspace.config_path} --db {workspace.db_url} stats",
                file=sys.stderr,
            )
        else:
            workspace.cleanup()


def _say(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _headless(workspace: DemoWorkspace, args: argparse.Namespace, speed: float) -> int:
    from app.core.engine import Core
    from app.proxy.server import ProxyThread

    seconds = HEADLESS_SECONDS if args.seconds is None else float(args.seconds)
    core = Core(workspace.config_path, workspace.db_url)
    proxy = ProxyThread(core, port=0).start()
    quiet = args.json
    if not quiet:
        print(
            f"Downshift demo: proxy on {proxy.url}, simulated provider, {seconds:g} s (Ctrl-C stops early)",
            flush=True,
        )
    agents = ScriptedAgents(
        proxy.url,
        workspace.token,
        workspace.config_path,
        speed=speed,
        cycle=seconds * speed,
        say=None if quiet else _say,
        db_url=workspace.db_url,
    ).start()
    with contextlib.suppress(KeyboardInterrupt):
        time.sleep(seconds)
    agents.stop(drain=10.0 / speed)
    proxy.stop()
    core.writer.flush()
    data = demo_summary(core.db, agents.stats)
    core.close()
    if agents.error is not None:
        print(f"downshift: the demo agents stopped: {agents.error}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2) if quiet else render_summary(data, seconds, speed), flush=True)
    return 0 if data["total"]["calls"] else 1


def _with_window(workspace: DemoWorkspace, args: argparse.Namespace, speed: float) -> int:
    try:
        from app.ui.launch import no_display, run_gui
    except ImportError as exc:
        print(
            f"downshift: the desktop app cannot start ({exc}); try `downshift demo --headless`",
            file=sys.stderr,
        )
        return 1
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
        say=_say,
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

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
from collections.abc import Callable
from typing import Any

from app.demo.agent import ScriptedAgents
from app.demo.provider import SimulatedProvider
from app.demo.summary import demo_summary
from app.demo.workspace import DemoWorkspace

log = logging.getLogger(__name__)

HEADLESS_SECONDS = 20.0
GUI_CYCLE = 150.0  # seconds of demo time for one round cheap -> plan-high -> premium

# (workspace, args, speed) -> exit code: the desktop app on the demo workspace. It lives in the Qt layer
# (app.ui.demo_window) and is handed in by the CLI, so this package (and `demo --headless`) loads no Qt.
WindowRunner = Callable[[DemoWorkspace, argparse.Namespace, float], int]
# (summary, seconds, speed) -> the headless summary as text: the CLI's tables (app.cli.demo)
Render = Callable[[dict[str, Any], float, float], str]


def run(args: argparse.Namespace, *, render: Render, window: WindowRunner | None = None) -> int:
    """Entry point of `downshift demo`; returns the exit code. The front ends are handed in by the CLI:
    `render` prints the headless summary, `window` runs the windowed demo (without it, only `--headless`)."""
    speed = float(args.speed)
    if speed <= 0:
        print("downshift: --speed must be more than 0", file=sys.stderr)
        return 2
    provider = SimulatedProvider(speed=speed)
    provider.start()
    workspace = DemoWorkspace.create(provider.mock.base_url)
    try:
        with workspace.activated():
            if args.headless or window is None:
                return _headless(workspace, args, speed, render)
            return window(workspace, args, speed)
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


def say(text: str) -> None:
    """One line of what the scripted agents do, with the time."""
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _headless(workspace: DemoWorkspace, args: argparse.Namespace, speed: float, render: Render) -> int:
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
        say=None if quiet else say,
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
    print(json.dumps(data, indent=2) if quiet else render(data, seconds, speed), flush=True)
    return 0 if data["total"]["calls"] else 1

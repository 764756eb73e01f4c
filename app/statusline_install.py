"""`downshift statusline install|uninstall`: Claude Code's settings.json `statusLine` pointed at Downshift, and back.

The settings file is merged, never overwritten: every other key stays, the old file is backed up, and a
status line the user had before is remembered (in Downshift's data folder, not in Claude Code's file) so
`uninstall` puts it back.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app import paths
from app.core.agent_config import Written, read_json_object, write_with_backup

MARK = "statusline"  # how `uninstall` recognises a statusLine command as Downshift's


def settings_path(env: Mapping[str, str] | None = None) -> Path:
    """User settings: $CLAUDE_CONFIG_DIR/settings.json, else ~/.claude/settings.json."""
    env = os.environ if env is None else env
    root = env.get("CLAUDE_CONFIG_DIR", "").strip()
    return (Path(root).expanduser() if root else Path.home() / ".claude") / "settings.json"


def command() -> str:
    """The fastest way to start this installation's status line. On Linux `python -I -S -c` importing
    app.statusline from this installation's folder: no site-packages scan (12 ms of a venv's start-up here,
    a quarter of the budget) and a cached .pyc (a script given by path is compiled on every run).
    Elsewhere `python -m app statusline` (it finds its folders through platformdirs); the executable itself
    in a frozen build."""
    if getattr(sys, "frozen", False):
        return f"{shlex.quote(sys.executable)} statusline"
    if sys.platform.startswith("linux"):
        root = str(Path(__file__).resolve().parent.parent)
        code = f"import sys;sys.path.insert(0,{json.dumps(root)});from app.statusline import main;main()"
        return f"{shlex.quote(sys.executable)} -I -S -c {shlex.quote(code)}"
    return f"{shlex.quote(sys.executable)} -m app statusline"


def is_ours(entry: Any) -> bool:
    cmd = entry.get("command") if isinstance(entry, dict) else None
    if not isinstance(cmd, str):
        return False
    cmd = cmd.rstrip()
    return (
        cmd.endswith(MARK) and ("app " in cmd or "downshift" in cmd)
    ) or "from app.statusline import main" in cmd


def _previous_path() -> Path:
    return paths.data_dir() / "claude-statusline-previous.json"


def _load(path: Path) -> dict[str, Any]:
    return read_json_object(path) or {}


def install(env: Mapping[str, str] | None = None) -> Written:
    path = settings_path(env)
    data = _load(path)
    current = data.get("statusLine")
    if current is not None and not is_ours(current):
        previous = _previous_path()
        previous.parent.mkdir(parents=True, exist_ok=True)
        previous.write_text(json.dumps(current), encoding="utf-8")
    data["statusLine"] = {"type": "command", "command": command(), "padding": 0}
    return write_with_backup(path, json.dumps(data, indent=2) + "\n")


def uninstall(env: Mapping[str, str] | None = None) -> Written | None:
    """Remove Downshift's statusLine (restoring the user's earlier one); None when it was not installed."""
    path = settings_path(env)
    data = _load(path)
    if not is_ours(data.get("statusLine")):
        return None
    previous = _previous_path()
    try:
        data["statusLine"] = json.loads(previous.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        del data["statusLine"]
    written = write_with_backup(path, json.dumps(data, indent=2) + "\n")
    previous.unlink(missing_ok=True)
    return written

"""`downshift codex-notify`: the status line's figures for Codex CLI, which has no status bar to run a command in.

Codex runs the program named by `notify = [...]` in its config.toml after every finished turn, with one JSON
argument (`{"type": "agent-turn-complete", "thread-id": ..., ...}`; Codex 0.169 does so in `codex exec` too).
The thread id is the `session-id` Codex sends with every request, so the session's figures are the ones the
Claude Code status line shows for its own session. They go where a user of Codex looks: a desktop
notification where `notify-send` and a session bus exist, and a one-line file (`codex-status.txt` in the
data folder) that a tmux status bar or a shell prompt can show. Like the status line it never fails the agent:
whatever happens it exits 0, without a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence

STATUS_FILE = "codex-status.txt"


def figures_line(payload: Mapping[str, object], env: Mapping[str, str] | None = None) -> str | None:
    """The line for a finished Codex turn; None for any other notification."""
    if payload.get("type") != "agent-turn-complete":
        return None
    from app.statusline import status_line

    thread = payload.get("thread-id")
    return status_line({"session_id": thread} if isinstance(thread, str) and thread else {}, env)


def status_path(env: Mapping[str, str] | None = None) -> str:
    from app.statusline import _user_dir

    return os.path.join(_user_dir("data"), STATUS_FILE)


def _write(path: str, line: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(line + "\n")
    os.replace(tmp, path)


def _notify(line: str, env: Mapping[str, str]) -> None:
    """A desktop notification, when there is a desktop to show it on; never waits for it."""
    sender = shutil.which("notify-send", path=env.get("PATH"))
    if sender is None or not (
        env.get("DBUS_SESSION_BUS_ADDRESS") or env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")
    ):
        return
    subprocess.Popen(  # noqa: S603 - a fixed program, the line as one argument
        [sender, "--app-name=Downshift", "Codex turn finished", line],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        payload = json.loads(args[-1]) if args else {}
        line = figures_line(payload if isinstance(payload, dict) else {}, env)
        if line is None:
            return 0
        _write(status_path(env), line)
        print(line, flush=True)
        _notify(line, env)
    except Exception as exc:  # noqa: BLE001 - Codex must never see a traceback from its notify program
        print(f"downshift codex-notify: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 0

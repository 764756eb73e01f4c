"""Start at login, the freedesktop way: a `.desktop` file in `$XDG_CONFIG_HOME/autostart`.

The file itself is the setting (no flag kept elsewhere that could disagree with it). Other systems are
reported as unsupported with a message rather than silently ignored.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from app.core.atomic_file import atomic_write

FILE_NAME = "downshift.desktop"


class AutostartError(RuntimeError):
    """Start at login could not be changed; the message is fit to show the user."""


def supported() -> bool:
    return sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd"))


def autostart_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "autostart"


def autostart_path() -> Path:
    return autostart_dir() / FILE_NAME


def launch_command() -> list[str]:
    """How to start this installation: the `downshift` script if on PATH, else this interpreter."""
    script = shutil.which("downshift")
    return [script] if script else [sys.executable, "-m", "app"]


def desktop_entry(command: list[str]) -> str:
    exec_line = shlex.join(command)
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=Downshift\n"
        "Comment=Route coding agents to cheaper models; tray icon and local proxy\n"
        f"Exec={exec_line}\n"
        "Icon=downshift\n"
        "Terminal=false\n"
        "Categories=Development;\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def is_enabled() -> bool:
    return autostart_path().is_file()


def enable(command: list[str] | None = None) -> Path:
    if not supported():
        raise AutostartError(f"Start at login is not supported on {sys.platform} yet")
    path = autostart_path()
    try:
        atomic_write(path, desktop_entry(command or launch_command()).encode(), mode=0o644)
    except OSError as exc:
        raise AutostartError(f"Could not write {path}: {exc.strerror or exc}") from exc
    return path


def disable() -> None:
    path = autostart_path()
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise AutostartError(f"Could not remove {path}: {exc.strerror or exc}") from exc


def set_enabled(on: bool) -> None:
    if on:
        enable()
    else:
        disable()

"""The core and the proxy import no Qt: `downshift serve` and the CLI run where no GUI libraries exist,
and `app/ui/` stays a thin layer over them."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import app

ROOT = Path(__file__).resolve().parent.parent
HEADLESS = (
    "app.core",
    "app.proxy",
    "app.testing",
    "app.demo",
    "app.doctor",
    "app.cli",  # every module, the GUI launcher too: it reaches app.ui only inside the functions that start a window
    "app.statusline",
    "app.codex_notify",
    "app.paths",
)
QT = ("PySide6", "shiboken6", "pyqtgraph", "numpy")


def headless_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(app.__path__, "app."):
        if info.name.startswith(HEADLESS) and ".migrations" not in info.name:  # run by Alembic, not imported
            names.append(info.name)
    return names


def test_core_and_proxy_import_no_qt() -> None:
    modules = headless_modules()
    assert "app.core.engine" in modules and "app.proxy.server" in modules and len(modules) > 40
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {QT!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# Each headless command, run the way the `downshift` script runs it; what it loaded is read at exit.
HEADLESS_COMMANDS = (
    ["env"],
    ["stats"],
    ["stats", "--json"],
    ["calls"],
    ["tasks"],
    ["executors"],
    ["prices", "list", "sonnet"],
    ["presets"],
    ["doctor", "--offline"],  # with the Qt check: it runs in a child process
    ["demo", "--headless", "--seconds", "1", "--speed", "20", "--json"],
)
_PROBE = (
    "import atexit, sys\n"
    "from app.cli import main\n"
    f"atexit.register(lambda: print('LOADED', sorted({{m.split('.')[0] for m in sys.modules}} & {set(QT)!r})))\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("command", HEADLESS_COMMANDS, ids=" ".join)
def test_headless_commands_load_no_qt(command: list[str], tmp_path: Path) -> None:
    """`downshift env`, `stats`, `doctor` ... work where Qt's libraries are missing: none of them loads Qt,
    pyqtgraph or numpy into its process (`doctor` probes Qt in a child)."""
    env = {
        **os.environ,
        "DOWNSHIFT_CONFIG": str(tmp_path / "config.toml"),
        "DOWNSHIFT_DB_URL": f"sqlite:///{tmp_path / 'log.db'}",
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded = [line for line in done.stdout.splitlines() if line.startswith("LOADED")]
    assert loaded == ["LOADED []"], (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert done.returncode == 0, done.stderr[-3000:]

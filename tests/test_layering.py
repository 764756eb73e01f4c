"""The core and the proxy import no Qt: `downshift serve` and the CLI run where no GUI libraries exist,
and `app/ui/` stays a thin layer over them."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import app

ROOT = Path(__file__).resolve().parent.parent
HEADLESS = (
    "app.core",
    "app.proxy",
    "app.testing",
    "app.demo.provider",
    "app.demo.agent",
    "app.doctor",
    "app.cli_analytics",
)


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
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

"""The import contracts in pyproject.toml ([tool.importlinter], run by .ci/lint) catch what they are for.

Each case copies app/ and pyproject.toml aside, adds one import that breaks a rule of issue #16, and runs
`lint-imports` on the copy: it must fail. The untouched copy must pass, so a failure is the added import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# (file under app/, lines appended to it): each one an import the contracts exist to refuse
BREAKS = {
    "qt in the core": ("core/pricing.py", "\n\ndef _qt():\n    from PySide6 import QtCore\n"),
    "numpy in the proxy": ("proxy/pipeline.py", "\n\ndef _np():\n    import numpy\n"),
    "core over the proxy": ("core/analytics/budgets.py", "\n\ndef _p():\n    from app.proxy import errors\n"),
    "a headless command reaches a window": ("cli/log.py", "\n\ndef _w():\n    from app.ui import launch\n"),
    # app.cli.gui is the one door to Qt, for `downshift` with no command and `demo` with a window; a headless
    # command going through it loads Qt just the same
    "a headless command goes through the gui door": (
        "cli/serve.py",
        "\n\ndef _w():\n    from app.cli.gui import cmd_gui\n",
    ),
    "the demo over the ui": ("demo/agent.py", "\n\ndef _w():\n    from app.ui import launch\n"),
}


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(ROOT / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS.exists(), "import-linter is in the test extras: pip install .[test]"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_tree_as_it_is_keeps_the_contracts(tmp_path: Path) -> None:
    done = _lint(_copy(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize("case", BREAKS)
def test_a_forbidden_import_breaks_a_contract(case: str, tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path, lines = BREAKS[case]
    with (root / "app" / path).open("a") as f:
        f.write(lines)
    done = _lint(root)
    assert done.returncode != 0, f"{case}: no contract broken\n{done.stdout[-3000:]}"


def test_every_headless_command_module_is_kept_from_the_gui_door() -> None:
    """The gui-door contract lists its modules: a new command module must be added there."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (door,) = [c for c in contracts if "app.cli.gui" in c.get("forbidden_modules", ())]
    modules = {f"app.cli.{p.stem}" for p in (ROOT / "app" / "cli").glob("*.py")}
    assert set(door["source_modules"]) == modules - {
        "app.cli.__init__",
        "app.cli.__main__",
        "app.cli.main",
        "app.cli.demo",
        "app.cli.gui",
    }

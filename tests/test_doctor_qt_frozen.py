"""`downshift doctor` in the packaged (PyInstaller) app: the Qt check really runs there too.

The frozen app is where Qt's system libraries are most often missing (a bare Linux box), and it has no
Python interpreter for `python -c`: the doctor runs the bundle's own executable in its Qt-probe mode
(packaging/entry.py). Here a shell script stands in for the frozen executable: it runs entry.py as the
bundle does.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from app import doctor

ROOT = Path(__file__).resolve().parent.parent


def _fake_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pythonpath: list[Path]) -> None:
    exe = tmp_path / "downshift"
    path = os.pathsep.join(str(p) for p in [*pythonpath, ROOT])
    exe.write_text(
        f'#!/bin/sh\nPYTHONPATH="{path}" exec "{sys.executable}" "{ROOT / "packaging" / "entry.py"}" "$@"\n'
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(exe))


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in bundle is a shell script")
def test_frozen_app_reports_qt_libraries_it_cannot_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle whose Qt cannot be imported (a system library missing) fails the check, not "ok"."""
    broken = tmp_path / "broken"
    (broken / "PySide6").mkdir(parents=True)
    (broken / "PySide6" / "__init__.py").write_text(
        "raise ImportError('libEGL.so.1: cannot open shared object file: No such file or directory')\n"
    )
    _fake_bundle(tmp_path, monkeypatch, [broken])
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    check = doctor.check_qt()
    assert check.status == "fail", check
    assert "libEGL.so.1" in check.summary
    assert check.fix and "libegl1" in check.fix


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in bundle is a shell script")
def test_frozen_app_starts_qt_in_a_child_of_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_bundle(tmp_path, monkeypatch, [])
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    check = doctor.check_qt()
    assert check.status == "ok", check
    assert check.details["platform"] == "offscreen"

"""Start at login: the XDG autostart file is the setting, written and removed under the temp home."""

from __future__ import annotations

import configparser
import sys
from pathlib import Path

import pytest

from app.core import autostart


def test_enable_writes_a_desktop_entry_and_disable_removes_it(isolated_home: Path) -> None:
    path = autostart.autostart_path()
    assert path == isolated_home / "config" / "autostart" / "downshift.desktop"
    assert not autostart.is_enabled()
    autostart.enable(["/opt/down shift/bin/downshift"])
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(path)
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application" and desktop["Name"] == "Downshift"
    assert desktop["Exec"] == "'/opt/down shift/bin/downshift'"
    assert autostart.is_enabled()
    autostart.set_enabled(False)
    assert not path.exists()
    autostart.disable()  # already off: no error


def test_default_command_runs_this_installation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autostart.shutil, "which", lambda _name: None)
    assert autostart.launch_command() == [sys.executable, "-m", "app"]
    monkeypatch.setattr(autostart.shutil, "which", lambda _name: "/usr/bin/downshift")
    assert autostart.launch_command() == ["/usr/bin/downshift"]


def test_failures_are_messages(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated_home / "config" / "autostart").write_text("a file where the folder should be")
    with pytest.raises(autostart.AutostartError, match="Could not write .*downshift.desktop"):
        autostart.enable(["downshift"])
    monkeypatch.setattr(autostart.sys, "platform", "win32")
    with pytest.raises(autostart.AutostartError, match="not supported on win32"):
        autostart.enable(["downshift"])

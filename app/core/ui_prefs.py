"""The desktop app's own preferences, kept in the config's [ui] table next to everything else.

Defaults are declared once here and merged over what the file holds, so a new preference needs no
migration and the CLI, the first-run assistant and the GUI read the same values. Window geometry and
the last page are not preferences: they stay in QSettings with the window.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.core.config import Config
from app.core.envexport import AGENTS, FORMATS

THEMES = ("system", "light", "dark")

DEFAULTS: dict[str, Any] = {
    "start_minimised": False,
    "agent": "claude-code",  # the agent the tray's "Copy env for ..." targets
    "shell": "bash",  # the export format used by the tray and preselected on the Export page
    "theme": "system",
    "database": "",  # a database file chosen in Settings; used from the next start
}

_CHOICES: dict[str, tuple[str, ...]] = {"agent": AGENTS, "shell": FORMATS, "theme": THEMES}


def prefs(config: Config) -> dict[str, Any]:
    """DEFAULTS merged with the file's values; a value of the wrong type or out of range is ignored."""
    merged = dict(DEFAULTS)
    for key, value in config.ui.items():
        if key not in DEFAULTS:
            merged[key] = value  # kept as is: another part of the app may own it
            continue
        if type(value) is not type(DEFAULTS[key]):
            continue
        if key in _CHOICES and value not in _CHOICES[key]:
            continue
        merged[key] = value
    return merged


def pref(config: Config, key: str) -> Any:
    return prefs(config)[key]


def with_prefs(config: Config, **changes: Any) -> Config:
    """A config with [ui] values changed; values equal to the default are dropped to keep the file short."""
    for key, value in changes.items():
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ValueError(f"{key} must be one of {', '.join(_CHOICES[key])}, got {value!r}")
    ui = dict(config.ui)
    for key, value in changes.items():
        if key in DEFAULTS and value == DEFAULTS[key]:
            ui.pop(key, None)
        else:
            ui[key] = value
    return replace(config, ui=ui)

"""Icons from the SVGs in `resources/icons`, so they stay sharp at any scale factor.

QIcon renders an SVG at whatever size the tray or a high-DPI screen asks for; the cache keeps one QIcon
per file so rebuilding the tray menu does not re-read files.
"""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QIcon

from app import paths
from app.core.preset_tier import Tier


@cache
def icon(name: str) -> QIcon:
    """`name` without extension, e.g. "tray-cheap"; a missing file gives an empty icon, not a crash."""
    try:
        path = paths.resource(f"icons/{name}.svg")
    except FileNotFoundError:
        return QIcon()
    return QIcon(str(path)) if path.is_file() else QIcon()


def app_icon() -> QIcon:
    return icon("downshift")


def tray_icon(tier: Tier, paused: bool = False) -> QIcon:
    return icon("tray-paused" if paused else f"tray-{tier}")

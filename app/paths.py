"""Where Downshift keeps its files, and where its bundled resources are found.

One helper for every layout: a source checkout, an installed wheel and a PyInstaller build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "downshift"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_path(override: str | os.PathLike[str] | None = None) -> Path:
    """The config file: an explicit path, else $DOWNSHIFT_CONFIG, else the user config dir."""
    chosen = override or os.environ.get("DOWNSHIFT_CONFIG")
    return Path(chosen).expanduser() if chosen else config_dir() / "config.toml"


def db_url(override: str | None = None) -> str:
    """The database URL: an explicit one, else $DOWNSHIFT_DB_URL, else a file in the user data dir."""
    chosen = override or os.environ.get("DOWNSHIFT_DB_URL")
    if chosen:
        return chosen
    return f"sqlite:///{data_dir() / 'downshift.db'}"


RESOURCE_MARKER = "prices.json"  # a folder named resources/ without it is someone else's


def resources_dir() -> Path:
    """The bundled resources folder (icons, price table, tokenizer ranks).

    A PyInstaller build has it at `sys._MEIPASS/resources`, an installed wheel as the package
    `app/resources` (pyproject maps the repo's top-level folder there), a checkout at the top level.
    """
    frozen = getattr(sys, "_MEIPASS", None)
    candidates = []
    if frozen:
        candidates.append(Path(frozen) / "resources")
    here = Path(__file__).resolve().parent
    candidates += [here / "resources", here.parent / "resources"]
    for candidate in candidates:
        if (candidate / RESOURCE_MARKER).is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"Downshift's resources folder is missing from this installation (looked in {searched})"
    )


def resource(name: str) -> Path:
    return resources_dir() / name

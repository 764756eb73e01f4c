"""Gemini CLI's settings file, `~/.gemini/settings.json`: the two settings its variables cannot give.

`GOOGLE_GEMINI_BASE_URL` and `GEMINI_API_KEY` point Gemini CLI (0.61) at the proxy, but without
`security.auth.selectedType = "gemini-api-key"` in this file it exits with "Invalid auth method selected",
and with usage statistics on (its default) it looks up play.googleapis.com to send them. Writing merges
these two into the user's file (every other setting kept) and backs the old file up first; the file
holds no secret.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

AUTH_TYPE = "gemini-api-key"


def gemini_settings_path(env: Mapping[str, str] | None = None) -> Path:
    """~/.gemini/settings.json of the home Gemini CLI will run with."""
    env = os.environ if env is None else env
    return Path(env.get("HOME", "").strip() or Path.home()) / ".gemini" / "settings.json"


def merged_gemini_settings(existing: Mapping[str, Any] | None) -> dict[str, Any]:
    """The user's settings with API-key auth selected and usage statistics off; the rest kept as it is."""
    data = dict(existing or {})
    security = dict(data.get("security") or {})
    auth = dict(security.get("auth") or {})
    auth["selectedType"] = AUTH_TYPE
    security["auth"] = auth
    data["security"] = security
    privacy = dict(data.get("privacy") or {})
    privacy["usageStatisticsEnabled"] = False
    data["privacy"] = privacy
    return data


def write_gemini_settings(env: Mapping[str, str] | None = None) -> tuple[Path, Path | None]:
    """Merge the settings into the file (`downshift env --agent gemini --write`); returns (path, backup of the
    old file or None when there was none or it already said this). A file that is not a JSON object is left
    alone: a ValueError says so."""
    from app.core.agent_config import write_agent_config

    written = write_agent_config("gemini", "", "", env)
    return written.path, written.backup


def settings_note() -> str:
    """What `downshift env --agent gemini` prints above the variables."""
    return (
        'Gemini CLI also needs ~/.gemini/settings.json to select API-key auth (else: "Invalid auth method\n'
        'selected") and, to stay off play.googleapis.com, usage statistics off (`--write` merges it in):\n'
        + json.dumps(merged_gemini_settings(None), indent=2)
        + "\nGEMINI_MODEL=default skips its router call; `gemini -m plan` picks another role, and any\n"
        "Gemini model name routes (the active preset's patterns, else its default role)."
    )

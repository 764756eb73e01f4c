"""Config files for agents that take their provider from a file, not from variables (Cline's CLI, Continue's CLI),
and Qwen Code's settings file, the only place its usage statistics (sent to Alibaba Cloud) can be turned off.

`downshift env --agent NAME --write` writes the file. An existing file is merged where it holds other
settings (Cline keeps one entry per provider) and always backed up first when its content changes, so a
user's own set-up is never lost. The file holds the local proxy token, never a provider key, and is
written owner-only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.atomic_file import atomic_write

CLINE_PROVIDER = "openai-compatible"


@dataclass(frozen=True, slots=True)
class Written:
    path: Path
    backup: Path | None  # None: there was no file, or it already said exactly this


def cline_settings_path(env: Mapping[str, str] | None = None) -> Path:
    """Where `cline auth` keeps providers: $CLINE_DATA_DIR, else $CLINE_DIR/data, else ~/.cline/data."""
    env = os.environ if env is None else env
    data = env.get("CLINE_DATA_DIR", "").strip()
    if not data:
        data = str(Path(env.get("CLINE_DIR", "").strip() or Path.home() / ".cline") / "data")
    return Path(data) / "settings" / "providers.json"


def continue_config_path(env: Mapping[str, str] | None = None) -> Path:
    """A file of Downshift's own beside Continue's config.yaml (never that file): `cn --config PATH`."""
    env = os.environ if env is None else env
    return Path(env.get("CONTINUE_GLOBAL_DIR", "").strip() or Path.home() / ".continue") / "downshift.yaml"


def qwen_settings_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("HOME", "").strip() or Path.home()) / ".qwen" / "settings.json"


def merged_qwen_settings(existing: Mapping[str, Any] | None) -> dict[str, Any]:
    """The user's settings with usage statistics off (the rest kept): Qwen Code reads no variable for it."""
    data = dict(existing or {})
    privacy = dict(data.get("privacy") or {})
    privacy["usageStatisticsEnabled"] = False
    data["privacy"] = privacy
    return data


def cline_provider(base_url: str, token: str) -> dict[str, Any]:
    """The entry `cline auth -p openai-compatible -k TOKEN -m default -b BASE/v1` would write."""
    return {
        "settings": {
            "provider": CLINE_PROVIDER,
            "apiKey": token,
            "model": "default",
            "baseUrl": f"{base_url}/v1",
        },
        # Cline drops an entry without updatedAt (and rewrites the file with its own default provider)
        "updatedAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "tokenSource": "manual",
    }


def merged_cline_settings(existing: Mapping[str, Any] | None, base_url: str, token: str) -> dict[str, Any]:
    """Cline's providers.json with Downshift as its openai-compatible provider and the one in use; every other
    provider and key the file holds is kept."""
    data = dict(existing or {})
    data.setdefault("version", 1)
    providers = dict(data.get("providers") or {})
    entry = cline_provider(base_url, token)
    current = providers.get(CLINE_PROVIDER)
    if not (isinstance(current, dict) and current.get("settings") == entry["settings"]):
        providers[CLINE_PROVIDER] = entry  # (an unchanged entry keeps its updatedAt: no rewrite, no backup)
    data["providers"] = providers
    data["lastUsedProvider"] = CLINE_PROVIDER
    data.setdefault("modes", {})
    return data


def continue_yaml(base_url: str, token: str) -> str:
    """Continue CLI's config (schema v1): one model per Downshift role. Strings are JSON-quoted, which YAML reads
    as they are."""
    lines = ["name: Downshift", "version: 1.0.0", "schema: v1", "models:"]
    for name, model, roles in (
        ("Downshift default", "default", "[chat, edit, apply]"),
        ("Downshift background", "background", "[summarize]"),
    ):
        lines += [
            f"  - name: {json.dumps(name)}",
            "    provider: openai",
            f"    model: {json.dumps(model)}",
            f"    apiBase: {json.dumps(base_url + '/v1')}",
            f"    apiKey: {json.dumps(token)}",
            f"    roles: {roles}",
        ]
    return "\n".join(lines) + "\n"


def read_json_object(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    if not text.strip():
        return None  # an empty file: nothing to keep
    try:
        existing = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); fix or move it, then run this again") from exc
    if not isinstance(existing, dict):
        raise ValueError(f"{path} does not hold a JSON object; fix or move it, then run this again")
    return existing


def _text(agent: str, base_url: str, token: str, path: Path) -> str:
    if agent == "gemini":
        from app.core.gemini_settings import merged_gemini_settings

        return json.dumps(merged_gemini_settings(read_json_object(path)), indent=2) + "\n"
    if agent == "cline":
        return json.dumps(merged_cline_settings(read_json_object(path), base_url, token), indent=2) + "\n"
    if agent == "qwen-code":
        return json.dumps(merged_qwen_settings(read_json_object(path)), indent=2) + "\n"
    if agent == "continue":
        return continue_yaml(base_url, token)
    raise ValueError(f"{agent} is configured by variables, not a file")


def config_path(agent: str, env: Mapping[str, str] | None = None) -> Path:
    if agent == "gemini":
        from app.core.gemini_settings import gemini_settings_path

        return gemini_settings_path(env)
    if agent == "cline":
        return cline_settings_path(env)
    if agent == "continue":
        return continue_config_path(env)
    if agent == "qwen-code":
        return qwen_settings_path(env)
    raise ValueError(f"{agent} is configured by variables, not a file")


def write_agent_config(
    agent: str, base_url: str, token: str, env: Mapping[str, str] | None = None
) -> Written:
    """Write (or merge into) the agent's file; the old content, when different, goes to `NAME.bak-STAMP` first."""
    path = config_path(agent, env)
    return write_with_backup(path, _text(agent, base_url, token, path))


def write_with_backup(path: Path, text: str) -> Written:
    """Replace `path` with `text` atomically (owner-only); a different old content is copied to
    `NAME.bak-STAMP` first. Unchanged content is not rewritten."""
    backup = None
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = None
    if old == text.encode("utf-8"):
        return Written(path, None)
    if old is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        backup = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while backup.exists():
            backup = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
            n += 1
        backup.write_bytes(old)
        os.chmod(backup, 0o600)
    atomic_write(path, text.encode("utf-8"))  # owner-only, via a temp file and a rename
    return Written(path, backup)


def config_note(agent: str, base_url: str, token: str) -> str:
    """What the printed snippet says for a file-configured agent: the command that writes it, and its content."""
    if agent == "gemini":
        from app.core.gemini_settings import settings_note

        return settings_note()
    if agent == "qwen-code":
        return (
            "Qwen Code sends usage statistics to Alibaba Cloud unless ~/.qwen/settings.json says\n"
            '{"privacy": {"usageStatisticsEnabled": false}}: `downshift env --agent qwen-code --write` merges that\n'
            "into it (the old file is backed up). Then these variables:"
        )
    if agent == "cline":
        return (
            "Cline CLI reads its provider from ~/.cline/data/settings/providers.json.\n"
            "Run `downshift env --agent cline --write` to make this its provider (other providers kept, the old\n"
            "file backed up), or `cline auth -p openai-compatible -k <token> -m default -b "
            + base_url
            + "/v1`.\n"
            "The entry: providers."
            + CLINE_PROVIDER
            + ".settings = "
            + json.dumps(cline_provider(base_url, token)["settings"])
            + "\nThen export this variable (no hub daemon left running after each run):"
        )
    return (
        "Continue CLI: run `downshift env --agent continue --write` to write ~/.continue/downshift.yaml\n"
        "(the old one is backed up), then `cn --config ~/.continue/downshift.yaml`. Its content:\n"
        + continue_yaml(base_url, token).rstrip("\n")
    )

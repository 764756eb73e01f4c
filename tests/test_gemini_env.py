"""`downshift env --agent gemini`: the two variables Gemini CLI reads, and its settings file, printed and
merged with a backup (without `security.auth.selectedType` Gemini CLI 0.61 exits "Invalid auth method
selected"; with usage statistics on it reaches for play.googleapis.com)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.envexport import AGENTS, agent_env, export_text
from app.core.gemini_settings import gemini_settings_path, merged_gemini_settings, write_gemini_settings

REPO = Path(__file__).resolve().parent.parent
WANTED = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "privacy": {"usageStatisticsEnabled": False},
}


def test_variables_and_note() -> None:
    assert "gemini" in AGENTS
    assert agent_env("gemini", "http://127.0.0.1:8765", "ds-tok") == {
        "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:8765", "GEMINI_API_KEY": "ds-tok", "GEMINI_MODEL": "default"}  # fmt: skip
    text = export_text("gemini", "bash", "http://127.0.0.1:8765", "ds-tok")
    assert (
        "export GOOGLE_GEMINI_BASE_URL='http://127.0.0.1:8765'" in text
        and "export GEMINI_API_KEY='ds-tok'" in text
    )
    commented = "\n".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    assert '"selectedType": "gemini-api-key"' in commented and "settings.json" in commented
    assert json.loads(export_text("gemini", "json", "http://x", "t")) == {
        "GOOGLE_GEMINI_BASE_URL": "http://x", "GEMINI_API_KEY": "t", "GEMINI_MODEL": "default"}  # fmt: skip


def test_cli_prints_them(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[proxy]\nhost = "127.0.0.1"\nport = 8799\n')
    done = subprocess.run([sys.executable, "-m", "app", "env", "--config", str(config), "--agent", "gemini"],
                          cwd=REPO, env={**os.environ, "DOWNSHIFT_TOKEN": "ds-cli-token-0123456789"},
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "export GOOGLE_GEMINI_BASE_URL='http://127.0.0.1:8799'" in done.stdout
    assert "export GEMINI_API_KEY='ds-cli-token-0123456789'" in done.stdout


def test_write_merges_and_backs_up(isolated_home: Path) -> None:
    env = {"HOME": str(isolated_home)}
    path = gemini_settings_path(env)
    assert path == isolated_home / ".gemini" / "settings.json"
    written, backup = write_gemini_settings(env)  # no file yet: created, nothing to back up
    assert (written, backup) == (path, None) and json.loads(path.read_text()) == WANTED

    mine = {"theme": "GitHub", "security": {"auth": {"selectedType": "oauth-personal", "useExternal": False},
                                            "folderTrust": {"enabled": True}}}  # fmt: skip
    path.write_text(json.dumps(mine))
    written, backup = write_gemini_settings(env)
    assert backup is not None and json.loads(backup.read_text()) == mine
    merged = json.loads(path.read_text())
    assert merged["theme"] == "GitHub" and merged["security"]["folderTrust"] == {"enabled": True}
    assert merged["security"]["auth"] == {"selectedType": "gemini-api-key", "useExternal": False}
    assert merged["privacy"] == {"usageStatisticsEnabled": False}
    assert write_gemini_settings(env) == (path, None)  # already right: nothing rewritten, no second backup
    assert len(list(path.parent.glob("settings.json.bak-*"))) == 1


def test_write_refuses_a_broken_file(isolated_home: Path) -> None:
    env = {"HOME": str(isolated_home)}
    path = gemini_settings_path(env)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        write_gemini_settings(env)
    assert path.read_text() == "{not json"
    assert merged_gemini_settings({"privacy": {"usageStatisticsEnabled": True, "x": 1}})["privacy"] == {
        "usageStatisticsEnabled": False, "x": 1}  # fmt: skip


def test_direct_variant_says_it_needs_downshift() -> None:
    """Gemini CLI cannot talk to an OpenAI- or Anthropic-format provider itself: the direct snippet says so
    rather than printing OPENAI_* variables it would ignore."""
    from app.core.config import Provider
    from app.core.direct_env import DirectEnvError, direct_env

    for api in ("openai", "anthropic"):
        provider = Provider(name="cheapco", base_url="https://example.com/v1", api=api)
        with pytest.raises(DirectEnvError, match="only reach this provider through Downshift"):
            direct_env("gemini", provider, "sk-x", None)

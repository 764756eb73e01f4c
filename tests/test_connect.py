"""`downshift connect AGENT` / `disconnect`: each agent's own settings file gets Downshift merged in (no
token), is backed up, and gets exactly its previous keys back on disconnect. HOME (and the XDG dirs) are
a temp folder (conftest's isolated_home), so no real agent config is touched."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from app.cli import main as cli
from app.core import connect as connect_mod
from app.core.connect import CONNECTABLE, ConnectError, connect, disconnect, is_connected
from app.core.envexport import agent_env

BASE = "http://127.0.0.1:8765"
TOKEN = "ds-local-token-not-to-be-written"


def test_every_connected_agent_reads_a_token_variable_that_downshift_env_exports() -> None:
    for agent, spec in CONNECTABLE.items():
        assert spec.token_var in agent_env(agent, BASE, TOKEN), agent
        assert agent_env(agent, BASE, TOKEN)[spec.token_var] == TOKEN


def test_claude_code_settings_env_block_is_merged_and_restored(isolated_home: Path) -> None:
    path = isolated_home / ".claude" / "settings.json"
    path.parent.mkdir()
    original = {
        "theme": "dark",
        "env": {"ANTHROPIC_MODEL": "claude-opus-4-8", "MY_VAR": "keep"},
        "permissions": {"allow": ["Bash(ls)"]},
    }
    path.write_text(json.dumps(original))
    done = connect("claude-code", BASE)
    data = json.loads(path.read_text())
    assert data["theme"] == "dark" and data["permissions"] == original["permissions"]
    assert data["env"]["MY_VAR"] == "keep"
    assert data["env"]["ANTHROPIC_BASE_URL"] == BASE and data["env"]["ANTHROPIC_MODEL"] == "opusplan"
    assert data["env"]["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "plan"
    assert "ANTHROPIC_AUTH_TOKEN" not in data["env"] and TOKEN not in path.read_text()
    assert done.backup is not None and json.loads(done.backup.read_text()) == original
    assert done.rc_line == 'eval "$(downshift env --agent claude-code)"' and is_connected("claude-code")
    # the user edits the file meanwhile: that edit survives the undo
    data["theme"] = "light"
    path.write_text(json.dumps(data))
    disconnect("claude-code")
    after = json.loads(path.read_text())
    assert after == {**original, "theme": "light"}
    assert not is_connected("claude-code")


def test_codex_config_toml_gets_a_model_provider_and_loses_it_again(isolated_home: Path) -> None:
    path = isolated_home / ".codex" / "config.toml"
    path.parent.mkdir()
    original = 'model = "gpt-5"\napproval_policy = "never"\n\n[model_providers.other]\nname = "Other"\nbase_url = "https://x/v1"\n'
    path.write_text(original)
    connect("codex", BASE)
    data = tomllib.loads(path.read_text())
    assert data["model_provider"] == "downshift" and data["model"] == "default"
    assert data["model_providers"]["downshift"] == {
        "name": "Downshift",
        "base_url": f"{BASE}/v1",
        "env_key": "DOWNSHIFT_API_KEY",
        "wire_api": "responses",
    }
    assert data["model_providers"]["other"]["name"] == "Other" and data["approval_policy"] == "never"
    assert TOKEN not in path.read_text()
    connect("codex", "http://127.0.0.1:9999")  # again, after a port change: follows it, same undo
    assert (
        tomllib.loads(path.read_text())["model_providers"]["downshift"]["base_url"]
        == "http://127.0.0.1:9999/v1"
    )
    disconnect("codex")
    assert tomllib.loads(path.read_text()) == tomllib.loads(original)


def test_codex_honours_codex_home(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_HOME", str(isolated_home / "elsewhere"))
    done = connect("codex", BASE)
    assert done.path == isolated_home / "elsewhere" / "config.toml" and done.backup is None
    disconnect("codex")
    assert not done.path.exists()  # connect made it; nothing else is in it


def test_opencode_json_gets_a_provider_reading_the_token_from_the_environment(isolated_home: Path) -> None:
    path = isolated_home / "config" / "opencode" / "opencode.json"  # XDG_CONFIG_HOME
    assert not path.exists()
    connect("opencode", BASE)
    data = json.loads(path.read_text())
    provider = data["provider"]["downshift"]
    assert provider["npm"] == "@ai-sdk/openai-compatible" and provider["options"]["baseURL"] == f"{BASE}/v1"
    assert provider["options"]["apiKey"] == "{env:DOWNSHIFT_API_KEY}" and set(provider["models"]) >= {
        "default"
    }
    assert data["model"] == "downshift/default" and data["small_model"] == "downshift/background"
    assert data["autoupdate"] is False
    disconnect("opencode")
    assert not path.exists()
    # with a file of the user's own: only their keys are left
    path.write_text(
        json.dumps(
            {
                "$schema": "https://opencode.ai/config.json",
                "provider": {"mine": {"npm": "x"}},
                "model": "mine/m",
            }
        )
    )
    connect("opencode", BASE)
    assert json.loads(path.read_text())["provider"]["mine"] == {"npm": "x"}
    disconnect("opencode")
    assert json.loads(path.read_text()) == {
        "$schema": "https://opencode.ai/config.json",
        "provider": {"mine": {"npm": "x"}},
        "model": "mine/m",
    }


def test_aider_conf_yml_keeps_comments_and_other_keys(isolated_home: Path) -> None:
    path = isolated_home / ".aider.conf.yml"
    original = "# my aider settings\nmodel: gpt-4o\nauto-commits: false\ndark-mode: true\n"
    path.write_text(original)
    connect("aider", BASE)
    text = path.read_text()
    assert "# my aider settings" in text and "auto-commits: false" in text and "dark-mode: true" in text
    assert f'openai-api-base: "{BASE}/v1"' in text and 'model: "openai/default"' in text
    assert 'weak-model: "openai/background"' in text and "gpt-4o" not in text and TOKEN not in text
    disconnect("aider")
    assert path.read_text() == original.replace("model: gpt-4o", 'model: "gpt-4o"')


def test_a_broken_file_is_refused_and_left_alone(isolated_home: Path) -> None:
    path = isolated_home / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text("{not json")
    with pytest.raises(ConnectError, match="not valid JSON"):
        connect("claude-code", BASE)
    assert path.read_text() == "{not json" and not is_connected("claude-code")
    with pytest.raises(ConnectError, match="not connected"):
        disconnect("claude-code")


def test_cli_connect_and_disconnect(isolated_home: Path, config_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli(["--config", str(config_path), "connect", "claude-code"]) == 0
    out = capsys.readouterr().out
    assert 'eval "$(downshift env --agent claude-code)"' in out and "$ANTHROPIC_AUTH_TOKEN" in out
    settings = json.loads((isolated_home / ".claude" / "settings.json").read_text())
    assert settings["env"]["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:")
    assert cli(["--config", str(config_path), "connect", "codex", "--shell", "fish"]) == 0
    assert "downshift env --agent codex --format fish | source" in capsys.readouterr().out
    assert cli(["--config", str(config_path), "disconnect", "claude-code"]) == 0
    assert not (isolated_home / ".claude" / "settings.json").exists()
    assert cli(["--config", str(config_path), "disconnect", "claude-code"]) == 1
    assert "not connected" in capsys.readouterr().err
    assert connect_mod.is_connected("codex")


def test_a_state_file_that_is_not_an_object_counts_as_not_connected(isolated_home: Path) -> None:
    """Downshift's own record of a connect, edited by hand into a list: ignored (as an unreadable one is),
    not a TypeError out of `connect`."""
    path = isolated_home / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"theme": "dark"}))
    state = connect_mod._state_file("claude-code")
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text("[]")
    assert not is_connected("claude-code")
    connect("claude-code", BASE)
    assert is_connected("claude-code")
    disconnect("claude-code")
    assert json.loads(path.read_text()) == {"theme": "dark"}

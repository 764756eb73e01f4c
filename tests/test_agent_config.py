"""`downshift env --agent NAME` for OpenCode, Qwen Code, Cline's CLI and Continue's CLI: the variables, and for
the two configured by a file, `--write` merging into it with the old file backed up."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import PROVIDER_KEY

from app.cli import main as cli
from app.core.agent_config import cline_settings_path, continue_config_path, write_agent_config


def env_json(capsys, config_path: Path, agent: str, *extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert cli(["env", "--config", str(config_path), "--agent", agent, "--format", "json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_opencode_gets_its_whole_provider_inline(capsys, config_path: Path, core) -> None:  # type: ignore[no-untyped-def]
    variables = env_json(capsys, config_path, "opencode")
    config = json.loads(variables["OPENCODE_CONFIG_CONTENT"])
    provider = config["provider"]["downshift"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"] == {"baseURL": "http://127.0.0.1:0/v1", "apiKey": "{env:DOWNSHIFT_API_KEY}"}
    assert (config["model"], config["small_model"]) == ("downshift/default", "downshift/background")
    assert config["autoupdate"] is False
    assert variables["DOWNSHIFT_API_KEY"] == core.token()  # the JSON itself holds no secret
    assert variables["OPENCODE_DISABLE_MODELS_FETCH"] == variables["OPENCODE_DISABLE_AUTOUPDATE"] == "1"


def test_opencode_json_survives_a_real_shell(capsys, config_path: Path, core) -> None:  # type: ignore[no-untyped-def]
    assert cli(["env", "--config", str(config_path), "--agent", "opencode"]) == 0
    script = capsys.readouterr().out
    out = subprocess.run(
        ["bash", "-c", script + '\nprintf %s "$OPENCODE_CONFIG_CONTENT"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out)["provider"]["downshift"]["options"]["apiKey"] == "{env:DOWNSHIFT_API_KEY}"


def test_qwen_code_gets_the_three_openai_variables(capsys, config_path: Path, core) -> None:  # type: ignore[no-untyped-def]
    assert env_json(capsys, config_path, "qwen-code") == {
        "OPENAI_BASE_URL": "http://127.0.0.1:0/v1",
        "OPENAI_API_KEY": core.token(),
        "OPENAI_MODEL": "default",
    }


def test_cline_write_merges_and_backs_up(capsys, config_path: Path, core, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    path = cline_settings_path()
    assert path == isolated_home / ".cline" / "data" / "settings" / "providers.json"
    path.parent.mkdir(parents=True)
    old = {
        "version": 1,
        "lastUsedProvider": "anthropic",
        "modes": {"plan": "x"},
        "providers": {"anthropic": {"settings": {"provider": "anthropic", "apiKey": "sk-ant-mine"}}},
    }
    path.write_text(json.dumps(old))

    variables = env_json(capsys, config_path, "cline", "--write")

    assert variables == {"CLINE_SESSION_BACKEND_MODE": "local"}
    data = json.loads(path.read_text())
    assert (
        data["providers"]["anthropic"] == old["providers"]["anthropic"]
    )  # the user's other provider is kept
    assert data["modes"] == {"plan": "x"} and data["lastUsedProvider"] == "openai-compatible"
    assert data["providers"]["openai-compatible"]["settings"] == {
        "provider": "openai-compatible",
        "apiKey": core.token(),
        "model": "default",
        "baseUrl": "http://127.0.0.1:0/v1",
    }
    (backup,) = path.parent.glob("providers.json.bak-*")
    assert json.loads(backup.read_text()) == old
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert PROVIDER_KEY not in path.read_text()

    assert (
        write_agent_config("cline", "http://127.0.0.1:0", core.token()).backup is None
    )  # unchanged: no new backup
    assert len(list(path.parent.glob("providers.json.bak-*"))) == 1


def test_cline_write_refuses_a_broken_file(capsys, config_path: Path, core) -> None:  # type: ignore[no-untyped-def]
    path = cline_settings_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert cli(["env", "--config", str(config_path), "--agent", "cline", "--write"]) == 1
    assert "is not valid JSON" in capsys.readouterr().err
    assert path.read_text() == "{not json"  # left as it was


def test_continue_write_is_a_file_of_its_own(capsys, config_path: Path, core, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    path = continue_config_path()
    assert path == isolated_home / ".continue" / "downshift.yaml"
    path.parent.mkdir(parents=True)
    (path.parent / "config.yaml").write_text("name: mine\n")
    path.write_text("name: an older downshift.yaml\n")
    assert cli(["env", "--config", str(config_path), "--agent", "continue", "--write"]) == 0
    out = capsys.readouterr()
    assert "cn --config ~/.continue/downshift.yaml" in out.out and f"wrote {path}" in out.err
    text = path.read_text()
    assert 'apiBase: "http://127.0.0.1:0/v1"' in text and f'apiKey: "{core.token()}"' in text
    assert 'model: "default"' in text and "roles: [chat, edit, apply]" in text
    assert (
        path.parent / "config.yaml"
    ).read_text() == "name: mine\n"  # Continue's own config is never touched
    (backup,) = path.parent.glob("downshift.yaml.bak-*")
    assert backup.read_text() == "name: an older downshift.yaml\n"


def test_qwen_write_turns_usage_statistics_off(capsys, config_path: Path, core, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    path = isolated_home / ".qwen" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"privacy": {"other": 1}, "ui": {"theme": "dark"}}))
    assert cli(["env", "--config", str(config_path), "--agent", "qwen-code", "--write"]) == 0
    assert "export OPENAI_MODEL='default'" in capsys.readouterr().out
    assert json.loads(path.read_text()) == {
        "privacy": {"other": 1, "usageStatisticsEnabled": False},
        "ui": {"theme": "dark"},
    }
    (backup,) = path.parent.glob("settings.json.bak-*")
    assert json.loads(backup.read_text())["ui"] == {"theme": "dark"}


def test_gemini_write_selects_api_key_auth(capsys, config_path: Path, core, isolated_home: Path) -> None:  # type: ignore[no-untyped-def]
    """Gemini CLI refuses the variables alone (exit 41) until its settings file selects API-key auth."""
    path = isolated_home / ".gemini" / "settings.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps({"ui": {"theme": "GitHub"}, "security": {"auth": {"selectedType": "oauth-personal"}}})
    )
    assert cli(["env", "--config", str(config_path), "--agent", "gemini", "--write"]) == 0
    assert "export GOOGLE_GEMINI_BASE_URL=" in capsys.readouterr().out
    assert json.loads(path.read_text()) == {
        "ui": {"theme": "GitHub"},
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
    }
    (backup,) = path.parent.glob("settings.json.bak-*")
    assert json.loads(backup.read_text())["security"]["auth"]["selectedType"] == "oauth-personal"


@pytest.mark.parametrize("agent", ["opencode", "aider", "codex"])
def test_write_is_only_for_file_agents(capsys, config_path: Path, core, agent: str) -> None:  # type: ignore[no-untyped-def]
    assert cli(["env", "--config", str(config_path), "--agent", agent, "--write"]) == 2
    assert "--write is for agents configured by a file" in capsys.readouterr().err

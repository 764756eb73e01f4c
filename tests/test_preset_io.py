"""Sharing a preset as TOML: export holds the preset and its providers (no keys); import merges safely."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import proxy_config_text

from app.core.config import Config, ConfigError, Provider, load_config, save_config
from app.core.preset_io import export_preset, import_presets, merge_presets, preset_toml


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(proxy_config_text("http://127.0.0.1:5000"))
    return load_config(path)


def test_export_holds_the_preset_and_only_the_providers_it_uses(config: Config, tmp_path: Path) -> None:
    text = preset_toml(config, "cheap")
    data = tomllib.loads(text)
    assert set(data) == {"providers", "presets"}
    assert [p["name"] for p in data["providers"]] == ["cheapco", "backup"]
    assert data["presets"][0]["plan"] == "backup/deepseek/deepseek-chat"
    path = tmp_path / "cheap.downshift.toml"
    export_preset(config, "cheap", path)
    assert path.read_text() == text
    with pytest.raises(ConfigError, match="no preset named 'nope'"):
        preset_toml(config, "nope")


def test_import_into_the_same_config_renames_the_preset_and_reuses_providers(
    config: Config, tmp_path: Path
) -> None:
    result = merge_presets(config, preset_toml(config, "cheap"))
    assert result.presets == ("cheap (imported)",) and result.new_providers == ()
    assert set(result.config.providers) == set(config.providers)
    assert result.config.presets["cheap (imported)"].roles == config.presets["cheap"].roles
    assert result.config.active == "cheap"
    save_config(result.config, tmp_path / "after.toml")  # still a valid config


def test_import_into_another_config_adds_providers_and_follows_clashing_names(
    config: Config, tmp_path: Path
) -> None:
    text = preset_toml(config, "cheap")
    other = Config(providers={"backup": Provider("backup", "https://elsewhere.example/v1")})
    result = merge_presets(other, text, "team.toml")
    assert result.presets == ("cheap",)
    assert result.new_providers == ("cheapco", "backup-2")
    assert result.config.providers["backup"].base_url == "https://elsewhere.example/v1"  # untouched
    cheap = result.config.presets["cheap"]
    assert cheap.roles["plan"].provider == "backup-2" and cheap.fallback[0].provider == "backup-2"
    assert result.config.active == "cheap"
    # the same endpoint under another name is reused instead of duplicated
    renamed = Config(providers={"mine": replace(config.providers["cheapco"], name="mine")})
    reused = merge_presets(renamed, text)
    assert reused.config.presets["cheap"].default.provider == "mine"
    path = tmp_path / "team.toml"
    path.write_text(text)
    assert import_presets(other, path).presets == ("cheap",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not toml [", "is not valid TOML"),
        ("[proxy]\nport = 1\n", "proxy: is not part of a preset file"),
        ("", "presets: the file holds no preset"),
        ('[[presets]]\nname = "x"\ndefault = "ghost/model"\n', "unknown provider 'ghost'"),
    ],
)
def test_bad_preset_files_are_refused_with_a_reason(config: Config, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        merge_presets(config, text, "shared.toml")


def test_unreadable_file(config: Config, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        import_presets(config, tmp_path / "missing.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        import_presets(config, tmp_path / "bin.toml")

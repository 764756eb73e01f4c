"""Config edits behind the Providers and Presets pages, preset tiers (the tray icon) and [ui] prefs; no Qt."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import proxy_config_text

from app.core.config import Budget, Config, ConfigError, Preset, Provider, Target, load_config, save_config
from app.core.config_edit import (
    duplicate_preset,
    provider_users,
    put_preset,
    remove_preset,
    remove_provider,
    set_budgets,
    upsert_provider,
)
from app.core.preset_tier import preset_tier, target_is_premium
from app.core.ui_prefs import DEFAULTS, pref, prefs, with_prefs


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(proxy_config_text("http://127.0.0.1:5000"))
    return load_config(path)


def saved(config: Config, tmp_path: Path) -> Config:
    """Through the real validator and file, as the GUI's save does."""
    path = tmp_path / "round.toml"
    save_config(config, path)
    return load_config(path)


def test_add_and_replace_a_provider(config: Config, tmp_path: Path) -> None:
    added = upsert_provider(config, Provider("groq", "https://api.groq.com/openai/v1", kind="groq"))
    assert list(added.providers)[-1] == "groq"
    changed = upsert_provider(added, Provider("groq", "https://other/v1", kind="groq"), old_name="groq")
    assert saved(changed, tmp_path).providers["groq"].base_url == "https://other/v1"
    with pytest.raises(ConfigError, match="already a provider named 'backup'"):
        upsert_provider(config, Provider("backup", "https://x/v1"))
    with pytest.raises(ConfigError, match="cannot contain '/'"):
        upsert_provider(config, Provider("a/b", "https://x/v1"))
    with pytest.raises(ConfigError, match="needs a name"):
        upsert_provider(config, Provider("  ", "https://x/v1"))


def test_renaming_a_provider_carries_presets_and_budgets(config: Config, tmp_path: Path) -> None:
    config = set_budgets(config, [Budget("day", 2.0, provider="backup")])
    renamed = upsert_provider(config, replace(config.providers["backup"], name="deep"), old_name="backup")
    assert list(renamed.providers) == ["cheapco", "deep", "premium", "deadco"]  # same position
    cheap = renamed.presets["cheap"]
    assert cheap.roles["plan"] == Target("deep", "deepseek/deepseek-chat")
    assert cheap.fallback == (Target("deep", "deepseek/deepseek-chat"),)
    assert renamed.presets["flaky"].fallback[0].provider == "deep"
    assert renamed.budgets[0].provider == "deep"
    assert saved(renamed, tmp_path).presets["cheap"].roles["plan"].provider == "deep"


def test_a_provider_in_use_cannot_be_removed(config: Config) -> None:
    assert provider_users(config, "backup") == ["preset cheap", "preset flaky"]
    with pytest.raises(ConfigError, match="is still used by preset cheap, preset flaky; change those first"):
        remove_provider(config, "backup")
    spare = upsert_provider(config, Provider("spare", "https://x/v1"))
    assert "spare" not in remove_provider(spare, "spare").providers


def test_presets_add_rename_duplicate_remove(config: Config, tmp_path: Path) -> None:
    new = Preset("kimi", {"default": Target("cheapco", "moonshotai/kimi-k2")})
    config = put_preset(config, new)
    assert list(config.presets)[-1] == "kimi"
    config = set_budgets(config, [Budget("day", 1.0, action="switch", switch_to="cheap")])
    renamed = put_preset(config, replace(config.presets["cheap"], name="thrifty"), old_name="cheap")
    assert list(renamed.presets)[0] == "thrifty"
    assert (
        renamed.active == "thrifty"
        and renamed.cheap == "thrifty"
        and renamed.budgets[0].switch_to == "thrifty"
    )
    saved(renamed, tmp_path)
    copy, name = duplicate_preset(renamed, "thrifty")
    assert name == "thrifty copy" and copy.presets[name].roles == renamed.presets["thrifty"].roles
    assert duplicate_preset(copy, "thrifty")[1] == "thrifty copy 2"
    with pytest.raises(ConfigError, match="is the active preset; activate another one first"):
        remove_preset(copy, "thrifty")
    with pytest.raises(ConfigError, match="is where budget 1 switches to"):
        remove_preset(copy.with_active("kimi"), "thrifty")
    assert "kimi" not in remove_preset(copy, "kimi").presets
    with pytest.raises(ConfigError, match="already a preset named 'premium'"):
        put_preset(config, replace(new, name="premium"))
    with pytest.raises(ConfigError, match="needs a default target"):
        put_preset(config, Preset("x", {"plan": Target("cheapco", "m")}))


def test_preset_tiers_drive_the_tray_icon(config: Config) -> None:
    assert preset_tier(config, config.presets["cheap"]) == "cheap"
    assert preset_tier(config, config.presets["premium"]) == "premium"  # an Anthropic-kind provider
    mixed = Preset(
        "mixed",
        {"default": Target("cheapco", "qwen/qwen3-coder"), "plan": Target("premium", "claude-opus-4-5")},
    )
    assert preset_tier(config, mixed) == "mixed"
    assert preset_tier(config, None) == "cheap"
    # a premium preset on a provider of no frontier kind: its own targets count as premium...
    custom = replace(
        config, providers={**config.providers, "premium": replace(config.providers["premium"], kind="custom")}
    )
    premium_target = config.presets["premium"].default
    assert target_is_premium(custom, premium_target)
    assert not target_is_premium(custom, Target("premium", "another-model"))
    # ...unless the cheap preset runs on the very same target (the out-of-the-box Ollama config)
    same = replace(custom, presets={**custom.presets, "cheap": Preset("cheap", {"default": premium_target})})
    assert preset_tier(same, same.presets["premium"]) == "cheap"
    local = replace(
        config, providers={**config.providers, "premium": replace(config.providers["premium"], local=True)}
    )
    assert not target_is_premium(local, Target("premium", "some-model"))


def test_ui_prefs_merge_defaults_and_ignore_bad_values(config: Config, tmp_path: Path) -> None:
    assert prefs(config) == DEFAULTS
    changed = with_prefs(config, agent="aider", start_minimised=True)
    assert saved(changed, tmp_path).ui == {"agent": "aider", "start_minimised": True}
    assert pref(with_prefs(changed, agent="claude-code"), "agent") == "claude-code"
    assert "agent" not in with_prefs(changed, agent="claude-code").ui  # defaults are not written
    odd = replace(config, ui={"agent": "vim", "start_minimised": "yes", "theme": "dark", "other": 3})
    assert (pref(odd, "agent"), pref(odd, "start_minimised"), pref(odd, "theme"), pref(odd, "other")) == (
        "claude-code",
        False,
        "dark",
        3,
    )
    with pytest.raises(ValueError, match="theme must be one of system, light, dark"):
        with_prefs(config, theme="blue")

"""The Export page's "direct to provider" variant: real URLs, real model names, and the real key."""

from __future__ import annotations

import pytest

from app.core.config import Preset, Provider, Target
from app.core.direct_env import DirectEnvError, direct_env, direct_export_text, mask_key

OR = Provider("or", "https://openrouter.ai/api/v1", kind="openrouter")
ANT = Provider("ant", "https://api.anthropic.com/v1", api="anthropic", kind="anthropic")
PRESET = Preset(
    "p",
    {
        "default": Target("or", "qwen/qwen3-coder"),
        "plan": Target("ant", "claude-opus-4-5"),
        "background": Target("ant", "claude-haiku-4-5"),
    },
)


def test_openai_format_provider_for_generic_and_aider() -> None:
    assert direct_env("generic", OR, "sk-or", PRESET) == {
        "OPENAI_BASE_URL": "https://openrouter.ai/api/v1",
        "OPENAI_API_BASE": "https://openrouter.ai/api/v1",
        "OPENAI_API_KEY": "sk-or",
        "OPENAI_MODEL": "qwen/qwen3-coder",
    }
    assert direct_env("aider", OR, "sk-or", PRESET)["AIDER_MODEL"] == "openai/qwen/qwen3-coder"
    assert "OPENAI_MODEL" not in direct_env("generic", OR, "k", None)


def test_claude_code_direct_needs_an_anthropic_provider() -> None:
    env = direct_env("claude-code", ANT, "sk-ant", PRESET)
    assert env["ANTHROPIC_BASE_URL"] == "https://api.anthropic.com"
    assert env["ANTHROPIC_API_KEY"] == "sk-ant"
    assert env["ANTHROPIC_MODEL"] == "claude-opus-4-5"  # no default on this provider: its first role
    assert env["ANTHROPIC_DEFAULT_OPUS_MODEL"] == "claude-opus-4-5"
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "claude-haiku-4-5"
    assert "ANTHROPIC_DEFAULT_SONNET_MODEL" not in env
    with pytest.raises(
        DirectEnvError, match="Claude Code speaks the Anthropic Messages API and or is OpenAI-format"
    ):
        direct_env("claude-code", OR, "k", PRESET)


def test_text_warns_in_a_comment_and_masking_hides_the_key() -> None:
    text = direct_export_text("generic", "bash", OR, "sk-or-1234567890abcdef", PRESET)
    assert text.startswith("# Direct to or: no Downshift proxy")
    assert "export OPENAI_API_KEY='sk-or-1234567890abcdef'" in text
    assert mask_key("sk-or-1234567890abcdef") == "sk-or-…cdef"
    assert mask_key("short") == "short"
    with pytest.raises(DirectEnvError, match="unknown agent"):
        direct_env("vim", OR, "k", PRESET)

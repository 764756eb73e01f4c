"""Context-aware routing: a preset's long_context rule sends loop calls with big prompts to another role,
decided by the body's length for small bodies and by the offline token counter for the rest."""

from __future__ import annotations

import pytest
from analytics_support import ANTHROPIC_TOOLS, TOOLS, chat, messages_api, settled, user
from conftest import proxy_config_text

from app.core import long_context
from app.core.config import ConfigError, LongContext, parse_config, to_toml_dict
from app.testing.script import Reply

LONG = """
[[presets]]
name = "long"
default = "cheapco/qwen/qwen3-coder"
plan = "backup/deepseek/deepseek-chat"
background = "cheapco/qwen/qwen3-coder-30b"
patterns = { "*haiku*" = "background" }
long_context = { above_tokens = 3000, role = "plan" }
"""
BASE = {
    "providers": [
        {"name": "cheapco", "base_url": "http://x/v1"},
        {"name": "backup", "base_url": "http://z/v1"},
    ]
}


def preset(**extra):  # type: ignore[no-untyped-def]
    return {**BASE, "presets": [{"name": "p", "default": "cheapco/q", "plan": "backup/d", **extra}]}


def test_the_rule_parses_validates_and_round_trips() -> None:
    config = parse_config(preset(long_context={"above_tokens": 60000}))
    assert config.presets["p"].long_context == LongContext(60000, "plan")
    assert parse_config(to_toml_dict(config)).presets["p"].long_context == LongContext(60000, "plan")
    assert parse_config(preset()).presets["p"].long_context is None
    for bad, match in (
        ({"above_tokens": 0}, "above_tokens: must be a whole number of tokens above 0"),
        ({"above_tokens": "60k"}, "above_tokens: must be int"),
        ({"above_tokens": 1000, "role": "boss"}, "role: must be one of default, plan"),
        ({"role": "plan"}, "above_tokens: is required"),
        ({"above_tokens": 1000, "roll": "plan"}, "long_context.roll: unknown key"),
    ):
        with pytest.raises(ConfigError, match=match):
            parse_config(preset(long_context=bad))


def test_a_long_loop_call_goes_to_the_plan_role(proxy, mock, token, core, config_path) -> None:  # type: ignore[no-untyped-def]
    config_path.write_text(proxy_config_text(mock.base_url, active="long") + LONG)
    big = "def handler(request):\n    return render(request, 'index.html', context)\n" * 400  # ~9K tokens
    for _ in range(6):
        mock.enqueue(Reply(text="ok"))
    chat(proxy, token, user("short question"), tools=TOOLS)
    chat(proxy, token, user(big), tools=TOOLS)
    chat(proxy, token, user(big), model="claude-3-5-haiku-latest")  # a side call keeps its route
    chat(proxy, token, user(big), model="cheapco/qwen/qwen3-coder")  # so does an explicit target
    messages_api(proxy, token, user(big), tools=ANTHROPIC_TOOLS)  # Claude Code's Messages API, same rule
    assert [r.model for r in mock.requests] == [
        "qwen/qwen3-coder",
        "deepseek/deepseek-chat",
        "qwen/qwen3-coder-30b",
        "qwen/qwen3-coder",
        "deepseek/deepseek-chat",
    ]
    rows = settled(core)
    assert [r["role"] for r in rows] == ["default", "plan", "background", None, "plan"]


def test_small_bodies_are_decided_by_length_alone(proxy, mock, token, core, config_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    config_path.write_text(proxy_config_text(mock.base_url, active="long") + LONG.replace("3000", "60000"))
    counted = []
    real = long_context.prompt_tokens
    monkeypatch.setattr(
        long_context, "prompt_tokens", lambda data, api: counted.append(api) or real(data, api)
    )
    mock.enqueue(Reply(text="ok"), Reply(text="ok"))
    chat(proxy, token, user("x" * 50_000))  # 50 KB: under 60K tokens by length alone
    assert counted == []
    chat(proxy, token, user("lorem ipsum dolor sit amet " * 3000))  # 81 KB: counted (~18K tokens), not long
    assert counted == ["openai"]
    assert [r.model for r in mock.requests] == ["qwen/qwen3-coder", "qwen/qwen3-coder"]


def test_a_body_the_counter_cannot_read_keeps_its_route(
    proxy, mock, token, core, config_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    config_path.write_text(proxy_config_text(mock.base_url, active="long") + LONG)

    def broken(data, api):  # type: ignore[no-untyped-def]
        raise TypeError("odd body")

    monkeypatch.setattr(long_context, "prompt_tokens", broken)
    mock.enqueue(Reply(text="ok"))
    assert chat(proxy, token, user("y" * 20_000)).status_code == 200
    assert mock.requests[-1].model == "qwen/qwen3-coder"


def test_the_one_click_fix_targets_the_preset_whose_loop_runs_the_model() -> None:
    config = parse_config(
        {
            **preset(),
            "presets": [
                {"name": "cheap", "default": "cheapco/q", "plan": "backup/d"},
                {"name": "solo", "default": "backup/d"},
            ],
            "routing": {"active": "solo"},
        }
    )
    fix = long_context.fix_for(config, "cheapco/q", 64_000)
    assert fix is not None and (fix["preset"], fix["to"], fix["usable"], fix["already"]) == (
        "cheap",
        "backup/d",
        True,
        False,
    )
    solo = long_context.fix_for(config, "backup/d", 64_000)
    assert solo is not None and not solo["usable"] and "no plan model of its own" in solo["why"]
    assert long_context.fix_for(config, "nobody/x", 64_000) is None
    fixed = long_context.with_rule(config, "cheap", 64_000)
    assert fixed.presets["cheap"].long_context == LongContext(64_000, "plan")
    assert long_context.fix_for(fixed, "cheapco/q", 64_000)["already"]  # type: ignore[index]
    with pytest.raises(KeyError):
        long_context.with_rule(config, "nope", 1)


def test_a_block_budget_on_the_long_context_provider_applies(proxy, mock, token, core, config_path) -> None:  # type: ignore[no-untyped-def]
    """The rule sends long prompts to another provider; a used-up block budget on that provider refuses them."""
    config_path.write_text(
        proxy_config_text(mock.base_url, active="long")
        + LONG
        + """
[[budgets]]
period = "day"
limit_usd = 0.0
provider = "backup"
action = "block"
"""
    )
    mock.enqueue(Reply(text="ok"))
    assert chat(proxy, token, user("short question"), tools=TOOLS).status_code == 200  # cheapco: not blocked
    big = "def handler(request):\\n    return render(request, 'index.html', context)\\n" * 400
    refused = chat(proxy, token, user(big), tools=TOOLS)
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "budget_exceeded"
    assert [r.model for r in mock.requests] == ["qwen/qwen3-coder"]

from __future__ import annotations

import pytest

from app.core.config import Target, parse_config
from app.core.routing import RoutingError, route

CONFIG = {
    "providers": [
        {"name": "cheapco", "base_url": "http://x/v1"},
        {"name": "premium", "base_url": "http://y/v1", "api": "anthropic"},
        {"name": "backup", "base_url": "http://z/v1"},
    ],
    "presets": [
        {
            "name": "mixed",
            "default": "cheapco/qwen3-coder",
            "plan": "premium/claude-opus",
            "background": "cheapco/small",
            "patterns": {"*haiku*": "background", "gpt-5*": "plan"},
            "fallback": ["backup/deepseek-chat", "cheapco/qwen3-coder"],
        }
    ],
}


def test_role_name_pattern_explicit_and_default() -> None:
    config = parse_config(CONFIG)
    r = route(config, "plan")
    assert (r.role, r.reason, r.targets[0]) == ("plan", "role", Target("premium", "claude-opus"))
    r = route(config, "claude-3-5-HAIKU-latest")
    assert (r.role, r.reason, r.targets[0]) == ("background", "pattern", Target("cheapco", "small"))
    r = route(config, "backup/some/model")
    assert (r.role, r.reason, r.targets[0]) == (None, "explicit", Target("backup", "some/model"))
    r = route(config, "anything-else")
    assert (r.role, r.reason) == ("default", "default")
    # the fallback chain follows the target, without repeating it
    assert r.targets == (Target("cheapco", "qwen3-coder"), Target("backup", "deepseek-chat"))
    assert route(config, None).role == "default"
    assert route(config, "unknownprovider/x").reason == "default"


def test_no_preset_is_a_clear_error() -> None:
    with pytest.raises(RoutingError, match="no routing preset"):
        route(parse_config({}), "x")

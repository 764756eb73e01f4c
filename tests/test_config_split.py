"""The config split into model / parse / store (#16): every public name still imports from
`app.core.config`, the TOML written for a config is the same as before the split (keys, values and order),
and the config and the price table save through one `atomic_write`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import app.core.config as config_module
from app.core import price_table
from app.core.config import load_config, parse_config, save_config, to_toml_dict

# Every field set to something other than its default, so every branch of to_toml_dict writes.
FULL = """[proxy]
host = "localhost"
port = 9000
allow_remote = true
max_body_mb = 8
allowed_origins = ["http://localhost:3000"]

[[providers]]
name = "or"
base_url = "https://openrouter.ai/api/v1"
api = "openai"
api_key_env = "OPENROUTER_API_KEY"
kind = "openrouter"
local = true
max_tokens = 4096
hourly_cost = 1.5
headers = { "X-Title" = "downshift" }
timeouts = { connect = 5, first_byte = 60, idle = 30 }

[[providers]]
name = "anth"
base_url = "https://api.anthropic.com/v1"
api = "anthropic"

[[presets]]
name = "cheap"
description = "loop"
default = "or/qwen"
plan = "anth/opus"
background = "or/small"
subagent = "or/sub"
patterns = { "*opus*" = "plan" }
fallback = ["anth/sonnet", "or/other"]
escalate = { threshold = 0.5, window = 5, role = "plan" }
long_context = { above_tokens = 100000, role = "plan" }
shadow = { target = "anth/opus", share = 0.2, max_usd_per_day = 3 }

[[presets]]
name = "premium"
default = "anth/opus"

[routing]
active = "premium"
cheap = "cheap"
premium = "premium"

[prices."or/qwen"]
input = 0.1
output = 0.3
cache_read = 0.01

[logging]
store_bodies = true
body_max_bytes = 1000
retention_days = 30

[tasks]
idle_minutes = 10
tool_failure_patterns = ["boom"]

[[budgets]]
period = "day"
limit_usd = 5
action = "switch"
switch_to = "cheap"

[[budgets]]
period = "month"
limit_usd = 50
provider = "anth"

[[budgets]]
period = "month"
limit_usd = 10
action = "block"
member = "ann"

[ui]
theme = "dark"

[team]
member = "ann"
machine = "box"
ledger = "postgresql://ann@db:5432/ledger"
rate_per_minute = 100
"""

EXPECTED = {
    "proxy": {
        "host": "localhost",
        "port": 9000,
        "allow_remote": True,
        "max_body_mb": 8.0,
        "allowed_origins": ["http://localhost:3000"],
    },
    "providers": [
        {
            "name": "or",
            "base_url": "https://openrouter.ai/api/v1",
            "api": "openai",
            "kind": "openrouter",
            "api_key_env": "OPENROUTER_API_KEY",
            "local": True,
            "max_tokens": 4096,
            "hourly_cost": 1.5,
            "headers": {"X-Title": "downshift"},
            "timeouts": {"connect": 5.0, "first_byte": 60.0, "idle": 30.0},
        },
        {"name": "anth", "base_url": "https://api.anthropic.com/v1", "api": "anthropic"},
    ],
    "presets": [
        {
            "name": "cheap",
            "description": "loop",
            "default": "or/qwen",
            "plan": "anth/opus",
            "background": "or/small",
            "subagent": "or/sub",
            "patterns": {"*opus*": "plan"},
            "fallback": ["anth/sonnet", "or/other"],
            "escalate": {"threshold": 0.5, "window": 5, "role": "plan"},
            "long_context": {"above_tokens": 100000, "role": "plan"},
            "shadow": {"target": "anth/opus", "share": 0.2, "max_usd_per_day": 3.0},
        },
        {"name": "premium", "default": "anth/opus"},
    ],
    "routing": {"active": "premium", "cheap": "cheap", "premium": "premium"},
    "prices": {"or/qwen": {"input": 0.1, "output": 0.3, "cache_read": 0.01}},
    "logging": {"store_bodies": True, "body_max_bytes": 1000, "retention_days": 30},
    "tasks": {"idle_minutes": 10.0, "tool_failure_patterns": ["boom"]},
    "budgets": [
        {"period": "day", "limit_usd": 5.0, "action": "switch", "switch_to": "cheap"},
        {"period": "month", "limit_usd": 50.0, "provider": "anth"},
        {"period": "month", "limit_usd": 10.0, "action": "block", "member": "ann"},
    ],
    "ui": {"theme": "dark"},
    "team": {
        "member": "ann",
        "machine": "box",
        "ledger": "postgresql://ann@db:5432/ledger",
        "rate_per_minute": 100.0,
    },
}

PUBLIC = [
    "APIS",
    "ROLES",
    "Budget",
    "Config",
    "ConfigError",
    "ConfigStore",
    "Escalation",
    "LongContext",
    "Preset",
    "Price",
    "Provider",
    "Shadow",
    "Target",
    "Team",
    "Timeouts",
    "atomic_write",
    "backup_path",
    "default_config",
    "is_loopback_host",
    "is_private_file",
    "keep_aside_if_damaged",
    "load_config",
    "parse_config",
    "save_config",
    "to_toml_dict",
]


def test_every_public_name_still_imports_from_app_core_config() -> None:
    missing = [name for name in PUBLIC if not hasattr(config_module, name)]
    assert not missing
    assert sorted(config_module.__all__) == sorted(PUBLIC)


def test_to_toml_dict_writes_every_set_field_as_before() -> None:
    written = to_toml_dict(parse_config(tomllib.loads(FULL)))
    assert written == EXPECTED
    assert json.dumps(written) == json.dumps(EXPECTED)  # same key order, so a saved file keeps its layout


def test_full_config_round_trips_through_a_file(tmp_path: Path) -> None:
    config = parse_config(tomllib.loads(FULL))
    path = tmp_path / "config.toml"
    save_config(config, path)
    assert load_config(path) == config


def test_config_and_price_table_save_through_one_atomic_write() -> None:
    assert price_table.atomic_write is config_module.atomic_write


def test_price_table_save_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "prices.json"
    price_table.save_table(price_table.default_table(), path)
    assert price_table.load_table(path).to_json() == price_table.default_table().to_json()
    assert [p.name for p in path.parent.iterdir()] == ["prices.json"]

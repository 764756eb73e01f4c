from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.core.config import (
    ConfigError,
    ConfigStore,
    Target,
    is_private_file,
    load_config,
    parse_config,
    save_config,
)

GOOD = """
[proxy]
host = "127.0.0.1"
port = 8765

[[providers]]
name = "openrouter"
base_url = "https://openrouter.ai/api/v1"
api = "openai"
api_key_env = "OPENROUTER_API_KEY"

[[providers]]
name = "deepseek"
base_url = "https://api.deepseek.com/v1"

[[providers]]
name = "premium-provider"
base_url = "https://api.anthropic.com/v1"
api = "anthropic"

[[presets]]
name = "cheap"
default = "openrouter/qwen/qwen3-coder"

[[presets]]
name = "plan-high"
default = "openrouter/qwen/qwen3-coder"
plan = "premium-provider/some-frontier-model"
patterns = { "*opus*" = "plan", "*haiku*" = "background" }
fallback = ["deepseek/deepseek-chat"]

[routing]
active = "cheap"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_issue_example_parses(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.active == "cheap"
    plan_high = config.presets["plan-high"]
    assert plan_high.default == Target("openrouter", "qwen/qwen3-coder")  # split at the first '/'
    assert plan_high.target_for("plan") == Target("premium-provider", "some-frontier-model")
    assert plan_high.target_for("background") == plan_high.default  # unset role falls back to default
    assert plan_high.fallback == (Target("deepseek", "deepseek-chat"),)
    assert config.providers["premium-provider"].api == "anthropic"


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (lambda t: t.replace("port = 8765", 'port = "x"'), "proxy.port", "must be int"),
        (
            lambda t: t.replace(
                'default = "openrouter/qwen/qwen3-coder"\n\n[[presets]]',
                'default = "nowhere/x"\n\n[[presets]]',
            ),
            "presets[0].default",
            "unknown provider 'nowhere'",
        ),
        (lambda t: t.replace('name = "deepseek"\n', ""), "providers[1].name", "required but missing"),
        (lambda t: t.replace("[routing]", 'colour = "blue"\n[routing]'), "presets[1].colour", "unknown key"),
        (lambda t: t + "\n[logging]\nstore_bodys = true\n", "logging.store_bodys", "unknown key"),
        (
            lambda t: t.replace('active = "cheap"', 'active = "nope"'),
            "routing.active",
            "no preset named 'nope'",
        ),
        (lambda t: t.replace('api = "anthropic"', 'api = "grpc"'), "providers[2].api", "must be one of"),
        (
            lambda t: t.replace('"*haiku*" = "background"', '"*haiku*" = "cheapest"'),
            "presets[1].patterns.*haiku*",
            "role must be",
        ),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, change, key: str, words: str) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, change(GOOD))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and key in message and words in message, message


def test_bad_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[proxy\nport = 1")
    with pytest.raises(ConfigError, match="is not valid TOML") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_save_round_trips_and_is_atomic_and_private(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    out = tmp_path / "sub" / "saved.toml"
    save_config(config, out)
    assert load_config(out) == config
    assert is_private_file(out)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".saved")]  # no temp file left


def test_store_picks_up_changes_and_keeps_last_good(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    errors: list[ConfigError] = []
    store = ConfigStore(path, on_error=errors.append)
    assert store.current().active == "cheap"
    path.write_text(GOOD.replace('active = "cheap"', 'active = "plan-high"'))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert store.current().active == "plan-high"
    path.write_text(GOOD.replace('active = "cheap"', 'active = "missing"') + "\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2_000_000))
    assert store.current().active == "plan-high"  # bad file: last good config stays in force
    assert errors and "routing.active" in str(errors[-1])
    assert store.last_error is not None


def test_with_active_rejects_unknown_preset(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="no preset named 'x'"):
        config.with_active("x")
    assert parse_config({"presets": []}).active == ""


def test_two_updates_at_once_both_land(tmp_path: Path) -> None:
    """The budget switch saves on a thread of its own while the window saves on its writer thread, both with
    `ConfigStore.update`: one change read-modified-written over the other must not lose it."""
    import dataclasses
    import threading

    path = write(tmp_path, GOOD)
    store = ConfigStore(path)
    read = threading.Event()

    def slow_switch(config):  # type: ignore[no-untyped-def]
        read.set()
        time.sleep(0.3)  # a slow disk, a network home: the other update comes in meanwhile
        return config.with_active("plan-high")

    switch = threading.Thread(target=store.update, args=(slow_switch,))
    switch.start()
    assert read.wait(5)
    store.update(lambda c: dataclasses.replace(c, retention_days=7))
    switch.join(5)
    for config in (store.current(), load_config(path)):
        assert (config.active, config.retention_days) == ("plan-high", 7)


def test_many_writers_through_update_lose_nothing(tmp_path: Path) -> None:
    """Four writers (the window's writer thread, a budget switch, the CLI, a start-up port pick), each adding
    its own changes through `update`: every one of them is in the file at the end."""
    import dataclasses
    import threading

    path = write(tmp_path, GOOD)
    store = ConfigStore(path)

    def writer(n: int) -> None:
        for i in range(8):
            store.update(lambda c, key=f"w{n}-{i}": dataclasses.replace(c, ui={**c.ui, key: True}))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    expected = {f"w{n}-{i}" for n in range(4) for i in range(8)}
    assert set(load_config(path).ui) >= expected and set(store.current().ui) >= expected

"""Counterfactual replay: the logged calls re-priced per role on another preset's targets, no call sent."""

from __future__ import annotations

import json
import time

import pytest
from analytics_support import generated_call, write_log
from conftest import proxy_config_text

from app.core.queries.replay import CAVEAT, replay

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)

PRICES = """
[[presets]]
name = "mystery"
default = "backup/mystery-model-x"

[prices."premium/claude-sonnet-4-6"]
input = 3.0
output = 15.0
cache_read = 0.3
cache_write = 3.75

[prices."backup/deepseek/deepseek-chat"]
input = 0.5
output = 1.0
cache_read = 0.1
"""
T0 = time.time() - 2 * 86400


def call(
    target: str,
    role: str | None,
    *,
    at: float,
    input_: int,
    cache_read: int = 0,
    output: int,
    cost: float | None,
):  # type: ignore[no-untyped-def]
    rec = generated_call(target, 0, at=at, role=role or "default", cost=cost)
    rec.role = role
    rec.input_tokens, rec.cache_read_tokens, rec.output_tokens = input_, cache_read, output
    return rec


@pytest.fixture
def logged(core, config_path, mock):  # type: ignore[no-untyped-def]
    config_path.write_text(proxy_config_text(mock.base_url) + PRICES)
    write_log(
        core,
        [
            call(
                "cheapco/qwen/qwen3-coder",
                "default",
                at=T0,
                input_=100_000,
                cache_read=50_000,
                output=10_000,
                cost=0.05,
            ),
            call(
                "cheapco/qwen/qwen3-coder",
                "default",
                at=T0 + 1000,
                input_=100_000,
                cache_read=50_000,
                output=10_000,
                cost=0.05,
            ),
            call(
                "backup/deepseek/deepseek-chat", "plan", at=T0 + 2000, input_=20_000, output=2_000, cost=0.012
            ),
            call(
                "backup/deepseek/deepseek-chat", None, at=T0 + 3000, input_=20_000, output=2_000, cost=0.012
            ),
        ],
    )
    return core


def test_calls_are_repriced_per_role_on_the_other_presets_targets(logged, mock) -> None:  # type: ignore[no-untyped-def]
    data = replay(logged.db, logged.config, "premium", since=0)
    roles = {r["role"]: r for r in data["roles"]}
    assert roles["default"]["calls"] == 2 and roles["default"]["target"] == "premium/claude-sonnet-4-6"
    assert roles["default"]["served_by"] == ["cheapco/qwen/qwen3-coder"]
    assert roles["default"]["replay_cost_usd"] == pytest.approx(
        2 * (100_000 * 3 + 10_000 * 15 + 50_000 * 0.3) / 1e6
    )
    assert roles["default"]["actual_cost_usd"] == pytest.approx(0.10)
    assert (
        roles["plan"]["target"] == "premium/claude-sonnet-4-6"
    )  # premium has no plan role: its default serves
    assert roles["plan"]["replay_cost_usd"] == pytest.approx((20_000 * 3 + 2_000 * 15) / 1e6)
    explicit = roles["(explicit target)"]  # an explicit provider/model is routed the same by every preset
    assert explicit["target"] == "backup/deepseek/deepseek-chat"
    assert explicit["replay_cost_usd"] == pytest.approx((20_000 * 0.5 + 2_000 * 1.0) / 1e6)
    assert data["calls"] == 4 and data["complete"] and data["caveat"] == CAVEAT
    assert data["actual_cost_usd"] == pytest.approx(0.124)
    assert data["difference_usd"] == pytest.approx(data["replay_cost_usd"] - 0.124)
    assert mock.requests == []  # no call is sent


def test_edges_of_the_range_come_from_the_call_rows(logged) -> None:  # type: ignore[no-untyped-def]
    whole = replay(logged.db, logged.config, "premium", since=0)
    later = replay(logged.db, logged.config, "premium", since=T0 + 500)  # mid-slot: read from the detail rows
    assert later["calls"] == 3
    assert whole["replay_cost_usd"] - later["replay_cost_usd"] == pytest.approx(
        (100_000 * 3 + 10_000 * 15 + 50_000 * 0.3) / 1e6
    )


def test_a_target_without_a_price_is_unpriced_not_free(logged) -> None:  # type: ignore[no-untyped-def]
    data = replay(logged.db, logged.config, "mystery", since=0)
    roles = {r["role"]: r for r in data["roles"]}
    assert roles["default"]["replay_unpriced_calls"] == 2 and roles["default"]["replay_cost_usd"] == 0.0
    assert roles["plan"]["replay_unpriced_calls"] == 1
    assert not data["complete"] and data["replay_unpriced_calls"] == 3


def test_unknown_preset_is_a_clear_error(logged) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KeyError, match="no preset named 'nope'"):
        replay(logged.db, logged.config, "nope", since=0)


def test_cli_replay(capsys, logged, config_path) -> None:  # type: ignore[no-untyped-def]
    from app.cli import main as cli

    common = ["--config", str(config_path), "--db", logged.db_url]
    assert cli(["replay", "--preset", "premium", "--since", "7d", "--json", *common]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["preset"] == "premium" and data["calls"] == 4
    assert cli(["replay", "--preset", "mystery", "--since", "7d", *common]) == 0
    out = capsys.readouterr().out
    assert (
        "ON MYSTERY" in out
        and "3 calls have no known price on 'mystery'" in out
        and "No call was sent." in out
    )
    assert cli(["replay", "--preset", "nope", *common]) == 2
    assert "no preset named 'nope'" in capsys.readouterr().err

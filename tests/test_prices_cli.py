"""`downshift prices` (the table), `prices show PROVIDER/MODEL` (which price a call is charged, from where),
1-hour cache writes in `calls`, and break-even pricing them at their own rate."""

from __future__ import annotations

import json
import time

import pytest
from analytics_support import messages_api, settled, user
from conftest import PROVIDER_KEY, proxy_config_text

from app.cli import main as cli
from app.core.analytics.breakeven import break_even
from app.core.provider_models import ModelCache, fetch_models
from app.testing.script import Reply, Usage


def run(capsys, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    code = cli(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_prices_lists_the_table(capsys, config_path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "prices", "--config", str(config_path))
    assert code == 0  # `stats` sends users here for unpriced calls: it must work without an action
    assert (
        "anthropic/claude-sonnet-4.5" in out
        and ">200K $6.00/$22.50" in out
        and "from the packaged table" in out
    )
    code, out, _ = run(capsys, "prices", "list", "gpt-4o", "--json", "--config", str(config_path))
    rows = {(r["model"], r["on"]): r for r in json.loads(out)["models"]}
    assert rows[("openai/chatgpt-4o-latest", None)]["input"] == 5
    assert rows[("openai/gpt-4o", None)]["source"].startswith("OpenAI pricing page")
    assert all("gpt-4o" in model for model, _ in rows)


def test_prices_show_says_which_price_and_where_from(capsys, config_path, core, mock) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(capsys, "prices", "show", "premium/claude-sonnet-4-5", "--config", str(config_path))
    assert code == 0
    assert (
        "premium/claude-sonnet-4-5: $3.00 in, $15.00 out" in out
        and "above 200K prompt tokens $6.00 in" in out
    )
    assert "source: price table: Anthropic pricing page" in out and "2026-11" in out
    ModelCache().put(fetch_models(core.config.providers["cheapco"], PROVIDER_KEY))  # "Test connection"
    code, out, _ = run(
        capsys, "prices", "show", "cheapco/qwen/qwen3-coder", "--json", "--config", str(config_path)
    )
    shown = json.loads(out)
    assert shown["source"] == "listed" and shown["detail"] == "cheapco's model list" and shown["date"]
    assert shown["price"]["input"] == pytest.approx(0.3) and shown["price"]["cache_read"] == pytest.approx(
        0.03
    )
    assert shown["billed_cost_first"] is True
    code, out, _ = run(capsys, "prices", "show", "cheapco/my-finetune", "--config", str(config_path))
    assert code == 0 and "no known price" in out and '[prices."cheapco/my-finetune"]' in out
    assert run(capsys, "prices", "show", "ghost/model", "--config", str(config_path))[0] == 2
    assert run(capsys, "prices", "show", "--config", str(config_path))[0] == 2


SELF_HOSTED = """
[[providers]]
name = "gpu"
base_url = "{url}/v1"
api = "anthropic"
local = true
hourly_cost = 2.0

[[presets]]
name = "reference"
default = "premium/reference-model"

[prices."premium/reference-model"]
input = 10.0
output = 30.0
cache_write = 12.5
cache_write_1h = 20.0
"""


@pytest.fixture
def self_hosted(config_path, mock):  # type: ignore[no-untyped-def]
    text = proxy_config_text(mock.base_url).replace('premium = "premium"', 'premium = "reference"')
    config_path.write_text(text + SELF_HOSTED.replace("{url}", mock.base_url))
    return config_path


def test_calls_show_one_hour_cache_writes_and_break_even_prices_them(
    self_hosted, proxy, mock, token, core, capsys
) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="x", usage=Usage(prompt=3000, completion=1000, cache_write_1h=1000)))
    assert messages_api(proxy, token, user("long-lived prefix"), model="gpu/qwen-local").status_code == 200
    row = settled(core)[-1]
    assert (row["input_tokens"], row["cache_write_1h_tokens"]) == (2000, 1000)
    code, out, _ = run(capsys, "calls", "--config", str(self_hosted), "--db", core.db_url)
    assert code == 0 and "CACHE R/W/W1H" in out
    line = next(x for x in out.splitlines() if "gpu/qwen-local" in x)
    assert "3000/1000" in line and "0/0/1000" in line  # the 1-hour writes count in IN and show on their own
    result = break_even(core.db, core.config, "gpu", since=time.time() - 3600)
    # 2000 input at $10, 1000 one-hour writes at $20 (not the 5-minute $12.50), 1000 output at $30 per M
    assert result["api_equivalent_usd"] == pytest.approx((2000 * 10 + 1000 * 20 + 1000 * 30) / 1e6)
    assert result["usd_per_million_tokens"] == pytest.approx(70_000 / 4000)

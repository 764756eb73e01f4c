"""Savings against the premium preset, per day, provider, model and role; self-hosting break-even."""

from __future__ import annotations

import json
import time

import pytest
from analytics_support import chat, settled, user
from conftest import proxy_config_text

from app.cli import main as cli
from app.core.analytics.breakeven import break_even
from app.core.queries import dashboard
from app.testing.script import Reply, Usage

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)

PRICED = """
[[presets]]
name = "reference"
default = "premium/reference-model"

[[providers]]
name = "gpu"
base_url = "{url}/v1"
local = true
hourly_cost = 2.0

[prices."cheapco/qwen/qwen3-coder"]
input = 1.0
output = 2.0

[prices."backup/deepseek/deepseek-chat"]
input = 0.5
output = 1.0

[prices."premium/reference-model"]
input = 10.0
output = 30.0
"""


@pytest.fixture
def priced(config_path, mock):  # type: ignore[no-untyped-def]
    text = proxy_config_text(mock.base_url).replace('premium = "premium"', 'premium = "reference"')
    config_path.write_text(text + PRICED.replace("{url}", mock.base_url))
    return config_path


def test_savings_per_day_provider_model_and_role(priced, proxy, mock, token, core, capsys) -> None:  # type: ignore[no-untyped-def]
    usage = Usage(prompt=1000, completion=100)
    mock.enqueue(*(Reply(text="x", usage=usage) for _ in range(3)))
    for model in ("default", "default", "plan"):
        assert chat(proxy, token, user("work"), model=model).status_code == 200
    rows = settled(core)
    # cheap: 1000 x $1/M + 100 x $2/M = $0.0012; plan (deepseek): $0.0006; premium: 1000 x $10/M + 100 x $30/M = $0.013
    assert [r["cost_usd"] for r in rows] == pytest.approx([0.0012, 0.0012, 0.0006])
    assert [r["premium_cost_usd"] for r in rows] == pytest.approx([0.013] * 3)
    total_savings = 3 * 0.013 - (0.0012 * 2 + 0.0006)
    since = time.time() - 86400
    by_role = {r["key"]: r["savings_usd"] for r in dashboard.savings(core.db, since=since, by="role")["rows"]}
    assert by_role == {"default": pytest.approx(2 * (0.013 - 0.0012)), "plan": pytest.approx(0.013 - 0.0006)}
    by_provider = {
        r["key"]: r["cost_usd"] for r in dashboard.savings(core.db, since=since, by="provider")["rows"]
    }
    assert by_provider == {"backup": pytest.approx(0.0006), "cheapco": pytest.approx(0.0024)}
    by_model = dashboard.savings(core.db, since=since, by="model")
    assert by_model["total"]["premium_usd"] == pytest.approx(0.039)
    by_day = dashboard.savings(core.db, since=since, by="day")
    assert by_day["total"]["savings_usd"] == pytest.approx(total_savings)
    assert by_day["rows"][-1]["key"] == time.strftime("%Y-%m-%d")
    tiles = dashboard.tiles(core.db, since=since)
    assert tiles["savings_range"] == pytest.approx(total_savings) and tiles["spend_today"] == pytest.approx(
        0.003
    )
    series = dashboard.spend_over_time(core.db, since=since, bucket_s=3600, by="provider")["series"]
    assert {k: sum(v) for k, v in series.items()} == {
        "backup": pytest.approx(0.0006),
        "cheapco": pytest.approx(0.0024),
    }
    capsys.readouterr()
    assert cli(["stats", "--json", "--config", str(priced), "--db", core.db_url]) == 0
    assert json.loads(capsys.readouterr().out)["savings"]["total"]["savings_usd"] == pytest.approx(
        total_savings
    )


def test_break_even_of_a_self_hosted_provider(priced, proxy, mock, token, core, capsys) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="x", usage=Usage(prompt=3000, completion=1000)))
    assert chat(proxy, token, user("local"), model="gpu/qwen-local").status_code == 200
    rows = settled(core)
    assert rows[0]["cost_usd"] == 0.0 and rows[0]["cost_source"] == "local"
    result = break_even(core.db, core.config, "gpu", since=time.time() - 3600)
    # the mix served (3000 in, 1000 out) at the reference's $10/$30 per M = $0.06 per 4000 tokens
    assert result["usd_per_million_tokens"] == pytest.approx(15.0)
    assert result["break_even_tokens_per_hour"] == pytest.approx(2.0 / 15e-6)
    assert result["api_equivalent_usd"] == pytest.approx(0.06) and result["cheaper"] == "api"
    capsys.readouterr()
    assert cli(["breakeven", "--config", str(priced), "--db", core.db_url]) == 0
    assert "break-even 133,333 tokens/hour" in capsys.readouterr().out
    assert cli(["breakeven", "cheapco", "--config", str(priced), "--db", core.db_url]) == 2

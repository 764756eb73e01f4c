"""Savings against premium: each role priced on the premium preset's model for that role, the premium side's
cache split measured on the user's own premium calls, local providers' hourly cost, and one set of figures
for `stats`, the dashboard tiles and the export."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from analytics_support import chat, messages_api, settled, user
from conftest import proxy_config_text

from app.cli import main as cli
from app.core import premium_split
from app.core.queries import dashboard
from app.testing.script import Reply, Usage

ROLES = """
[prices."cheapco/qwen/qwen3-coder"]
input = 1.0
output = 2.0

[prices."cheapco/qwen/qwen3-coder-30b"]
input = 0.1
output = 0.2

[prices."backup/deepseek/deepseek-chat"]
input = 0.5
output = 1.0

[[providers]]
name = "gpu"
base_url = "{url}/v1"
local = true
hourly_cost = 2.0
"""


@pytest.fixture
def roles(config_path, mock):  # type: ignore[no-untyped-def]
    text = proxy_config_text(mock.base_url).replace(
        'default = "premium/claude-sonnet-4-6"',
        'default = "premium/claude-sonnet-4-6"\nbackground = "premium/claude-haiku-4-5"\nplan = "premium/claude-opus-4-5"',
    )
    config_path.write_text(text + ROLES.replace("{url}", mock.base_url))
    premium_split.reset()
    return config_path


# Table prices per M: Sonnet 4.6 $3 / $15 (cache read $0.30), Haiku 4.5 $1 / $5, Opus 4.5 $5 / $25.
SONNET = (1000 * 3 + 100 * 15) / 1e6
HAIKU = (1000 * 1 + 100 * 5) / 1e6
OPUS = (1000 * 5 + 100 * 25) / 1e6


def test_each_role_is_priced_on_the_premium_presets_model_for_that_role(
    roles, proxy, mock, token, core
) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(*(Reply(text="x", usage=Usage(prompt=1000, completion=100)) for _ in range(3)))
    for model in ("default", "claude-3-5-haiku-20241022", "plan"):  # the haiku name is a background call
        assert chat(proxy, token, user("work"), model=model).status_code == 200
    rows = settled(core)
    assert [r["role"] for r in rows] == ["default", "background", "plan"]
    assert [r["premium_cost_usd"] for r in rows] == pytest.approx([SONNET, HAIKU, OPUS])
    by_role = {r["key"]: r["premium_usd"] for r in dashboard.savings(core.db, since=0, by="role")["rows"]}
    assert by_role == {
        "default": pytest.approx(SONNET),
        "background": pytest.approx(HAIKU),
        "plan": pytest.approx(OPUS),
    }


def _premium_calls(proxy, mock, token, n: int) -> None:  # type: ignore[no-untyped-def]
    """Calls served by the premium model itself, 80% of each prompt read from its cache."""
    mock.enqueue(*(Reply(text="p", usage=Usage(prompt=1000, completion=10, cached=800)) for _ in range(n)))
    for _ in range(n):
        assert (
            messages_api(proxy, token, user("premium work"), model="premium/claude-sonnet-4-6").status_code
            == 200
        )


def _cheap_call(proxy, mock, token, core) -> dict:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="x", usage=Usage(prompt=1000, completion=100)))  # the cheap host cached nothing
    assert chat(proxy, token, user("cheap work"), model="default").status_code == 200
    return settled(core)[-1]


def test_the_premium_side_uses_the_cache_split_measured_on_premium_calls(
    roles, proxy, mock, token, core
) -> None:  # type: ignore[no-untyped-def]
    _premium_calls(proxy, mock, token, premium_split.MIN_PREMIUM_CALLS - 1)
    few = _cheap_call(proxy, mock, token, core)
    assert few["premium_cost_usd"] == pytest.approx(SONNET)  # too few premium calls: the call's own split
    split, calls = premium_split.measured(core.db, core.config)
    assert split is None and "each call's own cache split" in premium_split.describe(split, calls)
    _premium_calls(proxy, mock, token, 1)
    enough = _cheap_call(proxy, mock, token, core)
    # 1000 prompt tokens as the premium model's calls split them: 200 plain at $3, 800 cache reads at $0.30
    assert enough["premium_cost_usd"] == pytest.approx((200 * 3 + 800 * 0.3 + 100 * 15) / 1e6)
    split, calls = premium_split.measured(core.db, core.config)
    assert (
        split is not None
        and split.cache_read == pytest.approx(0.8)
        and calls == premium_split.MIN_PREMIUM_CALLS
    )
    assert "measured on 20 premium calls (80% of prompt tokens read from cache" in premium_split.describe(
        split, calls
    )


def test_a_call_served_by_the_premium_model_saves_nothing(roles, proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    """With a measured split of 80% cache reads, a premium call that read nothing from its cache must not be
    re-priced on that split: it is the premium model's own call, so premium cost == cost, savings 0."""
    _premium_calls(proxy, mock, token, premium_split.MIN_PREMIUM_CALLS)
    mock.enqueue(Reply(text="p", usage=Usage(prompt=1000, completion=100)))
    assert (
        messages_api(proxy, token, user("premium, cold cache"), model="premium/claude-sonnet-4-6").status_code
        == 200
    )
    rows = settled(core)
    assert all(r["premium_cost_usd"] == pytest.approx(r["cost_usd"]) for r in rows)
    assert rows[-1]["cost_usd"] == pytest.approx(SONNET)


def test_guessed_calls_stay_out_of_the_measured_split(roles, proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    """A call whose usage was estimated has no cache split: neither the live count nor the one read back from
    the log (at start, and for the tooltip) counts it."""
    from sqlalchemy import text

    _premium_calls(proxy, mock, token, premium_split.MIN_PREMIUM_CALLS)
    settled(core)
    with core.db.begin() as conn:
        conn.execute(
            text(
                "UPDATE calls SET usage_estimated = 1, cache_read_tokens = 0 WHERE call_id IN "
                "(SELECT call_id FROM calls ORDER BY started_at LIMIT 5)"
            )
        )
    split, calls = premium_split.measured(core.db, core.config)
    assert split is None and calls == premium_split.MIN_PREMIUM_CALLS - 5


def test_a_restarted_proxy_keeps_the_measured_split(roles, proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    from app.proxy.server import ProxyThread

    _premium_calls(proxy, mock, token, premium_split.MIN_PREMIUM_CALLS)
    proxy.stop()
    premium_split.reset()  # a new process: nothing in memory
    with ProxyThread(core, port=0) as again:
        row = _cheap_call(again, mock, token, core)
    assert row["premium_cost_usd"] == pytest.approx((200 * 3 + 800 * 0.3 + 100 * 15) / 1e6)


def test_a_local_providers_hourly_cost_comes_off_the_savings(roles, proxy, mock, token, core, capsys) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(*(Reply(text="x", usage=Usage(prompt=1000, completion=100)) for _ in range(2)))
    for _ in range(2):
        assert chat(proxy, token, user("local work"), model="gpu/qwen-local").status_code == 200
    rows = settled(core)
    assert [r["cost_usd"] for r in rows] == [0.0, 0.0] and rows[0]["cost_source"] == "local"
    gross = 2 * SONNET  # an explicit provider/model call is compared with the premium default
    rates = dashboard.hourly_rates(core.config)
    hours = len(
        {int(r["started_at"] // 3600) for r in rows}
    )  # clock hours with a call (1, unless they straddle one)
    tiles = dashboard.tiles(core.db, since=time.time() - 86400, hourly=rates)
    assert tiles["savings_gross"] == pytest.approx(gross)
    assert tiles["hourly_cost_usd"] == pytest.approx(2.0 * hours)
    assert tiles["savings_range"] == pytest.approx(gross - 2.0 * hours)
    capsys.readouterr()
    assert cli(["stats", "--config", str(roles), "--db", core.db_url]) == 0
    out = capsys.readouterr().out
    assert f"less local providers' hourly cost ${2.0 * hours:.4f} (gpu {hours} h x $2.00)" in out
    assert "each call's own cache split" in out


def test_stats_dashboard_and_export_agree(roles, proxy, mock, token, core, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """The same log gives the same calls, spend, premium equivalent, savings and unpriced count everywhere."""
    mock.enqueue(
        Reply(text="a", usage=Usage(prompt=1000, completion=100)),
        Reply(text="b", usage=Usage(prompt=3000, completion=50, cached=1000)),
        Reply(text="c", usage=Usage(prompt=500, completion=20), cost=0.0042),
        Reply(text="d", usage=Usage(prompt=800, completion=80)),
        Reply(text="e", usage=Usage(prompt=2000, completion=10)),
    )
    for model in (
        "default",
        "plan",
        "cheapco/moonshotai/kimi-k2",
        "claude-3-5-haiku-20241022",
        "backup/unlisted-model",
    ):
        assert chat(proxy, token, user("mixed"), model=model).status_code == 200
    rows = settled(core)
    assert any(r["cost_source"] == "unpriced" for r in rows) and any(
        r["cost_source"] == "provider" for r in rows
    )
    since = time.time() - 86400
    tiles = dashboard.tiles(core.db, since=since, hourly=dashboard.hourly_rates(core.config))

    capsys.readouterr()
    assert cli(["stats", "--json", "--config", str(roles), "--db", core.db_url]) == 0
    stats = json.loads(capsys.readouterr().out)
    out = tmp_path / "calls.csv"
    assert cli(["export", "calls", "--config", str(roles), "--db", core.db_url, "--out", str(out)]) == 0
    exported = list(csv.DictReader(io.StringIO(out.read_text())))

    def num(value: str) -> float:
        return float(value) if value not in ("", None) else 0.0

    export_cost = sum(num(r["cost_usd"]) for r in exported)
    export_savings = sum(
        num(r["premium_cost_usd"]) - num(r["cost_usd"])
        for r in exported
        if r["cost_usd"] and r["premium_cost_usd"]
    )
    export_unpriced = sum(
        1 for r in exported if r["unpriced"] in ("1", "True", "true") and r["outcome"] == "ok"
    )
    assert len(exported) == stats["total"]["calls"] == tiles["calls"] == 5
    assert export_cost == pytest.approx(stats["total"]["cost_usd"]) == pytest.approx(tiles["spend_range"])
    assert export_savings == pytest.approx(stats["savings"]["total"]["savings_usd"])
    assert export_savings == pytest.approx(tiles["savings_gross"]) == pytest.approx(tiles["savings_range"])
    assert stats["savings"]["total"]["net_savings_usd"] == pytest.approx(tiles["savings_range"])
    assert export_unpriced == stats["total"]["unpriced_calls"] == tiles["unpriced_calls"] == 1
    # and the figures are the hand calculation from the prices
    cheap = (
        (1000 * 1 + 100 * 2) / 1e6
        + (2000 * 0.5 + 1000 * 0.5 + 50 * 1) / 1e6
        + 0.0042
        + (800 * 0.1 + 80 * 0.2) / 1e6
    )
    assert tiles["spend_range"] == pytest.approx(cheap)

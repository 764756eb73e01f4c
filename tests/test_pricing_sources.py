"""One price per model: the table's fixed entries, long-context tiers, and the order of price sources
(config override, the provider's bill, the provider's own listed price, the table), over real sockets."""

from __future__ import annotations

import pytest
from analytics_support import chat, messages_api, settled, user
from conftest import PROVIDER_KEY, proxy_config_text

from app.core import listed_prices, price_table
from app.core.config import Provider, default_config
from app.core.pricing import cost_at, price_kind, resolve_price
from app.core.provider_models import ModelCache, fetch_models
from app.core.usage import Usage as Tokens
from app.testing.script import Reply, Usage


@pytest.fixture(scope="module")
def table() -> price_table.PriceTable:
    return price_table.load_table()


# --------------------------------------------------------------------------------------- the table


def test_chatgpt_4o_latest_and_the_first_gpt4o_snapshot_have_their_own_price(
    table: price_table.PriceTable,
) -> None:
    for name in (
        "chatgpt-4o-latest",
        "openai/chatgpt-4o-latest",
        "gpt-4o-2024-05-13",
        "openai/gpt-4o-2024-05-13",
    ):
        entry = table.lookup(name)
        assert entry is not None and (entry.input, entry.output, entry.cache_read) == (5, 15, None), name
    for name in ("gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", "openai/gpt-4o"):
        entry = table.lookup(name)
        assert entry is not None and entry.id == "openai/gpt-4o" and entry.input == 2.5, name


def test_every_name_the_table_lists_resolves_to_its_own_entry(table: price_table.PriceTable) -> None:
    """A dated or suffixed entry must never claim another entry's name (and the reverse)."""
    for model_id, entry in table.models.items():
        for name in (model_id, *entry.aliases):
            found = table.lookup(name)
            assert found is not None and found.id == model_id, (name, found and found.id)


def test_qwen3_coder_plus_on_dashscope_is_priced_at_alibabas_rate(table: price_table.PriceTable) -> None:
    dashscope = Provider(
        "dashscope", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
    )  # a custom account
    assert price_kind(dashscope) == "alibaba"
    resolved = resolve_price(default_config(), dashscope, "qwen3-coder-plus")
    assert resolved.source == "table" and "Alibaba" in resolved.detail and resolved.date
    assert resolved.price is not None and (resolved.price.input, resolved.price.output) == (1, 5)
    # a 50K prompt is in the 32K-128K tier: 50,000 x $1.80/M + 1,000 x $9/M
    assert cost_at(Tokens(input=50_000, output=1_000), resolved.price) == pytest.approx(0.09 + 0.009)
    open_weights = table.lookup("qwen3-coder")
    assert open_weights is not None and open_weights.id == "qwen/qwen3-coder" and open_weights.input != 1


@pytest.mark.parametrize("model", ["claude-sonnet-4-20250514", "claude-sonnet-4-5-20250929"])
def test_sonnet_prompts_above_200k_are_billed_at_the_long_context_rate(
    table: price_table.PriceTable, model: str
) -> None:
    price = table.lookup(model)
    assert price is not None
    short = Tokens(input=150_000, cache_read=40_000, output=2_000)  # 190K prompt: the standard rate
    assert cost_at(short, price) == pytest.approx((150_000 * 3 + 40_000 * 0.3 + 2_000 * 15) / 1e6)
    # 210K prompt counting cache reads and writes: every token of the call at $6 / $0.60 / $7.50 / $12 / $22.50
    long = Tokens(input=100_000, cache_read=80_000, cache_write=20_000, cache_write_1h=10_000, output=2_000)
    assert cost_at(long, price) == pytest.approx(
        (100_000 * 6 + 80_000 * 0.6 + 20_000 * 7.5 + 10_000 * 12 + 2_000 * 22.5) / 1e6
    )


def test_gemini_25_pro_long_prompts(table: price_table.PriceTable) -> None:
    price = table.lookup("gemini-2.5-pro")
    assert price is not None
    assert cost_at(Tokens(input=200_000, output=1_000), price) == pytest.approx(
        (200_000 * 1.25 + 1_000 * 10) / 1e6
    )
    assert cost_at(Tokens(input=150_000, cache_read=60_000, output=1_000), price) == pytest.approx(
        (150_000 * 2.5 + 60_000 * 0.25 + 1_000 * 15) / 1e6
    )


def test_tiers_survive_a_save_and_reload(tmp_path, table: price_table.PriceTable) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "prices.json"
    price_table.save_table(table, path)
    again = price_table.load_table(path)
    assert (
        again.models["anthropic/claude-sonnet-4.5"].tiers == table.models["anthropic/claude-sonnet-4.5"].tiers
    )
    assert len(again.models["qwen/qwen3-coder-plus"].tiers) == 3


# ------------------------------------------------------------------------------- over the proxy


def test_a_long_prompt_through_the_proxy_costs_the_long_context_rate(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="ok", usage=Usage(prompt=250_000, completion=1_000, cached=50_000)))
    response = messages_api(proxy, token, user("a long repository dump"), model="premium/claude-sonnet-4-5")
    assert response.status_code == 200
    row = settled(core)[-1]
    assert row["cost_source"] == "table"
    assert row["cost_usd"] == pytest.approx((200_000 * 6 + 50_000 * 0.6 + 1_000 * 22.5) / 1e6)


def _list_models(core, mock, name: str = "cheapco") -> None:  # type: ignore[no-untyped-def]
    """What the Providers page's Test connection does: list the models (with OpenRouter-style prices) and keep them."""
    listing = fetch_models(core.config.providers[name], PROVIDER_KEY)
    ModelCache().put(listing)


def test_the_providers_listed_price_beats_the_table(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="x", usage=Usage(prompt=1000, completion=100, cached=400)))
    assert chat(proxy, token, user("before the listing"), model="cheapco/qwen/qwen3-coder").status_code == 200
    _list_models(core, mock)
    mock.enqueue(Reply(text="x", usage=Usage(prompt=1000, completion=100, cached=400)))
    assert chat(proxy, token, user("after the listing"), model="cheapco/qwen/qwen3-coder").status_code == 200
    before, after = settled(core)[-2:]
    assert before["cost_source"] == "table"
    # the mock lists qwen/qwen3-coder at $0.30 in, $1.20 out, $0.03 cache reads per M
    assert after["cost_source"] == "listed"
    assert after["cost_usd"] == pytest.approx((600 * 0.3 + 400 * 0.03 + 100 * 1.2) / 1e6)
    resolved = resolve_price(core.config, core.config.providers["cheapco"], "qwen/qwen3-coder")
    assert resolved.source == "listed" and resolved.detail == "cheapco's model list" and resolved.date


def test_the_providers_bill_beats_its_listed_price(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    _list_models(core, mock)
    mock.enqueue(Reply(text="x", usage=Usage(prompt=1000, completion=100), cost=0.0123))
    assert chat(proxy, token, user("billed"), model="cheapco/qwen/qwen3-coder").status_code == 200
    row = settled(core)[-1]
    assert row["cost_source"] == "provider" and row["cost_usd"] == pytest.approx(0.0123)
    assert row["estimated_cost_usd"] == pytest.approx(
        (1000 * 0.3 + 100 * 1.2) / 1e6
    )  # the listed price, kept beside


@pytest.fixture
def overridden(config_path, mock):  # type: ignore[no-untyped-def]
    config_path.write_text(
        proxy_config_text(mock.base_url)
        + '\n[prices."cheapco/qwen/qwen3-coder"]\ninput = 2.0\noutput = 4.0\n'
    )
    return config_path


def test_a_config_override_beats_everything(overridden, proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    _list_models(core, mock)
    mock.enqueue(Reply(text="x", usage=Usage(prompt=1000, completion=100), cost=0.0123))
    assert chat(proxy, token, user("overridden"), model="cheapco/qwen/qwen3-coder").status_code == 200
    row = settled(core)[-1]
    assert row["cost_source"] == "override" and row["cost_usd"] == pytest.approx((1000 * 2 + 100 * 4) / 1e6)
    assert row["billed_cost_usd"] == pytest.approx(0.0123)  # the bill is kept, so a mismatch shows
    resolved = resolve_price(core.config, core.config.providers["cheapco"], "qwen/qwen3-coder")
    assert resolved.source == "override" and "cheapco/qwen/qwen3-coder" in resolved.label


def test_listed_prices_are_read_once_not_per_call(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The proxy prices from the cached listing without touching the disk on every call."""
    cache = ModelCache()
    from app.core.provider_models import ModelInfo, ModelListing

    cache.put(ModelListing("acme", (ModelInfo("m", None, 1.0, 2.0),), 1.0, 1_700_000_000.0))
    assert listed_prices.lookup("acme", "m") is not None
    monkeypatch.setattr(listed_prices, "RECHECK_SECONDS", 3600.0)
    calls = []
    monkeypatch.setattr(listed_prices, "read_index", lambda path: calls.append(path) or {})
    for _ in range(1000):
        listed_prices.lookup("acme", "m")
    assert calls == []

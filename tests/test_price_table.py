"""Price table: packaged data sanity, name normalisation, provider prices, OpenRouter refresh."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path

import httpx
import orjson
import pytest

from app.core import price_table
from app.core.price_table import (
    PRICE_FIELDS,
    PriceChange,
    load_table,
    lookup,
    refresh,
    refresh_from_openrouter,
    save_table,
)
from app.paths import resource


@pytest.fixture(scope="module")
def table() -> price_table.PriceTable:
    return load_table()


# --------------------------------------------------------------------------- packaged data


def test_packaged_table_is_complete_and_sourced(table: price_table.PriceTable) -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table.updated)
    for model_id, entry in table.models.items():
        assert "/" in model_id and model_id == model_id.lower(), model_id
        assert entry.source and re.fullmatch(r"\d{4}-\d{2}", entry.date), model_id
        assert 0 < entry.input <= entry.output * 4, model_id  # output is never far cheaper than input
        if entry.cache_read is not None:
            assert entry.cache_read < entry.input, model_id
        if entry.cache_write is not None:
            assert entry.cache_write >= entry.input, model_id
        for kind, sub in entry.providers.items():
            assert kind == kind.lower() and sub.source and sub.date and sub.provider == kind


REQUIRED = [
    "deepseek-chat", "deepseek-reasoner", "deepseek-v3", "deepseek-v3.1", "deepseek-v3.2",
    "qwen/qwen3-coder", "Qwen/Qwen3-Coder-30B-A3B-Instruct", "Qwen/Qwen2.5-Coder-32B-Instruct",
    "kimi-k2-0905-preview", "glm-4.5", "glm-4.6", "openai/gpt-oss-120b", "gpt-oss-20b",
    "meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-4-maverick", "llama-4-scout",
    "devstral-small-2507", "devstral-medium-2507", "codestral-latest", "MiniMax-M2",
    "claude-opus-4-1-20250805", "claude-opus-4-5", "claude-sonnet-4-20250514", "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5-20251001", "gpt-5", "gpt-5-mini", "gpt-4.1", "o3", "o4-mini",
    "gemini-2.5-pro", "gemini-2.5-flash",
]  # fmt: skip


@pytest.mark.parametrize("name", REQUIRED)
def test_required_models_are_priced(table: price_table.PriceTable, name: str) -> None:
    assert table.lookup(name) is not None, name


def test_published_anthropic_prices(table: price_table.PriceTable) -> None:
    sonnet = table.lookup("claude-sonnet-4-5-20250929")
    assert sonnet is not None
    assert (sonnet.input, sonnet.output, sonnet.cache_read, sonnet.cache_write, sonnet.cache_write_1h) == (
        3, 15, 0.3, 3.75, 6,
    )  # fmt: skip
    opus = table.lookup("claude-opus-4-5")
    assert opus is not None and (opus.input, opus.output, opus.cache_write_1h) == (5, 25, 10)


# --------------------------------------------------------------------------- normalisation

NAMES = [
    ("deepseek-chat", None, "deepseek/deepseek-chat"),
    ("DeepSeek/DeepSeek-Chat", None, "deepseek/deepseek-chat"),
    ("openrouter/deepseek/deepseek-chat", None, "deepseek/deepseek-chat"),
    ("claude-sonnet-4-5-20250929", None, "anthropic/claude-sonnet-4.5"),
    ("claude-sonnet-4-5-2025-09-29", None, "anthropic/claude-sonnet-4.5"),
    ("claude-sonnet-4-5@20250929", None, "anthropic/claude-sonnet-4.5"),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", None, "anthropic/claude-sonnet-4.5"),
    ("anthropic/claude-sonnet-4.5", None, "anthropic/claude-sonnet-4.5"),
    ("claude-3-5-haiku-latest", None, "anthropic/claude-3.5-haiku"),
    ("Qwen/Qwen3-Coder-480B-A35B-Instruct", "together", "qwen/qwen3-coder"),
    ("Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8", "together", "qwen/qwen3-coder"),
    ("together_ai/Qwen/Qwen3-Coder-480B-A35B-Instruct", None, "qwen/qwen3-coder"),
    ("accounts/fireworks/models/qwen3-coder-480b-a35b-instruct", "fireworks", "qwen/qwen3-coder"),
    ("accounts/fireworks/models/glm-4p6", "fireworks", "z-ai/glm-4.6"),
    ("llama-3.3-70b-versatile", "groq", "meta-llama/llama-3.3-70b-instruct"),
    ("moonshotai/kimi-k2-instruct-0905", "groq", "moonshotai/kimi-k2-0905"),
    ("gpt-5-2025-08-07", None, "openai/gpt-5"),
    ("o4-mini-2025-04-16", "openai", "openai/o4-mini"),
    ("gemini-2.5-pro", "gemini", "google/gemini-2.5-pro"),
]


@pytest.mark.parametrize(("name", "provider", "expected"), NAMES)
def test_lookup_normalises_provider_names(
    table: price_table.PriceTable, name: str, provider: str | None, expected: str
) -> None:
    found = table.lookup(name, provider)
    assert found is not None and found.id == expected


def test_exact_name_beats_stripped_name(table: price_table.PriceTable) -> None:
    # DeepSeek's API name and the dated V3 snapshot are different prices
    chat = table.lookup("deepseek-chat")
    v3 = table.lookup("deepseek-v3-0324")
    assert chat is not None and v3 is not None and chat.output != v3.output


def test_provider_prices_and_fallback(table: price_table.PriceTable) -> None:
    together = table.lookup("Qwen/Qwen3-Coder-480B-A35B-Instruct", "together")
    reference = table.lookup("Qwen/Qwen3-Coder-480B-A35B-Instruct")
    unknown_host = table.lookup("Qwen/Qwen3-Coder-480B-A35B-Instruct", "some-new-host")
    assert together is not None and together.provider == "together" and together.input == 2.0
    assert reference is not None and reference.provider is None
    assert unknown_host == reference


def test_unknown_models(table: price_table.PriceTable) -> None:
    assert table.lookup("my-finetune-v7") is None
    assert table.lookup("") is None


def test_openrouter_free_variant_costs_nothing(table: price_table.PriceTable) -> None:
    free = table.lookup("deepseek/deepseek-r1:free")
    assert free is not None and free.input == 0 and free.output == 0
    paid = table.lookup("deepseek/deepseek-r1")
    assert paid is not None and paid.input > 0


def test_lookup_is_fast(table: price_table.PriceTable) -> None:
    names = [n for n, _, _ in NAMES]
    table.lookup("warm")
    start = time.perf_counter()
    for _ in range(200):
        for name in names:
            table.lookup(name)
    per_lookup_us = (time.perf_counter() - start) / (200 * len(names)) * 1e6
    assert per_lookup_us < 20, per_lookup_us


def test_module_lookup_uses_packaged_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(price_table, "user_copy_path", lambda: tmp_path / "none.json")
    price_table.set_default_table(None)
    found = lookup("gpt-4.1")
    assert found is not None and found.id == "openai/gpt-4.1"
    price_table.set_default_table(None)


def test_newer_user_copy_wins_older_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: price_table.PriceTable
) -> None:
    user = tmp_path / "prices.json"
    monkeypatch.setattr(price_table, "user_copy_path", lambda: user)
    newer, _ = refresh_from_openrouter(OPENROUTER_MODELS, table, today="2999-01-01")
    save_table(newer, user)
    price_table.set_default_table(None)
    assert lookup("acme/new-coder") is not None
    older, _ = refresh_from_openrouter(OPENROUTER_MODELS, table, today="2000-01-01")
    save_table(older, user)
    price_table.set_default_table(None)
    assert lookup("acme/new-coder") is None
    user.write_text("{not json")
    price_table.set_default_table(None)
    assert lookup("gpt-4.1") is not None
    price_table.set_default_table(None)


# --------------------------------------------------------------------------- refresh

OPENROUTER_MODELS = {
    "data": [
        {
            "id": "deepseek/deepseek-chat",
            "canonical_slug": "deepseek/deepseek-chat-v3",
            "pricing": {"prompt": "0.0000003", "completion": "0.00000085", "input_cache_read": "0.00000003"},
        },
        {
            "id": "anthropic/claude-sonnet-4.5",
            "pricing": {
                "prompt": "0.000003",
                "completion": "0.000015",
                "input_cache_read": "0.0000003",
                "input_cache_write": "0.00000375",
            },
        },
        {"id": "acme/new-coder", "pricing": {"prompt": "0.0000001", "completion": "0.0000004"}},
        {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}},
        {"id": "broken/model", "pricing": {"prompt": "n/a"}},
    ]
}


def test_refresh_from_openrouter_merges(table: price_table.PriceTable) -> None:
    merged, changes = refresh_from_openrouter(
        OPENROUTER_MODELS, table, source="https://x/api/v1/models", today="2026-11-26"
    )
    chat = merged.models["deepseek/deepseek-chat"]
    assert chat.aliases == table.models["deepseek/deepseek-chat"].aliases  # kept
    assert "acme/new-coder" in merged.models and merged.lookup("new-coder") is not None
    assert merged.models["acme/new-coder"].source == "https://x/api/v1/models"
    assert "openrouter/auto" not in merged.models and "broken/model" not in merged.models
    assert PriceChange("deepseek/deepseek-chat (openrouter)", "added", None, 0.3) in changes
    assert PriceChange("acme/new-coder", "added", None, 0.1) in changes
    assert table.models["deepseek/deepseek-chat"].output == 0.42  # the base table is untouched


def test_refresh_never_overwrites_a_direct_providers_price(table: price_table.PriceTable) -> None:
    """DeepSeek's and Anthropic's own prices stay the reference; OpenRouter's go under its own key."""
    merged, _ = refresh_from_openrouter(
        OPENROUTER_MODELS, table, source="https://x/api/v1/models", today="2026-11-26"
    )
    chat = merged.models["deepseek/deepseek-chat"]
    assert (chat.input, chat.output, chat.cache_read) == (0.28, 0.42, 0.028)
    assert chat.source == table.models["deepseek/deepseek-chat"].source and chat.date != "2026-11-26"
    via = merged.lookup("deepseek/deepseek-chat", "openrouter")
    assert (
        via is not None
        and via.provider == "openrouter"
        and (via.input, via.output, via.cache_read) == (0.3, 0.85, 0.03)
    )
    assert via.source == "https://x/api/v1/models" and via.date == "2026-11-26"
    direct = merged.lookup("deepseek-chat", "deepseek")  # provider prices survive a refresh
    assert direct is not None and direct.output == 0.42
    sonnet = merged.lookup("claude-sonnet-4-5-20250929", "anthropic")
    assert sonnet == replace(
        table.models["anthropic/claude-sonnet-4.5"], providers=sonnet.providers
    )  # tiers and all


def test_refresh_never_mixes_sources_under_one_label(table: price_table.PriceTable) -> None:
    # OpenRouter lists no 1-hour cache write for Sonnet: its entry has none, rather than Anthropic's $6
    merged, _ = refresh_from_openrouter(OPENROUTER_MODELS, table, today="2026-11-26")
    via = merged.models["anthropic/claude-sonnet-4.5"].providers["openrouter"]
    assert (via.cache_read, via.cache_write, via.cache_write_1h) == (0.3, 3.75, None) and not via.tiers
    # a reference price that was read from OpenRouter is replaced whole: no cache price of ours survives
    ours = table.models["qwen/qwen3-coder"]
    assert "openrouter" in ours.source.lower()
    listing = {
        "data": [{"id": "qwen/qwen3-coder", "pricing": {"prompt": "0.00000025", "completion": "0.000001"}}]
    }
    seeded = replace(table, models={**table.models, "qwen/qwen3-coder": replace(ours, cache_read=0.05)})
    seeded.reindex()
    merged, _ = refresh_from_openrouter(
        listing, seeded, source="https://openrouter.ai/api/v1/models", today="2026-11-26"
    )
    qwen = merged.models["qwen/qwen3-coder"]
    assert (qwen.input, qwen.output, qwen.cache_read, qwen.date) == (0.25, 1.0, None, "2026-11-26")
    for entry in merged.models.values():  # every entry's prices come from the one source it names
        for sub in (entry, *entry.providers.values()):
            if "openrouter.ai/api" in sub.source:
                assert sub.date == "2026-11-26"


def test_refresh_fetches_merges_and_writes_atomically(tmp_path: Path, table: price_table.PriceTable) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=OPENROUTER_MODELS)

    dest = tmp_path / "user" / "prices.json"
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        merged, changes = refresh(
            "https://openrouter.ai/api/v1/", "sk-or-test", client=client, out_path=dest, base=table
        )
    assert str(seen[0].url) == "https://openrouter.ai/api/v1/models"
    assert seen[0].headers["authorization"] == "Bearer sk-or-test"
    assert changes
    reloaded = load_table(dest)
    assert (
        reloaded.models["deepseek/deepseek-chat"].providers["openrouter"].source
        == "https://openrouter.ai/api/v1/models"
    )
    assert reloaded.lookup("claude-sonnet-4-5-20250929") == merged.lookup("claude-sonnet-4-5-20250929")
    assert [p.name for p in dest.parent.iterdir()] == ["prices.json"]  # no temp file left behind


def test_refresh_http_error_writes_nothing(tmp_path: Path, table: price_table.PriceTable) -> None:
    dest = tmp_path / "prices.json"
    transport = httpx.MockTransport(lambda request: httpx.Response(503, text="busy"))
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.HTTPStatusError):
        refresh("https://openrouter.ai/api/v1", client=client, out_path=dest, base=table)
    assert not dest.exists()


def test_packaged_file_is_never_overwritten(table: price_table.PriceTable) -> None:
    packaged = resource("prices.json")
    before = packaged.read_bytes()
    with pytest.raises(ValueError):
        save_table(table, packaged)
    assert packaged.read_bytes() == before


def test_save_and_load_round_trip(tmp_path: Path, table: price_table.PriceTable) -> None:
    path = tmp_path / "copy.json"
    save_table(table, path)
    again = load_table(path)
    assert again.models == table.models
    raw = json.loads(path.read_text())
    assert set(PRICE_FIELDS) <= set(raw["models"]["openai/gpt-5"])
    assert orjson.loads(resource("prices.json").read_bytes())["unit"] == raw["unit"]


def test_a_running_proxy_picks_up_a_refreshed_user_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """`downshift prices refresh` runs in another process; the proxy's table follows within the recheck
    interval, without a stat per call."""
    packaged = load_table()
    price_table.set_default_table(None)
    try:
        monkeypatch.setattr(price_table, "RECHECK_SECONDS", 3600.0)
        assert lookup("acme/coder-9000") is None  # no user copy yet: the packaged table serves
        newer = price_table.PriceTable(
            updated="2999-01-01",
            models={
                **packaged.models,
                "acme/coder-9000": price_table.PriceEntry("acme/coder-9000", 0.5, 2.0),
            },
        )
        save_table(newer, price_table.user_copy_path())
        assert lookup("acme/coder-9000") is None  # within the interval the file is not even looked at
        monkeypatch.setattr(price_table, "RECHECK_SECONDS", 0.0)
        entry = lookup("acme/coder-9000")
        assert entry is not None and (entry.input, entry.output) == (0.5, 2.0)
        price_table.user_copy_path().write_text("{ damaged")  # a damaged copy: back to the packaged prices
        assert lookup("acme/coder-9000") is None and lookup("deepseek/deepseek-chat") is not None
    finally:
        price_table.set_default_table(None)

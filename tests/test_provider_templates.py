"""Provider templates and the model listing behind "Test connection", without Qt, against the mock upstream."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from app.core.config import Config, Provider, load_config, save_config
from app.core.provider_models import ModelCache, ModelListing, ProviderCheckError, fetch_models, parse_models
from app.core.provider_templates import TEMPLATES, provider_from_template, template, template_for, unique_name
from app.proxy.profiles import KINDS
from app.testing.mock_upstream import MockUpstream
from app.testing.ports import dead_url

REQUIRED = {
    "openrouter",
    "deepseek",
    "together",
    "fireworks",
    "groq",
    "mistral",
    "moonshot",
    "anthropic",
    "openai",
    "ollama",
    "lmstudio",
    "vllm",
    "llamacpp",
    "custom",
}


def test_every_required_template_exists_and_matches_a_proxy_profile() -> None:
    ids = [t.id for t in TEMPLATES]
    assert set(ids) == REQUIRED and len(ids) == len(set(ids))
    for tpl in TEMPLATES:
        assert tpl.kind in KINDS or tpl.kind == "custom", tpl.id
        if tpl.id != "custom":
            assert tpl.base_url.startswith("https://" if not tpl.local else "http://127.0.0.1:"), tpl.id
            assert tpl.docs_url and tpl.docs_url.startswith("https://"), tpl.id
        assert tpl.needs_key == (not tpl.local and tpl.id != "custom")
        assert (tpl.key_env is None) == (tpl.local or tpl.id == "custom"), tpl.id
    assert template("anthropic").api == "anthropic"
    assert {t.api for t in TEMPLATES if t.id != "anthropic"} == {"openai"}


def test_a_provider_from_every_template_survives_a_config_round_trip(tmp_path: Path) -> None:
    providers: dict[str, Provider] = {}
    for tpl in TEMPLATES:
        p = provider_from_template(tpl, taken=providers, base_url=tpl.base_url or "http://127.0.0.1:9999/v1")
        providers[p.name] = p
    path = tmp_path / "c.toml"
    save_config(Config(providers=providers), path)
    loaded = load_config(path).providers
    assert loaded == providers
    assert template_for(loaded["groq"]).name == "Groq"
    assert template_for(Provider("x", "http://h/v1", kind="something-else")).id == "custom"
    with pytest.raises(KeyError, match="no provider template 'nope'"):
        template("nope")


def test_second_account_of_a_kind_gets_a_fresh_name() -> None:
    assert unique_name("openrouter", []) == "openrouter"
    assert unique_name("openrouter", ["openrouter"]) == "openrouter-2"
    assert unique_name("openrouter", ["openrouter", "openrouter-2"]) == "openrouter-3"
    p = provider_from_template(template("openrouter"), taken={"openrouter": None})
    assert (p.name, p.kind, p.api_key_env) == ("openrouter-2", "openrouter", "OPENROUTER_API_KEY")
    assert (
        provider_from_template(template("vllm"), base_url=" http://gpu:8000/v1/ ").base_url
        == "http://gpu:8000/v1"
    )


def test_fetch_models_lists_the_catalogue_with_prices_and_latency(mock) -> None:  # type: ignore[no-untyped-def]
    provider = Provider("or", f"{mock.base_url}/v1", kind="openrouter")
    listing = fetch_models(provider, "sk-test")
    assert listing.provider == "or"
    assert "qwen/qwen3-coder" in listing.ids and len(listing.models) == 5
    qwen = next(m for m in listing.models if m.id == "qwen/qwen3-coder")
    assert qwen.context_length == 262144
    assert qwen.input_per_m == pytest.approx(0.3) and qwen.output_per_m == pytest.approx(1.2)
    assert 0 < listing.latency_ms < 5000
    assert mock.requests[-1].path == "/v1/models" and mock.requests[-1].api_key == "sk-test"


def test_fetch_models_speaks_anthropic_headers(mock) -> None:  # type: ignore[no-untyped-def]
    listing = fetch_models(
        Provider("ant", f"{mock.base_url}/v1", api="anthropic", kind="anthropic"), "sk-ant-x"
    )
    assert "anthropic/claude-sonnet-4.6" in listing.ids
    assert mock.requests[-1].api_key == "sk-ant-x"


def test_fetch_models_errors_are_sentences() -> None:
    with MockUpstream(require_key="right") as guarded:
        provider = Provider("strict", f"{guarded.base_url}/v1")
        with pytest.raises(ProviderCheckError, match=r"strict: the key was refused \(HTTP 401"):
            fetch_models(provider, "wrong")
        with pytest.raises(ProviderCheckError, match="strict: no key is set"):
            fetch_models(provider, None)
        assert fetch_models(provider, "right").models
    dead = dead_url()
    with pytest.raises(
        ProviderCheckError,
        match=rf"cannot connect to {re.escape(dead)}/models.*Is the local server running\?",
    ):
        fetch_models(Provider("dead", dead, local=True), None, timeout=3)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/html/models"):
            return httpx.Response(200, text="<html>login</html>")
        return httpx.Response(404, json={"error": {"message": "no such route"}})

    transport = httpx.MockTransport(handler)
    with pytest.raises(ProviderCheckError, match="answered HTTP 404: no such route"):
        fetch_models(Provider("p", "http://x/v1"), "k", transport=transport)
    with pytest.raises(ProviderCheckError, match="did not answer with JSON; is the base URL right"):
        fetch_models(Provider("p", "http://x/html"), "k", transport=transport)


def test_parse_models_reads_ollama_style_and_refuses_garbage() -> None:
    models = parse_models(
        {"models": [{"name": "qwen2.5-coder:7b"}, {"model": "llama3"}, {"nothing": 1}, "x"]}
    )
    assert [m.id for m in models] == ["llama3", "qwen2.5-coder:7b"]
    with pytest.raises(ProviderCheckError, match="not a model list"):
        parse_models({"object": "error"})


def test_model_cache_survives_a_restart_and_a_damaged_file(tmp_path: Path, mock) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cache" / "models.json"
    listing = fetch_models(Provider("or", f"{mock.base_url}/v1"), "k")
    ModelCache(path).put(listing)
    again = ModelCache(path)
    assert [m.id for m in again.models("or")] == listing.ids
    assert again.fetched_at("or") == pytest.approx(listing.fetched_at)
    assert again.models("other") == [] and again.fetched_at("other") is None
    again.forget("or")
    assert ModelCache(path).models("or") == []
    path.write_text("{not json")
    assert ModelCache(path).models("or") == []
    ModelCache(path).put(ModelListing("x", (), 1.0, 2.0))
    assert ModelCache(path).fetched_at("x") == 2.0

"""Ready-made provider accounts, so adding one is "pick a name, paste a key" instead of looking up URLs.

Shared by the Providers page and the first-run assistant. A template only fills in a `Provider`; the
key itself never lives here or in the config: it goes to the keyring, or is read from `key_env`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.core.config import Provider


@dataclass(frozen=True)
class ProviderTemplate:
    id: str  # also the provider `kind`, which selects the proxy's compatibility profile
    name: str
    base_url: str  # empty for `custom`: the user must supply one
    api: str = "openai"
    local: bool = False
    key_env: str | None = None  # the variable the vendor's own tools read the key from
    docs_url: str | None = None  # where to get a key (hosted) or how to start the server (local)

    @property
    def kind(self) -> str:
        return self.id

    @property
    def needs_key(self) -> bool:
        return not self.local and self.id != "custom"


TEMPLATES: tuple[ProviderTemplate, ...] = (
    ProviderTemplate(
        "openrouter",
        "OpenRouter",
        "https://openrouter.ai/api/v1",
        key_env="OPENROUTER_API_KEY",
        docs_url="https://openrouter.ai/settings/keys",
    ),
    ProviderTemplate(
        "deepseek",
        "DeepSeek",
        "https://api.deepseek.com/v1",
        key_env="DEEPSEEK_API_KEY",
        docs_url="https://platform.deepseek.com/api_keys",
    ),
    ProviderTemplate(
        "together",
        "Together AI",
        "https://api.together.xyz/v1",
        key_env="TOGETHER_API_KEY",
        docs_url="https://api.together.ai/settings/api-keys",
    ),
    ProviderTemplate(
        "fireworks",
        "Fireworks AI",
        "https://api.fireworks.ai/inference/v1",
        key_env="FIREWORKS_API_KEY",
        docs_url="https://fireworks.ai/account/api-keys",
    ),
    ProviderTemplate(
        "groq",
        "Groq",
        "https://api.groq.com/openai/v1",
        key_env="GROQ_API_KEY",
        docs_url="https://console.groq.com/keys",
    ),
    ProviderTemplate(
        "mistral",
        "Mistral",
        "https://api.mistral.ai/v1",
        key_env="MISTRAL_API_KEY",
        docs_url="https://console.mistral.ai/api-keys",
    ),
    ProviderTemplate(
        "moonshot",
        "Moonshot (Kimi)",
        "https://api.moonshot.ai/v1",
        key_env="MOONSHOT_API_KEY",
        docs_url="https://platform.moonshot.ai/console/api-keys",
    ),
    ProviderTemplate(
        "anthropic",
        "Anthropic",
        "https://api.anthropic.com/v1",
        api="anthropic",
        key_env="ANTHROPIC_API_KEY",
        docs_url="https://console.anthropic.com/settings/keys",
    ),
    ProviderTemplate(
        "openai",
        "OpenAI",
        "https://api.openai.com/v1",
        key_env="OPENAI_API_KEY",
        docs_url="https://platform.openai.com/api-keys",
    ),
    ProviderTemplate(
        "ollama",
        "Ollama",
        "http://127.0.0.1:11434/v1",
        local=True,
        docs_url="https://github.com/ollama/ollama/blob/main/docs/openai.md",
    ),
    ProviderTemplate(
        "lmstudio",
        "LM Studio",
        "http://127.0.0.1:1234/v1",
        local=True,
        docs_url="https://lmstudio.ai/docs/app/api/endpoints/openai",
    ),
    ProviderTemplate(
        "vllm",
        "vLLM",
        "http://127.0.0.1:8000/v1",
        local=True,
        docs_url="https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
    ),
    ProviderTemplate(
        "llamacpp",
        "llama.cpp server",
        "http://127.0.0.1:8080/v1",
        local=True,
        docs_url="https://github.com/ggml-org/llama.cpp/tree/master/tools/server",
    ),
    ProviderTemplate("custom", "Custom (OpenAI-compatible)", ""),
)

_BY_ID = {t.id: t for t in TEMPLATES}


def template(template_id: str) -> ProviderTemplate:
    try:
        return _BY_ID[template_id]
    except KeyError:
        raise KeyError(f"no provider template {template_id!r} (have: {', '.join(_BY_ID)})") from None


def template_for(provider: Provider) -> ProviderTemplate:
    """The template a configured provider came from (by kind); `custom` when none matches."""
    return _BY_ID.get(provider.kind, _BY_ID["custom"])


def unique_name(wanted: str, taken: Iterable[str]) -> str:
    """`wanted`, or `wanted-2`, `wanted-3`... so a second OpenRouter account gets a name of its own."""
    taken = set(taken)
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"


def provider_from_template(
    tpl: ProviderTemplate, *, name: str | None = None, base_url: str | None = None, taken: Iterable[str] = ()
) -> Provider:
    """A Provider filled from `tpl`; name defaults to the template id, made unique against `taken`."""
    url = (base_url if base_url is not None else tpl.base_url).strip().rstrip("/")
    return Provider(
        name=name or unique_name(tpl.id, taken),
        base_url=url,
        api=tpl.api,
        api_key_env=tpl.key_env,
        kind=tpl.kind,
        local=tpl.local,
    )

"""Per-provider compatibility profiles: what each upstream refuses, caps, names differently or needs back.

Translators read a profile instead of testing provider names, so a quirk is one field here, not an `if` in
a translator. The values record what each provider's documentation or public bug reports establish; a
provider of unknown kind gets the conservative `custom` profile. How each provider reports cached and
reasoning tokens needs no field here: `app.core.usage` reads every known dialect (DeepSeek's
`prompt_cache_hit_tokens`, Moonshot's top-level `cached_tokens`, OpenRouter's `cache_write_tokens`,
Groq's `x_groq.usage`...) wherever it appears. Caps default to none: output limits are per model, so
the configured `max_tokens` of a provider is the one that binds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

KINDS = (
    "openrouter", "deepseek", "together", "fireworks", "groq", "mistral", "moonshot",
    "openai", "anthropic", "ollama", "lmstudio", "vllm", "llamacpp", "custom",
)  # fmt: skip

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
"""Reasoning efforts, weakest first; a requested effort a target lacks becomes its nearest accepted one."""


@dataclass(frozen=True, slots=True)
class Profile:
    """What one upstream (provider kind x wire API) accepts. Defaults suit a plain OpenAI-compatible server."""

    kind: str = "custom"
    api: str = "openai"  # "openai" (chat completions) | "anthropic" (Messages)
    refuses: frozenset[str] = frozenset()  # top-level request fields it rejects; removed last
    max_tokens_cap: int | None = None  # hard output cap of the endpoint, combined with the configured one
    max_tokens_field: str = "max_tokens"  # OpenAI proper wants "max_completion_tokens"
    reasoning_field: str | None = "reasoning_content"  # where reasoning text goes back (DeepSeek style)
    reasoning_echo: bool = False  # assistant reasoning must be resent in later turns (else a 400)
    reasoning_details: bool = False  # takes OpenRouter `reasoning_details` back on assistant messages
    reasoning_efforts: tuple[str, ...] = ()  # accepted `reasoning_effort` values; () = never send it
    thinking_toggle: bool = False  # takes DeepSeek's top-level {"thinking": {"type": "enabled"|"disabled"}}
    thinking_form: str = "auto"  # Anthropic targets: "adaptive", "budget", or "auto" (by Claude version)
    tool_name_max: int = 64  # names must match ^[A-Za-z0-9_-]{1,tool_name_max}$
    tool_call_id_len: int | None = None  # Mistral: tool call ids of exactly 9 alphanumerics
    stream_usage: bool = True  # accepts stream_options.include_usage
    cache_control: bool = False  # accepts Anthropic-style cache_control on content parts
    top_k: bool = False
    images: bool = True
    pdf: bool = False  # accepts PDF documents (OpenAI `file` parts / Anthropic `document` blocks)


_ALL_EFFORTS = EFFORTS
_LMH = ("low", "medium", "high")

_OPENAI_FORMAT: dict[str, Profile] = {
    "openai": Profile(
        kind="openai",
        max_tokens_field="max_completion_tokens",
        reasoning_field=None,
        reasoning_efforts=_LMH,  # model-specific beyond these (none, minimal, xhigh): the safe subset
        pdf=True,
    ),
    "openrouter": Profile(
        kind="openrouter",
        reasoning_field="reasoning",
        reasoning_details=True,
        reasoning_efforts=_ALL_EFFORTS,
        cache_control=True,
        top_k=True,
        pdf=True,
    ),
    "deepseek": Profile(
        kind="deepseek",
        reasoning_echo=True,
        reasoning_efforts=("low", "medium", "high", "max"),
        thinking_toggle=True,
        images=False,
    ),
    "together": Profile(kind="together", reasoning_field="reasoning", reasoning_efforts=_LMH, top_k=True),
    "fireworks": Profile(kind="fireworks", reasoning_efforts=_LMH, top_k=True),
    "groq": Profile(kind="groq", reasoning_field="reasoning"),
    "mistral": Profile(
        kind="mistral",
        reasoning_field=None,
        tool_call_id_len=9,
        stream_usage=False,
        refuses=frozenset({"user", "stream_options", "reasoning_effort"}),
    ),
    "moonshot": Profile(kind="moonshot", reasoning_echo=True),
    "anthropic": Profile(kind="anthropic", reasoning_field=None),
    "ollama": Profile(kind="ollama", reasoning_field="reasoning", reasoning_efforts=_LMH),
    "lmstudio": Profile(kind="lmstudio"),
    "vllm": Profile(kind="vllm", reasoning_efforts=_LMH, top_k=True),
    "llamacpp": Profile(kind="llamacpp", top_k=True),
    "custom": Profile(),
}

_ANTHROPIC = Profile(
    kind="anthropic", api="anthropic", cache_control=True, top_k=True, pdf=True, reasoning_field=None
)
# Other providers' Messages endpoints (DeepSeek, Moonshot...) toggle thinking with {"type": "enabled"}
# and know nothing of Claude model versions.
_ANTHROPIC_FORMAT: dict[str, Profile] = {
    kind: _ANTHROPIC
    if kind == "anthropic"
    else replace(_ANTHROPIC, kind=kind, thinking_form="budget", pdf=False)
    for kind in KINDS
}


def profile_for(kind: str, api: str) -> Profile:
    """The profile of a provider `kind` reached through wire `api`; an unknown kind gets `custom`'s."""
    if api == "openai":
        table = _OPENAI_FORMAT
    elif api == "anthropic":
        table = _ANTHROPIC_FORMAT
    else:
        raise ValueError(f"unknown wire API {api!r}; expected 'openai' or 'anthropic'")
    return table.get(kind) or table["custom"]


def nearest_effort(wanted: str, accepted: tuple[str, ...]) -> str | None:
    """`wanted` if accepted, else the closest accepted effort (ties go to the stronger); None if none."""
    if not accepted:
        return None
    if wanted in accepted:
        return wanted
    try:
        rank = EFFORTS.index(wanted)
    except ValueError:
        return None
    return min(accepted, key=lambda e: (abs(EFFORTS.index(e) - rank), -EFFORTS.index(e)))

"""Requests: Anthropic Messages <-> OpenAI chat completions, shaped by the target's `Profile`.

Only allowlisted fields cross; everything else (Claude Code's `context_management`, `output_config`,
`metadata`, `service_tier`, OpenAI's `logprobs`, `seed`...) stays behind, because an OpenAI-format provider
rejects parameters it does not know and Anthropic rejects OpenAI's. Config is dropped quietly; user
content that cannot be carried raises `TranslationError` (a 400 naming it), never disappears.

One module per direction, each with its field table: `anthropic_request_to_openai`
(`anthropic_to_openai_request`) and `openai_request_to_anthropic` (`openai_to_anthropic_request`, and
`drop_foreign_thinking` for an Anthropic client's request going to Anthropic itself). This module keeps
the old import path for both and `tool_name_map`, which serves either direction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.proxy.profiles import Profile
from app.proxy.translate.anthropic_request_to_openai import anthropic_to_openai_request
from app.proxy.translate.anthropic_response import upstream_tool_name
from app.proxy.translate.openai_request_to_anthropic import (
    DEFAULT_MAX_TOKENS,
    drop_foreign_thinking,
    openai_to_anthropic_request,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "anthropic_to_openai_request",
    "drop_foreign_thinking",
    "openai_to_anthropic_request",
    "tool_name_map",
]


def tool_name_map(tools: Iterable[Mapping[str, Any]] | None, profile: Profile) -> dict[str, str]:
    """{name sent upstream: client's name} for the tools a target made us rename (usually empty).

    Pass it as `tool_names` to the response and stream translators so tool calls come back as the
    client named them. Accepts Anthropic tools (`name`) and OpenAI tools (`function.name`).
    """
    renamed: dict[str, str] = {}
    for tool in tools or ():
        name = tool.get("name") or (tool.get("function") or {}).get("name")
        if isinstance(name, str):
            upstream = upstream_tool_name(name, profile.tool_name_max)
            if upstream != name:
                renamed[upstream] = name
    return renamed

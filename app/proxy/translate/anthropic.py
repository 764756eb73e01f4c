"""Anthropic Messages <-> OpenAI chat completions: the public surface of the three translator modules.

Requests (allowlists in `anthropic_request`): `anthropic_to_openai_request`, `openai_to_anthropic_request`,
with `tool_name_map` for tools a target made us rename and `drop_foreign_thinking` for Anthropic-bound
passthrough. Whole answers: `openai_to_anthropic_response`, `anthropic_to_openai_response`. Streams:
`OpenAIToAnthropicStream`, `AnthropicToOpenAIStream`. Error bodies: `openai_error_to_anthropic`,
`anthropic_error_to_openai`. Shared conventions (ids, usage, reasoning) are described in
`anthropic_response`.
"""

from app.proxy.translate.anthropic_request import (
    anthropic_to_openai_request,
    drop_foreign_thinking,
    openai_to_anthropic_request,
    tool_name_map,
)
from app.proxy.translate.anthropic_response import anthropic_to_openai_response, openai_to_anthropic_response
from app.proxy.translate.anthropic_stream import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from app.proxy.translate.errors import TranslationError, anthropic_error_to_openai, openai_error_to_anthropic

__all__ = [
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "TranslationError",
    "anthropic_error_to_openai",
    "anthropic_to_openai_request",
    "anthropic_to_openai_response",
    "drop_foreign_thinking",
    "openai_error_to_anthropic",
    "openai_to_anthropic_request",
    "openai_to_anthropic_response",
    "tool_name_map",
]

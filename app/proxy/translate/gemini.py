"""Gemini API (`generateContent`, `streamGenerateContent`) <-> chat completions: the public surface.

Request: `gemini_to_chat_request(body, model=..., profile=...)` -> (chat body, GeminiContext). Way back:
`chat_to_gemini_response(resp, ctx)` for a whole answer, `ChatToGeminiStream(ctx)` fed chat chunk dicts
for a streamed one, `chat_error_to_gemini(status, body)` for an upstream error, `gemini_error` for ours.
An Anthropic target is reached through the Anthropic translators on the chat side, as for Responses.
"""

from app.core.toolcheck import gemini_call_id as client_call_id
from app.proxy.translate.gemini_contents import function_response_text
from app.proxy.translate.gemini_request import (
    HOSTED_TOOLS,
    GeminiContext,
    gemini_to_chat_request,
    openapi_to_json_schema,
)
from app.proxy.translate.gemini_response import (
    FINISH_TO_GEMINI,
    chat_error_to_gemini,
    chat_to_gemini_response,
    gemini_error,
    usage_to_gemini,
)
from app.proxy.translate.gemini_stream import ChatToGeminiStream

__all__ = [
    "FINISH_TO_GEMINI",
    "HOSTED_TOOLS",
    "ChatToGeminiStream",
    "GeminiContext",
    "chat_error_to_gemini",
    "chat_to_gemini_response",
    "client_call_id",
    "function_response_text",
    "gemini_error",
    "gemini_to_chat_request",
    "openapi_to_json_schema",
    "usage_to_gemini",
]

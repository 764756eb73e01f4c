"""Chat completions answers -> Gemini API objects: the whole GenerateContentResponse, usage, finish
reasons and errors. The streaming translator builds its chunks with the same helpers.

A Gemini candidate's parts, in order: thoughts (`{"text", "thought": true}`, only when the request asked
for them with thinkingConfig.includeThoughts), the answer's text, then one `functionCall` per tool call
with the upstream's call id, its name as the client declared it, and its arguments as an object (text
that is not a JSON object is kept under `_raw_arguments`, as on the Anthropic side, so nothing is lost
and the call log flags it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.usage import normalize_openai
from app.proxy.errors import google_error
from app.proxy.translate.anthropic_response import (
    CALL_ID_PREFIX,
    TOOL_ID_PREFIX,
    anthropic_tool_id,
    decode_tool_arguments,
)
from app.proxy.translate.errors import error_message
from app.proxy.translate.gemini_request import GeminiContext
from app.proxy.translate.pivot import content_text, random_id, reasoning_text

# Chat finish_reason -> Gemini finishReason. A tool-call turn ends with STOP, as Gemini's own do.
FINISH_TO_GEMINI = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}
# The proxy's failure kinds (UpstreamFailure.kind) and OpenAI/Anthropic error codes -> an HTTP status.
_KIND_STATUS = {
    "timeout": 504,
    "stalled": 504,
    "timeout_error": 504,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "overloaded": 503,
    "overloaded_error": 503,
    "context_length_exceeded": 400,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "insufficient_quota": 429,
}


def finish_reason(chat_reason: str | None) -> str:
    return FINISH_TO_GEMINI.get(chat_reason or "stop", "OTHER")


def usage_to_gemini(usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Chat usage (any provider's dialect) -> usageMetadata; None when none was reported (never made-up
    zeros). Gemini counts thoughts apart from candidates, and cached tokens inside the prompt."""
    if not usage:
        return None
    counts = normalize_openai(usage)
    out: dict[str, Any] = {
        "promptTokenCount": counts.prompt,
        "candidatesTokenCount": counts.output - counts.reasoning,
        "totalTokenCount": counts.prompt + counts.output,
    }
    if counts.cache_read:
        out["cachedContentTokenCount"] = counts.cache_read
    if counts.reasoning:
        out["thoughtsTokenCount"] = counts.reasoning
    return out


def response_id() -> str:
    return random_id()


def client_id(call_id: str | None, ctx: GeminiContext) -> str:
    """The id a client gets for an upstream tool call: the upstream's own (through an Anthropic target its
    toolu_ form, not the chat pivot's call_ one), or one minted here when the upstream sent none, so the
    client has an id to report the result under."""
    if ctx.anthropic_ids:
        rest = call_id[len(CALL_ID_PREFIX) :] if call_id and call_id.startswith(CALL_ID_PREFIX) else call_id
        return anthropic_tool_id(call_id, "") if rest else random_id(TOOL_ID_PREFIX)
    return call_id or random_id(CALL_ID_PREFIX)


def function_call_part(call_id: str, name: str, arguments: Any, ctx: GeminiContext) -> dict[str, Any]:
    """A functionCall part; `call_id` is the client's (see `client_id`)."""
    return {
        "functionCall": {
            "name": ctx.names.get(name, name),
            "args": decode_tool_arguments(arguments),
            "id": call_id,
        }
    }


def chunk(
    ctx: GeminiContext,
    rid: str,
    parts: list[dict[str, Any]],
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One GenerateContentResponse (a whole answer, or one streamed chunk)."""
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    out: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        out["usageMetadata"] = usage
    out["modelVersion"] = ctx.model
    out["responseId"] = rid
    return out


def chat_to_gemini_response(resp: Mapping[str, Any], ctx: GeminiContext) -> dict[str, Any]:
    """A whole chat completion -> a whole GenerateContentResponse."""
    choices = resp.get("choices") or ()
    choice = choices[0] if choices else {}
    message = choice.get("message") or {}
    parts: list[dict[str, Any]] = []
    thinking = reasoning_text(message)
    if thinking and ctx.thoughts:
        parts.append({"text": thinking, "thought": True})
    text = content_text(message.get("content")) + (message.get("refusal") or "")
    if text:
        parts.append({"text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        name = function.get("name") or ""
        parts.append(function_call_part(client_id(call.get("id"), ctx), name, function.get("arguments"), ctx))
    rid = resp.get("id")
    return chunk(
        ctx,
        rid if isinstance(rid, str) and rid else response_id(),
        parts,
        finish_reason(choice.get("finish_reason")),
        usage_to_gemini(resp.get("usage")),
    )


# ----------------------------------------------------------------------------------------------- errors


def gemini_error(status: int, message: str) -> dict[str, Any]:
    """Google's error body: `{"error": {"code", "message", "status"}}`."""
    return google_error(status, message)


def kind_status(kind: str, default: int = 500) -> int:
    """An HTTP status for a proxy failure kind or an upstream error type/code (for errors mid-stream)."""
    if kind.isdigit():
        return int(kind)
    return _KIND_STATUS.get(kind, default)


def chat_error_to_gemini(status: int, body: Mapping[str, Any] | bytes | str | None) -> dict[str, Any]:
    """An upstream error body (OpenAI or Anthropic dialect, plain text, nothing) in Google's error shape."""
    return gemini_error(status, error_message(status, body))

"""Chat completions answers -> Responses API objects: the whole response, its items, usage and errors.

The streaming translator builds its items with the same helpers, so a streamed answer and a whole one
end in the same Response object.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from app.proxy.errors import responses_error
from app.proxy.translate.pivot import content_text, random_id, reasoning_text
from app.proxy.translate.responses_request import ResponsesContext
from app.proxy.translate.responses_tools import ToolOrigin

# Chat finish_reason -> (Response status, incomplete_details.reason)
_FINISH: dict[str, tuple[str, str | None]] = {
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
}
_COMPLETED: tuple[str, None] = ("completed", None)

# Codes clients act on (Codex stops on context_length_exceeded / insufficient_quota, retries the rest).
_PASSED_CODES = frozenset(
    {"server_error", "rate_limit_exceeded", "context_length_exceeded", "insufficient_quota", "invalid_prompt"}
)


def finish_status(finish_reason: str | None) -> tuple[str, str | None]:
    return _FINISH.get(finish_reason or "", _COMPLETED)


def base_response(ctx: ResponsesContext, response_id: str, created_at: int, status: str) -> dict[str, Any]:
    """A Response object with no output yet, echoing the request the way the Responses API does."""
    echo = ctx.echo
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "model": ctx.model,
        "output": [],
        "parallel_tool_calls": ctx.parallel_tool_calls,
        "previous_response_id": echo.get("previous_response_id"),
        "reasoning": echo.get("reasoning"),
        "store": ctx.remember is not None,
        "temperature": echo.get("temperature"),
        "text": echo.get("text") or {"format": {"type": "text"}},
        "tool_choice": ctx.tool_choice,
        "tools": ctx.tools,
        "top_p": echo.get("top_p"),
        "truncation": echo.get("truncation", "disabled"),
        "usage": None,
        "metadata": echo.get("metadata") or {},
    }


def usage_to_responses(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat usage -> Responses usage; None when the upstream reported none (never a made-up zero)."""
    if not usage:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cached = prompt_details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0  # DeepSeek
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": cached,
            "cache_write_tokens": prompt_details.get("cache_write_tokens") or 0,
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": completion_details.get("reasoning_tokens") or 0},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [text_part(text)],
    }


def reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def tool_call_item(
    origin: ToolOrigin | None,
    chat_name: str,
    call_id: str,
    arguments: str,
    status: str,
    item_id: str | None = None,
) -> dict[str, Any]:
    """A function_call item, or a custom_tool_call item when the function was a bridged custom tool."""
    if origin is not None and origin.custom:
        item = {
            "id": item_id or random_id("ctc_"),
            "type": "custom_tool_call",
            "status": status,
            "call_id": call_id,
            "name": origin.name,
            "input": custom_input(arguments),
        }
    else:
        item = {
            "id": item_id or random_id("fc_"),
            "type": "function_call",
            "status": status,
            "arguments": arguments or "{}",
            "call_id": call_id,
            "name": origin.name if origin is not None else chat_name,
        }
    if origin is not None and origin.namespace:
        item["namespace"] = origin.namespace
    return item


def custom_input(arguments: str) -> str:
    """The raw text of a bridged custom tool call: the `input` argument, tolerating models that skip JSON."""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(value, dict):
        text = value.get("input")
        if isinstance(text, str):
            return text
        if len(value) == 1:
            (only,) = value.values()
            if isinstance(only, str):
                return only
    elif isinstance(value, str):
        return value
    return arguments


def chat_to_responses_response(
    resp: dict[str, Any], ctx: ResponsesContext, *, response_id: str | None = None
) -> dict[str, Any]:
    """A whole chat completion -> a whole Response object."""
    choices = resp.get("choices") or ()
    choice = choices[0] if choices else {}
    message = choice.get("message") or {}
    status, reason = finish_status(choice.get("finish_reason"))
    item_status = "completed" if status == "completed" else "incomplete"
    output: list[dict[str, Any]] = []
    thinking = reasoning_text(message)
    if thinking:
        output.append(reasoning_item(random_id("rs_"), thinking))
    text = content_text(message.get("content")) + (message.get("refusal") or "")
    calls = message.get("tool_calls") or ()
    if text:  # text followed by tool calls was finished before the cut, as in a stream
        output.append(message_item(random_id("msg_"), text, "completed" if calls else item_status))
    for call in calls:
        function = call.get("function") or {}
        name = function.get("name") or ""
        call_id = call.get("id") or random_id("call_")
        output.append(
            tool_call_item(ctx.origins.get(name), name, call_id, function.get("arguments") or "", item_status)
        )
    created = resp.get("created")
    out = base_response(
        ctx,
        response_id or random_id("resp_"),
        created if isinstance(created, int) else int(time.time()),
        status,
    )
    out["output"] = output
    out["usage"] = usage_to_responses(resp.get("usage"))
    if reason is not None:
        out["incomplete_details"] = {"reason": reason}
    ctx.keep(out)
    return out


def failed_error(kind: str, message: str) -> dict[str, Any]:
    """`response.error` for a failure: codes clients act on pass through, anything else is a server_error."""
    if kind in _PASSED_CODES:
        return {"code": kind, "message": message}
    return {"code": "server_error", "message": f"{kind}: {message}" if kind else message}


def chat_error_to_responses(status: int, body: Any) -> dict[str, Any]:
    """An upstream error body (OpenAI, Anthropic, plain text or nothing) in the OpenAI error shape; read by
    app.proxy.errors like every other shape's, so the message is the same whatever API the client spoke."""
    return responses_error(status, body)

"""Whole (non-streamed) responses: OpenAI chat completion <-> Anthropic Message; and the vocabulary
every Anthropic <-> OpenAI translator shares (ids, stop reasons, usage, reasoning signatures).

`model` is always the name the client asked for, so the client sees its own model name back. A tool name
a target made us rename comes back as the client's own through `tool_names` (see `tool_name_map`).

Ids: each format keeps its own style. `toolu_X` <-> `call_X` swap prefixes (so a round trip restores the
id, and an upstream sees its own call ids again); any other id gains the target's prefix once.

Usage: OpenAI `prompt_tokens` INCLUDES cached and cache-written tokens; Anthropic `input_tokens` EXCLUDES
cache reads and cache writes. So input = prompt - cached - written, and prompt = input + read + creation.

Reasoning: thinking that came from Anthropic carries a signature Anthropic checks. Going to an OpenAI-format
client it travels in OpenRouter's `reasoning_details` convention (`{"type": "reasoning.text", "text",
"signature", "format": "anthropic-claude-v1", "index"}`, redacted thinking as `reasoning.encrypted`), which
OpenRouter-aware clients (and our Responses translator) hand back, so the next request rebuilds the exact
blocks. Reasoning from an OpenAI-format upstream reaches Anthropic clients as a thinking block whose
signature we issue (`SIGNATURE_PREFIX`, carrying the upstream's own `reasoning_details` when it sent
any, so those round-trip too); such blocks are never sent to Anthropic itself (`drop_foreign_thinking`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import orjson

from app.core.usage import normalize_anthropic, normalize_openai
from app.proxy.translate.pivot import content_text, random_id, reasoning_text

TOOL_ID_PREFIX = "toolu_"
CALL_ID_PREFIX = "call_"
SIGNATURE_PREFIX = "downshift.1."  # thinking signatures we issue (the text did not come from Anthropic)
ANTHROPIC_DETAILS_FORMAT = "anthropic-claude-v1"  # OpenRouter's `format` for Anthropic reasoning details
TOOL_ERROR_PREFIX = "[tool error] "  # how `is_error` survives in an OpenAI tool message
RAW_ARGUMENTS_KEY = "_raw_arguments"  # tool-call arguments that were not a JSON object, kept verbatim

FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}


# ------------------------------------------------------------------------------------------ ids and names


def _is_word(text: str) -> bool:
    """True when `text` matches ^[A-Za-z0-9_-]+$ (string methods, not a regex: this runs per tool call)."""
    if not text or not text.isascii():
        return False
    core = text.replace("_", "").replace("-", "")
    return not core or core.isalnum()


def _clean(text: str) -> str:
    if _is_word(text):
        return text
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in text) or "_"


def anthropic_tool_id(openai_id: str | None, fallback: str) -> str:
    """An OpenAI tool-call id in Anthropic style (`toolu_...`, and only characters Anthropic accepts)."""
    if not openai_id:
        return fallback
    if openai_id.startswith(CALL_ID_PREFIX):
        return TOOL_ID_PREFIX + _clean(openai_id[len(CALL_ID_PREFIX) :])
    if openai_id.startswith(TOOL_ID_PREFIX):
        return _clean(openai_id)
    return TOOL_ID_PREFIX + _clean(openai_id)


def openai_tool_id(anthropic_id: str, id_len: int | None = None) -> str:
    """An Anthropic tool-use id in OpenAI style; `id_len` forces a fixed-length alphanumeric id (Mistral)."""
    if anthropic_id.startswith(TOOL_ID_PREFIX):
        out = CALL_ID_PREFIX + anthropic_id[len(TOOL_ID_PREFIX) :]
    elif anthropic_id.startswith(CALL_ID_PREFIX):
        out = anthropic_id
    else:
        out = CALL_ID_PREFIX + anthropic_id
    if id_len is None:
        return out
    return _alnum_digest(out, id_len)


_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _alnum_digest(text: str, length: int) -> str:
    number = int.from_bytes(hashlib.blake2s(text.encode(), digest_size=16).digest(), "big")
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 62)
        chars.append(_ALNUM[rest])
    return "".join(chars)


@lru_cache(maxsize=4096)  # agents resend the same tool names every turn
def upstream_tool_name(name: str, limit: int = 64) -> str:
    """`name` if the target accepts it, else a deterministic valid one (cleaned, shortened, hash-suffixed).

    Deterministic so tool definitions and the tool calls in history agree without shared state.
    """
    if len(name) <= limit and _is_word(name):
        return name
    suffix = hashlib.blake2s(name.encode(), digest_size=4).hexdigest()
    return f"{_clean(name)[: limit - len(suffix) - 1]}_{suffix}"


def decode_tool_arguments(arguments: Any) -> dict[str, Any]:
    """OpenAI's JSON-string arguments as Anthropic's input object; anything else kept under RAW_ARGUMENTS_KEY."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {RAW_ARGUMENTS_KEY: arguments}


def encode_tool_input(tool_input: Any) -> str:
    """Anthropic's input object as OpenAI's JSON-string arguments (raw arguments restored verbatim)."""
    if isinstance(tool_input, dict) and len(tool_input) == 1:
        raw = tool_input.get(RAW_ARGUMENTS_KEY)
        if isinstance(raw, str):
            return raw
    return orjson.dumps(tool_input if tool_input is not None else {}).decode()


# ------------------------------------------------------------------------------------------ usage


def usage_to_anthropic(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI usage (any provider's dialect, read by `app.core.usage`) -> Anthropic usage."""
    counts = normalize_openai(usage)
    out: dict[str, Any] = {
        "input_tokens": counts.input,
        "output_tokens": counts.output,
        "cache_creation_input_tokens": counts.cache_write + counts.cache_write_1h,
        "cache_read_input_tokens": counts.cache_read,
    }
    if counts.reasoning:
        out["output_tokens_details"] = {"thinking_tokens": counts.reasoning}
    return out


def usage_to_openai(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """Anthropic usage -> OpenAI usage, with cache reads and writes folded back into prompt_tokens."""
    counts = normalize_anthropic(usage)
    prompt = counts.prompt
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": counts.output,
        "total_tokens": prompt + counts.output,
        "prompt_tokens_details": {
            "cached_tokens": counts.cache_read,
            "cache_write_tokens": counts.cache_write + counts.cache_write_1h,
        },
    }
    details = (usage or {}).get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, Mapping) else None
    if isinstance(thinking, int) and thinking:
        out["completion_tokens_details"] = {"reasoning_tokens": thinking}
    return out


# ------------------------------------------------------------------------------------------ reasoning


def issue_signature(details: list[Any] | None = None) -> str:
    """A signature for thinking we produced; carries the upstream's `reasoning_details` when it sent any."""
    if not details:
        return SIGNATURE_PREFIX
    return SIGNATURE_PREFIX + base64.urlsafe_b64encode(orjson.dumps(details)).decode("ascii")


def read_signature(signature: Any) -> list[Any] | None:
    """The `reasoning_details` inside a signature we issued ([] if none); None when we did not issue it."""
    if not isinstance(signature, str) or not signature.startswith(SIGNATURE_PREFIX):
        return None
    payload = signature[len(SIGNATURE_PREFIX) :]
    if not payload:
        return []
    try:
        details = orjson.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return []
    return details if isinstance(details, list) else []


_DETAIL_TEXT_FIELDS = ("text", "summary", "data")


def merge_reasoning_details(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Streamed `reasoning_details` fragments merged per `index`: text fields concatenated, others kept."""
    merged: dict[Any, dict[str, Any]] = {}
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        key = item.get("index", f"#{position}")
        into = merged.get(key)
        if into is None:
            merged[key] = dict(item)
            continue
        for field, value in item.items():
            if value is None:
                continue
            if field in _DETAIL_TEXT_FIELDS and isinstance(value, str) and isinstance(into.get(field), str):
                into[field] += value
            else:
                into[field] = value
    return list(merged.values())


NO_NAMES: Mapping[str, str] = {}  # `tool_names` when no tool was renamed


def message_id(upstream_id: Any) -> str:
    """An Anthropic `msg_...` id derived from the upstream's id (fresh when it has none)."""
    if isinstance(upstream_id, str) and upstream_id:
        core = upstream_id.removeprefix("chatcmpl-").removeprefix("gen-")
        return "msg_" + (_clean(core) if core else "")
    return random_id("msg_")


def completion_id(upstream_id: Any) -> str:
    """An OpenAI `chatcmpl-...` id derived from the upstream's id (fresh when it has none)."""
    if isinstance(upstream_id, str) and upstream_id:
        return "chatcmpl-" + upstream_id.removeprefix("msg_")
    return random_id("chatcmpl-")


def stop_reason(finish_reason: Any, has_tool_calls: bool, matched: Any = None) -> str:
    """Anthropic stop_reason for an OpenAI finish_reason (vLLM's `stop_reason` names a matched stop string)."""
    if has_tool_calls and finish_reason in (None, "stop", "tool_calls", "function_call"):
        return "tool_use"
    if finish_reason == "stop" and isinstance(matched, str):
        return "stop_sequence"
    return FINISH_TO_STOP.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"


def finish_reason(stop: Any) -> str:
    """OpenAI finish_reason for an Anthropic stop_reason ("stop" for one it does not know)."""
    return STOP_TO_FINISH.get(stop, "stop") if isinstance(stop, str) else "stop"


def openai_to_anthropic_response(
    resp: Mapping[str, Any], *, model: str, tool_names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An OpenAI chat completion as an Anthropic Message (first choice; clients of Messages ask for one)."""
    names = tool_names or NO_NAMES
    msg_id = message_id(resp.get("id"))
    choices = resp.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []

    reasoning = reasoning_text(message)
    details = message.get("reasoning_details")
    if reasoning or details:
        content.append({
            "type": "thinking",
            "thinking": reasoning or "",
            "signature": issue_signature(details if isinstance(details, list) else None),
        })  # fmt: skip
    text = content_text(message.get("content"))  # a few providers (Mistral) answer with content parts
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") or ()
    for k, call in enumerate(calls):
        function = call.get("function") or {}
        name = function.get("name") or ""
        content.append({
            "type": "tool_use",
            "id": anthropic_tool_id(call.get("id"), f"toolu_{msg_id[4:]}_{k}"),
            "name": names.get(name, name),
            "input": decode_tool_arguments(function.get("arguments")),
        })  # fmt: skip

    reason = stop_reason(choice.get("finish_reason"), bool(calls), choice.get("stop_reason"))
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": choice.get("stop_reason") if reason == "stop_sequence" else None,
        "usage": usage_to_anthropic(resp.get("usage")),
    }


def anthropic_to_openai_response(
    resp: Mapping[str, Any],
    *,
    model: str,
    tool_names: Mapping[str, str] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """An Anthropic Message as an OpenAI chat completion; thinking as reasoning_content + reasoning_details."""
    names = tool_names or NO_NAMES
    texts: list[str] = []
    reasoning: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in resp.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
            details.append({
                "type": "reasoning.text",
                "text": block.get("thinking", ""),
                "signature": block.get("signature"),
                "format": ANTHROPIC_DETAILS_FORMAT,
                "index": len(details),
            })  # fmt: skip
        elif kind == "redacted_thinking":
            details.append({
                "type": "reasoning.encrypted",
                "data": block.get("data"),
                "format": ANTHROPIC_DETAILS_FORMAT,
                "index": len(details),
            })  # fmt: skip
        elif kind == "tool_use":
            calls.append(_tool_call(block, names))
        # server tool blocks (web search and the like) ran at Anthropic; the text around them carries the answer

    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if details:
        message["reasoning_details"] = details
    finish = finish_reason(resp.get("stop_reason"))
    return {
        "id": completion_id(resp.get("id")),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage_to_openai(resp.get("usage")),
    }


def _tool_call(block: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    name = block.get("name") or ""
    return {
        "id": openai_tool_id(str(block.get("id") or "")),
        "type": "function",
        "function": {"name": names.get(name, name), "arguments": encode_tool_input(block.get("input"))},
    }

"""Anthropic Messages <-> OpenAI chat completions: the vocabulary both directions share, and error bodies.

The translation itself lives in three modules, each importable on its own:
  - `anthropic_request`:  `anthropic_to_openai_request`, `openai_to_anthropic_request` (allowlists there),
                          `tool_name_map`, `drop_foreign_thinking`;
  - `anthropic_response`: `openai_to_anthropic_response`, `anthropic_to_openai_response`;
  - `anthropic_stream`:   `OpenAIToAnthropicStream`, `AnthropicToOpenAIStream`.
This module holds what they agree on: id styles, stop reasons, usage arithmetic, how reasoning survives a
trip through a client of the other format, and the error-body mappings.

Ids: each format keeps its own style. `toolu_X` <-> `call_X` swap prefixes (so a round trip restores the
id, and an upstream sees its own call ids again); any other id gains the target's prefix once.

Usage: OpenAI `prompt_tokens` INCLUDES cached and cache-written tokens; Anthropic `input_tokens` EXCLUDES
cache reads and cache writes. So input = prompt - cached - written, and prompt = input + read + creation.

Reasoning: thinking that came from Anthropic carries a signature Anthropic checks. Going to an OpenAI-format
client it travels in OpenRouter's `reasoning_details` convention (`{"type": "reasoning.text", "text",
"signature", "format": "anthropic-claude-v1", "index"}`, redacted thinking as `reasoning.encrypted`), which
OpenRouter-aware clients (and our Responses translator) hand back, so the next request rebuilds the exact
blocks. Reasoning from an OpenAI-format upstream reaches Anthropic clients as a thinking block whose
signature we issue (`SIGNATURE_PREFIX`, optionally carrying the upstream's own `reasoning_details` so they
round-trip too); such blocks are never sent to Anthropic itself (`drop_foreign_thinking`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

TOOL_ID_PREFIX = "toolu_"
CALL_ID_PREFIX = "call_"
SIGNATURE_PREFIX = "downshift.1."  # thinking signatures we issue (the text did not come from Anthropic)
ANTHROPIC_DETAILS_FORMAT = "anthropic-claude-v1"  # OpenRouter's `format` for Anthropic reasoning details
TOOL_ERROR_PREFIX = "[tool error] "  # how `is_error` survives in an OpenAI tool message

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


def upstream_tool_name(name: str, limit: int = 64) -> str:
    """`name` if the target accepts it, else a deterministic valid one (cleaned, shortened, hash-suffixed).

    Deterministic so tool definitions and the tool calls in history agree without shared state.
    """
    if len(name) <= limit and _is_word(name):
        return name
    suffix = hashlib.blake2s(name.encode(), digest_size=4).hexdigest()
    return f"{_clean(name)[: limit - len(suffix) - 1]}_{suffix}"


# ------------------------------------------------------------------------------------------ usage


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_to_anthropic(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenAI usage (any provider's dialect) -> Anthropic usage, with cached tokens moved out of input."""
    if not usage:
        return {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    details = usage.get("prompt_tokens_details") or {}
    cached = (
        _int(details.get("cached_tokens")) or _int(usage.get("prompt_cache_hit_tokens")) or _int(usage.get("cached_tokens"))
    )
    written = _int(details.get("cache_write_tokens"))
    out: dict[str, Any] = {
        "input_tokens": max(_int(usage.get("prompt_tokens")) - cached - written, 0),
        "output_tokens": _int(usage.get("completion_tokens")),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }
    reasoning = _int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens"))
    if reasoning:
        out["output_tokens_details"] = {"thinking_tokens": reasoning}
    return out


def usage_to_openai(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """Anthropic usage -> OpenAI usage, with cache reads and writes folded back into prompt_tokens."""
    usage = usage or {}
    read = _int(usage.get("cache_read_input_tokens"))
    written = _int(usage.get("cache_creation_input_tokens"))
    prompt = _int(usage.get("input_tokens")) + read + written
    completion = _int(usage.get("output_tokens"))
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written},
    }
    thinking = _int((usage.get("output_tokens_details") or {}).get("thinking_tokens"))
    if thinking:
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


# ------------------------------------------------------------------------------------------ errors

_ANTHROPIC_ERROR_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ANTHROPIC_ERROR_TYPES = frozenset(_ANTHROPIC_ERROR_BY_STATUS.values())
_KIND_TO_ANTHROPIC = {
    "timeout": "timeout_error",
    "idle_timeout": "timeout_error",
    "first_byte_timeout": "timeout_error",
    "rate_limit": "rate_limit_error",
    "overloaded": "overloaded_error",
}
_OVERFLOW_HINTS = (
    "context_length_exceeded",
    "context length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "reduce the length",
)
_MAX_CONTEXT = re.compile(r"(?:maximum context length|context window|limit) (?:is|of) (\d+)")
_REQUESTED = re.compile(r"(?:requested|resulted in|prompt (?:has|contains)|you sent) (?:about )?(\d+)")


def _decode_error(status: int, body: Mapping[str, Any] | bytes | str | None) -> tuple[str, str | None, str | None]:
    """(message, type, code) from whatever an upstream sent as an error body."""
    data: Any = body
    if isinstance(body, bytes | bytearray | str):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
            return (text.strip()[:2000] or f"upstream error (HTTP {status})"), None, None
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return f"upstream error (HTTP {status})", None, None
    error = data.get("error", data)
    if isinstance(error, str):
        return error, None, None
    if not isinstance(error, dict):
        return f"upstream error (HTTP {status})", None, None
    message = error.get("message") or error.get("detail") or data.get("message") or data.get("detail")
    if isinstance(message, list):  # FastAPI / pydantic validation errors
        message = "; ".join(str(m.get("msg", m)) if isinstance(m, dict) else str(m) for m in message)
    code = error.get("code")
    kind = error.get("type")
    return (
        str(message) if message else f"upstream error (HTTP {status})",
        kind if isinstance(kind, str) else None,
        str(code) if code is not None else None,
    )


def _is_overflow(message: str, code: str | None) -> bool:
    lowered = message.lower()
    return code == "context_length_exceeded" or any(hint in lowered for hint in _OVERFLOW_HINTS)


def _overflow_message(message: str) -> str:
    """Anthropic's wording, which Claude Code reads to decide to compact the conversation."""
    if message.startswith("prompt is too long"):
        return message
    lowered = message.lower()
    limit, asked = _MAX_CONTEXT.search(lowered), _REQUESTED.search(lowered)
    if limit and asked:
        return f"prompt is too long: {asked.group(1)} tokens > {limit.group(1)} maximum ({message})"
    return f"prompt is too long: {message}"


def anthropic_error_type(kind: str, status: int = 500) -> str:
    """An Anthropic error `type` for a proxy failure kind or HTTP status."""
    if kind in ANTHROPIC_ERROR_TYPES:
        return kind
    return _KIND_TO_ANTHROPIC.get(kind) or _ANTHROPIC_ERROR_BY_STATUS.get(status) or (
        "invalid_request_error" if 400 <= status < 500 else "api_error"
    )


def openai_error_to_anthropic(status: int, body: Mapping[str, Any] | bytes | str | None) -> dict[str, Any]:
    """An OpenAI-format error body (any provider's dialect) as an Anthropic error body for `status`."""
    message, _, code = _decode_error(status, body)
    kind = anthropic_error_type("", status)
    if 400 <= status < 500 and _is_overflow(message, code):
        kind, message = "invalid_request_error", _overflow_message(message)
    return {"type": "error", "error": {"type": kind, "message": message}}


_OPENAI_ERROR = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("invalid_request_error", "invalid_api_key"),
    "permission_error": ("invalid_request_error", "permission_denied"),
    "not_found_error": ("invalid_request_error", "model_not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "billing_error": ("insufficient_quota", "insufficient_quota"),
    "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
    "timeout_error": ("server_error", "timeout"),
    "overloaded_error": ("server_error", "overloaded"),
    "api_error": ("server_error", "server_error"),
}


def openai_error(kind: str, message: str, status: int = 500) -> dict[str, Any]:
    """An OpenAI error object for an Anthropic error type (or proxy failure kind)."""
    atype = anthropic_error_type(kind, status)
    etype, code = _OPENAI_ERROR[atype]
    if atype == "invalid_request_error" and _is_overflow(message, None):
        code = "context_length_exceeded"
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


def anthropic_error_to_openai(status: int, body: Mapping[str, Any] | bytes | str | None) -> dict[str, Any]:
    """An Anthropic error body as an OpenAI error body (`code` set where OpenAI clients look for one)."""
    message, kind, _ = _decode_error(status, body)
    return openai_error(kind or "", message, status)

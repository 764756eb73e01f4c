"""Errors: the one a translator raises, and error bodies carried between the OpenAI and Anthropic formats.

Translators never drop user content silently; when they cannot map it they raise `TranslationError`, and
the server answers the client with a 400 whose message names what was unsupported and where.

Upstream error bodies come in many dialects (OpenAI's `{"error": {...}}`, a bare string, FastAPI's
`{"detail": [...]}`, a list); they are read leniently and re-shaped for the client. A context overflow is
worded as Anthropic words it ("prompt is too long: N tokens > M maximum"), which Claude Code reads to
compact the conversation, and given OpenAI's `context_length_exceeded` code, which OpenAI clients read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from app.proxy.errors import error_type


class TranslationError(ValueError):
    """Unsupported content in a request; `str(err)` is the user-facing reason, `where` its JSON path."""

    def __init__(self, message: str, where: str = "") -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

    def within(self, outer: str) -> TranslationError:
        """The same error located inside `outer` (paths are built only when something fails)."""
        if not self.where:
            return TranslationError(self.message, outer)
        joiner = "" if self.where.startswith("[") else "."
        return TranslationError(self.message, f"{outer}{joiner}{self.where}")


ANTHROPIC_ERROR_TYPES = frozenset({
    "invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
    "request_too_large", "rate_limit_error", "api_error", "overloaded_error", "timeout_error",
})  # fmt: skip
_KIND_TO_ANTHROPIC = {  # the proxy's failure kinds (`UpstreamFailure.kind`) and OpenAI error codes/types
    "timeout": "timeout_error",
    "stalled": "timeout_error",
    "rate_limit": "rate_limit_error",
    "rate_limit_exceeded": "rate_limit_error",
    "rate_limit_error": "rate_limit_error",
    "overloaded": "overloaded_error",
    "server_error": "api_error",
    "context_length_exceeded": "invalid_request_error",
    "invalid_request_error": "invalid_request_error",
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


def _decode_error(
    status: int, body: Mapping[str, Any] | bytes | str | None
) -> tuple[str, str | None, str | None]:
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
    if isinstance(message, list):  # FastAPI / pydantic validation errors: name the offending field
        message = "; ".join(_validation_item(m) for m in message)
    code = error.get("code")
    kind = error.get("type")
    return (
        str(message) if message else f"upstream error (HTTP {status})",
        kind if isinstance(kind, str) else None,
        str(code) if code is not None else None,
    )


def error_message(status: int, body: Mapping[str, Any] | bytes | str | None) -> str:
    """The human message of an upstream error body, whatever its dialect."""
    return _decode_error(status, body)[0]


def _validation_item(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc") or () if part != "body")
    return f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", item))


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
    return _KIND_TO_ANTHROPIC.get(kind) or error_type("anthropic", status)


def openai_error_to_anthropic(status: int, body: Mapping[str, Any] | bytes | str | None) -> dict[str, Any]:
    """An OpenAI-format error body (any provider's dialect) as an Anthropic error body for `status`."""
    message, _, code = _decode_error(status, body)
    kind = anthropic_error_type("", status)
    if 400 <= status < 500 and _is_overflow(message, code):
        kind, message = "invalid_request_error", _overflow_message(message)
    return {"type": "error", "error": {"type": kind, "message": message}}


def openai_stream_error_to_anthropic(chunk: Mapping[str, Any]) -> dict[str, Any]:
    """A mid-stream `{"error": {...}}` chunk as an Anthropic error event (no HTTP status to go by)."""
    message, kind, code = _decode_error(500, chunk)
    if code is not None and code.isdigit():
        atype = anthropic_error_type("", int(code))
    else:
        atype = anthropic_error_type(code or kind or "", 500)
    if _is_overflow(message, code):
        atype, message = "invalid_request_error", _overflow_message(message)
    return {"type": "error", "error": {"type": atype, "message": message}}


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

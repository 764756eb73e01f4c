"""Errors in the caller's own API shape, and upstream error bodies read whatever their dialect: one place.

Shapes: OpenAI chat completions, OpenAI Responses, Anthropic Messages, Gemini (Google's `{"error": {"code",
"message", "status"}}`). `error_type(shape, status)` is the error type a client of that shape expects for an
HTTP status; `error_body` builds a whole body.

Upstream error bodies come in many dialects (OpenAI's `{"error": {...}}`, Anthropic's `{"type": "error",
"error": {...}}`, a bare string, FastAPI's `{"detail": [...]}`, a list, a gateway's HTML page); `decode_error`
reads them leniently, once, for every shape, so the same upstream failure gives the same message text in each
(a body that is not JSON is cut at MESSAGE_MAX_CHARS, everywhere). A context overflow is worded as Anthropic
words it ("prompt is too long: N tokens > M maximum"), which Claude Code reads to compact the conversation,
and given OpenAI's `context_length_exceeded` code, which OpenAI clients read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

# The longest error message taken from text (a body that is not JSON, a mid-stream error event's message):
# enough for any provider's own words, not a whole HTML page in every log row.
MESSAGE_MAX_CHARS = 2000

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_RESPONSES_TYPES = {
    **_OPENAI_TYPES,
    409: "conflict",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
}
_TYPES = {"openai": _OPENAI_TYPES, "responses": _RESPONSES_TYPES, "anthropic": _ANTHROPIC_TYPES}

# HTTP status -> the google.rpc status name Google's error bodies carry (`{"error": {"code", "message", "status"}}`).
GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
    529: "UNAVAILABLE",
}


class ProxyError(Exception):
    """A failure to report to the client with `status`; `kind` goes to the call log."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        member: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.param = status, kind, message, param
        self.headers = headers or {}
        self.member = member  # team gateway: the member a refused-but-logged call (429) belongs to


# ------------------------------------------------------------------------------------------- client shapes


def error_type(api: str, status: int) -> str:
    """The error type a client of `api` (openai, responses, anthropic, gemini) expects for `status`."""
    if api == "gemini":
        return GOOGLE_STATUS.get(status) or ("INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    found = _TYPES.get(api, _OPENAI_TYPES).get(status)
    if found:
        return found
    if api == "anthropic":
        return "api_error" if status >= 500 else "invalid_request_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def google_error(status: int, message: str) -> dict[str, Any]:
    """Google's error body, as the Gemini API sends it."""
    return {"error": {"code": status, "message": message, "status": error_type("gemini", status)}}


def error_body(
    api: str, status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    if api == "anthropic":
        return {"type": "error", "error": {"type": error_type(api, status), "message": message}}
    if api == "gemini":
        return google_error(status, message)
    return {"error": {"message": message, "type": error_type(api, status), "param": param, "code": code}}


def error_json(api: str, status: int, message: str, **kw: Any) -> bytes:
    return orjson.dumps(error_body(api, status, message, **kw))


def cut_message(text: str) -> str:
    """An error message taken from text, at the one length every shape and the log use."""
    return text[:MESSAGE_MAX_CHARS]


# ------------------------------------------------------------------------------------------- upstream bodies

Body = Mapping[str, Any] | bytes | str | list[Any] | None


class UpstreamError(NamedTuple):
    """What an upstream error body says: its message, and its type, code and param where it has them."""

    message: str
    type: str | None = None
    code: str | None = None
    param: str | int | None = None


def _no_message(status: int | None) -> str:
    return f"upstream error (HTTP {status})" if status else "no error message"


def decode_error(status: int | None, body: Body) -> UpstreamError:
    """The message (and type, code, param) of an upstream error body, whatever its dialect."""
    data: Any = body
    if isinstance(body, bytes | bytearray | str):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
            return UpstreamError(cut_message(text.strip()) or _no_message(status))
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, str) and data.strip():  # a JSON string
        return UpstreamError(cut_message(data.strip()))
    if not isinstance(data, dict):
        return UpstreamError(_no_message(status))
    error = data.get("error", data)
    if isinstance(error, str):
        return UpstreamError(error or _no_message(status))
    if not isinstance(error, dict):
        return UpstreamError(_no_message(status))
    return UpstreamError(
        _message(error, data) or _no_message(status),
        _text(error, "type"),
        _code(error.get("code")),
        _param(error.get("param")),
    )


def _message(error: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    message = (
        error.get("message")
        or error.get("detail")
        or error.get("msg")
        or data.get("message")
        or data.get("detail")
    )
    if isinstance(message, str):
        return message
    if isinstance(message, list):  # FastAPI / pydantic validation errors: name the offending field
        return "; ".join(_validation_item(m) for m in message)
    return "" if message is None else cut_message(orjson.dumps(message).decode())


def _text(error: Mapping[str, Any], key: str) -> str | None:
    value = error.get(key)
    return value if isinstance(value, str) and value else None


def _code(value: Any) -> str | None:
    """A code as OpenAI clients read it: a string (a number given, as a string)."""
    return (
        str(value) if isinstance(value, str | int) and not isinstance(value, bool) and value != "" else None
    )


def _param(value: Any) -> str | int | None:
    return value if isinstance(value, str | int) and not isinstance(value, bool) and value != "" else None


def _validation_item(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc") or () if part != "body")
    return f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", item))


def error_message(status: int | None, body: Body) -> str:
    """The human message of an upstream error body, whatever its dialect."""
    return decode_error(status, body).message


def upstream_error_message(body: bytes, status: int | None = None) -> str:
    """The human message inside a provider's error body, whatever its shape (for the log)."""
    return decode_error(status, body).message


# ------------------------------------------------------------------------------------------- between shapes

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


def openai_error_to_anthropic(status: int, body: Body) -> dict[str, Any]:
    """An OpenAI-format error body (any provider's dialect) as an Anthropic error body for `status`."""
    message, _, code, _ = decode_error(status, body)
    kind = anthropic_error_type("", status)
    if 400 <= status < 500 and _is_overflow(message, code):
        kind, message = "invalid_request_error", _overflow_message(message)
    return {"type": "error", "error": {"type": kind, "message": message}}


def openai_stream_error_to_anthropic(chunk: Mapping[str, Any]) -> dict[str, Any]:
    """A mid-stream `{"error": {...}}` chunk as an Anthropic error event (no HTTP status to go by)."""
    message, kind, code, _ = decode_error(500, chunk)
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


def anthropic_error_to_openai(status: int, body: Body) -> dict[str, Any]:
    """An Anthropic error body as an OpenAI error body (`code` set where OpenAI clients look for one)."""
    message, kind, _, _ = decode_error(status, body)
    return openai_error(kind or "", message, status)


def responses_error(status: int, body: Body) -> dict[str, Any]:
    """An upstream error body (OpenAI, Anthropic, plain text or nothing) in the Responses API's error shape."""
    message, kind, code, param = decode_error(status, body)
    if status == 429 and code is None:
        code = "rate_limit_exceeded"
    return {
        "error": {
            "message": message,
            "type": kind or error_type("responses", status),
            "param": param,
            "code": code,
        }
    }

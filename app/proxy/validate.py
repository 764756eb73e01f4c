"""Request validation at the proxy's door: the mistakes every API refuses, turned into a clear 400.

Every ingress reads its body here (chat completions, Messages, Responses, Anthropic `count_tokens`, and the
Gemini API through `app.proxy.gemini_api`, whose model and method come from the path), so a client
mistake gets the same wording whatever API it spoke, in that API's own error shape (app.proxy.errors).

The checks are O(1) in the length of the conversation (first and last items only): odd items in between
are found by the translators (a 400) or by the provider (its own 400, passed on).
"""

from __future__ import annotations

from typing import Any

import orjson

from app.proxy.errors import ProxyError

MAX_TOKENS_LIMIT = 10_000_000  # above any model's output limit: a larger value is a client mistake
MAX_MODEL_CHARS = 256
_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def json_object(body: bytes, empty: str = "expected a JSON object") -> dict[str, Any]:
    """The body as a JSON object; `empty` finishes the message for an empty body."""
    if not body:
        raise ProxyError(400, "bad_request", f"the request body is empty; {empty}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProxyError(400, "bad_json", f"the request body is not valid JSON: {exc}") from None
    if type(data) is not dict:
        raise ProxyError(400, "bad_request", "the request body must be a JSON object")
    return data


def all_dicts(items: list[Any]) -> bool:
    """The first and last items are JSON objects: O(1) whatever the length of the conversation."""
    return not items or (type(items[0]) is dict and type(items[-1]) is dict)


def token_limit(name: str, value: Any) -> None:
    """A maximum-output field (absent, or a whole number in range); `name` is its path for the message."""
    if value is not None and (type(value) is not int or not 1 <= value <= MAX_TOKENS_LIMIT):
        raise ProxyError(
            400,
            "bad_request",
            f"'{name}' must be a whole number from 1 to {MAX_TOKENS_LIMIT}, got {str(value)[:40]}",
            param=name,
        )


def request(body: bytes, client_api: str, *, count: bool = False) -> dict[str, Any]:
    """A chat-completions, Messages or Responses request (`count`: a `count_tokens` one) as a dict."""
    data = json_object(body)
    _model(data.get("model"))
    field = "input" if client_api == "responses" else "messages"
    items = data.get(field)
    if items is None:
        raise ProxyError(400, "bad_request", f"'{field}' is required", param=field)
    if client_api == "responses":
        if type(items) is not str and (type(items) is not list or not all_dicts(items)):
            raise ProxyError(
                400, "bad_request", "'input' must be a string or a list of input items", param="input"
            )
    elif type(items) is not list or not items or not all_dicts(items):
        raise ProxyError(
            400, "bad_request", f"'{field}' must be a non-empty list of message objects", param=field
        )
    stream = data.get("stream")
    if stream is not None and type(stream) is not bool:
        raise ProxyError(400, "bad_request", "'stream' must be true or false", param="stream")
    tools = data.get("tools")
    if tools is not None and (type(tools) is not list or not all_dicts(tools)):
        raise ProxyError(400, "bad_request", "'tools' must be a list of tool objects", param="tools")
    if not count:
        for name in _TOKEN_FIELDS:
            token_limit(name, data.get(name))
    return data


def _model(model: Any) -> None:
    if model is None:
        raise ProxyError(
            400,
            "bad_request",
            "'model' is required (a Downshift role such as 'default', or provider/model)",
            param="model",
        )
    if type(model) is not str or not model.strip() or len(model) > MAX_MODEL_CHARS:
        raise ProxyError(
            400,
            "bad_request",
            f"'model' must be a non-empty string of at most {MAX_MODEL_CHARS} characters",
            param="model",
        )

"""One adapter per (client API, upstream API) pair: how a request is prepared for the upstream, and how the
answer (whole, streamed, or an error) goes back in the client's format.

Same-format pairs are passthrough: only `model` is rewritten (and streamed usage requested), the answer's
bytes go back untouched. Cross-format pairs use the pure translators in `app.proxy.translate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from app.core.config import Provider
from app.proxy import sse
from app.proxy.errors import error_body, upstream_error_message
from app.proxy.translate.responses import (
    ChatToResponsesStream,
    chat_error_to_responses,
    chat_to_responses_response,
    responses_to_chat_request,
)


class StreamTranslator(Protocol):
    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]: ...
    def finish(self) -> list[dict[str, Any]]: ...
    def error(self, kind: str, message: str) -> list[dict[str, Any]]: ...


@dataclass(slots=True)
class Context:
    """What the way back needs to know about the request."""

    requested_model: str
    client_wants_usage: bool = False
    extra: Any = None  # translator-specific context
    strip_usage_chunk: bool = False


@dataclass(frozen=True)
class Adapter:
    client_api: str
    upstream_api: str
    prepare: Callable[[dict[str, Any], str, Provider, Context], dict[str, Any]]
    respond: Callable[[dict[str, Any], Context], dict[str, Any]] | None = None  # None: pass bytes through
    stream: Callable[[Context], StreamTranslator] | None = None  # None: pass events through
    error: Callable[[int, bytes], dict[str, Any]] | None = None  # upstream error -> client's shape
    path: str = field(default="")

    @property
    def passthrough(self) -> bool:
        return self.respond is None

    @property
    def upstream_path(self) -> str:
        return self.path or ("/messages" if self.upstream_api == "anthropic" else "/chat/completions")

    def encode(self, events: list[dict[str, Any]]) -> bytes:
        if self.client_api in ("openai",):
            return sse.encode_openai(events)
        return sse.encode_typed(events)

    def done(self) -> bytes:
        return sse.OPENAI_DONE if self.client_api == "openai" else b""

    def error_from_upstream(self, status: int, body: bytes) -> bytes:
        """An upstream error body re-shaped for the client (kept as is when the formats already agree)."""
        if self.error is not None:
            return orjson.dumps(self.error(status, body))
        if self.client_api == self.upstream_api:
            try:
                data = orjson.loads(body)
                if isinstance(data, dict) and "error" in data:
                    return body
            except orjson.JSONDecodeError:
                pass
        api = "anthropic" if self.client_api == "anthropic" else "openai"
        return orjson.dumps(error_body(api, status, upstream_error_message(body)))


def clamp_max_tokens(body: dict[str, Any], key: str, provider: Provider) -> None:
    cap = provider.max_tokens
    value = body.get(key)
    if cap is not None and isinstance(value, int) and value > cap:
        body[key] = cap


def _prepare_openai(body: dict[str, Any], model: str, provider: Provider, ctx: Context) -> dict[str, Any]:
    out = dict(body)
    out["model"] = model
    if body.get("stream"):
        options = body.get("stream_options") or {}
        ctx.client_wants_usage = bool(options.get("include_usage"))
        if not ctx.client_wants_usage:
            out["stream_options"] = {**options, "include_usage": True}
            ctx.strip_usage_chunk = True
    clamp_max_tokens(out, "max_tokens", provider)
    clamp_max_tokens(out, "max_completion_tokens", provider)
    return out


def _prepare_anthropic(body: dict[str, Any], model: str, provider: Provider, ctx: Context) -> dict[str, Any]:
    out = dict(body)
    out["model"] = model
    clamp_max_tokens(out, "max_tokens", provider)
    return out


def _prepare_responses_chat(body: dict[str, Any], model: str, provider: Provider, ctx: Context) -> dict[str, Any]:
    chat, ctx.extra = responses_to_chat_request(body, model=model)
    clamp_max_tokens(chat, "max_tokens", provider)
    return chat


_ADAPTERS: dict[tuple[str, str], Adapter] = {
    ("openai", "openai"): Adapter("openai", "openai", _prepare_openai),
    ("anthropic", "anthropic"): Adapter("anthropic", "anthropic", _prepare_anthropic),
    ("responses", "openai"): Adapter(
        "responses",
        "openai",
        _prepare_responses_chat,
        respond=lambda data, ctx: chat_to_responses_response(data, ctx.extra),
        stream=lambda ctx: ChatToResponsesStream(ctx.extra),
        error=chat_error_to_responses,
    ),
}


def register(adapter: Adapter) -> None:
    _ADAPTERS[(adapter.client_api, adapter.upstream_api)] = adapter


def adapter_for(client_api: str, upstream_api: str) -> Adapter | None:
    return _ADAPTERS.get((client_api, upstream_api))

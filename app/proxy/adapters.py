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
from app.proxy.profiles import EFFORTS, Profile, profile_for
from app.proxy.translate.anthropic import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    anthropic_error_to_openai,
    anthropic_to_openai_request,
    anthropic_to_openai_response,
    drop_foreign_thinking,
    openai_error_to_anthropic,
    openai_to_anthropic_request,
    openai_to_anthropic_response,
    tool_name_map,
)
from app.proxy.translate.gemini import (
    ChatToGeminiStream,
    GeminiContext,
    chat_error_to_gemini,
    chat_to_gemini_response,
    gemini_to_chat_request,
)
from app.proxy.translate.response_memory import MEMORY
from app.proxy.translate.responses import (
    ChatToResponsesStream,
    ResponsesContext,
    chat_error_to_responses,
    chat_to_responses_response,
    responses_to_chat_request,
)


class StreamTranslator(Protocol):
    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]: ...
    def finish(self) -> list[dict[str, Any]]: ...
    def error(self, kind: str, message: str) -> list[dict[str, Any]]: ...

    @property
    def tool_ids(self) -> list[tuple[str, str]]:
        """(upstream id, id the client got) per tool call so far: the log keeps the client's (see tool_ids)."""
        ...


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
    respond: Callable[[dict[str, Any], Context], Any] | None = None  # None: pass bytes through
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
        if self.client_api in ("openai", "gemini"):  # `data:` lines only, no event names
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
        return orjson.dumps(error_body(api, status, upstream_error_message(body, status)))


def clamp_max_tokens(body: dict[str, Any], key: str, provider: Provider) -> None:
    cap = provider.max_tokens
    value = body.get(key)
    if cap is not None and isinstance(value, int) and value > cap:
        body[key] = cap


def _profile(provider: Provider) -> Profile:
    return profile_for(provider.kind, provider.api)


# ---------------------------------------------------------------------------------------------- same format


def _prepare_openai(body: dict[str, Any], model: str, provider: Provider, ctx: Context) -> dict[str, Any]:
    out = dict(body)
    out["model"] = model
    if body.get("stream"):
        options = body.get("stream_options") or {}
        ctx.client_wants_usage = bool(options.get("include_usage"))
        if not ctx.client_wants_usage and _profile(provider).stream_usage:
            out["stream_options"] = {**options, "include_usage": True}
            ctx.strip_usage_chunk = True
    clamp_max_tokens(out, "max_tokens", provider)
    clamp_max_tokens(out, "max_completion_tokens", provider)
    return out


def _prepare_anthropic(body: dict[str, Any], model: str, provider: Provider, ctx: Context) -> dict[str, Any]:
    # thinking a cheap model produced cannot be signed for Anthropic (the body itself when there is none)
    out = {**drop_foreign_thinking(body), "model": model}
    clamp_max_tokens(out, "max_tokens", provider)
    return out


# ---------------------------------------------------------------------------------------------- Anthropic <-> OpenAI


def _prepare_anthropic_to_openai(
    body: dict[str, Any], model: str, provider: Provider, ctx: Context
) -> dict[str, Any]:
    profile = _profile(provider)
    ctx.extra = tool_name_map(body.get("tools") or [], profile)
    return anthropic_to_openai_request(body, model=model, profile=profile, max_tokens_cap=provider.max_tokens)


def _prepare_openai_to_anthropic(
    body: dict[str, Any], model: str, provider: Provider, ctx: Context
) -> dict[str, Any]:
    profile = _profile(provider)
    ctx.client_wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    ctx.extra = tool_name_map(body.get("tools"), profile)
    return openai_to_anthropic_request(body, model=model, profile=profile, max_tokens_cap=provider.max_tokens)


# ---------------------------------------------------------------------------------------------- Responses


@dataclass(slots=True)
class _ResponsesVia:
    """A Responses call served through chat completions (and on to Anthropic when the target speaks it)."""

    responses: ResponsesContext
    tool_names: dict[str, str] = field(default_factory=dict)


def _responses_to_chat(body: dict[str, Any], model: str) -> tuple[dict[str, Any], ResponsesContext]:
    return responses_to_chat_request(body, model=model, lookup=MEMORY.lookup, remember=MEMORY.remember)


def _prepare_responses_chat(
    body: dict[str, Any], model: str, provider: Provider, ctx: Context
) -> dict[str, Any]:
    chat, rctx = _responses_to_chat(body, model)
    ctx.extra = _ResponsesVia(rctx)
    _fit_reasoning(chat, _profile(provider))
    clamp_max_tokens(chat, "max_tokens", provider)
    return chat


def _prepare_responses_anthropic(
    body: dict[str, Any], model: str, provider: Provider, ctx: Context
) -> dict[str, Any]:
    chat, rctx = _responses_to_chat(body, model)
    profile = _profile(provider)
    ctx.extra = _ResponsesVia(rctx, tool_name_map(chat.get("tools"), profile))
    return openai_to_anthropic_request(chat, model=model, profile=profile, max_tokens_cap=provider.max_tokens)


def _fit_reasoning(chat: dict[str, Any], profile: Profile) -> None:
    """Replayed reasoning goes back in the field this provider reads, or not at all."""
    field_name = profile.reasoning_field
    if field_name == "reasoning_content":
        return
    messages = chat.get("messages") or []
    for i, message in enumerate(messages):
        if isinstance(message, dict) and "reasoning_content" in message:
            message = dict(message)
            text = message.pop("reasoning_content")
            if field_name and text:
                message[field_name] = text
            messages[i] = message


class _AnthropicToResponsesStream:
    """Anthropic events -> chat chunks -> Responses events: the two translators chained, nothing buffered."""

    __slots__ = ("_chat", "_responses")

    def __init__(self, ctx: Context) -> None:
        via: _ResponsesVia = ctx.extra
        self._chat = AnthropicToOpenAIStream(
            model=via.responses.model, include_usage=True, tool_names=via.tool_names
        )
        self._responses = ChatToResponsesStream(via.responses)

    def _relay(self, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for chunk in chunks:
            if "error" in chunk and not chunk.get("choices"):
                err = chunk["error"] or {}
                out += self._responses.error(
                    str(err.get("code") or err.get("type") or "server_error"), str(err.get("message"))
                )
            else:
                out += self._responses.feed(chunk)
        return out

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return self._relay(self._chat.feed(event))

    def finish(self) -> list[dict[str, Any]]:
        return self._relay(self._chat.finish()) + self._responses.finish()

    def error(self, kind: str, message: str) -> list[dict[str, Any]]:
        return self._responses.error(kind, message)

    @property
    def tool_ids(self) -> list[tuple[str, str]]:
        """Anthropic id -> chat id (first translator) -> the client's call_id (second)."""
        to_client = dict(self._responses.tool_ids)
        return [(upstream, to_client.get(chat, chat)) for upstream, chat in self._chat.tool_ids]


def _responses_error_from_anthropic(status: int, body: bytes) -> dict[str, Any]:
    return chat_error_to_responses(status, anthropic_error_to_openai(status, body))


# ---------------------------------------------------------------------------------------------- Gemini

# The chat request on its way to an Anthropic target: it keeps everything the Anthropic translator reads
# (effort, top_k, documents); that translator then fits it to the real target's profile.
_GEMINI_PIVOT = Profile(reasoning_field=None, reasoning_efforts=EFFORTS, top_k=True, pdf=True)


def _prepare_gemini_chat(
    body: dict[str, Any], model: str, provider: Provider, ctx: Context
) -> dict[str, Any]:
    chat, ctx.extra = gemini_to_chat_request(
        body, model=model, profile=_profile(provider), max_tokens_cap=provider.max_tokens
    )
    return chat


def _prepare_gemini_anthropic(
    body: dict[str, Any], model: str, provider: Provider, ctx: Context
) -> dict[str, Any]:
    chat, gemini = gemini_to_chat_request(body, model=model, profile=_GEMINI_PIVOT)
    gemini.anthropic_ids = True
    ctx.extra = gemini  # tool names were made valid for any target on the way to chat: nothing more to map
    return openai_to_anthropic_request(
        chat, model=model, profile=_profile(provider), max_tokens_cap=provider.max_tokens
    )


def _gemini_answer(chat: dict[str, Any], gemini: GeminiContext) -> Any:
    out = chat_to_gemini_response(chat, gemini)
    return [out] if gemini.array else out


class _AnthropicToGeminiStream:
    """Anthropic events -> chat chunks -> Gemini chunks: the two translators chained, nothing buffered."""

    __slots__ = ("_chat", "_gemini")

    def __init__(self, ctx: Context) -> None:
        gemini: GeminiContext = ctx.extra
        self._chat = AnthropicToOpenAIStream(model=gemini.model, include_usage=True)
        self._gemini = ChatToGeminiStream(gemini)

    def _relay(self, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for chunk in chunks:
            out += self._gemini.feed(chunk)
        return out

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return self._relay(self._chat.feed(event))

    def finish(self) -> list[dict[str, Any]]:
        return self._relay(self._chat.finish()) + self._gemini.finish()

    def error(self, kind: str, message: str) -> list[dict[str, Any]]:
        return self._gemini.error(kind, message)

    @property
    def tool_ids(self) -> list[tuple[str, str]]:
        """Anthropic id (first translator) -> the client's id (second), call by call: both list the calls in
        the order they opened, and an id-less call's chat id need not be unique."""
        return [
            (up, client)
            for (up, _), (_, client) in zip(self._chat.tool_ids, self._gemini.tool_ids, strict=False)
        ]


_ADAPTERS: dict[tuple[str, str], Adapter] = {
    ("openai", "openai"): Adapter("openai", "openai", _prepare_openai),
    ("anthropic", "anthropic"): Adapter("anthropic", "anthropic", _prepare_anthropic),
    ("anthropic", "openai"): Adapter(
        "anthropic",
        "openai",
        _prepare_anthropic_to_openai,
        respond=lambda data, ctx: openai_to_anthropic_response(
            data, model=ctx.requested_model, tool_names=ctx.extra
        ),
        stream=lambda ctx: OpenAIToAnthropicStream(model=ctx.requested_model, tool_names=ctx.extra),
        error=openai_error_to_anthropic,
    ),
    ("openai", "anthropic"): Adapter(
        "openai",
        "anthropic",
        _prepare_openai_to_anthropic,
        respond=lambda data, ctx: anthropic_to_openai_response(
            data, model=ctx.requested_model, tool_names=ctx.extra
        ),
        stream=lambda ctx: AnthropicToOpenAIStream(
            model=ctx.requested_model, include_usage=ctx.client_wants_usage, tool_names=ctx.extra
        ),
        error=anthropic_error_to_openai,
    ),
    ("responses", "openai"): Adapter(
        "responses",
        "openai",
        _prepare_responses_chat,
        respond=lambda data, ctx: chat_to_responses_response(data, ctx.extra.responses),
        stream=lambda ctx: ChatToResponsesStream(ctx.extra.responses),
        error=chat_error_to_responses,
    ),
    ("responses", "anthropic"): Adapter(
        "responses",
        "anthropic",
        _prepare_responses_anthropic,
        respond=lambda data, ctx: chat_to_responses_response(
            anthropic_to_openai_response(
                data, model=ctx.extra.responses.model, tool_names=ctx.extra.tool_names
            ),
            ctx.extra.responses,
        ),
        stream=_AnthropicToResponsesStream,
        error=_responses_error_from_anthropic,
    ),
    ("gemini", "openai"): Adapter(
        "gemini",
        "openai",
        _prepare_gemini_chat,
        respond=lambda data, ctx: _gemini_answer(data, ctx.extra),
        stream=lambda ctx: ChatToGeminiStream(ctx.extra),
        error=chat_error_to_gemini,
    ),
    ("gemini", "anthropic"): Adapter(
        "gemini",
        "anthropic",
        _prepare_gemini_anthropic,
        respond=lambda data, ctx: _gemini_answer(
            anthropic_to_openai_response(data, model=ctx.extra.model), ctx.extra
        ),
        stream=_AnthropicToGeminiStream,
        error=chat_error_to_gemini,
    ),
}


def adapter_for(client_api: str, upstream_api: str) -> Adapter | None:
    return _ADAPTERS.get((client_api, upstream_api))


# ---------------------------------------------------------------------------------------------- count_tokens

COUNT_PATH = "/messages/count_tokens"


def _prepare_count(body: dict[str, Any], model: str, provider: Provider, ctx: Context) -> dict[str, Any]:
    return {**body, "model": model}


# Anthropic `count_tokens` is asked of a target that speaks Messages, answered as the provider sent it.
_COUNT = Adapter("anthropic", "anthropic", _prepare_count, path=COUNT_PATH)


def count_adapter_for(upstream_api: str) -> Adapter | None:
    """The adapter of an Anthropic `count_tokens` call to this upstream; None: the upstream has no such
    endpoint, and the request is counted locally (app.core.tokens)."""
    return _COUNT if upstream_api == "anthropic" else None

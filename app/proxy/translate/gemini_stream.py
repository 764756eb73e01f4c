"""Chat completion chunks -> Gemini `streamGenerateContent` chunks, built as the chunks arrive.

Text and thoughts go out as soon as they come, one chunk per upstream delta. Function calls go out whole,
as Gemini's own do (a client never sees half an `args` object): their argument fragments are gathered
until the upstream is done, then the last chunk carries every call, the finishReason and usageMetadata.
Chat providers may number several calls 0 with different ids, so a new id at a used index is a new call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.proxy.translate.gemini_request import GeminiContext
from app.proxy.translate.gemini_response import (
    chunk,
    client_id,
    finish_reason,
    function_call_part,
    gemini_error,
    kind_status,
    response_id,
    usage_to_gemini,
)
from app.proxy.translate.pivot import content_text, stream_error


class _Call:
    __slots__ = ("call_id", "name", "args", "client_id")

    def __init__(self, call_id: str | None) -> None:
        self.call_id = call_id
        self.name = ""
        self.args: list[str] = []
        self.client_id = ""  # the id the client got, once the call went out


class ChatToGeminiStream:
    """Feed chat-completion chunk dicts; get GenerateContentResponse chunk dicts (each one SSE `data:`)."""

    __slots__ = ("ctx", "rid", "_calls", "_order", "_finish", "_usage", "_done")

    def __init__(self, ctx: GeminiContext, rid: str | None = None) -> None:
        self.ctx = ctx
        self.rid = rid or response_id()
        self._calls: dict[int, _Call] = {}  # open calls by chat index
        self._order: list[_Call] = []  # every call, in the order they started
        self._finish: str | None = None
        self._usage: Mapping[str, Any] | None = None
        self._done = False

    def feed(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self._done:
            return []
        error = event.get("error")
        if error:
            return self.error(*stream_error(error))
        usage = event.get("usage") or (event.get("x_groq") or {}).get("usage")  # Groq: in x_groq
        if usage:
            self._usage = usage
        out: list[dict[str, Any]] = []
        for choice in event.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # candidateCount > 1 is refused up front; only the first choice is the answer
            delta = choice.get("delta")
            if delta:
                parts = self._delta(delta)
                if parts:
                    out.append(chunk(self.ctx, self.rid, parts))
            reason = choice.get("finish_reason")
            if reason:
                self._finish = reason
                if choice.get("usage"):  # Moonshot puts the final usage on the choice
                    self._usage = choice["usage"]
        return out

    def finish(self) -> list[dict[str, Any]]:
        """The last chunk: every function call, the finishReason and the usage."""
        if self._done:
            return []
        self._done = True
        parts = []
        for call in self._order:
            call.client_id = client_id(call.call_id, self.ctx)
            parts.append(function_call_part(call.client_id, call.name, "".join(call.args), self.ctx))
        return [chunk(self.ctx, self.rid, parts, finish_reason(self._finish), usage_to_gemini(self._usage))]

    @property
    def tool_ids(self) -> list[tuple[str, str]]:
        """(upstream id or "", id the client got) per call sent: the log keeps the client's."""
        return [(call.call_id or "", call.client_id) for call in self._order if call.client_id]

    def error(self, kind: str, message: str) -> list[dict[str, Any]]:
        """Google's error body as a stream event; the google-genai SDKs raise it as an APIError."""
        if self._done:
            return []
        self._done = True
        return [gemini_error(kind_status(kind), message)]

    def _delta(self, delta: Mapping[str, Any]) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if self.ctx.thoughts:
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if thinking and isinstance(thinking, str):
                parts.append({"text": thinking, "thought": True})
        text = delta.get("content")
        if text and not isinstance(text, str):
            text = content_text(text)  # content parts (Mistral)
        if text:
            parts.append({"text": text})
        refusal = delta.get("refusal")
        if refusal and isinstance(refusal, str):
            parts.append({"text": refusal})
        for position, call in enumerate(delta.get("tool_calls") or ()):
            self._call_delta(call, position)
        return parts

    def _call_delta(self, delta: Mapping[str, Any], position: int) -> None:
        index = delta.get("index")
        if not isinstance(index, int):
            index = position
        upstream_id = delta.get("id") or None
        call = self._calls.get(index)
        if call is None or (upstream_id and call.call_id and upstream_id != call.call_id):
            call = self._calls[index] = _Call(upstream_id)
            self._order.append(call)
        elif upstream_id and not call.call_id:
            call.call_id = upstream_id
        function = delta.get("function") or {}
        name = function.get("name")
        if name and not call.name:
            call.name = name  # assigned, not appended: some providers repeat the name in every delta
        fragment = function.get("arguments")
        if fragment:
            call.args.append(fragment)

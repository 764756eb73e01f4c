"""Watching an upstream answer go by: usage, tool calls (reassembled from stream deltas), text, stop reason.

Observers work in the upstream's own format, so the log is right whatever translation the client needed.
They keep only what the log needs, never the whole answer.

Where usage arrives differs by provider (see docs/cost.md): a chunk's top-level `usage` (OpenAI's last
chunk with empty `choices`, or the finishing chunk itself on Together, Fireworks, Mistral), `choices[0].usage`
of the finishing chunk (Moonshot), `x_groq.usage` (Groq). Only the top-level field is looked up on every
chunk; the other places are looked at on the finishing chunk and on chunks without choices, which are a
handful per stream, so the common chunk costs no more than before.
"""

from __future__ import annotations

from typing import Any

import orjson


class OpenAIObserver:
    """For chat-completion answers, streamed (chunk by chunk) or whole."""

    __slots__ = ("usage", "_calls", "_open", "_text", "finish_reason", "model", "error")

    def __init__(self) -> None:
        self.usage: dict[str, Any] = {}
        self._calls: list[list[str]] = []  # [id, name, arguments...] per call, in the order they began
        self._open: dict[int, list[str]] = {}  # stream index -> the call currently at that index
        self._text: list[str] = []
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.error: dict[str, Any] | None = None

    def on_event(self, chunk: dict[str, Any]) -> None:
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        if "error" in chunk and isinstance(chunk["error"], dict):
            self.error = chunk["error"]
        choices = chunk.get("choices")
        if not choices:  # usage-only chunks, Groq's trailer
            if not usage:
                self._odd_usage(chunk, None)
            return
        for choice in choices:
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:
                    self._text.append(content)
                for tc in delta.get("tool_calls") or ():
                    index, call_id = tc.get("index", 0), tc.get("id")
                    entry = self._open.get(index)
                    # a new id at an index already in use is a new call (some providers number every call 0)
                    if entry is None or (call_id and entry[0] and call_id != entry[0]):
                        entry = self._open[index] = ["", ""]
                        self._calls.append(entry)
                    if call_id:
                        entry[0] = call_id
                    fn = tc.get("function") or {}
                    if fn.get("name"):
                        entry[1] = fn["name"]
                    if fn.get("arguments"):
                        entry.append(fn["arguments"])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                if not usage:
                    self._odd_usage(chunk, choice)

    def _odd_usage(self, chunk: dict[str, Any], choice: dict[str, Any] | None) -> None:
        """Usage outside the chunk's top level: Moonshot's `choices[0].usage`, Groq's `x_groq.usage`."""
        usage = choice.get("usage") if isinstance(choice, dict) else None
        if not usage:
            groq = chunk.get("x_groq")
            usage = groq.get("usage") if isinstance(groq, dict) else None
        if usage and isinstance(usage, dict):
            self.usage = usage

    @property
    def usage_complete(self) -> bool:
        """The provider reported the call's usage (an OpenAI-format answer reports it whole, once)."""
        return bool(self.usage)

    def began(self) -> bool:
        """The provider started answering (and so bills for what it generated)."""
        return bool(self._text or self._calls or self.usage)

    def on_response(self, data: dict[str, Any]) -> None:
        self.usage = data.get("usage") or {}
        if not self.usage:
            choices = data.get("choices")
            self._odd_usage(data, choices[0] if isinstance(choices, list) and choices else None)
        self.model = data.get("model")
        for choice in data.get("choices") or ():
            message = choice.get("message") or {}
            if isinstance(message.get("content"), str):
                self._text.append(message["content"])
            for tc in message.get("tool_calls") or ():
                fn = tc.get("function") or {}
                self._calls.append([tc.get("id", ""), fn.get("name", ""), fn.get("arguments") or ""])
            self.finish_reason = choice.get("finish_reason") or self.finish_reason

    @property
    def text(self) -> str:
        return "".join(self._text)

    def tool_calls(self) -> list[tuple[str, str, str]]:
        """(id, name, raw arguments) in the order the model emitted them."""
        return [(e[0], e[1], "".join(e[2:])) for e in self._calls]


class AnthropicObserver:
    """For Messages answers, streamed (events) or whole."""

    __slots__ = ("usage", "_blocks", "_text", "finish_reason", "model", "error", "usage_complete")

    def __init__(self) -> None:
        self.usage: dict[str, Any] = {}
        # message_start reports the input and a placeholder output; only message_delta (or a whole answer)
        # reports the output: until then the output is not known
        self.usage_complete = False
        self._blocks: dict[int, list[str]] = {}
        self._text: list[str] = []
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.error: dict[str, Any] | None = None

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                self._text.append(delta.get("text", ""))
            elif dtype == "input_json_delta":
                block = self._blocks.get(event.get("index", 0))
                if block is not None:
                    block.append(delta.get("partial_json", ""))
        elif kind == "content_block_start":
            started = event.get("content_block") or {}
            if started.get("type") in ("tool_use", "server_tool_use"):
                self._blocks[event.get("index", 0)] = [started.get("id", ""), started.get("name", "")]
        elif kind == "message_start":
            message = event.get("message") or {}
            self.model = message.get("model")
            self.usage = dict(message.get("usage") or {})
        elif kind == "message_delta":
            delta_usage = event.get("usage")
            if delta_usage:
                self.usage.update({k: v for k, v in delta_usage.items() if v is not None})
                self.usage_complete = "output_tokens" in delta_usage
            self.finish_reason = (event.get("delta") or {}).get("stop_reason") or self.finish_reason
        elif kind == "error":
            self.error = event.get("error") or {}

    def on_response(self, data: dict[str, Any]) -> None:
        self.usage = data.get("usage") or {}
        self.usage_complete = bool(self.usage)
        self.model = data.get("model")
        self.finish_reason = data.get("stop_reason")
        for i, block in enumerate(data.get("content") or ()):
            btype = block.get("type")
            if btype == "text":
                self._text.append(block.get("text", ""))
            elif btype == "tool_use":
                self._blocks[i] = [
                    block.get("id", ""),
                    block.get("name", ""),
                    orjson.dumps(block.get("input", {})).decode(),
                ]

    @property
    def text(self) -> str:
        return "".join(self._text)

    def began(self) -> bool:
        """The provider started answering: message_start (with the input it bills) or any content."""
        return bool(self.usage or self._text or self._blocks)

    def tool_calls(self) -> list[tuple[str, str, str]]:
        return [(b[0], b[1], "".join(b[2:]) or "{}") for _, b in sorted(self._blocks.items())]


Observer = OpenAIObserver | AnthropicObserver


def observer_for(upstream_api: str) -> Observer:
    return AnthropicObserver() if upstream_api == "anthropic" else OpenAIObserver()

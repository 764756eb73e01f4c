"""Watching an upstream answer go by: usage, tool calls (reassembled from stream deltas), text, stop reason.

Observers work in the upstream's own format, so the log is right whatever translation the client needed.
They keep only what the log needs, never the whole answer.
"""

from __future__ import annotations

from typing import Any

import orjson


class OpenAIObserver:
    """For chat-completion answers, streamed (chunk by chunk) or whole."""

    __slots__ = ("usage", "_calls", "_text", "finish_reason", "model", "error")

    def __init__(self) -> None:
        self.usage: dict[str, Any] = {}
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments...]
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
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta")
            if delta:
                content = delta.get("content")
                if content:
                    self._text.append(content)
                for tc in delta.get("tool_calls") or ():
                    entry = self._calls.get(tc.get("index", 0))
                    if entry is None:
                        entry = self._calls[tc.get("index", 0)] = ["", ""]
                    if tc.get("id"):
                        entry[0] = tc["id"]
                    fn = tc.get("function") or {}
                    if fn.get("name"):
                        entry[1] = fn["name"]
                    if fn.get("arguments"):
                        entry.append(fn["arguments"])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def on_response(self, data: dict[str, Any]) -> None:
        self.usage = data.get("usage") or {}
        self.model = data.get("model")
        for i, choice in enumerate(data.get("choices") or ()):
            message = choice.get("message") or {}
            if isinstance(message.get("content"), str):
                self._text.append(message["content"])
            for j, tc in enumerate(message.get("tool_calls") or ()):
                fn = tc.get("function") or {}
                self._calls[i * 1000 + j] = [tc.get("id", ""), fn.get("name", ""), fn.get("arguments") or ""]
            self.finish_reason = choice.get("finish_reason") or self.finish_reason

    @property
    def text(self) -> str:
        return "".join(self._text)

    def tool_calls(self) -> list[tuple[str, str, str]]:
        """(id, name, raw arguments) in the order the model emitted them."""
        return [(e[0], e[1], "".join(e[2:])) for _, e in sorted(self._calls.items())]


class AnthropicObserver:
    """For Messages answers, streamed (events) or whole."""

    __slots__ = ("usage", "_blocks", "_text", "finish_reason", "model", "error")

    def __init__(self) -> None:
        self.usage: dict[str, Any] = {}
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
            block = event.get("content_block") or {}
            if block.get("type") in ("tool_use", "server_tool_use"):
                self._blocks[event.get("index", 0)] = [block.get("id", ""), block.get("name", "")]
        elif kind == "message_start":
            message = event.get("message") or {}
            self.model = message.get("model")
            self.usage = dict(message.get("usage") or {})
        elif kind == "message_delta":
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            self.finish_reason = (event.get("delta") or {}).get("stop_reason") or self.finish_reason
        elif kind == "error":
            self.error = event.get("error") or {}

    def on_response(self, data: dict[str, Any]) -> None:
        self.usage = data.get("usage") or {}
        self.model = data.get("model")
        self.finish_reason = data.get("stop_reason")
        for i, block in enumerate(data.get("content") or ()):
            btype = block.get("type")
            if btype == "text":
                self._text.append(block.get("text", ""))
            elif btype == "tool_use":
                self._blocks[i] = [block.get("id", ""), block.get("name", ""), orjson.dumps(block.get("input", {})).decode()]

    @property
    def text(self) -> str:
        return "".join(self._text)

    def tool_calls(self) -> list[tuple[str, str, str]]:
        return [(b[0], b[1], "".join(b[2:]) or "{}") for _, b in sorted(self._blocks.items())]


def observer_for(upstream_api: str) -> OpenAIObserver | AnthropicObserver:
    return AnthropicObserver() if upstream_api == "anthropic" else OpenAIObserver()

"""Streams: OpenAI chat-completion chunks <-> Anthropic Messages events, one event at a time.

Each translator is a small state machine fed parsed upstream events; it answers with the events to send
right away, so the client sees each token as the upstream sends it (nothing waits for the whole answer).
`finish()` closes whatever is open when the upstream ends ([DONE] or EOF); `error()` reports a mid-stream
failure in the client's format. After either, the translator emits nothing more.

Anthropic's event order is strict: message_start, then per content block a content_block_start, its
deltas and a content_block_stop (indexes 0, 1, 2... never reopened), then message_delta (stop reason and
usage) and message_stop. OpenAI interleaves reasoning, text and tool-call fragments freely, so a change of
kind closes the open block and opens the next. The hot path is dict lookups and string appends only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from app.proxy.translate.anthropic_response import (
    ANTHROPIC_DETAILS_FORMAT,
    NO_NAMES,
    anthropic_tool_id,
    completion_id,
    finish_reason,
    issue_signature,
    merge_reasoning_details,
    message_id,
    openai_tool_id,
    stop_reason,
    usage_to_anthropic,
    usage_to_openai,
)
from app.proxy.translate.errors import anthropic_error_type, openai_error, openai_stream_error_to_anthropic
from app.proxy.translate.pivot import content_text


class OpenAIToAnthropicStream:
    """Upstream OpenAI chunks -> Anthropic events for a Messages client.

    `model` is the name the client asked for; `message_id` defaults to one derived from the upstream's
    completion id; `tool_names` maps renamed tools back (see `tool_name_map`).
    """

    __slots__ = (
        "_model", "_id", "_names", "_started", "_done", "_open", "_index", "_tools", "_current_tool",
        "_pending", "_details", "_finish", "_matched", "_usage", "_saw_tools", "_last_key", "tool_ids",
    )  # fmt: skip

    def __init__(
        self, *, model: str, message_id: str | None = None, tool_names: Mapping[str, str] | None = None
    ) -> None:
        self._model = model
        self._id = message_id
        self._names = tool_names or NO_NAMES
        self._started = False
        self._done = False
        self._open: str | None = None  # kind of the open block: "text" | "thinking" | "tool"
        self._index = -1  # index of the last block opened
        self._tools: set[Any] = set()  # upstream tool-call keys whose block has opened
        self._current_tool: Any = None
        self._pending: dict[Any, dict[str, Any]] = {}  # tool calls whose name has not arrived yet
        self._details: list[Any] = []  # reasoning_details fragments of the open thinking block
        self._finish: str | None = None
        self._matched: Any = None
        self._usage: Mapping[str, Any] | None = None
        self._saw_tools = False
        self._last_key: Any = 0
        self.tool_ids: list[tuple[str, str]] = []  # (upstream id or "", id the client got) per call opened

    # ------------------------------------------------------------------------------------- public

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The events for one upstream chunk. Runs per SSE chunk: text inline, thinking and tool calls in one call each."""
        if self._done:
            return []
        if chunk.get("error"):  # a provider's mid-stream failure (OpenRouter also sets finish_reason "error")
            self._done = True
            return [openai_stream_error_to_anthropic(chunk)]
        out = [] if self._started else self._start(chunk)
        # The last usage wins: Groq sends it under x_groq, Moonshot on the choice.
        usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
        if usage:
            self._usage = usage
        choices = chunk.get("choices")
        if not choices:
            return out
        choice = choices[0]
        if choice.get("usage"):
            self._usage = choice["usage"]
        delta = choice.get("delta")
        if delta:
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            details = delta.get("reasoning_details")
            if reasoning or details:
                self._thinking(out, reasoning, details)
            text = delta.get("content")
            if text and not isinstance(text, str):
                text = content_text(text)  # content parts (Mistral)
            if text:
                if self._open != "text":
                    self._open_block(out, "text", {"type": "text", "text": ""})
                out.append(self._delta({"type": "text_delta", "text": text}))
            calls = delta.get("tool_calls")
            if calls:
                self._tool_fragments(out, calls)
        finish = choice.get("finish_reason")
        if finish and not self._done:
            self._finish = finish
            self._matched = choice.get("stop_reason")
        return out

    def finish(self) -> list[dict[str, Any]]:
        if self._done:
            return []
        out = [] if self._started else self._start({})
        for key in list(self._pending):  # arguments whose tool name never came: show them, do not lose them
            self._open_tool(out, key, self._pending.pop(key))
        self._close(out)
        reason = stop_reason(self._finish, self._saw_tools, self._matched)
        out.append({
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": self._matched if reason == "stop_sequence" else None},
            "usage": usage_to_anthropic(self._usage),
        })  # fmt: skip
        out.append({"type": "message_stop"})
        self._done = True
        return out

    def error(self, kind: str, message: str) -> list[dict[str, Any]]:
        if self._done:
            return []
        self._done = True
        return [{"type": "error", "error": {"type": anthropic_error_type(kind), "message": message}}]

    # ------------------------------------------------------------------------------------- blocks

    def _start(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._started = True
        if self._id is None:
            self._id = message_id(chunk.get("id"))
        usage = usage_to_anthropic(chunk.get("usage"))
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [{"type": "message_start", "message": message}]

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self._index, "delta": delta}

    def _open_block(self, out: list[dict[str, Any]], kind: str, block: dict[str, Any]) -> None:
        self._close(out)
        self._index += 1
        self._open = kind
        out.append({"type": "content_block_start", "index": self._index, "content_block": block})

    def _close(self, out: list[dict[str, Any]]) -> None:
        if self._open is None:
            return
        if self._open == "thinking":
            details = merge_reasoning_details(self._details) if self._details else None
            out.append(self._delta({"type": "signature_delta", "signature": issue_signature(details)}))
            self._details = []
        out.append({"type": "content_block_stop", "index": self._index})
        self._open = None
        self._current_tool = None

    def _thinking(self, out: list[dict[str, Any]], reasoning: Any, details: Any) -> None:
        if self._open != "thinking":
            self._open_block(out, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
        if reasoning:
            delta = {"type": "thinking_delta", "thinking": reasoning}
            out.append({"type": "content_block_delta", "index": self._index, "delta": delta})
        if details:
            self._details.extend(details)

    def _tool_fragments(self, out: list[dict[str, Any]], calls: list[Mapping[str, Any]]) -> None:
        """A block opens once a call's name is known; fragments before that wait in `_pending`."""
        for call in calls:
            function = call.get("function") or {}
            call_id = call.get("id")
            key = call.get("index")
            if key is None:  # some servers omit the index: an id names the call, no id continues the last one
                key = call_id or self._last_key
            self._last_key = key
            arguments = function.get("arguments")
            if arguments is not None and not isinstance(arguments, str):
                arguments = orjson.dumps(arguments).decode()
            if key not in self._tools:
                pending = self._pending.get(key)
                if pending is None:
                    pending = self._pending[key] = {"id": None, "name": None, "args": []}
                if call_id:
                    pending["id"] = call_id
                if function.get("name"):
                    pending["name"] = function["name"]
                if arguments:
                    pending["args"].append(arguments)
                if pending["name"] is not None:
                    self._open_tool(out, key, self._pending.pop(key))
            elif not arguments:
                continue
            elif key != self._current_tool:
                out.extend(
                    self.error("api_error", "the upstream interleaved the arguments of several tool calls")
                )
                return  # the error ends the stream
            else:
                out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))

    def _open_tool(self, out: list[dict[str, Any]], key: Any, pending: dict[str, Any]) -> None:
        name = pending["name"] or ""
        fallback = f"toolu_{self._id[4:] if self._id else 'x'}_{self._index + 1}"
        block_id = anthropic_tool_id(pending["id"], fallback)
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": block_id,
            "name": self._names.get(name, name),
            "input": {},
        }
        self.tool_ids.append((pending["id"] or "", block_id))
        self._open_block(out, "tool", block)
        self._tools.add(key)
        self._current_tool = key
        self._saw_tools = True
        if pending["args"]:
            out.append(self._delta({"type": "input_json_delta", "partial_json": "".join(pending["args"])}))


class AnthropicToOpenAIStream:
    """Upstream Anthropic events -> OpenAI chunks for a chat-completions client.

    Thinking goes out as `reasoning_content` deltas plus OpenRouter-style `reasoning_details` (text per
    block index, then its signature) so a client can hand the signed blocks back. With `include_usage`
    the stream ends with a usage-only chunk (empty `choices`), as OpenAI's `stream_options` asks. The
    caller appends `data: [DONE]` (`sse.OPENAI_DONE`).
    """

    __slots__ = (
        "_model", "_include_usage", "_names", "_created", "_id", "_usage", "_tool_index", "_reasoning_index", "_formatted",
        "_finished", "_done", "_started", "tool_ids",
    )  # fmt: skip

    def __init__(
        self,
        *,
        model: str,
        include_usage: bool,
        tool_names: Mapping[str, str] | None = None,
        created: int | None = None,
    ) -> None:
        self._model = model
        self._include_usage = include_usage
        self._names = tool_names or NO_NAMES
        self._created = int(time.time()) if created is None else created
        self._id = ""
        self._usage: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index
        self._reasoning_index: dict[int, int] = {}  # Anthropic block index -> reasoning_details index
        self._formatted: set[int] = set()  # reasoning_details indexes whose `format` went out
        self._finished = False  # finish_reason sent
        self._done = False
        self._started = False
        self.tool_ids: list[tuple[str, str]] = []  # (upstream id, id the client got) per call opened

    def feed(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self._done:
            return []
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "message_start":
            message = event.get("message") or {}
            self._id = completion_id(message.get("id"))
            self._usage.update(message.get("usage") or {})
            self._started = True
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "message_delta":
            for key, value in (event.get("usage") or {}).items():
                if value is not None:
                    self._usage[key] = value
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason and not self._finished:
                self._finished = True
                return [self._chunk({}, finish_reason(reason))]
            return []
        if kind == "message_stop":
            return self.finish()
        if kind == "error":
            error = event.get("error") or {}
            return self.error(
                str(error.get("type") or "api_error"), str(error.get("message") or "upstream error")
            )
        return []  # ping, content_block_stop, and event types added later

    def finish(self) -> list[dict[str, Any]]:
        if self._done:
            return []
        out = [] if self._started else [self._chunk({"role": "assistant", "content": ""})]
        if not self._finished:
            self._finished = True
            out.append(self._chunk({}, "tool_calls" if self._tool_index else "stop"))
        if self._include_usage:
            out.append({
                "id": self._id or completion_id(None),
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": usage_to_openai(self._usage),
            })  # fmt: skip
        self._done = True
        return out

    def error(self, kind: str, message: str) -> list[dict[str, Any]]:
        if self._done:
            return []
        self._done = True
        return [openai_error(kind, message)]

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        if not self._id:
            self._id = completion_id(None)
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def _block_start(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        block = event.get("content_block") or {}
        index = event.get("index", 0)
        kind = block.get("type")
        if kind == "text":
            return [self._chunk({"content": block["text"]})] if block.get("text") else []
        if kind == "tool_use":
            position = self._tool_index[index] = len(self._tool_index)
            name = block.get("name") or ""
            upstream_id = str(block.get("id") or "")
            call_id = openai_tool_id(upstream_id)
            call = {
                "index": position,
                "id": call_id,
                "type": "function",
                "function": {"name": self._names.get(name, name), "arguments": ""},
            }
            self.tool_ids.append((upstream_id, call_id))
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking":
            self._reasoning_index[index] = len(self._reasoning_index)
            return self._thinking(index, block["thinking"]) if block.get("thinking") else []
        if kind == "redacted_thinking":
            self._reasoning_index[index] = len(self._reasoning_index)
            detail = self._detail(index, "reasoning.encrypted", data=block.get("data"))
            return [self._chunk({"reasoning_details": [detail]})]
        return []  # server tool blocks ran at Anthropic; the text around them carries the answer

    def _block_delta(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta") or {}
        kind = delta.get("type")
        index = event.get("index", 0)
        if kind == "text_delta":
            text = delta.get("text")
            return [self._chunk({"content": text})] if text else []
        if kind == "input_json_delta":
            position = self._tool_index.get(index)
            partial = delta.get("partial_json")
            if position is None or not partial:
                return []
            return [self._chunk({"tool_calls": [{"index": position, "function": {"arguments": partial}}]})]
        if kind == "thinking_delta":
            return self._thinking(index, delta.get("thinking") or "")
        if kind == "signature_delta":
            detail = self._detail(index, "reasoning.text", signature=delta.get("signature"))
            return [self._chunk({"reasoning_details": [detail]})]
        return []  # citations and future delta types have no chat-completions form

    def _thinking(self, index: int, text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        detail = self._detail(index, "reasoning.text", text=text)
        return [self._chunk({"reasoning_content": text, "reasoning_details": [detail]})]

    def _detail(self, index: int, kind: str, **fields: Any) -> dict[str, Any]:
        """One reasoning_details fragment. Accumulators (the openai SDK, OpenRouter clients) concatenate
        every string field per `index`, so `format` goes out once per detail, on its first fragment."""
        position = self._reasoning_index.get(index, 0)
        detail: dict[str, Any] = {"type": kind, "index": position, **fields}
        if position not in self._formatted:
            self._formatted.add(position)
            detail["format"] = ANTHROPIC_DETAILS_FORMAT
        return detail

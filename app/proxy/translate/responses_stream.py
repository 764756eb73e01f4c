"""Chat completion chunks -> Responses API streaming events, built as the chunks arrive.

Text and reasoning items close as soon as another kind of output starts. Tool calls stay open until the
choice finishes, because chat providers may interleave the argument deltas of parallel calls by index.
A call is announced (output_item.added) only once its name is known, so every function_call item carries
its name and call_id in both the added and the done event.
"""

from __future__ import annotations

import time
from typing import Any

from app.proxy.translate.custom_input_stream import CustomInputStream
from app.proxy.translate.pivot import content_text, random_id, stream_error
from app.proxy.translate.responses_output import (
    base_response,
    failed_error,
    finish_status,
    message_item,
    reasoning_item,
    text_part,
    tool_call_item,
    usage_to_responses,
)
from app.proxy.translate.responses_request import ResponsesContext
from app.proxy.translate.responses_tools import ToolOrigin


class _Open:
    """An output item whose events are still being emitted."""

    __slots__ = ("item_id", "output_index", "parts")

    def __init__(self, item_id: str, output_index: int) -> None:
        self.item_id = item_id
        self.output_index = output_index
        self.parts: list[str] = []


class _Call:
    """One chat tool call (one `index`) on its way to a function_call or custom_tool_call item."""

    __slots__ = ("upstream_id", "call_id", "name", "origin", "item_id", "output_index", "args", "custom",
                 "sent_args", "streamer")  # fmt: skip

    def __init__(self, upstream_id: str | None) -> None:
        self.upstream_id = upstream_id
        self.call_id = upstream_id or random_id("call_")
        self.name = ""
        self.origin: ToolOrigin | None = None
        self.item_id = ""
        self.output_index = -1  # assigned when announced
        self.args: list[str] = []
        self.custom = False
        self.sent_args = 0  # how many fragments of `args` were already sent as deltas
        self.streamer: CustomInputStream | None = None


class ChatToResponsesStream:
    """Feed chat-completion chunk dicts; get Responses event dicts with consecutive sequence numbers."""

    def __init__(self, ctx: ResponsesContext, response_id: str | None = None) -> None:
        self.ctx = ctx
        self.response_id = response_id or random_id("resp_")
        self.created_at = int(time.time())
        self._seq = 0
        self._started = False
        self._ended = False
        self._items: list[dict[str, Any] | None] = []  # final items by output_index
        self._message: _Open | None = None
        self._reasoning: _Open | None = None
        self._calls: dict[int, _Call] = {}  # open calls by chat index
        self._pending: list[_Call] = []  # open calls replaced at their index (a new id reused the index)
        self._made: list[_Call] = []  # every call, in the order it began (for `tool_ids`)
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------------- public

    def start(self) -> list[dict[str, Any]]:
        """response.created + response.in_progress; sent by the first feed() if not called before."""
        if self._started:
            return []
        self._started = True
        snapshot = base_response(self.ctx, self.response_id, self.created_at, "in_progress")
        out: list[dict[str, Any]] = []
        self._event(out, {"type": "response.created", "response": snapshot})
        self._event(out, {"type": "response.in_progress", "response": snapshot})
        return out

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        out = self.start()
        if self._ended:
            return out
        error = chunk.get("error")
        if error:
            return out + self.error(*stream_error(error))
        usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")  # Groq: in x_groq
        if usage:
            self._usage = usage
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # n > 1 is not a Responses concept; the first choice is the answer
            delta = choice.get("delta")
            if delta:
                self._delta(delta, out)
            finish = choice.get("finish_reason")
            if finish:
                self._finish_reason = finish
                if choice.get("usage"):  # Moonshot puts the final usage on the choice
                    self._usage = choice["usage"]
                self._close_all(out)
        return out

    def finish(self) -> list[dict[str, Any]]:
        """Close what is open, then response.completed (response.incomplete after a length stop)."""
        out = self.start()
        if self._ended:
            return out
        self._close_all(out)
        self._ended = True
        status, reason = finish_status(self._finish_reason)
        response = self._final(status)
        if reason is not None:
            response["incomplete_details"] = {"reason": reason}
        if status == "completed":
            response["completed_at"] = int(time.time())
        kind = "response.completed" if status == "completed" else "response.incomplete"
        self._event(out, {"type": kind, "response": response})
        self.ctx.keep(response)
        return out

    def error(self, kind: str, message: str) -> list[dict[str, Any]]:
        """response.failed carrying what was produced so far; the stream ends here."""
        out = self.start()
        if self._ended:
            return out
        self._ended = True
        response = self._final("failed", partial=True)
        response["error"] = failed_error(kind, message)
        self._event(out, {"type": "response.failed", "response": response})
        return out

    @property
    def tool_ids(self) -> list[tuple[str, str]]:
        """(upstream id or "", the call_id the client got) per call, in the order the calls began."""
        return [(c.upstream_id or "", c.call_id) for c in self._made]

    # ------------------------------------------------------------------------------------------- deltas

    def _delta(self, delta: dict[str, Any], out: list[dict[str, Any]]) -> None:
        thinking = delta.get("reasoning_content") or delta.get("reasoning")
        if thinking and isinstance(thinking, str):
            self._reasoning_delta(thinking, out)
        text = delta.get("content")
        if text and not isinstance(text, str):
            text = content_text(text)  # content parts (Mistral)
        if text:
            self._text_delta(text, out)
        refusal = delta.get("refusal")
        if refusal and isinstance(refusal, str):
            self._text_delta(refusal, out)
        calls = delta.get("tool_calls")
        if calls:
            if self._message is not None:
                self._close_message(out, "completed")
            if self._reasoning is not None:
                self._close_reasoning(out)
            for position, call in enumerate(calls):
                self._call_delta(call, position, out)

    def _reasoning_delta(self, text: str, out: list[dict[str, Any]]) -> None:
        if self._message is not None:
            self._close_message(out, "completed")
        item = self._reasoning
        if item is None:
            item = self._reasoning = _Open(random_id("rs_"), self._next_index())
            self._event(out, {"type": "response.output_item.added", "output_index": item.output_index,
                              "item": {"id": item.item_id, "type": "reasoning", "summary": []}})  # fmt: skip
            self._event(out, {"type": "response.reasoning_summary_part.added", "item_id": item.item_id,
                              "output_index": item.output_index, "summary_index": 0,
                              "part": {"type": "summary_text", "text": ""}})  # fmt: skip
        item.parts.append(text)
        self._event(out, {"type": "response.reasoning_summary_text.delta", "item_id": item.item_id,
                          "output_index": item.output_index, "summary_index": 0, "delta": text})  # fmt: skip

    def _text_delta(self, text: str, out: list[dict[str, Any]]) -> None:
        if self._reasoning is not None:
            self._close_reasoning(out)
        item = self._message
        if item is None:
            item = self._message = _Open(random_id("msg_"), self._next_index())
            self._event(out, {"type": "response.output_item.added", "output_index": item.output_index,
                              "item": {"id": item.item_id, "type": "message", "status": "in_progress",
                                       "role": "assistant", "content": []}})  # fmt: skip
            self._event(out, {"type": "response.content_part.added", "item_id": item.item_id,
                              "output_index": item.output_index, "content_index": 0, "part": text_part("")})  # fmt: skip
        item.parts.append(text)
        self._event(out, {"type": "response.output_text.delta", "item_id": item.item_id,
                          "output_index": item.output_index, "content_index": 0, "delta": text, "logprobs": []})  # fmt: skip

    def _call_delta(self, delta: dict[str, Any], position: int, out: list[dict[str, Any]]) -> None:
        index = delta.get("index")
        if not isinstance(index, int):
            index = position
        upstream_id = delta.get("id") or None
        call = self._calls.get(index)
        if call is None or (upstream_id and call.upstream_id and upstream_id != call.upstream_id):
            # A new id at a used index: some providers number every call 0. Keep the old call open.
            if call is not None:
                self._pending.append(call)
            call = self._calls[index] = _Call(upstream_id)
            self._made.append(call)
        elif upstream_id and not call.upstream_id:
            call.upstream_id = call.call_id = upstream_id
        function = delta.get("function") or {}
        name = function.get("name")
        if name and not call.name:
            call.name = name  # assigned, not appended: some providers repeat the name in every delta
        fragment = function.get("arguments")
        if fragment:
            call.args.append(fragment)
        if call.output_index < 0 and call.name:
            self._announce(call, out)
        if call.output_index >= 0:
            self._send_args(call, out)

    def _announce(self, call: _Call, out: list[dict[str, Any]]) -> None:
        call.origin = self.ctx.origins.get(call.name)
        call.custom = call.origin is not None and call.origin.custom
        call.output_index = self._next_index()
        item = tool_call_item(call.origin, call.name, call.call_id, "", "in_progress")
        call.item_id = item["id"]
        if call.custom:
            call.streamer = CustomInputStream()
        else:
            item["arguments"] = ""  # the builder's "{}" default is for finished calls only
        self._event(
            out, {"type": "response.output_item.added", "output_index": call.output_index, "item": item}
        )

    def _send_args(self, call: _Call, out: list[dict[str, Any]]) -> None:
        fragments = call.args[call.sent_args :]
        if not fragments:
            return
        call.sent_args = len(call.args)
        text = fragments[0] if len(fragments) == 1 else "".join(fragments)
        if call.streamer is not None:
            text = call.streamer.feed(text)
            if not text:
                return
            kind = "response.custom_tool_call_input.delta"
        else:
            kind = "response.function_call_arguments.delta"
        self._event(
            out, {"type": kind, "item_id": call.item_id, "output_index": call.output_index, "delta": text}
        )

    # ------------------------------------------------------------------------------------------- closing

    def _close_all(self, out: list[dict[str, Any]]) -> None:
        status = "incomplete" if finish_status(self._finish_reason)[0] == "incomplete" else "completed"
        if self._reasoning is not None:
            self._close_reasoning(out)
        if self._message is not None:
            self._close_message(out, status)
        calls = [*self._pending, *self._calls.values()]
        self._pending.clear()
        self._calls.clear()
        for call in calls:
            if call.output_index < 0:
                self._announce(call, out)  # a call whose name never came: still reported, not lost
                self._send_args(call, out)
        for call in sorted(calls, key=lambda c: c.output_index):
            self._close_call(call, out, status)

    def _close_message(self, out: list[dict[str, Any]], status: str) -> None:
        item, self._message = self._message, None
        assert item is not None
        text = "".join(item.parts)
        common = {"item_id": item.item_id, "output_index": item.output_index, "content_index": 0}
        self._event(out, {"type": "response.output_text.done", **common, "text": text, "logprobs": []})
        self._event(out, {"type": "response.content_part.done", **common, "part": text_part(text)})
        self._done_item(out, item.output_index, message_item(item.item_id, text, status))

    def _close_reasoning(self, out: list[dict[str, Any]]) -> None:
        item, self._reasoning = self._reasoning, None
        assert item is not None
        text = "".join(item.parts)
        common = {"item_id": item.item_id, "output_index": item.output_index, "summary_index": 0}
        self._event(out, {"type": "response.reasoning_summary_text.done", **common, "text": text})
        self._event(out, {"type": "response.reasoning_summary_part.done", **common,
                          "part": {"type": "summary_text", "text": text}})  # fmt: skip
        self._done_item(out, item.output_index, reasoning_item(item.item_id, text))

    def _close_call(self, call: _Call, out: list[dict[str, Any]], status: str) -> None:
        arguments = "".join(call.args)
        item = tool_call_item(call.origin, call.name, call.call_id, arguments, status, call.item_id)
        common = {"item_id": call.item_id, "output_index": call.output_index}
        if call.custom:
            text = item["input"]
            assert call.streamer is not None
            sent = call.streamer.sent
            if len(text) > len(sent) and text.startswith(sent):
                # The arguments were not `{"input": "..."}` JSON the streamer could follow: send the rest.
                self._event(
                    out,
                    {"type": "response.custom_tool_call_input.delta", **common, "delta": text[len(sent) :]},
                )
            self._event(out, {"type": "response.custom_tool_call_input.done", **common, "input": text})
        else:
            self._event(out, {"type": "response.function_call_arguments.done", **common,
                              "arguments": item["arguments"]})  # fmt: skip
        self._done_item(out, call.output_index, item)

    def _done_item(self, out: list[dict[str, Any]], index: int, item: dict[str, Any]) -> None:
        self._items[index] = item
        self._event(out, {"type": "response.output_item.done", "output_index": index, "item": item})

    # ------------------------------------------------------------------------------------------- helpers

    def _next_index(self) -> int:
        self._items.append(None)
        return len(self._items) - 1

    def _event(self, out: list[dict[str, Any]], event: dict[str, Any]) -> None:
        event["sequence_number"] = self._seq
        self._seq += 1
        out.append(event)

    def _final(self, status: str, partial: bool = False) -> dict[str, Any]:
        response = base_response(self.ctx, self.response_id, self.created_at, status)
        output = [item for item in self._items if item is not None]
        if partial:
            output.extend(self._open_items())
        response["output"] = output
        response["usage"] = usage_to_responses(self._usage)
        return response

    def _open_items(self) -> list[dict[str, Any]]:
        """Snapshots of items cut off by a failure, marked incomplete."""
        items: list[tuple[int, dict[str, Any]]] = []
        if self._reasoning is not None:
            items.append(
                (
                    self._reasoning.output_index,
                    reasoning_item(self._reasoning.item_id, "".join(self._reasoning.parts)),
                )
            )
        if self._message is not None:
            message = self._message
            items.append(
                (message.output_index, message_item(message.item_id, "".join(message.parts), "incomplete"))
            )
        for call in (*self._pending, *self._calls.values()):
            if call.output_index >= 0:
                item = tool_call_item(
                    call.origin, call.name, call.call_id, "".join(call.args), "incomplete", call.item_id
                )
                items.append((call.output_index, item))
        items.sort(key=lambda pair: pair[0])
        return [item for _, item in items]

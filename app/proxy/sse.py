"""Server-sent events: an incremental parser for upstream streams, and the encoders for each wire API.

Streams are handled as events, never as a whole body: the parser yields each event as soon as its
terminating blank line arrives, whatever way the bytes were split across network reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

DONE = b"[DONE]"


@dataclass(slots=True)
class Event:
    """One SSE event: `event:` name (may be empty) and the raw `data:` payload (lines joined by \\n)."""

    name: str
    data: bytes
    raw: bytes  # the exact bytes of the event, terminator included, for byte-exact passthrough

    def json(self) -> Any:
        return orjson.loads(self.data)


class SSEParser:
    """Feed bytes as they arrive; get complete events back. Tolerates \\r\\n and \\n line endings."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[Event]:
        buf = self._buf + chunk if self._buf else chunk
        held = b""
        if b"\r" in buf:
            if buf[-1:] == b"\r":  # maybe the first half of a \r\n split across reads: decide with the next
                buf, held = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events: list[Event] = []
        start = 0
        find = buf.find
        while True:
            end = find(b"\n\n", start)
            if end < 0:
                break
            block = buf[start : end + 2]
            event = _parse_block(block)
            start = end + 2
            if event is not None:
                events.append(event)
        self._buf = (buf[start:] if start else buf) + held
        return events

    def pending(self) -> bytes:
        """Bytes of an incomplete trailing event (non-empty at stream end means a truncated stream)."""
        return self._buf


def _parse_block(block: bytes) -> Event | None:
    """One event from its block (ending in the blank line). The two shapes providers send, `data: X` and
    `event: N` + `data: X` on single lines, are cut out directly; anything else (comments, multi-line
    data, no space after the colon) takes the general path."""
    stop = len(block) - 2
    if block.startswith(b"data: "):
        if block.find(b"\n", 0, stop) < 0:
            return Event("", block[6:-2], block)
    elif block.startswith(b"event: "):
        nl = block.find(b"\n", 0, stop)
        if block.startswith(b"data: ", nl + 1) and block.find(b"\n", nl + 1, stop) < 0:
            name = block[7:nl]
            if name and name[-1:] != b" " and not name.startswith(b" "):
                return Event(name.decode("utf-8", "replace"), block[nl + 7 : -2], block)
    return _parse_lines(block)


def _parse_lines(block: bytes) -> Event | None:
    """The general SSE rules, line by line."""
    name = ""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data and not name:
        return None
    return Event(name, b"\n".join(data), block)


def encode_data(payload: Any) -> bytes:
    """An OpenAI-style event: `data: {json}` with no event name."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def encode_named(payload: dict[str, Any]) -> bytes:
    """An Anthropic/Responses-style event: the event name is the payload's `type`."""
    name: str = payload["type"]
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def encode_openai(chunks: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(encode_data(c) for c in chunks)


def encode_typed(events: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(encode_named(e) for e in events)


OPENAI_DONE = b"data: [DONE]\n\n"

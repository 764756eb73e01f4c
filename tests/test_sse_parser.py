"""The SSE parser's direct cut for single-line events gives exactly what the general line parser gives, for
any way the bytes are split across reads."""

from __future__ import annotations

import random

from app.proxy import sse


def reference(stream: bytes) -> list[tuple[str, bytes, bytes]]:
    """The general algorithm alone, on the whole stream at once."""
    buf = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    out = []
    while True:
        end = buf.find(b"\n\n")
        if end < 0:
            return out
        block, buf = buf[: end + 2], buf[end + 2 :]
        name, data = "", []
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
        if data or name:
            out.append((name, b"\n".join(data), block))


BLOCKS = [
    b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n',
    b"data: [DONE]\n\n",
    b'event: content_block_delta\ndata: {"type":"content_block_delta"}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    b": OPENROUTER PROCESSING\n\n",
    b'data:{"no":"space"}\n\n',
    b"data: line one\ndata: line two\n\n",
    b"event: ping\n\n",
    b'event:  spaced\ndata: {"a":1}\n\n',
    b'event: x\ndata: {"a":1}\nid: 7\n\n',
    b'id: 3\ndata: {"a":2}\n\n',
    b"data: \n\n",
    b'event: e\r\ndata: {"crlf":true}\r\n\r\n',
    b"data: caf\xc3\xa9\n\n",
    b"event: \xff\ndata: {}\n\n",
]


def test_fast_cut_matches_the_general_parser_whatever_the_splits() -> None:
    rng = random.Random(6)
    for _ in range(400):
        stream = b"".join(rng.choice(BLOCKS) for _ in range(rng.randrange(1, 12)))
        cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randrange(0, 6))))
        parser = sse.SSEParser()
        got = []
        for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            got += [(e.name, e.data, e.raw) for e in parser.feed(stream[lo:hi])]
        assert got == reference(stream), stream
        assert parser.pending() == b""

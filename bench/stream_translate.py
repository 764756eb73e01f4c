"""Per-chunk cost of the stream translators, on a stream recorded from the mock upstream over real HTTP.

The Anthropic <-> OpenAI stream translators run once per SSE chunk on the proxy's event loop, so a change
to them is judged by this figure: `python -m bench.stream_translate` records one OpenAI-format stream
(reasoning, text, two tool calls, usage) and one Anthropic-format stream from `MockUpstream`, then times
feeding each through a fresh translator (best of several rounds, microseconds per chunk).
"""

from __future__ import annotations

import argparse
import json
import timeit
import urllib.request
from collections.abc import Callable
from typing import Any

from app.proxy.translate.anthropic_stream import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from app.testing.mock_upstream import MockUpstream, Reply, ToolCall, Usage

_REPLY = Reply(
    reasoning="Let me look at the file first, then run the tests to see what fails. " * 6,
    text="I will read the module and then run the suite. " * 10,
    tool_calls=(
        ToolCall("Read", {"file_path": "/work/app/proxy/pipeline.py", "limit": 400}),
        ToolCall(
            "Bash", {"command": "python -m pytest -q tests/test_translate_anthropic.py", "timeout": 120}
        ),
    ),
    usage=Usage(prompt=2400, completion=310),
)


def _events(raw: bytes) -> list[dict[str, Any]]:
    events = []
    for block in raw.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                events.append(json.loads(line[5:]))
    return events


def record(path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The parsed SSE events of one streamed answer from the mock upstream."""
    with MockUpstream(default=_REPLY) as mock:
        request = urllib.request.Request(
            mock.base_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer x", "x-api-key": "x"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            return _events(resp.read())


def per_chunk_us(events: list[dict[str, Any]], make: Callable[[], Any], rounds: int, number: int) -> float:
    def run() -> None:
        translator = make()
        feed = translator.feed
        for event in events:
            feed(event)
        translator.finish()

    best = min(timeit.repeat(run, number=number, repeat=rounds))
    return best / number / len(events) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=300)
    args = parser.parse_args(argv)
    messages = [{"role": "user", "content": "fix the failing test"}]
    openai = record(
        "/v1/chat/completions",
        {"model": "m", "messages": messages, "stream": True, "stream_options": {"include_usage": True}},
    )
    anthropic = record(
        "/v1/messages", {"model": "m", "messages": messages, "max_tokens": 1024, "stream": True}
    )
    rows = (
        ("OpenAIToAnthropicStream", openai, lambda: OpenAIToAnthropicStream(model="claude")),
        (
            "AnthropicToOpenAIStream",
            anthropic,
            lambda: AnthropicToOpenAIStream(model="gpt", include_usage=True),
        ),
    )
    for name, events, make in rows:
        print(
            f"{name}: {len(events)} chunks, {per_chunk_us(events, make, args.rounds, args.number):.3f} us/chunk"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

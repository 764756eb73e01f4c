"""The project's MockUpstream as a benchmark process, its answer set per scenario over stdin.

It is the same server as `python -m app.testing.mock_upstream` (same class, uvloop), with one addition the
standalone CLI lacks: the orchestrator changes the reply shape between scenarios (20 or 200 chunks, a
tool call or not) with a JSON line on stdin, so one mock serves the whole run and nothing about it
depends on the model name the proxy forwards.

    {"cmd": "reply", "chunks": 20, "chunk_delay_ms": 2, "text_chars": 1200, "tool_call": false}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
from typing import Any

from app.testing.mock_upstream import MockUpstream, Reply, ToolCall

_SENTENCE = (
    "The failing case comes from the parser dropping the final event when the stream closes without "
    "a blank line; the fix flushes the pending buffer on EOF and a regression test covers it. "
)


def reply_text(chars: int) -> str:
    text = (_SENTENCE * (chars // len(_SENTENCE) + 1))[:chars]
    return text.rstrip() + "."


def make_reply(spec: dict[str, Any]) -> Reply:
    tools = ()
    if spec.get("tool_call"):
        tools = (
            ToolCall(
                "edit_file",
                {
                    "path": "app/proxy/sse.py",
                    "old_string": "    return events",
                    "new_string": "    events.extend(self._flush())\n    return events",
                },
            ),
        )
    return Reply(
        text=reply_text(int(spec.get("text_chars", 1200))),
        tool_calls=tools,
        stream_chunks=int(spec.get("chunks", 20)),
        chunk_delay=float(spec.get("chunk_delay_ms", 0.0)) / 1000.0,
        first_byte_delay=float(spec.get("first_byte_ms", 0.0)) / 1000.0,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mock_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    # A short record of requests: recording is part of the mock's per-call work, keep it small.
    mock = MockUpstream(host=args.host, port=args.port, max_recorded=8)
    mock.default = make_reply({})

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        async with mock:
            print(json.dumps({"ok": True, "port": mock.port, "pid": os.getpid()}), flush=True)

            def commands() -> None:
                for line in sys.stdin:
                    try:
                        msg = json.loads(line)
                        if msg.get("cmd") == "reply":
                            mock.default = make_reply(msg)
                            mock.clear()
                            answer: dict[str, Any] = {"ok": True}
                        elif msg.get("cmd") == "stats":
                            answer = {"ok": True, "errors": [repr(e) for e in mock.errors]}
                        else:
                            answer = {"ok": False, "error": f"unknown command {msg!r}"}
                    except Exception as exc:  # answer, never die: the orchestrator waits for a line
                        answer = {"ok": False, "error": repr(exc)}
                    print(json.dumps(answer), flush=True)
                loop.call_soon_threadsafe(stop.set)

            threading.Thread(target=commands, daemon=True).start()
            await stop.wait()

    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

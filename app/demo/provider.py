"""The demo's simulated provider: the project's mock upstream, scripted to behave like real models.

Each model gets a plausible speed (time to first byte, streaming pace) and usage (prompt from the request
size, cache hits where the provider caches), and answers with tool calls from the tools the agent
declared. Cheap models break a tool call now and then, cycling through the failure kinds the proxy
detects (arguments that are not JSON, an undeclared tool, arguments that miss the schema, a call written
as text); premium models rarely do. The provider itself misbehaves occasionally too: a 429 that makes
the proxy fall back, and a stream cut short. Everything is decided by counters and a seeded RNG, so a
short run still shows every kind and two runs look alike.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from app.core.toolcheck import declared_openai
from app.testing.mock_upstream import Fault, MockUpstream, Reply, ToolCall, Usage
from app.testing.script import RecordedRequest

FAILURE_KINDS = ("schema", "invalid_json", "unknown_tool", "text_form")
_CHEAP_MODEL = "qwen/qwen3-coder"  # the model that is rate limited now and then, so the proxy falls back


@dataclass(frozen=True)
class ModelStyle:
    """How one simulated model behaves; times are seconds at speed 1."""

    ttfb: tuple[float, float]  # time to first byte, uniform range
    chunk_delay: float  # between streamed deltas
    failure_every: int  # one broken tool call in this many tool-calling replies (0: never)
    cache_share: float  # share of the prompt served from the provider's cache after the first turn
    output: tuple[int, int]  # completion tokens, uniform range


_CHEAP = ModelStyle((0.5, 1.1), 0.03, 5, 0.0, (120, 700))
_STYLES: dict[str, ModelStyle] = {
    "qwen/qwen3-coder": _CHEAP,
    "deepseek-chat": ModelStyle((0.8, 1.5), 0.04, 5, 0.7, (60, 400)),
    "claude-sonnet-4-5": ModelStyle((1.0, 1.8), 0.02, 25, 0.85, (150, 900)),
    "claude-opus-4-1": ModelStyle((1.6, 2.8), 0.03, 0, 0.85, (300, 1400)),
    "claude-haiku-4-5": ModelStyle((0.3, 0.6), 0.01, 0, 0.0, (20, 80)),
}

_THOUGHTS = (
    "Let me look at how the parser flushes the last event before changing anything.",
    "The failing test points at the retry loop; reading the client next.",
    "I'll run the narrowest test first to confirm the fix.",
    "Checking where the config error message is built.",
    "That narrows it down to the buffer handling. Editing it now.",
)
_ANSWERS = (
    "Fixed: the parser now flushes a pending event when the stream ends without a blank line, and a "
    "regression test covers it. The full suite passes.",
    "Done. Retries use exponential backoff with jitter for 429 and 5xx and honour Retry-After; two new tests.",
    "The loader now reports the file, key and line of each problem. Tests updated.",
    "Logging no longer re-serialises the body on the hot path; the benchmark is 18% faster.",
)
_VALID_ARGS: dict[str, dict[str, Any]] = {
    "read_file": {"path": "app/proxy/sse.py"},
    "grep": {"pattern": "def feed", "path": "app/proxy", "output_mode": "content"},
    "bash": {"command": "python -m pytest -q tests/test_sse.py", "description": "Run the SSE tests"},
    "edit_file": {
        "path": "app/proxy/sse.py",
        "old_string": "        return events",
        "new_string": "        return events + self._flush()",
    },
    "run_tests": {"paths": ["tests/test_sse.py"], "fail_fast": True},
    "glob": {"pattern": "**/*stream*.py"},
}


def history_turns(body: Any) -> int:
    """Assistant turns already in the conversation: how far into its task the agent is."""
    messages = body.get("messages") if isinstance(body, Mapping) else None
    return (
        sum(1 for m in messages if isinstance(m, Mapping) and m.get("role") == "assistant")
        if isinstance(messages, list)
        else 0
    )


@dataclass(frozen=True)
class Timing:
    """How slowly one reply comes: the wait for its first byte and between its chunks (seconds)."""

    first_byte_delay: float
    chunk_delay: float

    def of(self, reply: Reply) -> Reply:
        return replace(reply, first_byte_delay=self.first_byte_delay, chunk_delay=self.chunk_delay)


class SimulatedProvider:
    """Decides every reply of the mock upstream; call `start()` for a running MockUpstream."""

    def __init__(
        self, *, speed: float = 1.0, seed: int = 7, fallback_every: int = 11, cut_every: int = 13
    ) -> None:
        self.speed = max(0.01, speed)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._tool_replies: dict[str, itertools.count[int]] = {}
        self._failures = itertools.cycle(FAILURE_KINDS)
        self._per_provider: dict[str, itertools.count[int]] = {}
        self.fallback_every = fallback_every
        self.cut_every = cut_every
        self.mock = MockUpstream(default=self.reply, max_recorded=200)

    def start(self) -> MockUpstream:
        return self.mock.start()

    def stop(self) -> None:
        self.mock.stop()

    # -------------------------------------------------------------------------------------- decisions

    def _next(self, counters: dict[str, itertools.count[int]], key: str) -> int:
        with self._lock:
            return next(counters.setdefault(key, itertools.count(1)))

    def _uniform(self, low: float, high: float) -> float:
        with self._lock:
            return self._rng.uniform(low, high)

    def reply(self, request: RecordedRequest) -> Reply | Fault:
        body = request.json if isinstance(request.json, Mapping) else {}
        model = str(body.get("model") or "")
        style = _STYLES.get(model, _CHEAP)
        turns = history_turns(body)
        timing = Timing(self._uniform(*style.ttfb) / self.speed, style.chunk_delay / self.speed)
        usage = self._usage(request, style, turns)
        if model == _CHEAP_MODEL:
            n = self._next(self._per_provider, model)
            if self.fallback_every and n % self.fallback_every == 0:
                return timing.of(
                    Reply(
                        status=429,
                        error="Rate limit exceeded: free-tier capacity, retry shortly",
                        headers={"retry-after": "2"},
                    )
                )
            if request.stream and self.cut_every and n % self.cut_every == 0:
                return Fault(
                    "close_mid_stream", after_chunks=6, reply=self._answer(body, style, turns, usage, timing)
                )
        return self._answer(body, style, turns, usage, timing)

    def _usage(self, request: RecordedRequest, style: ModelStyle, turns: int) -> Usage:
        prompt = max(200, len(request.body) // 4)
        cached = int(prompt * style.cache_share) if turns else 0
        write = int(prompt * 0.9) if request.api == "anthropic" and not turns else 0
        low, high = style.output
        return Usage(
            prompt=prompt, completion=int(self._uniform(low, high)), cached=cached, cache_write=write
        )

    def _answer(
        self, body: Mapping[str, Any], style: ModelStyle, turns: int, usage: Usage, timing: Timing
    ) -> Reply:
        tools = list(declared_openai(body))
        finish_chance = min(0.9, 0.12 * turns)
        if not tools or self._uniform(0, 1) < finish_chance:
            return timing.of(Reply(text=_ANSWERS[turns % len(_ANSWERS)], usage=usage))
        key = str(body.get("model") or "")
        n = self._next(self._tool_replies, key)
        thought = _THOUGHTS[n % len(_THOUGHTS)]
        if style.failure_every and n % style.failure_every == 0:
            return self._broken(tools, thought, usage, timing)
        usable = [name for name in tools if name in _VALID_ARGS] or tools[:1]
        name = usable[n % len(usable)]
        return timing.of(
            Reply(text=thought, tool_calls=[ToolCall(name, _VALID_ARGS.get(name, {}))], usage=usage)
        )

    def _broken(self, tools: list[str], thought: str, usage: Usage, timing: Timing) -> Reply:
        with self._lock:
            kind = next(self._failures)
        if kind == "schema" and "edit_file" in tools:  # old_string and new_string are required
            return timing.of(
                Reply(
                    text=thought,
                    tool_calls=[ToolCall("edit_file", {"path": "app/proxy/sse.py"})],
                    usage=usage,
                )
            )
        if kind == "unknown_tool":
            patch = "*** Begin Patch\n*** Update File: app/proxy/sse.py\n*** End Patch"
            return timing.of(
                Reply(text=thought, tool_calls=[ToolCall("apply_patch", {"patch": patch})], usage=usage)
            )
        if kind == "text_form" and "read_file" in tools:
            return timing.of(
                Reply(
                    text=thought,
                    text_tool_call=ToolCall("read_file", {"path": "app/proxy/sse.py"}),
                    usage=usage,
                )
            )
        name = "bash" if "bash" in tools else tools[0]
        return timing.of(
            Reply(
                text=thought,
                tool_calls=[ToolCall(name, '{"command": "python -m pytest -q tests/test_s')],
                usage=usage,
            )
        )

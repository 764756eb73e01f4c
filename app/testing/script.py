"""What a test tells the mock upstream to do: replies, faults, and the record of what it received.

These are plain values so a test can build them on its own thread and hand them to the server loop;
the server only reads them. One `Reply` renders as either wire format, so the same script drives a
proxy whatever API the agent speaks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import orjson


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model makes. `arguments` may be a raw string to script malformed JSON."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None  # None: an id in the API's own style (call_..., toolu_...); "": an empty id

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return orjson.dumps(dict(self.arguments)).decode()


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts to report. `prompt` is the whole input, cached and cache-written tokens included
    (OpenAI's meaning); Anthropic's `input_tokens` is derived as prompt minus cache reads and writes.
    None means "derive it": prompt from the request size, completion from the generated words."""

    prompt: int | None = None
    completion: int | None = None
    cached: int = 0  # cache reads: prompt_tokens_details.cached_tokens / cache_read_input_tokens
    cache_write: int = 0  # 5-minute cache writes: cache_creation_input_tokens
    cache_write_1h: int = 0  # 1-hour cache writes (Anthropic cache_creation.ephemeral_1h_input_tokens)
    reasoning: int | None = None  # completion_tokens_details.reasoning_tokens; None: words of `reasoning`


UsageShape = Literal[
    "openai",  # usage object; streamed as a last chunk with empty `choices`, only if stream_options asks
    "openrouter",  # as openai plus cost, is_byok, cost_details; streamed whether asked or not
    "deepseek",  # prompt_cache_hit_tokens / prompt_cache_miss_tokens instead of prompt_tokens_details
    "groq",  # streamed in `x_groq.usage` of the finishing chunk, whether asked or not
    "moonshot",  # top-level `cached_tokens`; streamed in `choices[0].usage` of the finishing chunk
    "finish_chunk",  # streamed at the top level of the finishing chunk, unasked (Together, Fireworks, Mistral)
    "none",  # streams carry no usage at all (LM Studio before stream_options, servers that ignore it)
]
USAGE_SHAPES: frozenset[str] = frozenset(get_args(UsageShape))


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted upstream answer; rendered in the wire format of the endpoint that was called.

    `text=None` with no tool calls echoes the last user message, so an unscripted mock still answers
    something checkable. Timing: `first_byte_delay` is waited before the first body byte (headers of
    a stream go out at once, like real SSE servers), `chunk_delay` between content-bearing events.
    """

    text: str | None = None
    reasoning: str | None = None  # Anthropic thinking block / OpenAI-compatible reasoning deltas
    tool_calls: Sequence[ToolCall] = ()
    text_tool_call: ToolCall | None = None  # written into content as <tool_call>{json}</tool_call>
    finish: str | None = None  # either API's vocabulary; translated for the other
    usage: Usage | None = None
    cost: float | None = None  # OpenRouter-style usage.cost in USD
    upstream_cost: float | None = (
        None  # OpenRouter BYOK: usage.cost_details.upstream_inference_cost (is_byok true)
    )
    usage_shape: UsageShape = "openai"  # where an OpenAI-format answer carries its usage (see USAGE_SHAPES)
    status: int = 200
    error: str | Mapping[str, Any] | bytes | None = None  # message, or a whole body to send as-is
    headers: Mapping[str, str] = field(default_factory=dict)
    stream_chunks: int | None = None  # content deltas to split text into; None: one per word
    args_chunk_chars: int = 12  # size of each streamed piece of tool-call arguments
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0
    model: str | None = None  # None: echo the request's model
    reasoning_field: str = "reasoning_content"  # OpenAI-side name: DeepSeek's, or "reasoning" (OpenRouter)


FaultKind = Literal[
    "refuse",  # close the connection before any response byte
    "reset_mid_stream",  # send `after_chunks` events, then a TCP reset
    "close_mid_stream",  # send `after_chunks` events, then close without ending the chunked body
    "truncate",  # send `after_chunks` events, then end the HTTP response cleanly (no stream terminator)
    "stall_before_headers",  # wait `duration` before answering at all
    "stall_mid_stream",  # send `after_chunks` events, wait `duration`, then carry on
    "malformed_sse",  # after `after_chunks` events, one event whose data is not JSON, then carry on
    "malformed_json",  # 200 with an application/json body that does not parse
    "error_event",  # after `after_chunks` events, the API's in-stream error event, then end
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))


@dataclass(frozen=True, slots=True)
class Fault:
    """A broken response. Stream faults count SSE events; on a non-streaming request they cut the
    JSON body in half instead (error_event then answers 500 in the API's error shape)."""

    kind: FaultKind
    after_chunks: int = 2
    duration: float = 30.0  # stall length, seconds
    reply: Reply | None = None  # the answer being broken; None: the mock's default reply

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request as the mock received it. Header names are lower-cased."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any  # parsed body, None when absent or not JSON
    time: float  # time.monotonic() at arrival
    api: Literal["openai", "anthropic"]

    @property
    def api_key(self) -> str | None:
        """The credential sent, from x-api-key or a Bearer Authorization header."""
        if "x-api-key" in self.headers:
            return self.headers["x-api-key"]
        auth = self.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else (auth or None)

    @property
    def model(self) -> str | None:
        return self.json.get("model") if isinstance(self.json, dict) else None

    @property
    def stream(self) -> bool:
        return bool(self.json.get("stream")) if isinstance(self.json, dict) else False


# What a queue slot or `default` may hold; a callable runs on the server loop and decides per request.
Script = Reply | Fault | Callable[[RecordedRequest], Reply | Fault | Awaitable[Reply | Fault]]

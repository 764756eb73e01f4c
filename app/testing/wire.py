"""Render a scripted `Reply` as the bytes a real provider would send: OpenAI chat completions (JSON or
SSE chunks) and Anthropic Messages (JSON or typed SSE events), plus both APIs' error bodies.

The mock is the fixed point the proxy is measured against, so it encodes independently of the
proxy's own SSE code, and builds stream events from pre-encoded prefixes: per event only the
changing piece is serialized, which keeps the mock off the benchmark's critical path.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from app.testing.script import RecordedRequest, Reply, ToolCall

# One rendered SSE event and whether `chunk_delay` is waited before it (content after the first).
Event = tuple[bytes, bool]

FINISH_TO_ANTHROPIC = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}
FINISH_TO_OPENAI = {
    "end_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "refusal": "content_filter",
    "stop_sequence": "stop",
    "pause_turn": "stop",
}

_WORD = re.compile(r"\S+\s*|\s+")
_FINGERPRINT = "fp_mock"


@dataclass(frozen=True, slots=True)
class Counts:
    """Resolved token counts; `prompt` includes cache reads and writes (OpenAI's meaning)."""

    prompt: int
    completion: int
    cached: int
    cache_write_5m: int
    cache_write_1h: int
    reasoning: int

    @property
    def anthropic_input(self) -> int:
        return max(0, self.prompt - self.cached - self.cache_write_5m - self.cache_write_1h)


@dataclass(frozen=True, slots=True)
class Plan:
    """A reply resolved against one request: everything both renderers need, API-neutral."""

    seq: int
    created: int
    model: str
    text: str
    reasoning: str
    tool_calls: tuple[ToolCall, ...]
    finish: str | None  # as scripted; translated per API
    counts: Counts
    cost: float | None
    upstream_cost: float | None
    usage_shape: str
    stream_chunks: int | None
    args_chunk_chars: int
    reasoning_field: str

    def finish_openai(self) -> str:
        if self.finish:
            return FINISH_TO_OPENAI.get(self.finish, self.finish)
        return "tool_calls" if self.tool_calls else "stop"

    def finish_anthropic(self) -> str:
        if self.finish:
            return FINISH_TO_ANTHROPIC.get(self.finish, self.finish)
        return "tool_use" if self.tool_calls else "end_turn"

    def tool_id(self, i: int, prefix: str) -> str:
        given = self.tool_calls[i].id
        return given if given is not None else f"{prefix}_mock_{self.seq:06d}_{i}"


def plan(reply: Reply, req: RecordedRequest, seq: int) -> Plan:
    """Resolve defaults (echo text, model, token counts) for this request."""
    text = reply.text
    if text is None:
        text = "" if (reply.tool_calls or reply.text_tool_call) else echo_text(req.json)
    if reply.text_tool_call is not None:
        call = {"name": reply.text_tool_call.name, "arguments": _args_value(reply.text_tool_call)}
        written = "<tool_call>\n" + orjson.dumps(call).decode() + "\n</tool_call>"
        text = f"{text}\n{written}" if text else written
    reasoning = reply.reasoning or ""
    tools = tuple(reply.tool_calls)
    return Plan(
        seq=seq,
        created=int(time.time()),
        model=reply.model or req.model or "mock-model",
        text=text,
        reasoning=reasoning,
        tool_calls=tools,
        finish=reply.finish,
        counts=_counts(reply, len(req.body), text, reasoning, tools),
        cost=reply.cost,
        upstream_cost=reply.upstream_cost,
        usage_shape=reply.usage_shape,
        stream_chunks=reply.stream_chunks,
        args_chunk_chars=max(1, reply.args_chunk_chars),
        reasoning_field=reply.reasoning_field,
    )


def _args_value(call: ToolCall) -> Any:
    return call.arguments if isinstance(call.arguments, str) else dict(call.arguments)


def _counts(reply: Reply, body_len: int, text: str, reasoning: str, tools: tuple[ToolCall, ...]) -> Counts:
    u = reply.usage
    reasoning_words = len(reasoning.split())
    generated = len(text.split()) + reasoning_words + sum(max(1, len(t.arguments_json()) // 4) for t in tools)
    if u is None:
        return Counts(max(1, body_len // 4), max(1, generated), 0, 0, 0, reasoning_words)
    return Counts(
        prompt=u.prompt if u.prompt is not None else max(1, body_len // 4),
        completion=u.completion if u.completion is not None else max(1, generated),
        cached=u.cached,
        cache_write_5m=u.cache_write,
        cache_write_1h=u.cache_write_1h,
        reasoning=u.reasoning if u.reasoning is not None else reasoning_words,
    )


def echo_text(body: Any) -> str:
    """The default answer: quote the last user text, so tests can tell which request was answered."""
    said = ""
    messages = body.get("messages") if isinstance(body, dict) else None
    for msg in reversed(messages if isinstance(messages, list) else []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            said = _message_text(msg.get("content"))
            if said:
                break
    said = " ".join(said.split())[:160]
    return f"Mock reply to: {said}" if said else "Mock reply."


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def split_text(text: str, chunks: int | None) -> list[str]:
    """Pieces whose concatenation is exactly `text`: one per word, or `chunks` near-equal pieces."""
    if not text:
        return []
    if chunks is None:
        return _WORD.findall(text)
    n = max(1, min(chunks, len(text)))
    step = len(text) / n
    return [text[round(i * step) : round((i + 1) * step)] for i in range(n)]


def split_every(s: str, size: int) -> list[str]:
    return [s[i : i + size] for i in range(0, len(s), size)]


def signature(thinking: str) -> str:
    """A stable stand-in for Anthropic's opaque thinking signature."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest() * 2).decode()


# ---------------------------------------------------------------- OpenAI chat completions


def openai_usage(p: Plan) -> dict[str, Any]:
    """The `usage` object in the dialect of `p.usage_shape` (the counts are the same in every dialect)."""
    c = p.counts
    prompt_details: dict[str, int] = {"cached_tokens": c.cached, "audio_tokens": 0}
    if c.cache_write_5m or c.cache_write_1h:
        prompt_details["cache_write_tokens"] = c.cache_write_5m + c.cache_write_1h  # OpenRouter's field
    usage: dict[str, Any] = {
        "prompt_tokens": c.prompt,
        "completion_tokens": c.completion,
        "total_tokens": c.prompt + c.completion,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": c.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    shape = p.usage_shape
    if shape == "deepseek":  # DeepSeek: hit + miss = prompt, no prompt_tokens_details
        del usage["prompt_tokens_details"]
        usage["prompt_cache_hit_tokens"] = c.cached
        usage["prompt_cache_miss_tokens"] = c.prompt - c.cached
    elif shape == "moonshot":  # Moonshot: cached_tokens at the top level of usage
        del usage["prompt_tokens_details"], usage["completion_tokens_details"]
        usage["cached_tokens"] = c.cached
    elif shape in ("groq", "finish_chunk"):  # plain counts (Groq adds its timings)
        del usage["prompt_tokens_details"], usage["completion_tokens_details"]
        if c.cached:
            usage["prompt_tokens_details"] = {"cached_tokens": c.cached}
        if shape == "groq":
            usage.update(queue_time=0.02, prompt_time=0.01, completion_time=0.05, total_time=0.06)
    if p.cost is not None or shape == "openrouter":
        usage["cost"] = p.cost if p.cost is not None else 0.0
        usage["is_byok"] = p.upstream_cost is not None
        usage["cost_details"] = {"upstream_inference_cost": p.upstream_cost}
    return usage


def _streams_usage(p: Plan, asked: bool) -> bool:
    """Whether a stream of this shape carries usage: some servers send it unasked, some never."""
    if p.usage_shape == "none":
        return False
    return asked or p.usage_shape != "openai"


def openai_id(p: Plan) -> str:
    return f"chatcmpl-mock{p.seq:08d}"


def openai_body(p: Plan) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": p.text, "refusal": None}
    if p.reasoning:
        message[p.reasoning_field] = p.reasoning
    if p.tool_calls:
        message["content"] = p.text or None
        message["tool_calls"] = [
            {
                "id": p.tool_id(i, "call"),
                "type": "function",
                "function": {"name": t.name, "arguments": t.arguments_json()},
            }
            for i, t in enumerate(p.tool_calls)
        ]
    return orjson.dumps(
        {
            "id": openai_id(p),
            "object": "chat.completion",
            "created": p.created,
            "model": p.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": p.finish_openai()}
            ],
            "usage": openai_usage(p),
            "system_fingerprint": _FINGERPRINT,
        }
    )


def openai_events(p: Plan, include_usage: bool) -> list[Event]:
    """Chunks in the order OpenAI-compatible servers send them, ending with `data: [DONE]`. Where the usage
    goes depends on `p.usage_shape`: a last chunk with empty `choices` (OpenAI, OpenRouter, DeepSeek), the
    finishing chunk's `x_groq` (Groq), its `choices[0]` (Moonshot) or its top level (Together...)."""
    include_usage = _streams_usage(p, include_usage)
    shape = p.usage_shape
    separate = include_usage and shape in ("openai", "openrouter", "deepseek")
    head = (
        b'data: {"id":"'
        + openai_id(p).encode()
        + b'","object":"chat.completion.chunk","created":'
        + str(p.created).encode()
        + b',"model":'
        + orjson.dumps(p.model)
        + b',"system_fingerprint":"'
        + _FINGERPRINT.encode()
        + b'","choices":'
    )
    open_choice = head + b'[{"index":0,"delta":'
    usage_null = b',"usage":null' if separate or (include_usage and shape == "finish_chunk") else b""
    tail = b',"logprobs":null,"finish_reason":null}]' + usage_null + b"}\n\n"

    # Tool-only answers open with content null, as OpenAI's do; text answers with an empty string.
    role = (
        b'{"role":"assistant","content":"","refusal":null}'
        if p.text or not p.tool_calls
        else b'{"role":"assistant","content":null,"refusal":null}'
    )
    events: list[Event] = [(open_choice + role + tail, False)]
    content = _Timer()
    reasoning_key = b'{"content":null,' + orjson.dumps(p.reasoning_field) + b":"
    for piece in split_text(p.reasoning, p.stream_chunks):
        events.append((open_choice + reasoning_key + orjson.dumps(piece) + b"}" + tail, content()))
    for piece in split_text(p.text, p.stream_chunks):
        events.append((open_choice + b'{"content":' + orjson.dumps(piece) + b"}" + tail, content()))
    for i, t in enumerate(p.tool_calls):
        first = {
            "tool_calls": [
                {
                    "index": i,
                    "id": p.tool_id(i, "call"),
                    "type": "function",
                    "function": {"name": t.name, "arguments": ""},
                }
            ]
        }
        events.append((open_choice + orjson.dumps(first) + tail, content()))
        for piece in split_every(t.arguments_json(), p.args_chunk_chars):
            delta = {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
            events.append((open_choice + orjson.dumps(delta) + tail, content()))
    finish = open_choice + b'{},"logprobs":null,"finish_reason":' + orjson.dumps(p.finish_openai())
    usage = orjson.dumps(openai_usage(p)) if include_usage else b""
    if include_usage and shape == "moonshot":
        events.append((finish + b',"usage":' + usage + b"}]}\n\n", False))
    elif include_usage and shape == "groq":
        x_groq = b',"x_groq":{"id":"req_mock' + str(p.seq).encode() + b'","usage":' + usage + b"}"
        events.append((finish + b"}]" + x_groq + b"}\n\n", False))
    elif include_usage and shape == "finish_chunk":
        events.append((finish + b'}],"usage":' + usage + b"}\n\n", False))
    else:
        events.append((finish + b"}]" + usage_null + b"}\n\n", False))
    if separate:
        events.append((head + b'[],"usage":' + usage + b"}\n\n", False))
    events.append((b"data: [DONE]\n\n", False))
    return events


class _Timer:
    """Marks every content-bearing event but the first as preceded by `chunk_delay`."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen = False

    def __call__(self) -> bool:
        seen, self._seen = self._seen, True
        return seen


# ---------------------------------------------------------------- Anthropic Messages


def anthropic_id(p: Plan) -> str:
    return f"msg_mock{p.seq:08d}"


def anthropic_usage(p: Plan, output_tokens: int) -> dict[str, Any]:
    c = p.counts
    return {
        "input_tokens": c.anthropic_input,
        "cache_creation_input_tokens": c.cache_write_5m + c.cache_write_1h,
        "cache_read_input_tokens": c.cached,
        "cache_creation": {
            "ephemeral_5m_input_tokens": c.cache_write_5m,
            "ephemeral_1h_input_tokens": c.cache_write_1h,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _anthropic_blocks(p: Plan) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if p.reasoning:
        blocks.append({"type": "thinking", "thinking": p.reasoning, "signature": signature(p.reasoning)})
    if p.text or not p.tool_calls:
        blocks.append({"type": "text", "text": p.text})
    for i, t in enumerate(p.tool_calls):
        blocks.append({"type": "tool_use", "id": p.tool_id(i, "toolu"), "name": t.name, "input": _input(t)})
    return blocks


def _input(t: ToolCall) -> Any:
    """Anthropic's non-streaming tool input is an object; unparsable scripted arguments stay a string."""
    if not isinstance(t.arguments, str):
        return dict(t.arguments)
    try:
        return orjson.loads(t.arguments)
    except orjson.JSONDecodeError:
        return t.arguments


def anthropic_body(p: Plan) -> bytes:
    return orjson.dumps(
        {
            "id": anthropic_id(p),
            "type": "message",
            "role": "assistant",
            "model": p.model,
            "content": _anthropic_blocks(p),
            "stop_reason": p.finish_anthropic(),
            "stop_sequence": None,
            "usage": anthropic_usage(p, p.counts.completion),
        }
    )


def _named(name: bytes, payload: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + payload + b"\n\n"


def anthropic_events(p: Plan) -> list[Event]:
    """message_start, ping, then start/deltas/stop per content block, message_delta, message_stop."""
    start = {
        "type": "message_start",
        "message": {
            "id": anthropic_id(p),
            "type": "message",
            "role": "assistant",
            "model": p.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": anthropic_usage(p, 1),
        },
    }
    events: list[Event] = [(_named(b"message_start", orjson.dumps(start)), False)]
    content = _Timer()
    index = 0

    def block(opening: dict[str, Any], deltas: Iterable[bytes]) -> None:
        nonlocal index
        idx = str(index).encode()
        head = b'{"type":"content_block_start","index":' + idx + b',"content_block":'
        events.append((_named(b"content_block_start", head + orjson.dumps(opening) + b"}"), False))
        if index == 0:
            events.append((_named(b"ping", b'{"type": "ping"}'), False))
        delta_head = b'{"type":"content_block_delta","index":' + idx + b',"delta":'
        for d in deltas:
            events.append((_named(b"content_block_delta", delta_head + d + b"}"), content()))
        stop = b'{"type":"content_block_stop","index":' + idx + b"}"
        events.append((_named(b"content_block_stop", stop), False))
        index += 1

    if p.reasoning:
        pieces = [
            b'{"type":"thinking_delta","thinking":' + orjson.dumps(s) + b"}"
            for s in split_text(p.reasoning, p.stream_chunks)
        ]
        pieces.append(b'{"type":"signature_delta","signature":' + orjson.dumps(signature(p.reasoning)) + b"}")
        block({"type": "thinking", "thinking": "", "signature": ""}, pieces)
    if p.text or not p.tool_calls:
        block(
            {"type": "text", "text": ""},
            (
                b'{"type":"text_delta","text":' + orjson.dumps(s) + b"}"
                for s in split_text(p.text, p.stream_chunks)
            ),
        )
    for i, t in enumerate(p.tool_calls):
        # Anthropic opens every tool input with an empty partial_json before the real pieces.
        parts = ["", *split_every(t.arguments_json(), p.args_chunk_chars)]
        block(
            {"type": "tool_use", "id": p.tool_id(i, "toolu"), "name": t.name, "input": {}},
            (b'{"type":"input_json_delta","partial_json":' + orjson.dumps(s) + b"}" for s in parts),
        )

    usage = anthropic_usage(p, p.counts.completion)
    del usage["cache_creation"], usage["service_tier"]
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": p.finish_anthropic(), "stop_sequence": None},
        "usage": usage,
    }
    events.append((_named(b"message_delta", orjson.dumps(delta)), False))
    events.append((_named(b"message_stop", b'{"type":"message_stop"}'), False))
    return events


# ---------------------------------------------------------------- errors and models

_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", "unsupported_country_region_territory", "Request not allowed."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    408: ("timeout", None, "Request timed out."),
    413: ("invalid_request_error", "request_too_large", "Request too large."),
    429: ("tokens", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(
    api: str, status: int, error: str | Mapping[str, Any] | bytes | None, request_id: str
) -> bytes:
    """The error JSON each API sends; a scripted dict or bytes body is sent as it is."""
    if isinstance(error, bytes):
        return error
    if isinstance(error, Mapping):
        return orjson.dumps(dict(error))
    if api == "anthropic":
        kind, message = _ANTHROPIC_ERRORS.get(status, ("api_error", f"Upstream error {status}"))
        return orjson.dumps(
            {"type": "error", "error": {"type": kind, "message": error or message}, "request_id": request_id}
        )
    kind, code, message = _OPENAI_ERRORS.get(status, ("server_error", None, f"Upstream error {status}"))
    return orjson.dumps({"error": {"message": error or message, "type": kind, "param": None, "code": code}})


def not_found_body(api: str, method: str, path: str) -> bytes:
    """What each API answers for a URL it does not serve."""
    if api == "anthropic":
        return orjson.dumps({"type": "error", "error": {"type": "not_found_error", "message": "Not Found"}})
    return orjson.dumps(
        {
            "error": {
                "message": f"Invalid URL ({method} {path})",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
    )


def stream_error_event(api: str) -> bytes:
    """The error a provider sends inside an already-started stream."""
    if api == "anthropic":
        return _named(
            b"error", b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
        )
    return (
        b'data: {"error":{"message":"The server had an error while processing your request.",'
        b'"type":"server_error","param":null,"code":null}}\n\n'
    )


DEFAULT_MODELS: tuple[dict[str, Any], ...] = (
    # Test fixtures shaped like OpenRouter's catalogue; prices are USD per token, as strings.
    {
        "id": "deepseek/deepseek-chat-v3.1",
        "name": "DeepSeek: DeepSeek V3.1",
        "context_length": 163840,
        "pricing": {"prompt": "0.0000002", "completion": "0.0000008", "input_cache_read": "0.00000002"},
    },
    {
        "id": "qwen/qwen3-coder",
        "name": "Qwen: Qwen3 Coder",
        "context_length": 262144,
        "pricing": {"prompt": "0.0000003", "completion": "0.0000012", "input_cache_read": "0.00000003"},
    },
    {
        "id": "moonshotai/kimi-k2",
        "name": "MoonshotAI: Kimi K2",
        "context_length": 131072,
        "pricing": {"prompt": "0.0000006", "completion": "0.0000025", "input_cache_read": "0.00000015"},
    },
    {
        "id": "anthropic/claude-sonnet-4.6",
        "name": "Anthropic: Claude Sonnet 4.6",
        "context_length": 1000000,
        "pricing": {
            "prompt": "0.000003",
            "completion": "0.000015",
            "input_cache_read": "0.0000003",
            "input_cache_write": "0.00000375",
        },
    },
    {
        "id": "mock-model",
        "name": "Mock model",
        "context_length": 131072,
        "pricing": {"prompt": "0", "completion": "0", "input_cache_read": "0"},
    },
)

_MODELS_CREATED = 1_735_689_600  # 2025-01-01, fixed so listings are byte-stable


def models_body(models: Iterable[Mapping[str, Any]], anthropic: bool) -> bytes:
    """OpenAI list format with OpenRouter's extra fields, or Anthropic's paginated list."""
    items = [dict(m) for m in models]
    if anthropic:
        data = [
            {
                "type": "model",
                "id": m["id"],
                "display_name": m.get("name", m["id"]),
                "created_at": "2025-01-01T00:00:00Z",
            }
            for m in items
        ]
        return orjson.dumps(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )
    data = [
        {"id": m["id"], "object": "model", "created": _MODELS_CREATED, "owned_by": m["id"].partition("/")[0]}
        | m
        for m in items
    ]
    return orjson.dumps({"object": "list", "data": data})

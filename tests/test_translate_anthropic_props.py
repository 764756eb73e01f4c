"""Properties of the Anthropic <-> OpenAI translators, on generated conversations and streams.

- Round trips (anthropic -> openai -> anthropic and the reverse) keep the meaning: texts, tool names, ids
  and inputs, tool results and their error flag, stop reasons, every usage count.
- A stream split anywhere yields, through the official SDKs' own accumulators, exactly the message the
  whole-response translator produces; the event order rules hold on the way.
- Translators never change the caller's body (the pipeline retries the same body on a fallback target)
  and share big sub-objects (schemas, inputs) instead of copying them.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_translate_anthropic import anthropic_replay, openai_replay

from app.proxy.profiles import Profile, profile_for
from app.proxy.translate import anthropic as api
from app.proxy.translate.anthropic_response import TOOL_ERROR_PREFIX

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PLAIN = Profile()  # a plain OpenAI-compatible server
ANTHROPIC = profile_for("anthropic", "anthropic")
CLAUDE = "claude-opus-4-8"

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=24).filter(
    lambda s: s.strip() and not s.startswith(TOOL_ERROR_PREFIX)
)
names = st.sampled_from(["Bash", "Read", "Edit", "mcp__files__write-file"])
scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=12)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(ALNUM, min_size=1, max_size=6), inner, max_size=3), max_leaves=8)  # fmt: skip
inputs = st.dictionaries(st.text(ALNUM, min_size=1, max_size=8), json_values, max_size=4)
usages = st.fixed_dictionaries(
    {
        "input_tokens": st.integers(0, 200_000),
        "output_tokens": st.integers(0, 64_000),
        "cache_read_input_tokens": st.integers(0, 200_000),
        "cache_creation_input_tokens": st.integers(0, 50_000),
    }
)


# ------------------------------------------------------------------------------------------ generators


@st.composite
def anthropic_requests(draw: st.DrawFn) -> dict[str, Any]:
    counter = iter(range(1000))
    text_block = texts.map(lambda t: {"type": "text", "text": t})
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": draw(texts | st.lists(text_block, min_size=1, max_size=3))}
    ]
    for _ in range(draw(st.integers(0, 3))):
        calls = [
            {"type": "tool_use", "id": f"toolu_{draw(st.text(ALNUM, min_size=1, max_size=10))}{next(counter)}", "name": draw(names), "input": draw(inputs)}
            for _ in range(draw(st.integers(0, 3)))
        ]  # fmt: skip
        said = draw(st.lists(text_block, max_size=2, min_size=0 if calls else 1))
        messages.append({"role": "assistant", "content": said + calls})
        results: list[dict[str, Any]] = []
        for call in calls:
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call["id"]}
            result["content"] = draw(texts | st.lists(text_block, min_size=1, max_size=3))
            if draw(st.booleans()):
                result["is_error"] = True
            results.append(result)
        follow = draw(st.lists(text_block, max_size=2, min_size=0 if results else 1))
        messages.append({"role": "user", "content": results + follow})
    body: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": draw(st.integers(1, 64000)),
        "messages": messages,
    }
    if draw(st.booleans()):
        body["system"] = draw(texts | st.lists(text_block, min_size=1, max_size=3))
    if draw(st.booleans()):
        body["tools"] = [
            {"name": n, "description": "does things", "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}}
            for n in ["Bash", "Read", "Edit", "mcp__files__write-file"]
        ]  # fmt: skip
        choice = draw(
            st.sampled_from(
                [{"type": "auto"}, {"type": "any"}, {"type": "none"}, {"type": "tool", "name": "Read"}]
            )
        )
        if choice["type"] != "none" and draw(st.booleans()):
            choice = {**choice, "disable_parallel_tool_use": True}
        body["tool_choice"] = choice
    if draw(st.booleans()):
        body["stop_sequences"] = draw(st.lists(texts, min_size=1, max_size=3))
    if draw(st.booleans()):
        body["temperature"] = draw(st.floats(0, 1))
    body["stream"] = draw(st.booleans())
    return body


@st.composite
def openai_requests(draw: st.DrawFn) -> dict[str, Any]:
    counter = iter(range(1000))
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(texts)})
    messages.append({"role": "user", "content": draw(texts)})
    for _ in range(draw(st.integers(0, 3))):
        calls = [
            {"id": f"call_{draw(st.text(ALNUM, min_size=1, max_size=10))}{next(counter)}", "type": "function",
             "function": {"name": draw(names), "arguments": orjson.dumps(draw(inputs)).decode()}}
            for _ in range(draw(st.integers(0, 3)))
        ]  # fmt: skip
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": draw(texts) if not calls or draw(st.booleans()) else None,
        }
        if calls:
            assistant["tool_calls"] = calls
        messages.append(assistant)
        for call in calls:
            output = draw(texts)
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call["id"],
                    "content": TOOL_ERROR_PREFIX + output if draw(st.booleans()) else output,
                }
            )
        if not calls or draw(st.booleans()):
            messages.append({"role": "user", "content": draw(texts)})
    return {"model": "gpt-x", "max_tokens": draw(st.integers(1, 64000)), "messages": messages}


@st.composite
def anthropic_messages(draw: st.DrawFn) -> dict[str, Any]:
    counter = iter(range(1000))
    content: list[dict[str, Any]] = []
    if draw(st.booleans()):
        content.append(
            {
                "type": "thinking",
                "thinking": draw(texts),
                "signature": "EqQB" + draw(st.text(ALNUM, max_size=8)),
            }
        )
    content += [{"type": "text", "text": t} for t in draw(st.lists(texts, max_size=2))]
    tools = [
        {"type": "tool_use", "id": f"toolu_{draw(st.text(ALNUM, min_size=1, max_size=10))}{next(counter)}", "name": draw(names), "input": draw(inputs)}
        for _ in range(draw(st.integers(0, 3)))
    ]  # fmt: skip
    content += tools
    reason = "tool_use" if tools else draw(st.sampled_from(["end_turn", "max_tokens"]))
    return {
        "id": f"msg_{draw(st.text(ALNUM, min_size=4, max_size=12))}",
        "type": "message",
        "role": "assistant",
        "model": CLAUDE,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": None,
        "usage": draw(usages),
    }


# ------------------------------------------------------------------------------------------ meaning


def anthropic_meaning(body: dict[str, Any]) -> dict[str, Any]:
    """What must survive: per turn (same-role turns merged) the texts, tool calls and tool results."""
    turns: list[dict[str, Any]] = []
    for message in body["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not turns or turns[-1]["role"] != message["role"]:
            turns.append({"role": message["role"], "texts": [], "tools": [], "results": []})
        turn = turns[-1]
        for b in blocks:
            if b["type"] == "text":
                turn["texts"].append(b["text"])
            elif b["type"] == "tool_use":
                turn["tools"].append((b["id"], b["name"], b["input"]))
            elif b["type"] == "tool_result":
                c = b.get("content", "")
                text = c if isinstance(c, str) else "\n".join(x["text"] for x in c)
                turn["results"].append((b["tool_use_id"], text, bool(b.get("is_error"))))
    for turn in turns:  # user texts travel joined by a blank line, assistant texts as one answer
        turn["texts"] = ("\n\n" if turn["role"] == "user" else "").join(turn["texts"])
    system = body.get("system")
    if isinstance(system, list):
        system = "\n\n".join(b["text"] for b in system)
    return {"system": system or None, "turns": turns}


def openai_meaning(body: dict[str, Any]) -> dict[str, Any]:
    out: list[tuple[Any, ...]] = []
    for m in body["messages"]:
        if m["role"] == "assistant":
            calls = [
                (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
                for c in m.get("tool_calls") or ()
            ]
            out.append(("assistant", m.get("content") or None, calls))
        elif m["role"] == "tool":
            out.append(("tool", m["tool_call_id"], m["content"]))
        else:
            out.append((m["role"], m["content"]))
    return {"messages": out, "max_tokens": body.get("max_tokens")}


# ------------------------------------------------------------------------------------------ round trips


@SETTINGS
@given(anthropic_requests())
def test_anthropic_request_round_trip_keeps_meaning(body: dict[str, Any]) -> None:
    before = copy.deepcopy(body)
    there = api.anthropic_to_openai_request(body, model="gpt-x", profile=PLAIN)
    back = api.openai_to_anthropic_request(there, model=CLAUDE, profile=ANTHROPIC)
    assert body == before, "the caller's body must not change"
    assert anthropic_meaning(back) == anthropic_meaning(body)
    assert back["max_tokens"] == body["max_tokens"]
    assert back.get("stop_sequences") == body.get("stop_sequences")
    assert back.get("temperature") == body.get("temperature")
    assert back.get("tool_choice") == body.get("tool_choice")
    wanted_tools = [{k: t[k] for k in ("name", "description", "input_schema")} for t in body.get("tools", ())]
    assert back.get("tools") == (wanted_tools or None)


@SETTINGS
@given(openai_requests())
def test_openai_request_round_trip_keeps_meaning(body: dict[str, Any]) -> None:
    before = copy.deepcopy(body)
    there = api.openai_to_anthropic_request(body, model=CLAUDE, profile=ANTHROPIC)
    back = api.anthropic_to_openai_request(there, model="gpt-x", profile=PLAIN)
    assert body == before
    assert openai_meaning(back) == openai_meaning(body)


def _usage_counts(usage: dict[str, Any]) -> tuple[int, ...]:
    return tuple(
        usage.get(k, 0)
        for k in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )


@SETTINGS
@given(anthropic_messages())
def test_anthropic_response_round_trip_keeps_meaning(message: dict[str, Any]) -> None:
    there = api.anthropic_to_openai_response(message, model="gpt-x", created=0)
    usage = there["usage"]
    assert usage["prompt_tokens"] == sum(_usage_counts(message["usage"])) - message["usage"]["output_tokens"]
    back = api.openai_to_anthropic_response(there, model=CLAUDE)

    def meaning(m: dict[str, Any]) -> tuple[Any, ...]:
        blocks = m["content"]
        return (
            "".join(b["thinking"] for b in blocks if b["type"] == "thinking"),
            "".join(b["text"] for b in blocks if b["type"] == "text"),
            [(b["id"], b["name"], b["input"]) for b in blocks if b["type"] == "tool_use"],
            m["stop_reason"],
            _usage_counts(m["usage"]),
        )

    assert meaning(back) == meaning(message)


@SETTINGS
@given(anthropic_messages())
def test_openai_response_round_trip_keeps_meaning(message: dict[str, Any]) -> None:
    completion = api.anthropic_to_openai_response(message, model="gpt-x", created=0)
    back = api.anthropic_to_openai_response(
        api.openai_to_anthropic_response(completion, model=CLAUDE), model="gpt-x", created=0
    )
    for side in (completion, back):  # thinking we issue cannot carry Anthropic's signature: compare the rest
        side["choices"][0]["message"].pop("reasoning_details", None)
    assert back == completion


# ------------------------------------------------------------------------------------------ streams


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False) if text[a:b]]


def openai_chunks(completion: dict[str, Any], cuts: list[int], with_usage: bool) -> list[dict[str, Any]]:
    """A whole completion re-told as a stream, every string split at `cuts`."""
    message = completion["choices"][0]["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": completion["id"], "object": "chat.completion.chunk", "created": 0, "model": "up",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"reasoning_content": p}) for p in _split(message.get("reasoning_content") or "", cuts)]
    chunks += [chunk({"content": p}) for p in _split(message.get("content") or "", cuts)]
    for k, call in enumerate(message.get("tool_calls") or ()):
        start = {
            "index": k,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [start]}))
        for piece in _split(call["function"]["arguments"], cuts):
            chunks.append(chunk({"tool_calls": [{"index": k, "function": {"arguments": piece}}]}))
    chunks.append(chunk({}, completion["choices"][0]["finish_reason"]))
    if with_usage:
        chunks.append(
            {
                "id": completion["id"],
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "up",
                "choices": [],
                "usage": completion["usage"],
            }
        )
    return chunks


def anthropic_events(message: dict[str, Any], cuts: list[int]) -> list[dict[str, Any]]:
    """A whole Anthropic message re-told as its event stream, every string split at `cuts`."""
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for i, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            events.append(
                {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}
            )
            events += [
                {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": p}}
                for p in _split(block["text"], cuts)
            ]
        elif kind == "thinking":
            events.append(
                {
                    "type": "content_block_start",
                    "index": i,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                }
            )
            events += [
                {
                    "type": "content_block_delta",
                    "index": i,
                    "delta": {"type": "thinking_delta", "thinking": p},
                }
                for p in _split(block["thinking"], cuts)
            ]
            events.append(
                {
                    "type": "content_block_delta",
                    "index": i,
                    "delta": {"type": "signature_delta", "signature": block["signature"]},
                }
            )
        else:
            events.append(
                {"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}}
            )
            arguments = orjson.dumps(block["input"]).decode()
            events += [
                {
                    "type": "content_block_delta",
                    "index": i,
                    "delta": {"type": "input_json_delta", "partial_json": p},
                }
                for p in _split(arguments, cuts)
            ]
        events.append({"type": "content_block_stop", "index": i})
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": usage,
        }
    )
    events.append({"type": "message_stop"})
    return events


cut_lists = st.lists(st.integers(0, 200), max_size=6)


@SETTINGS
@given(anthropic_messages(), cut_lists, st.booleans())
def test_openai_stream_to_anthropic_equals_whole_translation(
    message: dict[str, Any], cuts: list[int], usage: bool
) -> None:
    completion = api.anthropic_to_openai_response(message, model="up", created=0)
    completion["choices"][0]["message"].pop("reasoning_details", None)  # plain providers send no details
    whole = api.openai_to_anthropic_response(completion, model=CLAUDE)
    translator = api.OpenAIToAnthropicStream(model=CLAUDE)
    events: list[dict[str, Any]] = []
    for chunk in openai_chunks(completion, cuts, usage):
        events += translator.feed(chunk)
    events += translator.finish()
    final = anthropic_replay(events).model_dump(exclude_none=True)
    if not usage:
        whole["usage"] = {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
    assert final == {k: v for k, v in whole.items() if v is not None}


@SETTINGS
@given(anthropic_messages(), cut_lists, st.booleans())
def test_anthropic_stream_to_openai_equals_whole_translation(
    message: dict[str, Any], cuts: list[int], usage: bool
) -> None:
    whole = api.anthropic_to_openai_response(message, model="gpt-x", created=0)
    translator = api.AnthropicToOpenAIStream(model="gpt-x", include_usage=usage, created=0)
    chunks: list[dict[str, Any]] = []
    for event in anthropic_events(message, cuts):
        chunks += translator.feed(event)
    chunks += translator.finish()
    final = openai_replay(chunks)
    choice = final.choices[0]
    expected = whole["choices"][0]
    assert choice.finish_reason == expected["finish_reason"]
    got_message = choice.message.model_dump(exclude_none=True, exclude={"parsed"})
    for call in got_message.get("tool_calls", ()):  # accumulator bookkeeping, not message content
        call["function"].pop("parsed_arguments", None)
        call.pop("index")
    if got_message.get("content") == "":  # the role chunk opens with "", a whole answer says null
        del got_message["content"]
    assert got_message == {k: v for k, v in expected["message"].items() if v is not None}
    assert (final.usage.model_dump(exclude_none=True) if usage else None) == (
        whole["usage"] if usage else None
    )


# ------------------------------------------------------------------------------------------ no copies


def test_big_sub_objects_are_shared_not_copied() -> None:
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(50)}}
    tool_input = {"content": "x" * 10_000}
    body = {
        "max_tokens": 100,
        "tools": [{"name": "Write", "input_schema": schema}],
        "messages": [
            {"role": "user", "content": "write it"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "Write", "input": tool_input}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
        ],
    }
    out = api.anthropic_to_openai_request(body, model="m", profile=PLAIN)
    assert out["tools"][0]["function"]["parameters"] is schema
    back = api.openai_to_anthropic_request(out, model=CLAUDE, profile=ANTHROPIC)
    assert back["tools"][0]["input_schema"] is schema

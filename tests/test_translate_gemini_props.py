"""Properties of the Gemini translators, on generated conversations, answers and streams.

- Round trips keep the meaning: an answer a client appends to its history (the candidate's content)
  translates back to the very assistant message the provider sent; a Gemini request reaches a chat target
  and, through the Anthropic translators, a Messages target with the same texts, tool calls, ids and
  results (error flags included); usage counts survive.
- Every tool message answers a call of the assistant message before it (chat providers refuse anything
  else), whatever ids the client sent: its own, Gemini CLI's `NAME__` form, made-up ones, or none.
- A stream split anywhere, from either upstream format, reaches a client (checked with the google-genai
  SDK's models) as exactly the answer the whole-response translator produces.
- Translators never change the caller's body (the pipeline retries the same body on a fallback target).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_translate_anthropic_props import anthropic_events, anthropic_messages, cut_lists, openai_chunks
from test_translate_gemini import gemini_replay, gemini_response

from app.proxy.adapters import _GEMINI_PIVOT, Context, adapter_for
from app.proxy.profiles import Profile, profile_for
from app.proxy.translate import anthropic as anthropic_api
from app.proxy.translate import gemini as api
from app.proxy.translate.anthropic_response import TOOL_ERROR_PREFIX

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PLAIN = Profile()
ANTHROPIC = profile_for("anthropic", "anthropic")

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=24).filter(
    lambda s: s.strip() and not s.startswith(TOOL_ERROR_PREFIX)
)
names = st.sampled_from(["write_file", "read_file", "run_shell_command", "mcp.files/read-file"])
# the same tools as a chat provider knows them: the MCP name made valid for it
upstream_names = st.sampled_from(
    ["write_file", "read_file", "run_shell_command", "mcp_files_read-file_0a40ebda"]
)
scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=12)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(ALNUM, min_size=1, max_size=6), inner, max_size=3), max_leaves=8)  # fmt: skip
args = st.dictionaries(st.text(ALNUM, min_size=1, max_size=8), json_values, max_size=4)
DECLARED = [{"functionDeclarations": [{"name": n, "parametersJsonSchema": {"type": "object"}}
                                      for n in ["write_file", "read_file", "run_shell_command", "mcp.files/read-file"]]}]  # fmt: skip


# ------------------------------------------------------------------------------------------ generators


@st.composite
def gemini_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A Gemini CLI-like conversation: user turns, model turns with function calls (ids given, or not), and
    the function responses for them, with ids as the client echoes them (plain, `NAME__`-prefixed, made up
    for a call that had none, or absent)."""
    counter = iter(range(10_000))
    text_part = texts.map(lambda t: {"text": t})
    contents: list[dict[str, Any]] = [
        {"role": "user", "parts": draw(st.lists(text_part, min_size=1, max_size=3))}
    ]
    for _ in range(draw(st.integers(0, 3))):
        calls = []
        for _ in range(draw(st.integers(0, 3))):
            call = {"name": draw(names), "args": draw(args)}
            if draw(st.booleans()):
                call["id"] = f"call_{draw(st.text(ALNUM, min_size=1, max_size=8))}{next(counter)}"
            calls.append(call)
        said = draw(st.lists(text_part, max_size=2, min_size=0 if calls else 1))
        contents.append(
            {"role": "model", "parts": said + [{"functionCall": c, "thoughtSignature": "sig"} for c in calls]}
        )
        responses = []
        for call in calls:
            response: dict[str, Any] = {"name": call["name"]}
            echo = draw(st.sampled_from(["plain", "prefixed", "made_up", "none"]))
            if "id" in call and echo in ("plain", "prefixed"):
                response["id"] = call["id"] if echo == "plain" else f"{call['name']}__{call['id']}"
            elif "id" not in call and echo == "made_up":
                response["id"] = f"{call['name']}_{next(counter)}_0"
            elif "id" in call:
                response["id"] = call["id"]
            failed = draw(st.booleans())
            response["response"] = {"error": draw(texts)} if failed else {"output": draw(texts)}
            responses.append({"functionResponse": response})
        follow = draw(st.lists(text_part, max_size=2, min_size=0 if responses else 1))
        contents.append({"role": "user", "parts": responses + follow})
    body: dict[str, Any] = {"model": "default", "contents": contents, "stream": draw(st.booleans())}
    if draw(st.booleans()):
        body["systemInstruction"] = {"parts": draw(st.lists(text_part, min_size=1, max_size=2))}
    if draw(st.booleans()):
        body["tools"] = DECLARED
    config: dict[str, Any] = {}
    if draw(st.booleans()):
        config["maxOutputTokens"] = draw(st.integers(1, 64000))
    if draw(st.booleans()):
        config["stopSequences"] = draw(st.lists(texts, min_size=1, max_size=3))
    if draw(st.booleans()):
        config["temperature"] = draw(st.floats(0, 1))
    if config:
        body["generationConfig"] = config
    return body


@st.composite
def chat_completions(draw: st.DrawFn) -> dict[str, Any]:
    counter = iter(range(1000))
    calls = [
        {"id": f"call_{draw(st.text(ALNUM, min_size=1, max_size=10))}{next(counter)}", "type": "function",
         "function": {"name": draw(upstream_names), "arguments": orjson.dumps(draw(args)).decode()}}
        for _ in range(draw(st.integers(0, 3)))
    ]  # fmt: skip
    message: dict[str, Any] = {
        "role": "assistant",
        "content": draw(texts) if not calls or draw(st.booleans()) else None,
    }
    if calls:
        message["tool_calls"] = calls
    if draw(st.booleans()):
        message["reasoning_content"] = draw(texts)
    prompt = draw(st.integers(0, 200_000))
    completion = draw(st.integers(0, 64_000))
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": draw(st.integers(0, prompt))},
        "completion_tokens_details": {"reasoning_tokens": draw(st.integers(0, completion))},
    }
    finish = "tool_calls" if calls else draw(st.sampled_from(["stop", "length", "content_filter"]))
    return {"id": f"chatcmpl-{next(counter)}", "object": "chat.completion", "created": 0, "model": "up",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}  # fmt: skip


# ------------------------------------------------------------------------------------------ meaning


def chat_meaning(chat: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Per message: role, text, tool calls (id, name, args) or the result (id, text, failed)."""
    out: list[tuple[Any, ...]] = []
    for m in chat["messages"]:
        if m["role"] == "assistant":
            calls = [
                (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
                for c in m.get("tool_calls") or ()
            ]
            out.append(("assistant", m.get("content") or None, calls))
        elif m["role"] == "tool":
            text = m["content"]
            failed = text.startswith(TOOL_ERROR_PREFIX)
            out.append(("tool", m["tool_call_id"], text.removeprefix(TOOL_ERROR_PREFIX), failed))
        else:
            out.append((m["role"], m["content"]))
    return out


def _merged(meaning: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Chat meaning as it survives a Messages round trip: consecutive user texts and tool results form one
    user turn there, so they are compared as one turn's worth."""
    out: list[tuple[Any, ...]] = []
    for item in meaning:
        if item[0] == "user" and out and out[-1][0] == "user":
            out[-1] = ("user", f"{out[-1][1]}\n\n{item[1]}")
        else:
            out.append(item)
    return out


# ------------------------------------------------------------------------------------------ requests


@SETTINGS
@given(gemini_requests())
def test_every_tool_message_answers_a_call_of_the_assistant_before_it(body: dict[str, Any]) -> None:
    before = copy.deepcopy(body)
    chat, _ = api.gemini_to_chat_request(body, model="m", profile=PLAIN)
    assert body == before, "the caller's body must not change"
    open_ids: set[str] = set()
    for message in chat["messages"]:
        if message["role"] == "assistant":
            ids = [c["id"] for c in message.get("tool_calls") or ()]
            assert len(set(ids)) == len(ids), "two calls of one turn share an id"
            open_ids = set(ids)
        elif message["role"] == "tool":
            assert message["tool_call_id"] in open_ids, (message, open_ids)
            open_ids.discard(message["tool_call_id"])
        else:
            open_ids = set()
    # each function response keeps its text and its failure flag, in order
    results = [(p["functionResponse"]["response"].get("output") or p["functionResponse"]["response"].get("error"),
                "error" in p["functionResponse"]["response"])
               for c in body["contents"] for p in c["parts"] if "functionResponse" in p]  # fmt: skip
    assert [(m[2], m[3]) for m in chat_meaning(chat) if m[0] == "tool"] == results


@SETTINGS
@given(gemini_requests())
def test_anthropic_route_keeps_the_meaning_of_the_chat_route(body: dict[str, Any]) -> None:
    """Gemini -> chat for a chat target, and Gemini -> chat -> Messages -> chat: the same conversation."""
    direct, _ = api.gemini_to_chat_request(body, model="m", profile=PLAIN)
    pivot, _ = api.gemini_to_chat_request(body, model="m", profile=_GEMINI_PIVOT)
    messages = anthropic_api.openai_to_anthropic_request(pivot, model="claude-x", profile=ANTHROPIC)
    back = anthropic_api.anthropic_to_openai_request(messages, model="m", profile=PLAIN)
    assert _merged(chat_meaning(back)) == _merged(chat_meaning(direct))
    config = body.get("generationConfig") or {}
    assert messages.get("stop_sequences") == config.get("stopSequences")
    if "maxOutputTokens" in config:
        assert messages["max_tokens"] == config["maxOutputTokens"]


# ------------------------------------------------------------------------------------------ answers


@SETTINGS
@given(chat_completions(), st.booleans())
def test_an_answer_comes_back_in_history_as_the_same_assistant_message(
    completion: dict[str, Any], thoughts: bool
) -> None:
    """The candidate's content, appended to the client's history, is the provider's assistant message again."""
    tools_body = {"model": "default", "contents": [{"parts": [{"text": "go"}]}], "tools": DECLARED}
    _, ctx = api.gemini_to_chat_request(tools_body, model="m", profile=PLAIN)
    ctx.thoughts = thoughts
    answer = api.chat_to_gemini_response(completion, ctx)
    gemini_response(answer)  # the SDK's own model accepts it
    history = {**tools_body, "contents": [*tools_body["contents"], answer["candidates"][0]["content"]]}
    message = completion["choices"][0]["message"]
    if not message.get("content") and not message.get("tool_calls"):
        return  # an empty answer leaves nothing in history
    again, _ = api.gemini_to_chat_request(history, model="m", profile=profile_for("deepseek", "openai"))
    replayed = again["messages"][-1]
    assert replayed["content"] == message["content"]
    assert replayed.get("tool_calls") == message.get("tool_calls")
    if thoughts and message.get("reasoning_content"):
        assert replayed["reasoning_content"] == message["reasoning_content"]  # DeepSeek wants it back

    usage, counts = answer["usageMetadata"], completion["usage"]
    assert usage["promptTokenCount"] == counts["prompt_tokens"]
    assert usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0) == counts["completion_tokens"]
    assert usage.get("thoughtsTokenCount", 0) == counts["completion_tokens_details"]["reasoning_tokens"]
    assert usage.get("cachedContentTokenCount", 0) == counts["prompt_tokens_details"]["cached_tokens"]
    assert usage["totalTokenCount"] == counts["total_tokens"]
    finish = completion["choices"][0]["finish_reason"]
    assert answer["candidates"][0]["finishReason"] == {
        "length": "MAX_TOKENS",
        "content_filter": "SAFETY",
    }.get(finish, "STOP")


def _replayed(chunks: list[dict[str, Any]]) -> tuple[Any, ...]:
    thoughts, text, calls, finish, usage = gemini_replay(chunks)
    return thoughts, text, [c.model_dump(exclude_none=True) for c in calls], finish, usage


def _whole(answer: dict[str, Any]) -> tuple[Any, ...]:
    return _replayed([answer])


@SETTINGS
@given(chat_completions(), cut_lists, st.booleans())
def test_chat_stream_split_anywhere_equals_the_whole_answer(
    completion: dict[str, Any], cuts: list[int], thoughts: bool
) -> None:
    ctx = api.GeminiContext("default", thoughts=thoughts)
    whole = api.chat_to_gemini_response(completion, ctx)
    translator = api.ChatToGeminiStream(ctx)
    chunks: list[dict[str, Any]] = []
    for chunk in openai_chunks(completion, cuts, with_usage=True):
        chunks += translator.feed(chunk)
    chunks += translator.finish()
    assert _replayed(chunks) == _whole(whole)


@SETTINGS
@given(anthropic_messages(), cut_lists)
def test_anthropic_stream_split_anywhere_equals_the_whole_answer(
    message: dict[str, Any], cuts: list[int]
) -> None:
    """Through the adapter the proxy uses: Anthropic events -> chat chunks -> Gemini chunks, against the
    whole-answer path (Anthropic message -> chat completion -> Gemini response)."""
    adapter = adapter_for("gemini", "anthropic")
    assert adapter is not None and adapter.stream is not None and adapter.respond is not None
    ctx = Context(
        requested_model="default", extra=api.GeminiContext("default", thoughts=True, anthropic_ids=True)
    )
    whole = adapter.respond(message, ctx)
    translator = adapter.stream(ctx)
    chunks: list[dict[str, Any]] = []
    for event in anthropic_events(message, cuts):
        chunks += translator.feed(event)
    chunks += translator.finish()
    assert _replayed(chunks) == _whole(whole)
    for part in whole["candidates"][0]["content"]["parts"]:  # the client sees Anthropic's own tool ids
        if "functionCall" in part:
            assert part["functionCall"]["id"].startswith("toolu_")
    assert {b["id"] for b in message["content"] if b["type"] == "tool_use"} == {
        p["functionCall"]["id"] for p in whole["candidates"][0]["content"]["parts"] if "functionCall" in p}  # fmt: skip


def test_big_sub_objects_are_shared_not_copied() -> None:
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(50)}}
    body = {"model": "default", "contents": [{"parts": [{"text": "x"}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": schema}]}]}  # fmt: skip
    chat, _ = api.gemini_to_chat_request(body, model="m", profile=PLAIN)
    assert chat["tools"][0]["function"]["parameters"] is schema

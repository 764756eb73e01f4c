"""Anthropic Messages <-> OpenAI chat completions: golden files for every mapping, plus the rules that matter
most spelled out as plain assertions.

Golden files live in tests/golden/anthropic/ (`call`, `kwargs`, `input`, `expected`, or `raises`); run with
DOWNSHIFT_UPDATE_GOLDEN=1 to rewrite `expected` after a deliberate change, then review the diff. Every
golden output is also checked against the official SDKs' own models (and stream accumulators).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from app.proxy.profiles import KINDS, Profile, nearest_effort, profile_for
from app.proxy.translate import anthropic as api
from app.proxy.translate.anthropic_response import SIGNATURE_PREFIX, issue_signature, read_signature

GOLDEN = Path(__file__).parent / "golden" / "anthropic"
UPDATE = os.environ.get("DOWNSHIFT_UPDATE_GOLDEN") == "1"
DEEPSEEK = profile_for("deepseek", "openai")
OPENAI = profile_for("openai", "openai")
OPENROUTER = profile_for("openrouter", "openai")
ANTHROPIC = profile_for("anthropic", "anthropic")


# ------------------------------------------------------------------------------------------ referees


def anthropic_replay(events: list[dict[str, Any]]) -> Message:
    """Check the event order rules, then accumulate with the anthropic SDK; returns the final message."""
    assert events[0]["type"] == "message_start"
    assert events[-1]["type"] == "message_stop"
    assert [e["type"] for e in events].count("message_delta") == 1
    open_index: int | None = None
    next_index = 0
    for event in events[1:-1]:
        kind = event["type"]
        if kind == "content_block_start":
            assert open_index is None, "a block opened while another is open"
            assert event["index"] == next_index, "block indexes must increase by one"
            open_index, next_index = event["index"], next_index + 1
        elif kind == "content_block_delta":
            assert event["index"] == open_index
        elif kind == "content_block_stop":
            assert event["index"] == open_index
            open_index = None
        else:
            assert kind == "message_delta" and open_index is None, f"{kind} inside a block"
    snapshot = None
    buffers: dict[int, bytes] = {}
    for event in events:
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[arg-type]
    assert snapshot is not None
    return Message.model_validate(snapshot.model_dump())


def openai_replay(chunks: list[dict[str, Any]]) -> ChatCompletion:
    """Validate every chunk with the openai SDK and accumulate them into the final completion."""
    state = ChatCompletionStreamState()
    usage = None
    for data in chunks:
        chunk = ChatCompletionChunk.model_validate(data)
        if data["choices"]:
            state.handle_chunk(chunk)
        else:
            usage = data["usage"]  # the usage-only chunk must be the last one
            assert data is chunks[-1]
    snapshot = state.current_completion_snapshot.model_dump(exclude_none=True)
    return ChatCompletion.model_validate({**snapshot, "object": "chat.completion", "usage": usage})


# ------------------------------------------------------------------------------------------ golden files

CALLS = {
    "anthropic_to_openai_request": api.anthropic_to_openai_request,
    "openai_to_anthropic_request": api.openai_to_anthropic_request,
    "openai_to_anthropic_response": api.openai_to_anthropic_response,
    "anthropic_to_openai_response": api.anthropic_to_openai_response,
}
STREAMS = {
    "OpenAIToAnthropicStream": api.OpenAIToAnthropicStream,
    "AnthropicToOpenAIStream": api.AnthropicToOpenAIStream,
}
ERRORS = {
    "openai_error_to_anthropic": api.openai_error_to_anthropic,
    "anthropic_error_to_openai": api.anthropic_error_to_openai,
}


def run_case(case: dict[str, Any]) -> Any:
    call, kwargs = case["call"], dict(case.get("kwargs", {}))
    if "profile" in kwargs:
        kwargs["profile"] = profile_for(*kwargs["profile"])
    if call in CALLS:
        return CALLS[call](case["input"], **kwargs)
    if call in ERRORS:
        return ERRORS[call](case["status"], case["input"])
    translator = STREAMS[call](**kwargs)
    out: list[dict[str, Any]] = []
    for event in case["input"]:
        out += translator.feed(event)
    end = case.get("end", "finish")
    if end == "finish":
        out += translator.finish()
    elif end != "none":
        out += translator.error(end[1], end[2])
    assert translator.finish() == [] and translator.error("api_error", "late") == [], "output after the end"
    return out


def check_with_sdk(call: str, output: Any) -> None:
    if call in ("openai_to_anthropic_response",):
        Message.model_validate(output)
    elif call == "anthropic_to_openai_response":
        ChatCompletion.model_validate(output)
    elif call == "OpenAIToAnthropicStream" and output[-1]["type"] != "error":
        anthropic_replay(output)
    elif call == "AnthropicToOpenAIStream" and "error" not in output[-1]:
        openai_replay(output)


GOLDEN_FILES = sorted(GOLDEN.glob("*.json"))


def test_golden_files_exist() -> None:
    assert len(GOLDEN_FILES) >= 30


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    case = orjson.loads(path.read_bytes())
    if "raises" in case:
        with pytest.raises(api.TranslationError, match=case["raises"]):
            run_case(case)
        return
    got = orjson.loads(orjson.dumps(run_case(case)))  # tuples -> lists, as the file holds them
    if UPDATE:
        case["expected"] = got
        path.write_text(json.dumps(case, indent=1, ensure_ascii=False) + "\n")
    assert got == case["expected"]
    check_with_sdk(case["call"], got)


# ------------------------------------------------------------------------------------------ requests, by rule


def _tool_turn(result_content: Any, is_error: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": "toolu_1", "content": result_content}
    if is_error:
        block["is_error"] = True
    return {
        "model": "claude-x",
        "max_tokens": 64000,
        "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {}}}],
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}],
            },
            {"role": "user", "content": [block]},
        ],
    }


def test_tool_choice_any_becomes_required_and_back() -> None:
    body = {**_tool_turn("x"), "tool_choice": {"type": "any"}}
    out = api.anthropic_to_openai_request(body, model="m", profile=DEEPSEEK)
    assert out["tool_choice"] == "required"
    back = api.openai_to_anthropic_request(out, model="claude-opus-4-8", profile=ANTHROPIC)
    assert back["tool_choice"] == {"type": "any"}


def test_tool_result_block_list_reaches_openai_as_text_not_json() -> None:
    body = _tool_turn([{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}], is_error=True)
    tool = api.anthropic_to_openai_request(body, model="m", profile=DEEPSEEK)["messages"][-1]
    assert tool == {"role": "tool", "tool_call_id": "call_1", "content": "[tool error] line 1\nline 2"}


def test_max_tokens_clamped_by_the_tighter_cap() -> None:
    body = _tool_turn("x")
    assert api.anthropic_to_openai_request(body, model="m", profile=DEEPSEEK)["max_tokens"] == 64000
    assert (
        api.anthropic_to_openai_request(body, model="m", profile=DEEPSEEK, max_tokens_cap=8192)["max_tokens"]
        == 8192
    )
    capped = Profile(max_tokens_cap=4096)
    assert (
        api.anthropic_to_openai_request(body, model="m", profile=capped, max_tokens_cap=8192)["max_tokens"]
        == 4096
    )
    assert api.anthropic_to_openai_request(body, model="m", profile=OPENAI)["max_completion_tokens"] == 64000


def test_claude_code_only_fields_never_reach_an_openai_target() -> None:
    body = {
        **_tool_turn("x"),
        "context_management": {"edits": []},
        "output_config": {"effort": "high"},
        "thinking": {"type": "adaptive"},
        "metadata": {"user_id": "u"},
        "service_tier": "auto",
        "container": "c1",
        "mcp_servers": [],
        "some_future_field": 1,
    }
    for kind in KINDS:
        out = api.anthropic_to_openai_request(body, model="m", profile=profile_for(kind, "openai"))
        allowed = {
            "model",
            "messages",
            "max_tokens",
            "max_completion_tokens",
            "tools",
            "user",
            "reasoning_effort",
        }
        allowed |= {"thinking"} if kind == "deepseek" else set()
        assert set(out) <= allowed, kind


def test_deepseek_gets_reasoning_content_back_on_every_tool_turn() -> None:
    body = _tool_turn("x")
    body["messages"][1]["content"].insert(0, {"type": "thinking", "thinking": "plan", "signature": "s"})
    body["messages"] += [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_2", "name": "Bash", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "y"}]},
    ]
    out = api.anthropic_to_openai_request(body, model="m", profile=DEEPSEEK)
    assistants = [m for m in out["messages"] if m["role"] == "assistant"]
    assert [m["reasoning_content"] for m in assistants] == ["plan", ""]
    for kind in ("openai", "openrouter", "groq"):
        out = api.anthropic_to_openai_request(body, model="m", profile=profile_for(kind, "openai"))
        assert not any("reasoning_content" in m or "reasoning" in m for m in out["messages"]), kind


def test_thinking_maps_to_the_nearest_effort_the_target_takes() -> None:
    def effort(thinking: dict[str, Any], profile: Profile, **extra: Any) -> Any:
        body = {**_tool_turn("x"), "thinking": thinking, **extra}
        return api.anthropic_to_openai_request(body, model="m", profile=profile).get("reasoning_effort")

    assert effort({"type": "enabled", "budget_tokens": 1024}, OPENAI) == "low"
    assert effort({"type": "enabled", "budget_tokens": 8000}, OPENAI) == "medium"
    assert effort({"type": "enabled", "budget_tokens": 32000}, OPENAI) == "high"
    assert effort({"type": "adaptive"}, OPENAI, output_config={"effort": "max"}) == "high"
    assert effort({"type": "adaptive"}, OPENROUTER, output_config={"effort": "max"}) == "max"
    assert effort({"type": "adaptive"}, DEEPSEEK, output_config={"effort": "xhigh"}) == "max"
    assert effort({"type": "adaptive"}, OPENAI) is None  # the target's own default
    assert effort({"type": "disabled"}, OPENROUTER) == "none"
    assert effort({"type": "disabled"}, OPENAI) is None  # not "low": never think more than asked
    assert effort({"type": "disabled"}, DEEPSEEK) is None
    assert effort({"type": "enabled", "budget_tokens": 8000}, profile_for("groq", "openai")) is None


def test_unsupported_content_raises_naming_it() -> None:
    body = _tool_turn([{"type": "tool_reference", "tool_name": "x"}])
    with pytest.raises(
        api.TranslationError, match=r"messages\[2\]\.content\[0\]\.content\[0\].*'tool_reference'"
    ):
        api.anthropic_to_openai_request(body, model="m", profile=DEEPSEEK)
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": [pdf]}]}
    with pytest.raises(api.TranslationError, match="application/pdf document is not supported by deepseek"):
        api.anthropic_to_openai_request(body, model="m", profile=DEEPSEEK)
    assert (
        api.anthropic_to_openai_request(body, model="m", profile=OPENAI)["messages"][0]["content"][0]["type"]
        == "file"
    )
    audio = {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}
    with pytest.raises(api.TranslationError, match="'input_audio' is not supported"):
        api.openai_to_anthropic_request(audio, model="claude-opus-4-8", profile=ANTHROPIC)


def test_renamed_tools_come_back_under_the_clients_name() -> None:
    long_name = "mcp__server__" + "x" * 70
    tools = [{"name": long_name, "input_schema": {"type": "object"}}, {"name": "ok_name"}]
    renamed = api.tool_name_map(tools, OPENAI)
    assert list(renamed.values()) == [long_name]
    upstream = next(iter(renamed))
    assert len(upstream) <= 64 and upstream == api.tool_name_map(tools, OPENAI).popitem()[0]
    resp = {
        "id": "c",
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "tool_calls": [{"id": "call_1", "function": {"name": upstream, "arguments": "{}"}}]
                },
            }
        ],
    }
    out = api.openai_to_anthropic_response(resp, model="claude", tool_names=renamed)
    assert out["content"][0]["name"] == long_name


def test_drop_foreign_thinking_for_anthropic_itself() -> None:
    theirs = {"type": "thinking", "thinking": "real", "signature": "EqQB"}
    ours = {"type": "thinking", "thinking": "from deepseek", "signature": SIGNATURE_PREFIX}
    tool = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}
    clean = {"thinking": {"type": "adaptive"}, "messages": [{"role": "assistant", "content": [theirs, tool]}]}
    assert api.drop_foreign_thinking(clean) is clean
    mixed = {"thinking": {"type": "adaptive"}, "messages": [{"role": "assistant", "content": [ours, tool]}]}
    out = api.drop_foreign_thinking(mixed)
    assert out["messages"][0]["content"] == [tool]
    assert "thinking" not in out  # the last tool turn no longer starts with thinking: Anthropic would refuse
    assert mixed["messages"][0]["content"] == [ours, tool]  # the caller's body is untouched


def test_signature_round_trip_carries_upstream_reasoning_details() -> None:
    details = [{"type": "reasoning.encrypted", "data": "CiQB", "format": "google-gemini-v1", "index": 0}]
    assert read_signature(issue_signature(details)) == details
    assert read_signature(issue_signature()) == []
    assert read_signature("EqQBCkYIBxgC") is None
    assert read_signature(SIGNATURE_PREFIX + "%%%") == []
    # Gemini via OpenRouter: the thought signature must come back with the tool call on the next turn.
    resp = {
        "id": "gen-1",
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "reasoning": "think",
                    "reasoning_details": details,
                    "tool_calls": [{"id": "tool_0", "function": {"name": "Bash", "arguments": "{}"}}],
                },
            }
        ],
    }
    message = api.openai_to_anthropic_response(resp, model="claude")
    body = {
        **_tool_turn("x"),
        "messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": message["content"]}],
    }
    out = api.anthropic_to_openai_request(body, model="google/gemini-3-pro", profile=OPENROUTER)
    assert out["messages"][1]["reasoning_details"] == details
    assert (
        "reasoning_details"
        not in api.anthropic_to_openai_request(body, model="m", profile=DEEPSEEK)["messages"][1]
    )


def test_thinking_stays_off_when_the_last_tool_turn_lost_its_signed_thinking() -> None:
    turn = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "reasoning_content": "unsigned", "tool_calls": [{"id": "call_1", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    ]  # fmt: skip
    body = {"reasoning_effort": "high", "temperature": 0.5, "messages": turn}
    out = api.openai_to_anthropic_request(body, model="claude-opus-4-8", profile=ANTHROPIC)
    assert "thinking" not in out and out["temperature"] == 0.5
    signed = [
        {
            "type": "reasoning.text",
            "text": "t",
            "signature": "sig",
            "format": "anthropic-claude-v1",
            "index": 0,
        }
    ]
    body["messages"] = [turn[0], {**turn[1], "reasoning_details": signed}, turn[2]]
    out = api.openai_to_anthropic_request(body, model="claude-opus-4-8", profile=ANTHROPIC)
    assert out["thinking"] == {"type": "adaptive"} and "temperature" not in out
    assert out["messages"][1]["content"][0] == {"type": "thinking", "thinking": "t", "signature": "sig"}


# ------------------------------------------------------------------------------------------ streams, by rule


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_interleaved_tool_arguments_end_the_stream_with_an_error() -> None:
    stream = api.OpenAIToAnthropicStream(model="claude")
    call = {"index": 0, "id": "call_a", "function": {"name": "A", "arguments": "{"}}
    stream.feed(_chunk({"tool_calls": [call]}))
    stream.feed(
        _chunk({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "B", "arguments": "{}"}}]})
    )
    late = stream.feed(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}))
    assert late[-1]["type"] == "error" and "interleaved" in late[-1]["error"]["message"]
    assert stream.feed(_chunk({"content": "more"})) == [] and stream.finish() == []


def test_tool_arguments_whose_name_never_came_are_still_shown() -> None:
    stream = api.OpenAIToAnthropicStream(model="claude")
    first = stream.feed(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]}))
    assert [e["type"] for e in first] == ["message_start"]  # held until the name arrives
    message = anthropic_replay(first + stream.finish())
    assert message.content[0].type == "tool_use" and message.content[0].input == {"a": 1}


# ------------------------------------------------------------------------------------------ usage


def test_usage_cached_tokens_move_between_input_and_prompt() -> None:
    openai_usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 700, "cache_write_tokens": 200},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    resp = {
        "id": "c",
        "choices": [{"finish_reason": "stop", "message": {"content": "hi"}}],
        "usage": openai_usage,
    }
    usage = api.openai_to_anthropic_response(resp, model="claude")["usage"]
    assert usage == {
        "input_tokens": 100,
        "output_tokens": 50,
        "cache_read_input_tokens": 700,
        "cache_creation_input_tokens": 200,
        "output_tokens_details": {"thinking_tokens": 20},
    }
    back = api.anthropic_to_openai_response({"content": [], "usage": usage}, model="gpt", created=0)["usage"]
    assert back["prompt_tokens"] == 1000 and back["total_tokens"] == 1050
    assert back["prompt_tokens_details"]["cached_tokens"] == 700
    assert back["completion_tokens_details"] == {"reasoning_tokens": 20}


# ------------------------------------------------------------------------------------------ profiles and errors


def test_profiles_cover_every_kind_and_both_apis() -> None:
    for kind in KINDS:
        assert profile_for(kind, "openai").kind == kind
        assert profile_for(kind, "anthropic").api == "anthropic"
    assert profile_for("something-new", "openai") == profile_for("custom", "openai")
    assert profile_for("anthropic", "anthropic").thinking_form == "auto"
    assert profile_for("deepseek", "anthropic").thinking_form == "budget"
    with pytest.raises(ValueError, match="unknown wire API"):
        profile_for("openai", "responses")
    assert nearest_effort("medium", ("low", "high")) == "high"
    assert nearest_effort("minimal", ("low", "medium", "high")) == "low"
    assert nearest_effort("bogus", ("low",)) is None
    assert nearest_effort("low", ()) is None


def test_error_bodies_in_every_dialect() -> None:
    assert api.openai_error_to_anthropic(500, b"")["error"] == {
        "type": "api_error",
        "message": "upstream error (HTTP 500)",
    }
    assert (
        api.openai_error_to_anthropic(403, [{"error": {"message": "no"}}])["error"]["type"]
        == "permission_error"
    )
    overflow = api.openai_error_to_anthropic(400, {"message": "context length exceeded"})["error"]["message"]
    assert overflow.startswith("prompt is too long")
    assert api.anthropic_error_to_openai(
        429, b'{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}'
    ) == {
        "error": {"message": "slow", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"}
    }

"""Gemini API <-> chat completions: golden files for every mapping, plus the rules that matter most as plain
assertions.

Golden files live in tests/golden/gemini/ (`call`, `kwargs`, `input`, `expected`, or `raises`); run with
DOWNSHIFT_UPDATE_GOLDEN=1 to rewrite `expected` after a deliberate change, then review the diff. Every
golden Gemini output is also checked against the google-genai SDK's own models (which forbid unknown
fields), and every error against the SDK's APIError.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.genai import errors as genai_errors
from google.genai import types

from app.proxy.gemini_api import camel_case
from app.proxy.profiles import profile_for
from app.proxy.translate import gemini as api
from app.proxy.translate.errors import TranslationError

GOLDEN = Path(__file__).parent / "golden" / "gemini"
UPDATE = os.environ.get("DOWNSHIFT_UPDATE_GOLDEN") == "1"
PLAIN = profile_for("custom", "openai")


# ------------------------------------------------------------------------------------------ referees


def gemini_response(data: dict[str, Any]) -> types.GenerateContentResponse:
    """The SDK's own model of a GenerateContentResponse (extra fields are an error there)."""
    return types.GenerateContentResponse.model_validate(data)


def gemini_replay(chunks: list[dict[str, Any]]) -> tuple[str, str, list[types.FunctionCall], Any, Any]:
    """Validate every chunk with the SDK; (thoughts, text, function calls, finish reason, usage) as a client
    that joins the chunks sees them. Only the last chunk may carry a finishReason."""
    thoughts, text, calls, finish, usage = [], [], [], None, None
    for i, data in enumerate(chunks):
        chunk = gemini_response(data)
        candidate = chunk.candidates[0]
        if candidate.finish_reason is not None:
            assert i == len(chunks) - 1, "finishReason before the last chunk"
            finish = candidate.finish_reason
        for part in candidate.content.parts or ():
            if part.function_call is not None:
                calls.append(part.function_call)
            elif part.thought:
                thoughts.append(part.text)
            else:
                assert part.text, "an empty text part"
                text.append(part.text)
        usage = chunk.usage_metadata or usage
    return "".join(thoughts), "".join(text), calls, finish, usage


def google_error(body: dict[str, Any]) -> genai_errors.APIError:
    error = genai_errors.APIError(body["error"]["code"], body)
    assert error.status == body["error"]["status"] and error.message == body["error"]["message"]
    return error


# ------------------------------------------------------------------------------------------ golden files


def _context(kwargs: dict[str, Any]) -> api.GeminiContext:
    return api.GeminiContext(**kwargs["ctx"])


def run_case(case: dict[str, Any]) -> Any:
    call, kwargs = case["call"], dict(case.get("kwargs", {}))
    if call == "gemini_to_chat_request":
        kwargs["profile"] = profile_for(*kwargs["profile"])
        chat, ctx = api.gemini_to_chat_request(case["input"], **kwargs)
        return {"chat": chat, "names": ctx.names, "thoughts": ctx.thoughts}
    if call == "chat_to_gemini_response":
        return api.chat_to_gemini_response(case["input"], _context(kwargs))
    if call == "chat_error_to_gemini":
        return api.chat_error_to_gemini(case["status"], case["input"])
    assert call == "ChatToGeminiStream"
    translator = api.ChatToGeminiStream(_context(kwargs), rid=kwargs.get("rid"))
    out: list[dict[str, Any]] = []
    for event in case["input"]:
        out += translator.feed(event)
    end = case.get("end", "finish")
    if end == "finish":
        out += translator.finish()
    elif end != "none":
        out += translator.error(end[1], end[2])
    assert translator.finish() == [] and translator.error("server_error", "late") == [], (
        "output after the end"
    )
    return out


def check_with_sdk(call: str, output: Any) -> None:
    if call == "chat_to_gemini_response":
        gemini_response(output)
    elif call == "chat_error_to_gemini":
        google_error(output)
    elif call == "ChatToGeminiStream":
        if "error" in output[-1]:
            google_error(output[-1])
            output = output[:-1]
        if output:
            gemini_replay(output)


GOLDEN_FILES = sorted(GOLDEN.glob("*.json"))


def test_golden_files_cover_every_mapping() -> None:
    calls = {orjson.loads(p.read_bytes())["call"] for p in GOLDEN_FILES}
    assert calls == {
        "gemini_to_chat_request",
        "chat_to_gemini_response",
        "ChatToGeminiStream",
        "chat_error_to_gemini",
    }
    assert len(GOLDEN_FILES) >= 20


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    case = orjson.loads(path.read_bytes())
    before = copy.deepcopy(case["input"])
    if "raises" in case:
        with pytest.raises(TranslationError, match=case["raises"]):
            run_case(case)
        return
    got = orjson.loads(orjson.dumps(run_case(case)))
    assert case["input"] == before, "a translator changed the caller's body"
    if UPDATE:
        case["expected"] = got
        path.write_text(json.dumps(case, indent=1, ensure_ascii=False) + "\n")
    assert got == case["expected"]
    check_with_sdk(case["call"], got)


# ------------------------------------------------------------------------------------------ rules


def _turns(*contents: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "default", "contents": list(contents), **extra}


def test_stream_and_whole_answer_agree() -> None:
    """The same answer, whole or streamed, reaches a client as the same text, calls, finish and usage."""
    case = orjson.loads((GOLDEN / "stream_thoughts_text_parallel_tools.json").read_bytes())
    thoughts, text, calls, finish, usage = gemini_replay(case["expected"])
    whole = gemini_response(api.chat_to_gemini_response({
        "id": "x", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Two files.", "reasoning_content": "Plan it.", "tool_calls": [
                {"id": "call_a", "function": {"name": "write_file", "arguments": '{"file_path":"a","content":"1"}'}},
                {"id": "call_b", "function": {"name": "write_file", "arguments": '{"file_path":"b","content":"2"}'}}]}}],
        "usage": {"prompt_tokens": 300, "completion_tokens": 60, "total_tokens": 360,
                  "completion_tokens_details": {"reasoning_tokens": 5}}}, api.GeminiContext("default", thoughts=True)))  # fmt: skip
    parts = whole.candidates[0].content.parts
    assert (thoughts, text) == (parts[0].text, parts[1].text) == ("Plan it.", "Two files.")
    assert [c.model_dump() for c in calls] == [p.function_call.model_dump() for p in parts[2:]]
    assert finish == whole.candidates[0].finish_reason == types.FinishReason.STOP
    assert (
        usage == whole.usage_metadata
        and usage.thoughts_token_count == 5
        and usage.candidates_token_count == 55
    )


def test_proto_field_names_are_read_like_json_names() -> None:
    """Google accepts `system_instruction` as well as `systemInstruction`; the SDK sends some nested fields
    that way. Only the request's own fields are renamed: argument and schema keys stay as written."""
    snake = {
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}, {"inline_data": {"mime_type": "image/png", "data": "AAAA"}}]},
            {"role": "model", "parts": [{"function_call": {"id": "c1", "name": "f", "args": {"file_path": "x"}}}]},
            {"role": "user", "parts": [{"function_response": {"id": "c1", "name": "f", "response": {"output_text": "y"}}}]},
        ],
        "tools": [{"function_declarations": [{"name": "f", "parameters_json_schema": {
            "type": "object", "properties": {"file_path": {"type": "string"}}}}]}],
        "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["f"]}},
        "generation_config": {"max_output_tokens": 50, "top_p": 0.5, "stop_sequences": ["Z"],
                              "thinking_config": {"include_thoughts": True, "thinking_budget": 20000}},
    }  # fmt: skip
    camel = {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
            {"role": "model", "parts": [{"functionCall": {"id": "c1", "name": "f", "args": {"file_path": "x"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"id": "c1", "name": "f", "response": {"output_text": "y"}}}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {
            "type": "object", "properties": {"file_path": {"type": "string"}}}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        "generationConfig": {"maxOutputTokens": 50, "topP": 0.5, "stopSequences": ["Z"],
                             "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 20000}},
    }  # fmt: skip
    camel_case(snake)
    assert snake == camel
    chat, ctx = api.gemini_to_chat_request(
        {**snake, "model": "default"}, model="m", profile=profile_for("openrouter", "openai")
    )
    assert ctx.thoughts and chat["max_tokens"] == 50 and chat["reasoning_effort"] == "high"
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}


def test_function_calls_come_back_in_history_as_the_same_tool_calls() -> None:
    """What a client appends to its history (the candidate's content) translates back to the very tool calls
    the provider made: same ids, names and arguments."""
    calls = [{"id": "call_x1", "type": "function", "function": {"name": "mcp_files_read-file_0a40ebda", "arguments": '{"p":1}'}},
             {"id": "call_x2", "type": "function", "function": {"name": "run_shell_command", "arguments": '{"command":"ls"}'}}]  # fmt: skip
    tools = [{"functionDeclarations": [{"name": "mcp.files/read-file"}, {"name": "run_shell_command"}]}]
    chat, ctx = api.gemini_to_chat_request(
        _turns({"parts": [{"text": "go"}]}, tools=tools), model="m", profile=PLAIN
    )
    assert [t["function"]["name"] for t in chat["tools"]] == [
        "mcp_files_read-file_0a40ebda",
        "run_shell_command",
    ]
    answer = api.chat_to_gemini_response(
        {
            "choices": [
                {
                    "message": {"role": "assistant", "content": None, "tool_calls": calls},
                    "finish_reason": "tool_calls",
                }
            ]
        },
        ctx,
    )
    model_turn = answer["candidates"][0]["content"]
    assert [p["functionCall"]["name"] for p in model_turn["parts"]] == [
        "mcp.files/read-file",
        "run_shell_command",
    ]
    results = {"role": "user", "parts": [{"functionResponse": {"id": p["functionCall"]["id"], "name": p["functionCall"]["name"],
                                                               "response": {"output": "ok"}}} for p in model_turn["parts"]]}  # fmt: skip
    again, _ = api.gemini_to_chat_request(
        _turns({"parts": [{"text": "go"}]}, model_turn, results, tools=tools), model="m", profile=PLAIN
    )
    assert again["messages"][1]["tool_calls"] == calls
    assert [(m["tool_call_id"], m["content"]) for m in again["messages"][2:]] == [
        ("call_x1", "ok"),
        ("call_x2", "ok"),
    ]


def test_thinking_budget_maps_to_the_nearest_effort_the_target_takes() -> None:
    def effort(kind: str, thinking: dict[str, Any]) -> Any:
        body = _turns({"parts": [{"text": "x"}]}, generationConfig={"thinkingConfig": thinking})
        return api.gemini_to_chat_request(body, model="m", profile=profile_for(kind, "openai"))[0].get(
            "reasoning_effort"
        )

    assert effort("openrouter", {"thinkingBudget": 1024}) == "low"
    assert effort("openrouter", {"thinkingBudget": 8192}) == "medium"
    assert effort("openrouter", {"thinkingBudget": 24576}) == "high"
    assert effort("openrouter", {"thinkingBudget": 0}) == "none"
    assert effort("openrouter", {"thinkingBudget": -1}) is None  # the model's own choice: nothing sent
    assert effort("openrouter", {"thinkingLevel": "MINIMAL"}) == "minimal"
    assert effort("openai", {"thinkingLevel": "MINIMAL"}) == "low"  # OpenAI's safe subset
    assert effort("custom", {"thinkingLevel": "HIGH"}) is None  # a plain server may refuse the field
    assert effort("deepseek", {"thinkingBudget": 0}) is None


def test_translators_never_change_the_callers_body() -> None:
    body = orjson.loads((GOLDEN / "req_ids_missing_or_prefixed.json").read_bytes())["input"]
    before = copy.deepcopy(body)
    api.gemini_to_chat_request(body, model="m", profile=profile_for("mistral", "openai"))
    assert body == before


def test_bad_shapes_are_translation_errors_naming_where() -> None:
    cases = [
        (_turns({"parts": "text"}), r"contents\[0\]: 'parts' must be a list"),
        (_turns({"parts": [{"text": "x"}]}, {"role": "model", "parts": [{"functionCall": {"args": {}}}]}),
         r"contents\[1\]\.parts\[0\]\.functionCall: functionCall needs a name"),
        (_turns({"parts": [{"fileData": {"fileUri": "files/abc", "mimeType": "application/pdf"}}]}), "fileData"),
        (_turns({"parts": [{"inlineData": {"mimeType": "video/mp4", "data": "AAAA"}}]}), "video/mp4"),
        (_turns({"parts": [{"text": "x"}]}, tools=[{"functionDeclarations": [{"description": "no name"}]}]),
         r"tools\[0\]\.functionDeclarations\[0\]"),
        (_turns({"parts": [{"text": "x"}]}, systemInstruction={"parts": [{"inlineData": {"data": "A"}}]}), "systemInstruction"),
    ]  # fmt: skip
    for body, where in cases:
        with pytest.raises(TranslationError, match=where):
            api.gemini_to_chat_request(body, model="m", profile=PLAIN)


def test_an_empty_model_turn_is_not_sent() -> None:
    """A model turn with only empty text or thoughts (Gemini CLI keeps some) would be an empty assistant
    message, which several chat servers refuse."""
    body = _turns({"parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": ""}, {"text": "hmm", "thought": True}]},
                  {"parts": [{"text": "again"}]})  # fmt: skip
    chat, _ = api.gemini_to_chat_request(body, model="m", profile=PLAIN)
    assert [m["role"] for m in chat["messages"]] == ["user", "user"]

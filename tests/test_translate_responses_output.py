"""Whole chat completions -> Response objects, usage, and upstream errors in the OpenAI error shape."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.responses import Response

from app.proxy.translate.responses import (
    chat_error_to_responses,
    chat_to_responses_response,
    responses_to_chat_request,
)

REQUEST = {
    "model": "gpt-5.1-codex",
    "input": "hi",
    "instructions": "Be brief.",
    "max_output_tokens": 1000,
    "store": False,
    "reasoning": {"effort": "high"},
    "tools": [
        {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {}}},
        {"type": "custom", "name": "apply_patch", "format": {"type": "text"}},
        {
            "type": "namespace",
            "name": "crm",
            "description": "CRM",
            "tools": [{"type": "function", "name": "lookup"}],
        },
        {"type": "web_search"},
    ],
}


def ctx() -> Any:
    return responses_to_chat_request(REQUEST, model="upstream")[1]


def completion(
    message: dict[str, Any], finish: str = "stop", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "upstream",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def test_full_turn_maps_every_item_kind() -> None:
    message = {
        "content": "Patching now.",
        "reasoning_content": "The bug is in parse().",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "apply_patch", "arguments": '{"input":"*** Begin Patch\\n"}'},
            },
            {"id": "call_3", "type": "function", "function": {"name": "crm__lookup", "arguments": "{}"}},
        ],
    }
    usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
             "prompt_tokens_details": {"cached_tokens": 64}, "completion_tokens_details": {"reasoning_tokens": 7}}  # fmt: skip
    out = chat_to_responses_response(completion(message, "tool_calls", usage), ctx(), response_id="resp_x")
    Response.model_validate(out)
    assert (out["id"], out["object"], out["created_at"], out["status"], out["model"]) == (
        "resp_x", "response", 1700000000, "completed", "gpt-5.1-codex")  # fmt: skip
    assert (
        out["instructions"] == "Be brief."
        and out["max_output_tokens"] == 1000
        and out["tools"] == REQUEST["tools"]
    )
    reasoning, text, call, patch, lookup = out["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["summary"] == [{"type": "summary_text", "text": "The bug is in parse()."}]
    assert text["type"] == "message" and text["status"] == "completed" and text["role"] == "assistant"
    assert text["content"] == [
        {"type": "output_text", "text": "Patching now.", "annotations": [], "logprobs": []}
    ]
    assert call["id"].startswith("fc_")
    assert {k: call[k] for k in ("type", "call_id", "name", "arguments", "status")} == {
        "type": "function_call", "call_id": "call_1", "name": "exec_command", "arguments": '{"cmd":"ls"}',
        "status": "completed"}  # fmt: skip
    assert patch["id"].startswith("ctc_")
    assert {k: patch[k] for k in ("type", "call_id", "name", "input")} == {
        "type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch\n"}  # fmt: skip
    assert (lookup["name"], lookup["namespace"]) == ("lookup", "crm")
    assert out["usage"] == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 0},
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 7},
        "total_tokens": 120,
    }


@pytest.mark.parametrize(
    ("finish", "status", "details"),
    [("stop", "completed", None), ("tool_calls", "completed", None), (None, "completed", None),
     ("length", "incomplete", {"reason": "max_output_tokens"}),
     ("content_filter", "incomplete", {"reason": "content_filter"})],
)  # fmt: skip
def test_finish_reasons(finish: str | None, status: str, details: dict[str, str] | None) -> None:
    out = chat_to_responses_response(completion({"content": "x"}, finish), ctx())
    Response.model_validate(out)
    assert out["status"] == status and out["incomplete_details"] == details
    assert out["output"][0]["status"] == ("completed" if status == "completed" else "incomplete")


def test_usage_variants() -> None:
    deepseek = {
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "prompt_cache_hit_tokens": 8,
        "prompt_cache_miss_tokens": 2,
    }
    usage = chat_to_responses_response(completion({"content": "x"}, usage=deepseek), ctx())["usage"]
    assert usage["input_tokens_details"]["cached_tokens"] == 8 and usage["total_tokens"] == 12
    assert chat_to_responses_response(completion({"content": "x"}), ctx())["usage"] is None


def test_refusal_list_content_and_reasoning_field_variants() -> None:
    out = chat_to_responses_response(completion({"content": None, "refusal": "No."}), ctx())
    assert out["output"][0]["content"][0]["text"] == "No."
    out = chat_to_responses_response(
        completion(
            {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "reasoning": "r"}
        ),
        ctx(),
    )
    assert [i["type"] for i in out["output"]] == ["reasoning", "message"]
    assert out["output"][1]["content"][0]["text"] == "ab"


def test_empty_answer_and_odd_shapes() -> None:
    out = chat_to_responses_response({"choices": []}, ctx())
    Response.model_validate(out)
    assert out["output"] == [] and out["status"] == "completed"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"input": "raw"}', "raw"),
        ('{"patch": "raw"}', "raw"),  # one string argument under another name
        ("*** Begin Patch\n", "*** Begin Patch\n"),  # a model that skipped the JSON
        ('"quoted"', "quoted"),
        ('{"input": 1, "x": 2}', '{"input": 1, "x": 2}'),
        ("", ""),
    ],
)
def test_custom_tool_input_recovery(arguments: str, expected: str) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "apply_patch", "arguments": arguments}}
    item = chat_to_responses_response(completion({"content": None, "tool_calls": [call]}), ctx())["output"][0]
    assert item["type"] == "custom_tool_call" and item["input"] == expected


def test_unknown_function_name_passes_through() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "not_declared", "arguments": ""}}
    item = chat_to_responses_response(completion({"tool_calls": [call]}), ctx())["output"][0]
    assert (item["type"], item["name"], item["arguments"]) == ("function_call", "not_declared", "{}")
    assert "namespace" not in item


# ------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": {"message": "bad tool", "type": "invalid_request_error", "param": "tools", "code": "x"}},
         {"message": "bad tool", "type": "invalid_request_error", "param": "tools", "code": "x"}),
        (529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
         {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}),
        (429, b"Too Many Requests", {"message": "Too Many Requests", "type": "rate_limit_exceeded", "param": None,
                                     "code": "rate_limit_exceeded"}),
        (502, b"", {"message": "upstream error (HTTP 502)", "type": "server_error", "param": None,
                    "code": None}),
        (422, {"detail": "max_tokens too large"}, {"message": "max_tokens too large", "type": "invalid_request_error",
                                                   "param": None, "code": None}),
        (401, '{"error": "invalid api key"}', {"message": "invalid api key", "type": "authentication_error",
                                                "param": None, "code": None}),
        (400, {"error": {"message": "ctx", "code": 400}}, {"message": "ctx", "type": "invalid_request_error",
                                                            "param": None, "code": "400"}),
        (500, None, {"message": "upstream error (HTTP 500)", "type": "server_error", "param": None,
                     "code": None}),
    ],
)  # fmt: skip
def test_errors_in_openai_shape(status: int, body: Any, expected: dict[str, Any]) -> None:
    out = chat_error_to_responses(status, body)
    assert out == {"error": expected}
    orjson.dumps(out)

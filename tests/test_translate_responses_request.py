"""Responses request -> chat request: every mapping, the Codex request as a golden file, and the budget."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
from openai.types.responses.response_create_params import ResponseCreateParamsStreaming
from pydantic import TypeAdapter

from app.proxy.translate.errors import TranslationError
from app.proxy.translate.responses import (
    HOSTED_TOOLS,
    IGNORED,
    ToolOrigin,
    chat_tool_name,
    responses_to_chat_request,
)

GOLDEN = Path(__file__).parent / "golden" / "responses"
UPDATE = os.environ.get("DOWNSHIFT_UPDATE_GOLDEN") == "1"


def codex_request() -> dict[str, Any]:
    return json.loads((GOLDEN / "codex_request.json").read_text())


def chat(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return responses_to_chat_request(body, model="target-model", **kw)[0]


def fn(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "function", "name": name, "parameters": {"type": "object", "properties": {}}, **extra}


# ------------------------------------------------------------------------------------------- Codex


def test_codex_request_is_accepted_and_matches_golden() -> None:
    body = codex_request()
    TypeAdapter(ResponseCreateParamsStreaming).validate_python(
        body
    )  # the fixture is a valid Responses request
    before = copy.deepcopy(body)
    out, ctx = responses_to_chat_request(body, model="deepseek-chat")
    assert body == before, "the client's body is never mutated"
    TypeAdapter(CompletionCreateParamsStreaming).validate_python(out)
    path = GOLDEN / "codex_chat.json"
    if UPDATE:
        path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    assert out == json.loads(path.read_text())
    assert ctx.model == "gpt-5.1-codex"
    assert ctx.origins == {
        "apply_patch": ToolOrigin("apply_patch", None, True),
        "mcp__docs__search_docs": ToolOrigin("search_docs", "mcp__docs__", False),
        "mcp__docs__fetch_page": ToolOrigin("fetch_page", "mcp__docs__", False),
    }


def test_codex_request_shape() -> None:
    out = chat(codex_request())
    assert set(out) == {"model", "messages", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort",
                        "stream", "stream_options"}  # fmt: skip
    assert out["stream_options"] == {"include_usage": True}
    assert out["reasoning_effort"] == "medium" and out["parallel_tool_calls"] is False
    system = out["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("<permissions instructions>")
    assert "You are Codex" in system["content"], (
        "consecutive developer messages merge into one system message"
    )
    assert [m["role"] for m in out["messages"]].count("system") == 1
    names = [t["function"]["name"] for t in out["tools"]]
    assert names == ["exec_command", "write_stdin", "update_plan", "apply_patch", "view_image",
                     "mcp__docs__search_docs", "mcp__docs__fetch_page"]  # fmt: skip


def test_codex_request_translates_within_budget() -> None:
    body = codex_request()
    body["input"][1]["content"][0]["text"] *= 2  # ~30 KB of JSON, like a real Codex turn
    assert len(json.dumps(body)) >= 30_000
    runs = 300
    for _ in range(20):
        responses_to_chat_request(body, model="m")
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(runs):
            responses_to_chat_request(body, model="m")
        best = min(best, (time.perf_counter() - start) / runs)
    assert best < 0.0004, (
        f"{best * 1e6:.0f} us per request (budget ~200 us; the limit leaves room for slow CI)"
    )


# ------------------------------------------------------------------------------------------- input


def test_string_input_and_instructions() -> None:
    out = chat({"model": "x", "instructions": "Be brief.", "input": "hello"})
    assert out["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]


def test_roles_and_content_parts() -> None:
    out = chat({"input": [
        {"role": "system", "content": "sys"},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
        {"role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAA", "detail": "high"},
            {"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"},
        ]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "seen", "annotations": []}]},
        {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
    ]})  # fmt: skip
    assert out["messages"] == [
        {"role": "system", "content": "sys\n\ndev"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        ]},
        {"role": "assistant", "content": "seen"},
        {"role": "user", "content": "a\n\nb"},
    ]  # fmt: skip


def test_input_file_and_unsupported_parts() -> None:
    out = chat({"input": [{"role": "user", "content": [
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,AA"}]}]})  # fmt: skip
    assert out["messages"][0]["content"] == [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA", "filename": "a.pdf"}}
    ]
    with pytest.raises(TranslationError, match="file_id"):
        chat({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]})
    with pytest.raises(TranslationError, match="file_url"):
        chat(
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}]}]}
        )
    with pytest.raises(TranslationError, match="role"):
        chat({"input": [{"role": "critic", "content": "x"}]})


def test_consecutive_function_calls_become_one_assistant_message() -> None:
    out = chat({"input": [
        {"role": "user", "content": "go"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "plan"}], "encrypted_content": "E"},
        {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": "On it."}]},
        {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "a", "arguments": '{"x":1}'},
        {"type": "function_call", "id": "fc_2", "call_id": "c2", "name": "b", "arguments": ""},
        {"type": "function_call_output", "id": "fco_1", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
    ]})  # fmt: skip
    assert out["messages"][1:] == [
        {"role": "assistant", "content": "On it.", "reasoning_content": "plan", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "a", "arguments": '{"x":1}'}},
            {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]  # fmt: skip


def test_encrypted_only_reasoning_is_dropped() -> None:
    out = chat({"input": [
        {"type": "reasoning", "summary": [], "encrypted_content": "opaque"},
        {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
    ]})  # fmt: skip
    assert "reasoning_content" not in out["messages"][0]


def test_tool_output_images_follow_the_tool_messages() -> None:
    out = chat({"input": [
        {"type": "function_call", "call_id": "c1", "name": "view_image", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "a", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [
            {"type": "input_text", "text": "here"}, {"type": "input_image", "image_url": "data:image/png;base64,QQ"}]},
        {"type": "function_call_output", "call_id": "c2", "output": "ok"},
        {"role": "user", "content": "next"},
    ]})  # fmt: skip
    assert [m["role"] for m in out["messages"]] == ["assistant", "tool", "tool", "user", "user"]
    assert out["messages"][1]["content"] == "here"
    assert out["messages"][3]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QQ"}}
    ]


def test_hosted_tool_items_are_dropped_and_references_refused() -> None:
    out = chat({"input": [
        {"role": "user", "content": "q"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}},
        {"type": "compaction", "encrypted_content": "x"},
    ]})  # fmt: skip
    assert out["messages"] == [{"role": "user", "content": "q"}]
    with pytest.raises(TranslationError, match="item_reference"):
        chat({"input": [{"type": "item_reference", "id": "msg_1"}]})


# ------------------------------------------------------------------------------------------- tools


@pytest.mark.parametrize("kind", sorted(HOSTED_TOOLS))
def test_hosted_tools_are_dropped_never_refused(kind: str) -> None:
    out, ctx = responses_to_chat_request(
        {"input": "x", "tools": [{"type": kind}, fn("keep")], "tool_choice": {"type": kind}}, model="m"
    )
    assert [t["function"]["name"] for t in out["tools"]] == ["keep"]
    assert out["tool_choice"] == "auto"
    assert ctx.tools == [{"type": kind}, fn("keep")], "the Response echoes the tools as sent"


def test_only_hosted_tools_means_no_tools_at_all() -> None:
    out = chat(
        {
            "input": "x",
            "tools": [{"type": "web_search"}],
            "tool_choice": "required",
            "parallel_tool_calls": True,
        }
    )
    assert "tools" not in out and "tool_choice" not in out and "parallel_tool_calls" not in out


def test_function_tool_mapping() -> None:
    out = chat({"input": "x", "tools": [
        {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True,
         "defer_loading": True, "output_schema": {"type": "string"}},
        {"type": "function", "name": "g", "strict": False},
    ]})  # fmt: skip
    assert out["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
        },
        {"type": "function", "function": {"name": "g", "parameters": {"type": "object", "properties": {}}}},
    ]


def test_custom_tool_becomes_a_one_string_function() -> None:
    grammar = 'start: "*** Begin Patch" LF'
    out, ctx = responses_to_chat_request({"input": "x", "tools": [
        {"type": "custom", "name": "apply_patch", "description": "Edit files.",
         "format": {"type": "grammar", "syntax": "lark", "definition": grammar}},
        {"type": "custom", "name": "free"},
    ]}, model="m")  # fmt: skip
    patch, free = (t["function"] for t in out["tools"])
    assert patch["name"] == "apply_patch"
    assert patch["parameters"] == {
        "type": "object",
        "properties": {"input": {"type": "string", "description": "The raw input text."}},
        "required": ["input"],
        "additionalProperties": False,
    }
    assert patch["description"].startswith("Edit files.") and grammar in patch["description"]
    assert "`input`" in free["description"] and "grammar" not in free["description"]
    assert ctx.origins["apply_patch"] == ToolOrigin("apply_patch", None, True)


def test_namespace_tools_are_flattened() -> None:
    out, ctx = responses_to_chat_request({"input": "x", "tools": [
        {"type": "namespace", "name": "crm", "description": "CRM", "tools": [fn("lookup"), {"type": "custom", "name": "note"}]},
        {"type": "namespace", "name": "mcp__gh__", "description": "GitHub", "tools": [fn("create_issue")]},
    ]}, model="m")  # fmt: skip
    assert [t["function"]["name"] for t in out["tools"]] == [
        "crm__lookup",
        "crm__note",
        "mcp__gh__create_issue",
    ]
    assert ctx.origins == {
        "crm__lookup": ToolOrigin("lookup", "crm", False),
        "crm__note": ToolOrigin("note", "crm", True),
        "mcp__gh__create_issue": ToolOrigin("create_issue", "mcp__gh__", False),
    }


def test_long_flattened_names_fit_64_characters_deterministically() -> None:
    name = chat_tool_name("a_really_long_tool_name_for_searching_things", "mcp__some_very_long_server_name__")
    assert len(name) == 64 and name == chat_tool_name(
        "a_really_long_tool_name_for_searching_things", "mcp__some_very_long_server_name__"
    )
    assert name != chat_tool_name(
        "a_really_long_tool_name_for_searching_thingz", "mcp__some_very_long_server_name__"
    )
    assert chat_tool_name("plain", None) == "plain"


def test_duplicate_tools_from_additional_tools_items_are_merged() -> None:
    out = chat(
        {
            "input": [{"type": "additional_tools", "role": "developer", "tools": [fn("a"), fn("b")]}],
            "tools": [fn("a")],
        }
    )
    assert [t["function"]["name"] for t in out["tools"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "name": "f"}, {"type": "function", "function": {"name": "f"}}),
        (
            {"type": "custom", "name": "apply_patch"},
            {"type": "function", "function": {"name": "apply_patch"}},
        ),
        ({"type": "function", "name": "lookup"}, {"type": "function", "function": {"name": "crm__lookup"}}),
        ({"type": "function", "name": "missing"}, "required"),
        (
            {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "f"}]},
            "required",
        ),
        ({"type": "allowed_tools", "mode": "auto", "tools": []}, "auto"),
        ({"type": "mcp", "server_label": "x"}, "auto"),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    tools = [
        fn("f"),
        {"type": "custom", "name": "apply_patch"},
        {"type": "namespace", "name": "crm", "description": "", "tools": [fn("lookup")]},
    ]
    assert chat({"input": "x", "tools": tools, "tool_choice": choice})["tool_choice"] == expected


# ------------------------------------------------------------------------------------------- parameters


def test_parameters_forwarded_by_their_chat_names() -> None:
    out = chat({"input": "x", "max_output_tokens": 512, "temperature": 0.2, "top_p": 0.9,
                "reasoning": {"effort": "low", "summary": "auto"}, "stream": False})  # fmt: skip
    assert {k: out[k] for k in ("max_tokens", "temperature", "top_p", "reasoning_effort")} == {
        "max_tokens": 512, "temperature": 0.2, "top_p": 0.9, "reasoning_effort": "low"}  # fmt: skip
    assert "stream" not in out and "stream_options" not in out


def test_reasoning_effort_only_where_given() -> None:
    assert "reasoning_effort" not in chat({"input": "x", "reasoning": {"summary": "auto"}})
    assert "reasoning_effort" not in chat({"input": "x"})


def test_text_format_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    out = chat(
        {
            "input": "x",
            "text": {
                "format": {"type": "json_schema", "name": "r", "schema": schema, "strict": True},
                "verbosity": "low",
            },
        }
    )
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": schema, "strict": True},
    }
    assert chat({"input": "x", "text": {"format": {"type": "json_object"}}})["response_format"] == {
        "type": "json_object"
    }
    assert "response_format" not in chat(
        {"input": "x", "text": {"format": {"type": "text"}, "verbosity": "high"}}
    )


def test_ignored_fields_never_reach_the_provider() -> None:
    body = {"input": "x", "include": ["reasoning.encrypted_content"], "prompt_cache_key": "k", "client_metadata": {"a": 1},
            "store": False, "metadata": {"m": "1"}, "service_tier": "flex", "user": "u", "safety_identifier": "s",
            "truncation": "auto", "stream_options": {"include_obfuscation": False}, "max_tool_calls": 3,
            "top_logprobs": 2, "prompt_cache_retention": "24h", "background": False, "some_future_field": 1}  # fmt: skip
    assert chat(body) == {"model": "target-model", "messages": [{"role": "user", "content": "x"}]}
    assert {"include", "prompt_cache_key", "client_metadata", "text.verbosity"} <= IGNORED


def test_previous_response_id_needs_a_lookup_that_knows_it() -> None:
    body = {"input": [{"role": "user", "content": "and then?"}], "previous_response_id": "resp_1"}
    with pytest.raises(TranslationError, match="previous_response_id"):
        chat(body)
    with pytest.raises(TranslationError, match="previous_response_id"):
        chat(body, lookup=lambda rid: None)
    earlier = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    out = chat(body, lookup=lambda rid: earlier if rid == "resp_1" else None)
    assert [m["content"] for m in out["messages"]] == ["hi", "hello", "and then?"]


@pytest.mark.parametrize("field", ["conversation", "prompt", "background"])
def test_server_side_state_is_refused_with_its_name(field: str) -> None:
    value = True if field == "background" else {"id": "x"}
    with pytest.raises(TranslationError, match=field):
        chat({"input": "x", field: value})

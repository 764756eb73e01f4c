"""Extraction per wire API: the declared tools of a request and the structured calls of a response, in the
format-independent shape the checks take (chat completions, Responses, Anthropic Messages).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from app.core.toolcheck.verdicts import ToolCall

# --------------------------------------------------------------------------- extraction per wire API


def declared_openai(body: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Declared tools of an OpenAI chat or Responses request: name -> parameters schema (None: not checkable)."""
    declared: dict[str, dict[str, Any] | None] = {}
    tools = list(body.get("tools") or ())
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "namespace" and isinstance(tool.get("tools"), list):
            tools.extend(tool["tools"])  # Codex groups functions in namespaces for models it does not know
            continue
        function = tool.get("function")
        fn: dict[str, Any] = function if isinstance(function, dict) else tool
        name = fn.get("name")
        if isinstance(name, str):
            params = fn.get("parameters")
            declared[name] = (
                params if isinstance(params, dict) and tool.get("type", "function") == "function" else None
            )
    for fn in body.get("functions") or ():  # the pre-tools API, still sent by some clients
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            declared[fn["name"]] = params if isinstance(params, dict) else None
    return declared


def declared_anthropic(body: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Declared tools of an Anthropic Messages request; server tools (no input_schema) map to None."""
    declared: dict[str, dict[str, Any] | None] = {}
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and isinstance(tool.get("name"), str):
            schema = tool.get("input_schema")
            declared[tool["name"]] = schema if isinstance(schema, dict) else None
    return declared


def calls_openai(message: Mapping[str, Any]) -> list[ToolCall]:
    """Structured calls of an OpenAI chat response message (arguments given as an object are serialised)."""
    calls: list[ToolCall] = []
    for item in message.get("tool_calls") or ():
        fn = item.get("function") or {}
        args = fn.get("arguments")
        if not isinstance(args, str):
            args = "" if args is None else orjson.dumps(args).decode()
        calls.append(ToolCall(str(item.get("id") or ""), str(fn.get("name") or ""), args))
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        args = legacy.get("arguments")
        calls.append(ToolCall("", str(legacy.get("name") or ""), args if isinstance(args, str) else ""))
    return calls


def calls_responses(output: Iterable[Mapping[str, Any]]) -> list[ToolCall]:
    """Structured calls among Responses API output items (`function_call`; `custom_tool_call` is free text)."""
    return [
        ToolCall(
            str(item.get("call_id") or item.get("id") or ""),
            str(item.get("name") or ""),
            str(item.get("arguments") or ""),
        )
        for item in output
        if item.get("type") == "function_call"
    ]


def calls_anthropic(content: Iterable[Mapping[str, Any]]) -> list[ToolCall]:
    """`tool_use` blocks of an Anthropic response; their input is already an object, serialised to be checked."""
    calls = []
    for block in content:
        if block.get("type") == "tool_use":
            raw = block.get("input")
            args = raw if isinstance(raw, str) else orjson.dumps(raw if raw is not None else {}).decode()
            calls.append(ToolCall(str(block.get("id") or ""), str(block.get("name") or ""), args))
    return calls


def text_anthropic(content: Iterable[Mapping[str, Any]]) -> str:
    """The assistant's visible text, where a text-form call would hide."""
    return "\n".join(b.get("text") or "" for b in content if b.get("type") == "text")

"""Responses tools -> chat function tools, and the names that let the way back restore them.

Function tools pass as they are; a custom (freeform) tool becomes a function with one string argument
(`input`), its grammar described in the description; a namespace's tools are flattened to
`namespace__name` (`chat_tool_name`, deterministic, so tool calls in the history agree). Each renamed or
bridged function keeps its `ToolOrigin` so its calls go back to the client as the tool it declared.
Hosted tools run on OpenAI's side only and are dropped (see `responses_request.HOSTED_TOOLS`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

_MAX_NAME = 64  # OpenAI and Anthropic both cap function names at 64 characters


@dataclass(frozen=True, slots=True)
class ToolOrigin:
    """The Responses tool behind a chat function name that was renamed or bridged."""

    name: str
    namespace: str | None = None
    custom: bool = False


def chat_tool_name(name: str, namespace: str | None) -> str:
    """The flat chat function name for a (possibly namespaced) tool; deterministic, so history agrees."""
    if not namespace:
        return name
    flat = namespace + name if namespace.endswith("_") else f"{namespace}__{name}"
    if len(flat) <= _MAX_NAME:
        return flat
    digest = hashlib.sha1(flat.encode()).hexdigest()[:8]
    return f"{flat[: _MAX_NAME - 9]}_{digest}"


def tools_to_chat(
    body: dict[str, Any], extra: list[Any], origins: dict[str, ToolOrigin], out: dict[str, Any]
) -> None:
    """tools (the request's and `extra` ones that input items added), tool_choice and parallel_tool_calls,
    the last two only when some tool remains; `origins` gets the tools renamed or bridged."""
    tools = _chat_tools(body.get("tools") or [], extra, origins)
    if not tools:
        return
    out["tools"] = tools
    choice = _tool_choice(body.get("tool_choice"), tools, origins)
    if choice is not None:
        out["tool_choice"] = choice
    if "parallel_tool_calls" in body and body["parallel_tool_calls"] is not None:
        out["parallel_tool_calls"] = bool(body["parallel_tool_calls"])


def _chat_tools(tools: list[Any], extra: list[Any], origins: dict[str, ToolOrigin]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for tool in (*tools, *extra) if extra else tools:
        if not isinstance(tool, dict):
            continue
        kind = tool.get("type")
        if kind == "function" or kind == "custom":
            _add_tool(tool, None, out, seen, origins)
        elif kind == "namespace":
            namespace = tool.get("name") or ""
            for inner in tool.get("tools") or ():
                if isinstance(inner, dict) and inner.get("type") in ("function", "custom"):
                    _add_tool(inner, namespace, out, seen, origins)
        # Hosted tools (HOSTED_TOOLS) and unknown kinds: dropped.
    return out


def _add_tool(
    tool: dict[str, Any], namespace: str | None, out: list[dict[str, Any]], seen: set[str],
    origins: dict[str, ToolOrigin],
) -> None:  # fmt: skip
    name = tool.get("name") or ""
    chat_name = chat_tool_name(name, namespace)
    if chat_name in seen:
        return
    seen.add(chat_name)
    custom = tool.get("type") == "custom"
    if custom or namespace:
        origins[chat_name] = ToolOrigin(name, namespace or None, custom)
    function: dict[str, Any] = {"name": chat_name}
    if custom:
        function["description"] = _custom_description(tool)
        function["parameters"] = _custom_parameters()
    else:
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
        if tool.get("strict"):
            function["strict"] = True
    out.append({"type": "function", "function": function})


def _custom_description(tool: dict[str, Any]) -> str:
    """A freeform tool takes raw text; as a function, that text travels in one string argument."""
    lines = [tool.get("description") or ""]
    lines.append(
        "Call this function with the raw text as its single `input` string argument "
        "(that JSON argument is the only wrapping the text needs)."
    )
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and fmt.get("definition"):
        lines.append(f"The text must match this {fmt.get('syntax') or 'lark'} grammar:\n{fmt['definition']}")
    return "\n\n".join(line for line in lines if line)


def _custom_parameters() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"input": {"type": "string", "description": "The raw input text."}},
        "required": ["input"],
        "additionalProperties": False,
    }


def _tool_choice(choice: Any, tools: list[dict[str, Any]], origins: dict[str, ToolOrigin]) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind in ("function", "custom"):
        name = choice.get("name") or (choice.get("function") or {}).get("name") or ""
        chat_name = _find_chat_name(name, choice.get("namespace"), tools, origins)
        return {"type": "function", "function": {"name": chat_name}} if chat_name else "required"
    if kind == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    return "auto"  # a hosted tool was chosen, and hosted tools are dropped


def _find_chat_name(
    name: str, namespace: str | None, tools: list[dict[str, Any]], origins: dict[str, ToolOrigin]
) -> str:
    flat = chat_tool_name(name, namespace)
    if any(t["function"]["name"] == flat for t in tools):
        return flat
    for chat_name, origin in origins.items():
        if origin.name == name:
            return chat_name
    return ""

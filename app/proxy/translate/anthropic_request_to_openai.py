"""Anthropic Messages request -> OpenAI chat-completions request, shaped by the target's `Profile`.

Only allowlisted fields cross (see `anthropic_request`); user content that cannot be carried raises
`TranslationError` (a 400 naming it), never disappears. Target field <- source field:
  model                 <- the `model` argument (the routed target's own name)
  messages              <- system (string or text blocks) + messages; blocks: text, image (base64/url),
                           document (text/content sources; PDF where profile.pdf), search_result (as text),
                           tool_use -> tool_calls, tool_result -> role "tool" (block lists flattened to text,
                           images moved to a following user message, is_error as TOOL_ERROR_PREFIX),
                           thinking -> profile.reasoning_field where profile.reasoning_echo (else dropped),
                           redacted_thinking dropped (opaque to other providers)
  max_tokens | max_completion_tokens (profile.max_tokens_field) <- max_tokens, clamped to the caps
  stop                  <- stop_sequences
  temperature, top_p    <- temperature, top_p
  top_k                 <- top_k, only where profile.top_k
  stream, stream_options <- stream (+ include_usage where profile.stream_usage)
  tools                 <- client tools (input_schema -> parameters); Anthropic server tools
                           (web_search_*, bash_*, text_editor_*, ...) run at Anthropic only and are dropped
  tool_choice           <- tool_choice: auto -> "auto", any -> "required", tool -> {type: function}, none
  parallel_tool_calls   <- tool_choice.disable_parallel_tool_use (false when set)
  reasoning_effort      <- thinking (enabled budget_tokens, or adaptive + output_config.effort), where
                           profile.reasoning_efforts lists what the target accepts
  thinking              <- {"type": "enabled" | "disabled"} where profile.thinking_toggle (DeepSeek)
  user                  <- metadata.user_id (hashed when longer than 64 characters)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from app.proxy.profiles import Profile
from app.proxy.translate.anthropic_response import (
    TOOL_ERROR_PREFIX,
    encode_tool_input,
    openai_tool_id,
    read_signature,
    upstream_tool_name,
)
from app.proxy.translate.errors import TranslationError
from app.proxy.translate.pivot import (
    EMPTY_SCHEMA,
    TOOL_IMAGES_NOTE,
    budget_effort,
    capped,
    collapse_text,
    set_reasoning_effort,
)


def anthropic_to_openai_request(
    body: Mapping[str, Any], *, model: str, profile: Profile, max_tokens_cap: int | None = None
) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI chat-completions request for the `profile` target."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _system_to_openai(system, profile)})
    for i, message in enumerate(body.get("messages") or ()):
        try:
            _message_to_openai(message, messages, profile)
        except TranslationError as exc:
            raise exc.within(f"messages[{i}]") from None
    out: dict[str, Any] = {"model": model, "messages": messages}

    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        out[profile.max_tokens_field] = capped(max_tokens, profile.max_tokens_cap, max_tokens_cap)
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    if profile.top_k and body.get("top_k") is not None:
        out["top_k"] = body["top_k"]
    if body.get("stream"):
        out["stream"] = True
        if profile.stream_usage:
            out["stream_options"] = {"include_usage": True}

    _tools_to_openai(body, out, profile)
    _reasoning_to_openai(body, out, profile)

    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id:
        out["user"] = (
            user_id if len(user_id) <= 64 else "u-" + hashlib.sha256(user_id.encode()).hexdigest()[:32]
        )
    for key in profile.refuses:
        out.pop(key, None)
    return out


def _tools_to_openai(body: Mapping[str, Any], out: dict[str, Any], profile: Profile) -> None:
    tools: list[dict[str, Any]] = []
    hosted: set[str] = set()
    for k, tool in enumerate(body.get("tools") or ()):
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError("every tool needs a name", f"tools[{k}]")
        if tool.get("type") not in (None, "custom"):  # an Anthropic-hosted tool: nobody else can run it
            hosted.add(name)
            continue
        function: dict[str, Any] = {"name": upstream_tool_name(name, profile.tool_name_max)}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema") or EMPTY_SCHEMA
        tools.append({"type": "function", "function": function})
    if not tools:
        return
    out["tools"] = tools
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and choice.get("name") not in hosted:
        name = upstream_tool_name(str(choice.get("name", "")), profile.tool_name_max)
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False


def _reasoning_to_openai(body: Mapping[str, Any], out: dict[str, Any], profile: Profile) -> None:
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if profile.thinking_toggle:
        out["thinking"] = {"type": "enabled" if kind in ("enabled", "adaptive") else "disabled"}
    if not profile.reasoning_efforts:
        return
    wanted: str | None = None
    if kind == "disabled":
        wanted = "none"
    elif kind == "enabled":
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        wanted = budget_effort(budget if isinstance(budget, int) else 0)
    elif kind == "adaptive":
        config = body.get("output_config")
        effort = config.get("effort") if isinstance(config, dict) else None
        wanted = effort if isinstance(effort, str) else None
    set_reasoning_effort(out, wanted, profile)


def _system_to_openai(system: Any, profile: Profile) -> str | list[dict[str, Any]]:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise TranslationError("system must be a string or a list of text blocks", "system")
    texts: list[str] = []
    cached = False
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise TranslationError(f"system block type {kind!r} is not supported", f"system[{j}]")
        texts.append(block.get("text", ""))
        cached = cached or bool(block.get("cache_control"))
    if cached and profile.cache_control:
        return [_text_part(block, profile) for block in system]
    return "\n\n".join(texts)


def _text_part(block: Mapping[str, Any], profile: Profile) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "text", "text": block.get("text", "")}
    if profile.cache_control and block.get("cache_control"):
        part["cache_control"] = block["cache_control"]
    return part


def _message_to_openai(message: Mapping[str, Any], out: list[dict[str, Any]], profile: Profile) -> None:
    role = message.get("role")
    content = message.get("content")
    if role == "system":
        # Claude Code's mid-conversation-tool-changes beta puts a system message inside `messages`. Many
        # open-weight chat templates refuse a system message that is not first, so it goes in place as a
        # user turn wrapped the way Claude Code itself folds it when the beta is off.
        text = _system_to_openai(content, replace(profile, cache_control=False))
        out.append({"role": "user", "content": f"<system-reminder>\n{text}\n</system-reminder>"})
        return
    if isinstance(content, str):
        if role not in ("user", "assistant"):
            raise TranslationError(f"message role {role!r} is not supported")
        out.append({"role": role, "content": content})
    elif not isinstance(content, list):
        raise TranslationError("content must be a string or a list of blocks")
    elif role == "user":
        _user_to_openai(content, out, profile)
    elif role == "assistant":
        out.append(_assistant_to_openai(content, profile))
    else:
        raise TranslationError(f"message role {role!r} is not supported")


def _user_to_openai(content: list[Any], out: list[dict[str, Any]], profile: Profile) -> None:
    parts: list[dict[str, Any]] = []
    tool_images: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        try:
            if kind == "text":
                parts.append(_text_part(block, profile))
            elif kind == "tool_result":
                out.append(_tool_result_to_openai(block, profile, tool_images))
            elif kind == "image":
                parts.append(_image_part(block, profile))
            elif kind == "document":
                parts.extend(_document_parts(block, profile))
            elif kind == "search_result":
                parts.append({"type": "text", "text": _search_result_text(block)})
            else:
                raise TranslationError(
                    f"content block type {kind!r} is not supported by an OpenAI-format target"
                )
        except TranslationError as exc:
            raise exc.within(f"content[{j}]") from None
    if tool_images:
        parts[:0] = tool_images
    if parts:
        out.append({"role": "user", "content": collapse_text(parts)})


def _tool_result_to_openai(
    block: Mapping[str, Any], profile: Profile, images: list[dict[str, Any]]
) -> dict[str, Any]:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise TranslationError("tool_result needs a tool_use_id")
    call_id = openai_tool_id(tool_use_id, profile.tool_call_id_len)
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts: list[str] = []
        for k, sub in enumerate(content):
            try:
                _tool_result_part(sub, profile, texts, images)
            except TranslationError as exc:
                raise exc.within(f"content[{k}]") from None
        text = "\n".join(texts)
    else:
        raise TranslationError("tool_result content must be a string or a list of blocks")
    if block.get("is_error"):
        text = TOOL_ERROR_PREFIX + text
    message: dict[str, Any] = {"role": "tool", "tool_call_id": call_id, "content": text}
    if profile.cache_control and block.get("cache_control"):
        message["content"] = [{"type": "text", "text": text, "cache_control": block["cache_control"]}]
    return message


def _tool_result_part(sub: Any, profile: Profile, texts: list[str], images: list[dict[str, Any]]) -> None:
    kind = sub.get("type") if isinstance(sub, dict) else None
    if kind == "text":
        texts.append(sub.get("text", ""))
    elif kind == "image":
        if not images:
            images.append({"type": "text", "text": TOOL_IMAGES_NOTE})
        images.append(_image_part(sub, profile))
    elif kind == "search_result":
        texts.append(_search_result_text(sub))
    elif kind == "document":
        for part in _document_parts(sub, profile):
            if part["type"] != "text":
                raise TranslationError("a tool result can carry only text documents here")
            texts.append(part["text"])
    else:
        raise TranslationError(f"tool_result content type {kind!r} is not supported")


def _assistant_to_openai(content: list[Any], profile: Profile) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    reasoning: list[str] = []
    details: list[Any] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            tool_id, name = block.get("id"), block.get("name")
            if not isinstance(tool_id, str) or not isinstance(name, str):
                raise TranslationError("tool_use needs an id and a name", f"content[{j}]")
            calls.append({
                "id": openai_tool_id(tool_id, profile.tool_call_id_len),
                "type": "function",
                "function": {
                    "name": upstream_tool_name(name, profile.tool_name_max),
                    "arguments": encode_tool_input(block.get("input")),
                },
            })  # fmt: skip
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
            if profile.reasoning_details:
                details.extend(read_signature(block.get("signature")) or ())
        elif kind == "redacted_thinking":
            continue  # encrypted by Anthropic for Anthropic; no other provider can read it
        else:
            raise TranslationError(
                f"assistant content block type {kind!r} is not supported by an OpenAI-format target",
                f"content[{j}]",
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    elif not texts:
        message["content"] = ""
    if profile.reasoning_echo and profile.reasoning_field and (reasoning or calls):
        # DeepSeek rejects a tool-call turn without it, even when there was no reasoning text.
        message[profile.reasoning_field] = "\n\n".join(reasoning)
    if details:
        message["reasoning_details"] = details
    return message


def _image_part(block: Mapping[str, Any], profile: Profile) -> dict[str, Any]:
    if not profile.images:
        raise TranslationError(f"images are not supported by {profile.kind} targets")
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif kind == "url":
        url = source.get("url", "")
    else:
        raise TranslationError(f"image source {kind!r} is not supported; send base64 or url")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_parts(block: Mapping[str, Any], profile: Profile) -> list[dict[str, Any]]:
    source = block.get("source") or {}
    kind = source.get("type")
    heading = "\n".join(str(block[k]) for k in ("title", "context") if block.get(k))
    if kind == "text":
        text = source.get("data", "")
        return [{"type": "text", "text": f"{heading}\n\n{text}" if heading else text}]
    if kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [{"type": "text", "text": f"{heading}\n\n{inner}" if heading else inner}]
        parts = [{"type": "text", "text": heading}] if heading else []
        for k, sub in enumerate(inner or ()):
            sub_kind = sub.get("type") if isinstance(sub, dict) else None
            if sub_kind == "text":
                parts.append({"type": "text", "text": sub.get("text", "")})
            elif sub_kind == "image":
                parts.append(_image_part(sub, profile))
            else:
                raise TranslationError(
                    f"document content type {sub_kind!r} is not supported", f"source.content[{k}]"
                )
        return parts
    if kind == "base64" and source.get("media_type") == "application/pdf" and profile.pdf:
        data = source.get("data", "")
        filename = block.get("title") or "document.pdf"
        return [
            {
                "type": "file",
                "file": {"filename": filename, "file_data": f"data:application/pdf;base64,{data}"},
            }
        ]
    what = f"{source.get('media_type') or kind} document"
    raise TranslationError(f"a {what} is not supported by {profile.kind} targets")


def _search_result_text(block: Mapping[str, Any]) -> str:
    head = " ".join(str(block[k]) for k in ("title", "source") if block.get(k))
    body = "\n".join(sub.get("text", "") for sub in block.get("content") or () if isinstance(sub, dict))
    return f"{head}\n{body}" if head else body

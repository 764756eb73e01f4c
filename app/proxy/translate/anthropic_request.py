"""Requests: Anthropic Messages <-> OpenAI chat completions, shaped by the target's `Profile`.

Only allowlisted fields cross; everything else (Claude Code's `context_management`, `output_config`,
`metadata`, `service_tier`, OpenAI's `logprobs`, `seed`...) stays behind, because an OpenAI-format provider
rejects parameters it does not know and Anthropic rejects OpenAI's. Config is dropped quietly; user
content that cannot be carried raises `TranslationError` (a 400 naming it), never disappears.

Anthropic -> OpenAI (`anthropic_to_openai_request`), target field <- source field:
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

OpenAI -> Anthropic (`openai_to_anthropic_request`):
  model                 <- the `model` argument
  system                <- system and developer messages, wherever they appear, in order
  messages              <- user (text, image_url, file PDF), assistant (content, tool_calls -> tool_use,
                           reasoning_details we issued -> thinking with its signature; unsigned reasoning
                           dropped, Anthropic would reject it), tool -> tool_result (merged into one user turn)
  max_tokens            <- max_completion_tokens or max_tokens, clamped; DEFAULT_MAX_TOKENS when absent
  stop_sequences        <- stop
  temperature           <- temperature (clamped to 1.0); top_p only without temperature; top_k where
                           profile.top_k; none of the three when thinking is on (Anthropic rejects them)
  stream                <- stream
  tools                 <- function tools (parameters -> input_schema)
  tool_choice           <- tool_choice (+ parallel_tool_calls false -> disable_parallel_tool_use)
  thinking, output_config.effort <- reasoning_effort (or reasoning.effort); adaptive or budget form per
                           profile.thinking_form; off when tool choice is forced or the last assistant
                           tool turn has no signed thinking (Anthropic rejects both)
  metadata.user_id      <- user
  Rejected: n > 1, audio output. Everything else is not forwarded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from app.proxy.profiles import Profile, nearest_effort
from app.proxy.translate.anthropic_response import (
    ANTHROPIC_DETAILS_FORMAT,
    SIGNATURE_PREFIX,
    TOOL_ERROR_PREFIX,
    anthropic_tool_id,
    decode_tool_arguments,
    encode_tool_input,
    merge_reasoning_details,
    openai_tool_id,
    read_signature,
    upstream_tool_name,
)
from app.proxy.translate.errors import TranslationError

DEFAULT_MAX_TOKENS = 16384  # Anthropic requires max_tokens; OpenAI clients often leave it out
_THINKING_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 24576, "max": 32768}
_ANTHROPIC_EFFORT = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def tool_name_map(tools: Iterable[Mapping[str, Any]] | None, profile: Profile) -> dict[str, str]:
    """{name sent upstream: client's name} for the tools a target made us rename (usually empty).

    Pass it as `tool_names` to the response and stream translators so tool calls come back as the
    client named them. Accepts Anthropic tools (`name`) and OpenAI tools (`function.name`).
    """
    renamed: dict[str, str] = {}
    for tool in tools or ():
        name = tool.get("name") or (tool.get("function") or {}).get("name")
        if isinstance(name, str):
            upstream = upstream_tool_name(name, profile.tool_name_max)
            if upstream != name:
                renamed[upstream] = name
    return renamed


def _capped(value: Any, *caps: int | None) -> int | None:
    result = value if isinstance(value, int) and not isinstance(value, bool) else None
    for cap in caps:
        if cap is not None:
            result = cap if result is None else min(result, cap)
    return result


# ============================================================================ Anthropic -> OpenAI


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
        out[profile.max_tokens_field] = _capped(max_tokens, profile.max_tokens_cap, max_tokens_cap)
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
        function["parameters"] = tool.get("input_schema") or _EMPTY_SCHEMA
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
        budget = budget if isinstance(budget, int) else 0
        wanted = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    elif kind == "adaptive":
        config = body.get("output_config")
        effort = config.get("effort") if isinstance(config, dict) else None
        wanted = effort if isinstance(effort, str) else None
    if wanted is None or (wanted == "none" and "none" not in profile.reasoning_efforts):
        return
    effort = nearest_effort(wanted, profile.reasoning_efforts)
    if effort is not None:
        out["reasoning_effort"] = effort


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


def _collapse(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text-only content as one string: the form every OpenAI-compatible server accepts."""
    texts: list[str] = []
    for part in parts:
        if part["type"] != "text" or "cache_control" in part:
            return parts
        texts.append(part["text"])
    return "\n\n".join(texts)


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
        out.append({"role": "user", "content": _collapse(parts)})


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
            images.append({"type": "text", "text": "Images returned by the tool results above:"})
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


# ============================================================================ OpenAI -> Anthropic


def openai_to_anthropic_request(
    body: Mapping[str, Any], *, model: str, profile: Profile, max_tokens_cap: int | None = None
) -> dict[str, Any]:
    """An OpenAI chat-completions request as an Anthropic Messages request for the `profile` target."""
    if body.get("n") not in (None, 1):
        raise TranslationError("n > 1 (several choices) is not supported by an Anthropic target", "n")
    modalities = body.get("modalities")
    if body.get("audio") or (isinstance(modalities, list) and "audio" in modalities):
        raise TranslationError("audio output is not supported by an Anthropic target", "modalities")

    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for i, message in enumerate(body.get("messages") or ()):
        try:
            _message_to_anthropic(message, system, messages, profile)
        except TranslationError as exc:
            raise exc.within(f"messages[{i}]") from None
    for message in messages:  # the common single-text user turn as a plain string
        content = message["content"]
        if len(content) == 1 and content[0]["type"] == "text" and "cache_control" not in content[0]:
            message["content"] = content[0]["text"]

    asked = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    max_tokens = _capped(asked, profile.max_tokens_cap, max_tokens_cap) or DEFAULT_MAX_TOKENS
    out: dict[str, Any] = {"model": model, "max_tokens": max_tokens}
    if system:
        plain = len(system) == 1 and "cache_control" not in system[0]
        out["system"] = system[0]["text"] if plain else system
    out["messages"] = messages

    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = list(stop)
    if body.get("stream"):
        out["stream"] = True
    choice = _tools_to_anthropic(body, out, profile)
    thinking = _thinking_to_anthropic(body, out, model, profile, max_tokens, choice, messages)
    if not thinking:
        temperature, top_p = body.get("temperature"), body.get("top_p")
        if isinstance(temperature, int | float):
            out["temperature"] = min(float(temperature), 1.0)
        elif isinstance(top_p, int | float):  # recent Claude models refuse both at once
            out["top_p"] = top_p
        if profile.top_k and isinstance(body.get("top_k"), int):
            out["top_k"] = body["top_k"]
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    for key in profile.refuses:
        out.pop(key, None)
    return out


def _message_to_anthropic(
    message: Mapping[str, Any],
    system: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    profile: Profile,
) -> None:
    role = message.get("role")
    if role in ("system", "developer"):
        system.extend(_text_blocks(message.get("content"), ("text",)))
    elif role == "user":
        _append(messages, "user", _user_to_anthropic(message.get("content"), profile))
    elif role == "assistant":
        blocks = _assistant_to_anthropic(message, profile, len(messages))
        if blocks:  # Anthropic refuses empty assistant turns; an empty one carries nothing
            messages.append({"role": "assistant", "content": blocks})
    elif role == "tool":
        _append(messages, "user", [_tool_message_to_anthropic(message)])
    else:
        raise TranslationError(f"message role {role!r} is not supported by an Anthropic target")


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Consecutive same-role turns merged, so tool results and the text after them share one user turn."""
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _text_blocks(content: Any, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise TranslationError("content must be a string or a list of parts")
    blocks = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in kinds:
            raise TranslationError(f"content part type {kind!r} is not supported here", f"content[{j}]")
        block: dict[str, Any] = {"type": "text", "text": part.get("text") or part.get("refusal") or ""}
        if part.get("cache_control"):
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _user_to_anthropic(content: Any, profile: Profile) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise TranslationError("content must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        try:
            if kind == "text":
                block: dict[str, Any] = {"type": "text", "text": part.get("text", "")}
                if profile.cache_control and part.get("cache_control"):
                    block["cache_control"] = part["cache_control"]
                if block["text"]:
                    blocks.append(block)
            elif kind == "image_url":
                image = part.get("image_url")
                blocks.append(_image_block(image.get("url") if isinstance(image, dict) else image, profile))
            elif kind == "file":
                blocks.append(_file_block(part.get("file") or {}, profile))
            else:
                raise TranslationError(f"content part type {kind!r} is not supported by an Anthropic target")
        except TranslationError as exc:
            raise exc.within(f"content[{j}]") from None
    return blocks


def _split_data_url(url: str) -> tuple[str, str] | None:
    """(media_type, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[5:-7], data


def _image_block(url: Any, profile: Profile) -> dict[str, Any]:
    if not profile.images:
        raise TranslationError(f"images are not supported by {profile.kind} targets")
    if not isinstance(url, str) or not url:
        raise TranslationError("image_url needs a url")
    inline = _split_data_url(url)
    if inline:
        return {"type": "image", "source": {"type": "base64", "media_type": inline[0], "data": inline[1]}}
    if url.startswith("data:"):
        raise TranslationError("image data URLs must be base64")
    return {"type": "image", "source": {"type": "url", "url": url}}


def _file_block(file: Mapping[str, Any], profile: Profile) -> dict[str, Any]:
    inline = _split_data_url(file.get("file_data") or "")
    if inline is None or inline[0] != "application/pdf" or not profile.pdf:
        what = "file_id references" if file.get("file_id") else f"{inline[0] if inline else 'these'} files"
        raise TranslationError(f"{what} are not supported by {profile.kind} targets; send PDF file_data")
    block: dict[str, Any] = {
        "type": "document",
        "source": {"type": "base64", "media_type": inline[0], "data": inline[1]},
    }
    if file.get("filename"):
        block["title"] = file["filename"]
    return block


def _assistant_to_anthropic(message: Mapping[str, Any], profile: Profile, turn: int) -> list[dict[str, Any]]:
    blocks = _signed_thinking(message)
    content = message.get("content")
    if content:
        for block in _text_blocks(content, ("text", "refusal")):
            if block["text"].strip():  # Anthropic refuses empty and whitespace-only text blocks
                blocks.append(block)
    for k, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") if isinstance(call, dict) else None
        if (
            call.get("type", "function") != "function"
            or not isinstance(function, dict)
            or not function.get("name")
        ):
            raise TranslationError("only function tool calls with a name are supported", f"tool_calls[{k}]")
        blocks.append({
            "type": "tool_use",
            "id": anthropic_tool_id(call.get("id"), f"toolu_missing_{turn}_{k}"),
            "name": upstream_tool_name(function["name"], profile.tool_name_max),
            "input": decode_tool_arguments(function.get("arguments")),
        })  # fmt: skip
    if message.get("function_call"):
        raise TranslationError("legacy function_call messages are not supported; use tool_calls")
    return blocks


def _signed_thinking(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Thinking blocks rebuilt from the reasoning_details we issued; unsigned reasoning cannot go back."""
    details = message.get("reasoning_details")
    if not isinstance(details, list) or not details:
        return []
    entries = [
        d for d in merge_reasoning_details(details) if d.get("format") in (None, ANTHROPIC_DETAILS_FORMAT)
    ]
    fallback = message.get("reasoning_content") or message.get("reasoning")
    texts = sum(1 for d in entries if d.get("type") == "reasoning.text")
    blocks: list[dict[str, Any]] = []
    for entry in entries:
        kind = entry.get("type")
        if kind == "reasoning.text" and isinstance(entry.get("signature"), str) and entry["signature"]:
            text = entry.get("text") or (fallback if texts == 1 and isinstance(fallback, str) else "")
            blocks.append({"type": "thinking", "thinking": text, "signature": entry["signature"]})
        elif kind == "reasoning.encrypted" and isinstance(entry.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": entry["data"]})
    return blocks


def _tool_message_to_anthropic(message: Mapping[str, Any]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError("a tool message needs its tool_call_id")
    content = message.get("content")
    text = "" if content is None else "\n".join(b["text"] for b in _text_blocks(content, ("text",)))
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": anthropic_tool_id(call_id, call_id),
        "content": text,
    }
    if text.startswith(TOOL_ERROR_PREFIX):
        block["content"] = text[len(TOOL_ERROR_PREFIX) :]
        block["is_error"] = True
    return block


def _tools_to_anthropic(
    body: Mapping[str, Any], out: dict[str, Any], profile: Profile
) -> dict[str, Any] | None:
    tools: list[dict[str, Any]] = []
    for k, tool in enumerate(body.get("tools") or ()):
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(function, dict) or not function.get("name"):
            raise TranslationError(
                f"tool type {tool.get('type')!r} is not supported by an Anthropic target", f"tools[{k}]"
            )
        schema = function.get("parameters") or _EMPTY_SCHEMA
        if schema.get("type") != "object":
            schema = {**schema, "type": "object"}
        converted: dict[str, Any] = {"name": upstream_tool_name(function["name"], profile.tool_name_max)}
        if function.get("description"):
            converted["description"] = function["description"]
        converted["input_schema"] = schema
        tools.append(converted)
    if not tools:
        return None
    out["tools"] = tools
    choice = body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    converted_choice: dict[str, Any] | None = None
    if choice == "required":
        converted_choice = {"type": "any"}
    elif choice == "none":
        converted_choice = {"type": "none"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            converted_choice = {"type": "tool", "name": upstream_tool_name(name, profile.tool_name_max)}
    elif parallel is False or choice == "auto":
        converted_choice = {"type": "auto"}
    if converted_choice is not None:
        if parallel is False and converted_choice["type"] != "none":
            converted_choice["disable_parallel_tool_use"] = True
        out["tool_choice"] = converted_choice
    return converted_choice


def _claude_adaptive(model: str) -> bool:
    """Claude 4.6 and later take adaptive thinking only; older ones the budget form. No version: newest."""
    numbers: list[int] = []
    for token in model.replace(".", "-").replace("@", "-").split("-"):
        if token.isdigit() and len(token) < 8:  # 8 digits is a date
            numbers.append(int(token))
            if len(numbers) == 2:
                break
    if not numbers:
        return True
    return (numbers[0], numbers[1] if len(numbers) > 1 else 0) >= (4, 6)


def _thinking_to_anthropic(
    body: Mapping[str, Any],
    out: dict[str, Any],
    model: str,
    profile: Profile,
    max_tokens: int,
    choice: dict[str, Any] | None,
    messages: list[dict[str, Any]],
) -> bool:
    effort = body.get("reasoning_effort")
    if effort is None and isinstance(body.get("reasoning"), dict):
        effort = body["reasoning"].get("effort")
    if effort not in _ANTHROPIC_EFFORT:
        return False
    if choice is not None and choice["type"] in ("any", "tool"):
        return False  # Anthropic: thinking cannot be on when tool use is forced
    if not _last_tool_turn_thinks(messages):
        return False
    form = profile.thinking_form
    if form == "auto":
        form = "adaptive" if _claude_adaptive(model) else "budget"
    if form == "adaptive":
        out["thinking"] = {"type": "adaptive"}
        out["output_config"] = {"effort": _ANTHROPIC_EFFORT[effort]}
        return True
    budget = min(_THINKING_BUDGET[effort], max_tokens - 1)
    if budget < 1024:
        return False
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return True


def _last_tool_turn_thinks(messages: list[dict[str, Any]]) -> bool:
    """Anthropic rejects thinking when the last assistant turn used a tool without a thinking block first."""
    for message in reversed(messages):
        if message["role"] != "assistant":
            continue
        content = message["content"]
        if isinstance(content, str) or not any(b.get("type") == "tool_use" for b in content):
            return True
        return content[0].get("type") in ("thinking", "redacted_thinking")
    return True


def drop_foreign_thinking(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """For an Anthropic request going to Anthropic itself: remove thinking blocks whose signature we issued.

    They hold another provider's reasoning, which Anthropic would reject as badly signed. Returns `body`
    itself when there is nothing to remove (the common case, a scan without copying).
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    cleaned: list[Any] | None = None
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        kept = [
            b for b in content
            if not (b.get("type") == "thinking" and str(b.get("signature", "")).startswith(SIGNATURE_PREFIX))
        ]  # fmt: skip
        if len(kept) != len(content):
            if cleaned is None:
                cleaned = list(messages)
            cleaned[i] = {**message, "content": kept}
    if cleaned is None:
        return body
    cleaned = [m for m in cleaned if m.get("role") != "assistant" or m.get("content")]
    out = {**body, "messages": cleaned}
    if out.get("thinking") and not _last_tool_turn_thinks(cleaned):
        del out["thinking"]
    return out

"""OpenAI chat-completions request -> Anthropic Messages request; and requests bound for Anthropic itself.

Only allowlisted fields cross (see `anthropic_request`); user content that cannot be carried raises
`TranslationError` (a 400 naming it). `drop_foreign_thinking` readies an Anthropic client's own request
for Anthropic (thinking another provider produced cannot be signed). Target field <- source field:
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

from collections.abc import Mapping
from typing import Any

from app.proxy.profiles import Profile
from app.proxy.translate.anthropic_response import (
    ANTHROPIC_DETAILS_FORMAT,
    SIGNATURE_PREFIX,
    TOOL_ERROR_PREFIX,
    anthropic_tool_id,
    decode_tool_arguments,
    merge_reasoning_details,
    upstream_tool_name,
)
from app.proxy.translate.errors import TranslationError
from app.proxy.translate.pivot import EMPTY_SCHEMA, capped, reasoning_text

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


def openai_to_anthropic_request(
    body: Mapping[str, Any], *, model: str, profile: Profile, max_tokens_cap: int | None = None
) -> dict[str, Any]:
    """An OpenAI chat-completions request as an Anthropic Messages request for the `profile` target."""
    _refuse_unsupported(body)
    system, messages = _conversation_to_anthropic(body, profile)
    asked = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    max_tokens = capped(asked, profile.max_tokens_cap, max_tokens_cap) or DEFAULT_MAX_TOKENS
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
    if not _thinking_to_anthropic(body, out, model, profile, max_tokens, choice, messages):
        _sampling_to_anthropic(body, out, profile)  # Anthropic rejects sampling parameters with thinking on
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    for key in profile.refuses:
        out.pop(key, None)
    return out


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    """What an Anthropic target cannot answer at all: several choices, audio output."""
    if body.get("n") not in (None, 1):
        raise TranslationError("n > 1 (several choices) is not supported by an Anthropic target", "n")
    modalities = body.get("modalities")
    if body.get("audio") or (isinstance(modalities, list) and "audio" in modalities):
        raise TranslationError("audio output is not supported by an Anthropic target", "modalities")


def _conversation_to_anthropic(
    body: Mapping[str, Any], profile: Profile
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages): system and developer messages gathered, same-role turns merged."""
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
    return system, messages


def _sampling_to_anthropic(body: Mapping[str, Any], out: dict[str, Any], profile: Profile) -> None:
    temperature, top_p = body.get("temperature"), body.get("top_p")
    if isinstance(temperature, int | float):
        out["temperature"] = min(float(temperature), 1.0)
    elif isinstance(top_p, int | float):  # recent Claude models refuse both at once
        out["top_p"] = top_p
    if profile.top_k and isinstance(body.get("top_k"), int):
        out["top_k"] = body["top_k"]


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
    fallback = reasoning_text(message)  # the text of the one thinking block, when a client kept it there
    texts = sum(1 for d in entries if d.get("type") == "reasoning.text")
    blocks: list[dict[str, Any]] = []
    for entry in entries:
        kind = entry.get("type")
        if kind == "reasoning.text" and isinstance(entry.get("signature"), str) and entry["signature"]:
            text = entry.get("text") or (fallback if texts == 1 else "")
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
        schema = function.get("parameters") or EMPTY_SCHEMA
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

"""Responses API request -> chat completions request (the pivot format).

Codex CLI only speaks the Responses API and exits on the first 4xx, so this side is lenient: every field
Codex sends is accepted, and only what chat completions has an equivalent for is forwarded (FORWARDED).
What the way back needs (bridged custom tools, flattened namespaces, what the Response object echoes)
is kept in a ResponsesContext.

The chat body is a shallow rebuild: tool schemas and content strings are the client's own objects, so
copy before mutating them in place. Assistant messages may carry `reasoning_content` (replayed reasoning
that DeepSeek-style thinking models require); a target that rejects unknown message fields must drop it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.proxy.translate.errors import TranslationError
from app.proxy.translate.responses_tools import ToolOrigin as ToolOrigin  # and the old import path
from app.proxy.translate.responses_tools import chat_tool_name as chat_tool_name  # the old import path
from app.proxy.translate.responses_tools import tools_to_chat

# Request fields that reach the chat request, each as its chat equivalent.
FORWARDED: dict[str, str] = {
    "model": "model (replaced by the routed model)",
    "input": "messages",
    "instructions": "a leading system message",
    "tools": "tools (function; custom -> function with one string argument; namespace -> flattened)",
    "tool_choice": "tool_choice",
    "parallel_tool_calls": "parallel_tool_calls (only when tools remain)",
    "max_output_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "reasoning.effort": "reasoning_effort",
    "text.format": "response_format (json_schema / json_object)",
    "stream": "stream, with stream_options.include_usage so streamed calls report tokens",
    "previous_response_id": "the earlier turns' items, when this proxy answered and kept that response",
}
# Accepted and deliberately not forwarded: OpenAI-only state, caching, privacy or telemetry knobs that an
# OpenAI-compatible provider would reject or must not see. Unknown fields are ignored the same way.
IGNORED: frozenset[str] = frozenset(
    {
        "include", "prompt_cache_key", "prompt_cache_retention", "client_metadata", "store", "metadata",
        "service_tier", "user", "safety_identifier", "truncation", "stream_options", "max_tool_calls",
        "top_logprobs", "reasoning.summary", "text.verbosity", "background (false)",
    }
)  # fmt: skip
# Hosted tools run on OpenAI's side; a provider cannot run them, so they are dropped, never refused.
HOSTED_TOOLS: frozenset[str] = frozenset(
    {
        "web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26",
        "tool_search", "file_search", "local_shell", "shell", "apply_patch", "image_generation",
        "code_interpreter", "computer_use_preview", "computer", "mcp",
    }
)  # fmt: skip

Lookup = Callable[[str], list[dict[str, Any]] | None]  # previous_response_id -> its input + output items
Remember = Callable[[str, list[dict[str, Any]]], None]  # response id, its input + output items

# Request fields a Response object repeats back.
_ECHOED = ("instructions", "max_output_tokens", "temperature", "top_p", "reasoning", "text", "metadata",
           "previous_response_id", "store", "truncation", "service_tier", "prompt_cache_key", "user")  # fmt: skip


@dataclass(slots=True)
class ResponsesContext:
    """What the way back needs: the requested model, the tool mapping, and the fields a Response echoes."""

    model: str
    origins: dict[str, ToolOrigin] = field(default_factory=dict)  # chat function name -> Responses tool
    tools: list[Any] = field(default_factory=list)  # the request's tool list, echoed as given
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    echo: dict[str, Any] = field(default_factory=dict)  # other request fields the Response repeats
    remember: Remember | None = None  # set when the response is to be kept for previous_response_id
    conversation: list[Any] = field(default_factory=list)  # the input items it continues (when remembered)

    def keep(self, response: dict[str, Any]) -> None:
        """Remember a finished response (input + output items) so a later request can continue it."""
        if self.remember is not None and response.get("status") in ("completed", "incomplete"):
            self.remember(response["id"], [*self.conversation, *response.get("output", ())])


def responses_to_chat_request(
    body: dict[str, Any], *, model: str, lookup: Lookup | None = None, remember: Remember | None = None
) -> tuple[dict[str, Any], ResponsesContext]:
    """Translate a Responses request; raises TranslationError only for server-side state we cannot have.

    With `remember`, a request not marked `store: false` has its finished response kept (ResponsesContext.keep)
    and `lookup` finds it again for a later `previous_response_id`."""
    _refuse_server_state(body)
    raw_tools = body.get("tools") or []
    ctx = ResponsesContext(
        model=body.get("model") or model,
        tools=raw_tools,
        tool_choice=body.get("tool_choice") or "auto",
        parallel_tool_calls=body.get("parallel_tool_calls") is not False,
        echo={k: body[k] for k in _ECHOED if body.get(k) is not None},
    )
    items = _input_items(body, lookup)
    if remember is not None and body.get("store") is not False:
        ctx.remember, ctx.conversation = remember, items
    builder = _Messages()
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        builder.system(instructions)
    elif isinstance(instructions, list):
        builder.add_items(instructions)
    builder.add_items(items)

    out: dict[str, Any] = {"model": model, "messages": builder.finish()}
    tools_to_chat(body, builder.extra_tools, ctx.origins, out)
    _generation_to_chat(body, out)
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out, ctx


def _refuse_server_state(body: dict[str, Any]) -> None:
    """State only OpenAI's servers hold; everything else a client sends is accepted (see the module doc)."""
    for key in ("conversation", "prompt"):
        if body.get(key):
            raise TranslationError(
                f"'{key}' (server-side stored state) is not supported; send the full input"
            )
    if body.get("background"):
        raise TranslationError("'background' responses are not supported")


def _generation_to_chat(body: dict[str, Any], out: dict[str, Any]) -> None:
    """Output length, sampling, reasoning effort and structured-output format."""
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        out["reasoning_effort"] = reasoning["effort"]
    text = body.get("text")
    if isinstance(text, dict):
        fmt = _response_format(text.get("format"))
        if fmt is not None:
            out["response_format"] = fmt


def _input_items(body: dict[str, Any], lookup: Lookup | None) -> list[Any]:
    raw = body.get("input")
    if raw is None:
        items: list[Any] = []
    elif isinstance(raw, str):
        items = [{"role": "user", "content": raw}]
    elif isinstance(raw, list):
        items = raw
    else:
        raise TranslationError("'input' must be a string or a list of items")
    previous = body.get("previous_response_id")
    if previous:
        earlier = lookup(previous) if lookup is not None else None
        if earlier is None:
            raise TranslationError(
                f"previous_response_id {previous!r} is not known: Downshift keeps responses in memory only, "
                "while it runs and for requests without store: false; send the whole conversation as input"
            )
        items = [*earlier, *items]
    return items


# ----------------------------------------------------------------------------------------------- messages


class _Messages:
    """Builds chat messages from Responses items, merging what chat keeps in one assistant message."""

    __slots__ = ("messages", "assistant", "reasoning", "images", "extra_tools")

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.assistant: dict[str, Any] | None = None  # open until a non-assistant item arrives
        self.reasoning: list[str] = []  # reasoning text waiting for the next assistant message
        self.images: list[dict[str, Any]] = []  # tool-output images, sent as a user turn after the tool run
        self.extra_tools: list[Any] = []

    def add_items(self, items: list[Any]) -> None:
        for item in items:
            if not isinstance(item, dict):
                raise TranslationError("every input item must be an object")
            kind = item.get("type")
            if kind is None or kind == "message":
                self._message(item)
            elif kind == "function_call":
                self._tool_call(item, item.get("arguments") or "{}")
            elif kind == "custom_tool_call":
                self._tool_call(item, orjson.dumps({"input": item.get("input") or ""}).decode())
            elif kind == "function_call_output" or kind == "custom_tool_call_output":
                self._tool_output(item)
            elif kind == "reasoning":
                self._reasoning(item)
            elif kind == "additional_tools" or kind == "tool_search_output":
                self.extra_tools.extend(item.get("tools") or ())
            elif kind == "item_reference":
                raise TranslationError(
                    "'item_reference' input items are not supported; send the items themselves"
                )
            # Anything else is a hosted tool's call or result, or opaque OpenAI state (compaction): dropped.

    def system(self, text: str) -> None:
        self._close()
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "system" and isinstance(last["content"], str):
            last["content"] = f"{last['content']}\n\n{text}"
        else:
            self.messages.append({"role": "system", "content": text})

    def finish(self) -> list[dict[str, Any]]:
        self._close()
        return self.messages

    def _message(self, item: dict[str, Any]) -> None:
        role = item.get("role")
        content = item.get("content")
        if role == "assistant":
            text = _assistant_text(content)
            if text:
                message = self._open_assistant()
                message["content"] = text if message["content"] is None else f"{message['content']}\n\n{text}"
            return
        converted = _user_content(content)
        if role == "system" or role == "developer":
            if isinstance(converted, str):
                self.system(converted)
                return
            role = "system"
        elif role != "user":
            raise TranslationError(f"input message role {role!r} is not supported")
        self._close()
        self.messages.append({"role": role, "content": converted})

    def _open_assistant(self) -> dict[str, Any]:
        message = self.assistant
        if message is None:
            self._flush_images()
            message = {"role": "assistant", "content": None}
            self.messages.append(message)
            self.assistant = message
        if self.reasoning:
            text = "\n\n".join(self.reasoning)
            self.reasoning.clear()
            before = message.get("reasoning_content")
            message["reasoning_content"] = f"{before}\n\n{text}" if before else text
        return message

    def _tool_call(self, item: dict[str, Any], arguments: str) -> None:
        call_id = item.get("call_id") or item.get("id") or ""
        name = chat_tool_name(item.get("name") or "", item.get("namespace"))
        call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        message = self._open_assistant()
        calls = message.get("tool_calls")
        if calls is None:
            message["tool_calls"] = [call]
        else:
            calls.append(call)

    def _tool_output(self, item: dict[str, Any]) -> None:
        self.assistant = None
        self.reasoning.clear()
        output = item.get("output")
        if isinstance(output, str):
            text = output
        elif isinstance(output, list):
            text = self._output_parts(output)
        else:
            text = "" if output is None else orjson.dumps(output).decode()
        self.messages.append({"role": "tool", "tool_call_id": item.get("call_id") or "", "content": text})

    def _output_parts(self, parts: list[Any]) -> str:
        texts: list[str] = []
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in _TEXT_PARTS:
                texts.append(part.get("text") or "")
            elif kind == "input_image":
                self.images.append(_image_part(part))
        return "\n\n".join(texts)

    def _reasoning(self, item: dict[str, Any]) -> None:
        # encrypted_content is OpenAI's own state and useless elsewhere; readable text is kept because
        # some providers (DeepSeek thinking mode) refuse a tool-call turn that lost its reasoning.
        parts = item.get("content") or item.get("summary") or ()
        text = "\n\n".join(p["text"] for p in parts if isinstance(p, dict) and p.get("text"))
        if text:
            self.reasoning.append(text)

    def _close(self) -> None:
        self.assistant = None
        self.reasoning.clear()
        self._flush_images()

    def _flush_images(self) -> None:
        if self.images:
            self.messages.append({"role": "user", "content": self.images})
            self.images = []


_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text"})


def _assistant_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not content:
        return ""
    texts = []
    for part in content:
        if isinstance(part, dict):
            text = part.get("text") if part.get("type") != "refusal" else part.get("refusal")
            if text:
                texts.append(text)
    return "\n\n".join(texts)


def _user_content(content: Any) -> str | list[dict[str, Any]]:
    """Text-only content becomes one string, which every provider and chat template accepts."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise TranslationError("message content must be a string or a list of parts")
    texts: list[str] = []
    parts: list[dict[str, Any]] | None = None
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _TEXT_PARTS:
            text = part.get("text") or ""
            texts.append(text)
            if parts is not None:
                parts.append({"type": "text", "text": text})
            continue
        if parts is None:
            parts = [{"type": "text", "text": t} for t in texts]
        if kind == "input_image":
            parts.append(_image_part(part))
        elif kind == "input_file":
            parts.append(_file_part(part))
        elif kind == "input_audio":
            parts.append({"type": "input_audio", "input_audio": part.get("input_audio")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.get("refusal") or ""})
        else:
            raise TranslationError(f"input content part {kind!r} is not supported")
    return "\n\n".join(texts) if parts is None else parts


def _image_part(part: dict[str, Any]) -> dict[str, Any]:
    url = part.get("image_url")
    if not url:
        raise TranslationError("input_image by file_id is not supported; send an image_url or data: URL")
    image = {"url": url}
    detail = part.get("detail")
    if detail and detail != "auto":
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def _file_part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("file_url") and not part.get("file_data"):
        raise TranslationError("input_file by file_url is not supported; send file_data")
    file = {k: part[k] for k in ("file_data", "file_id", "filename") if part.get(k)}
    return {"type": "file", "file": file}


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None

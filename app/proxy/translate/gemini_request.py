"""Gemini API request (`generateContent`) -> OpenAI chat completions request (the pivot), per target Profile.

Gemini CLI and the google-genai SDKs speak this. The model name comes from the URL path (the caller passes
the routed target's name as `model`); everything else is in the body. Target field <- Gemini field:

  messages              <- systemInstruction (a Content, its text parts; or a bare string) as the system
                           message, then contents: role "model" -> assistant (text parts joined, `thought`
                           parts -> profile.reasoning_field where the target wants reasoning back,
                           functionCall -> tool_calls), any other role -> user (text, inlineData images /
                           PDF / audio / text, fileData with an http(s) image URL) with its functionResponse
                           parts first, as role "tool" messages (`response.output` as text, `response.error`
                           as TOOL_ERROR_PREFIX + text, any other object as JSON)
  tools                 <- tools[].functionDeclarations (`parametersJsonSchema` as given, or the OpenAPI
                           `parameters` schema as JSON Schema: types lower-cased, `nullable` -> a "null"
                           type); Google-hosted tools (googleSearch, codeExecution, urlContext...) are
                           dropped: no other provider can run them
  tool_choice           <- toolConfig.functionCallingConfig.mode: AUTO/VALIDATED -> "auto", NONE -> "none",
                           ANY -> "required" (one allowed name -> that function; several -> the tool list
                           narrowed to them)
  max_tokens (profile.max_tokens_field) <- generationConfig.maxOutputTokens, clamped to the caps
  temperature, top_p, stop, seed, presence_penalty, frequency_penalty <- temperature, topP, stopSequences,
                           seed, presencePenalty, frequencyPenalty; top_k <- topK where profile.top_k
  response_format       <- responseMimeType application/json with responseJsonSchema (or the OpenAPI
                           responseSchema; either with upper-case types lower-cased) -> json_schema,
                           without a schema -> json_object
  reasoning_effort      <- thinkingConfig.thinkingLevel, or thinkingBudget (0 = none, -1 = the model's
                           own choice, nothing sent), where profile.reasoning_efforts lists what it takes
  thinking              <- {"type": "enabled" | "disabled"} where profile.thinking_toggle (DeepSeek)
  stream, stream_options <- the method (streamGenerateContent), include_usage where profile.stream_usage
  Rejected (a 400 naming it): candidateCount > 1, cachedContent (server-side state), parts no chat target
  can carry (executableCode, video...). Not forwarded: safetySettings, responseModalities, logprobs,
  mediaResolution, speechConfig, labels.

Tool-call ids: Gemini CLI echoes the id we gave a functionCall with the tool name and `__` in front
(`write_file__call_abc`); that prefix is taken off again, so the provider sees its own ids and the log
can attribute failed results. A functionCall or functionResponse without an id is paired by name and
order with a deterministic id (`call_<turn>_<n>`), so the same history always translates the same way.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.core.toolcheck import gemini_call_id as client_call_id
from app.proxy.profiles import Profile
from app.proxy.translate.anthropic_response import (
    TOOL_ERROR_PREFIX,
    encode_tool_input,
    openai_tool_id,
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

# Tool kinds Google runs on its side; dropped, never refused (an agent cannot know the target lacks them).
HOSTED_TOOLS = frozenset({
    "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext", "computerUse", "fileSearch",
    "googleMaps", "retrieval", "enterpriseWebSearch", "mcpServers",
})  # fmt: skip
# Set by the proxy on the parsed body of a streamGenerateContent call without `alt=sse`, which Google
# answers with one JSON array of chunks (served here as an array of the one whole answer).
ARRAY_KEY = "_downshift_json_array"
_AUDIO = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mp3": "mp3",
    "audio/mpeg": "mp3",
}
_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
_CONTENT_KEYS = ("text", "functionCall", "functionResponse", "inlineData", "fileData", "executableCode",
                 "codeExecutionResult", "toolCall", "toolResponse")  # fmt: skip
_SCHEMA_DROPPED = frozenset({"propertyOrdering", "property_ordering", "example", "nullable"})
_SCHEMA_KEYS = {  # Schema keywords in their proto spelling -> JSON Schema's
    "any_of": "anyOf", "max_items": "maxItems", "min_items": "minItems", "max_length": "maxLength",
    "min_length": "minLength", "max_properties": "maxProperties", "min_properties": "minProperties",
    "additional_properties": "additionalProperties",
}  # fmt: skip
_SCHEMA_NESTED = frozenset({"properties", "$defs", "defs", "definitions", "patternProperties"})


@dataclass(slots=True)
class GeminiContext:
    """What the way back needs: the model name the client asked for, renamed tools, whether it wants thoughts."""

    model: str
    names: dict[str, str] = field(default_factory=dict)  # name sent upstream -> the client's name
    thoughts: bool = False  # generationConfig.thinkingConfig.includeThoughts
    array: bool = False  # streamGenerateContent without alt=sse: one JSON array, not events
    anthropic_ids: bool = False  # the target speaks Messages: tool-call ids go back in its toolu_ form


def gemini_to_chat_request(
    body: Mapping[str, Any], *, model: str, profile: Profile, max_tokens_cap: int | None = None
) -> tuple[dict[str, Any], GeminiContext]:
    """Translate a generateContent body; `body["model"]` (the name in the URL) is what the answer echoes."""
    if body.get("cachedContent"):
        raise TranslationError(
            "'cachedContent' (server-side cached context) is not supported; send the contents"
        )
    config = body.get("generationConfig")
    config = config if isinstance(config, Mapping) else {}
    count = config.get("candidateCount")
    if count not in (None, 1):
        raise TranslationError(
            "candidateCount > 1 (several candidates) is not supported", "generationConfig.candidateCount"
        )
    thinking = config.get("thinkingConfig")
    thinking = thinking if isinstance(thinking, Mapping) else {}
    ctx = GeminiContext(
        model=str(body.get("model") or model),
        thoughts=thinking.get("includeThoughts") is True,
        array=body.get(ARRAY_KEY) is True,
    )

    messages: list[dict[str, Any]] = []
    system = body.get("systemInstruction")
    if system:
        try:
            text = _system_text(system)
        except TranslationError as exc:
            raise exc.within("systemInstruction") from None
        if text:
            messages.append({"role": "system", "content": text})
    builder = _Messages(profile)
    contents = body.get("contents")
    for i, content in enumerate(contents if isinstance(contents, list) else ()):
        try:
            builder.add(content, i)
        except TranslationError as exc:
            raise exc.within(f"contents[{i}]") from None
    messages += builder.messages
    out: dict[str, Any] = {"model": model, "messages": messages}

    tools = _tools(body.get("tools"), profile, ctx.names)
    if tools:
        out["tools"] = tools
        _tool_choice(body.get("toolConfig"), out, profile)
    _generation(config, out, profile, max_tokens_cap)
    _thinking(thinking, out, profile)
    if body.get("stream"):
        out["stream"] = True
        if profile.stream_usage:
            out["stream_options"] = {"include_usage": True}
    for key in profile.refuses:
        out.pop(key, None)
    return out, ctx


# ----------------------------------------------------------------------------------------------- contents


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if not isinstance(system, Mapping):
        raise TranslationError("systemInstruction must be a Content object")
    texts = []
    for j, part in enumerate(system.get("parts") or ()):
        if not isinstance(part, Mapping) or not isinstance(part.get("text"), str):
            raise TranslationError("only text parts are supported in systemInstruction", f"parts[{j}]")
        texts.append(part["text"])
    return "\n\n".join(texts)


class _Messages:
    """Chat messages from Gemini contents, keeping track of the tool calls still waiting for a response."""

    __slots__ = ("profile", "messages", "pending")

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.messages: list[dict[str, Any]] = []
        # (client name, chat id, whether the client gave the id) of the last model turn's unanswered calls
        self.pending: list[tuple[str, str, bool]] = []

    def add(self, content: Any, turn: int) -> None:
        if not isinstance(content, Mapping):
            raise TranslationError("every content must be an object with 'parts'")
        parts = content.get("parts")
        if parts is None:
            parts = []
        elif not isinstance(parts, list):
            raise TranslationError("'parts' must be a list of Part objects")
        if content.get("role") == "model":
            self._model(parts, turn)
        else:  # "user", "function" (older clients' function results), or none (the API's default: user)
            self._user(parts, turn)

    def _model(self, parts: list[Any], turn: int) -> None:
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[dict[str, Any]] = []
        self.pending = []
        for j, part in enumerate(parts):
            if not isinstance(part, Mapping):
                raise TranslationError("every part must be an object", f"parts[{j}]")
            call = part.get("functionCall")
            if isinstance(call, Mapping):
                calls.append(self._call(call, turn, len(calls), j))
            elif isinstance(part.get("text"), str):
                (thoughts if part.get("thought") is True else texts).append(part["text"])
            elif not _ignorable(part):
                raise TranslationError(f"model part {_kind(part)!r} is not supported", f"parts[{j}]")
        text = "".join(texts)
        if not text and not calls:
            return  # an empty model turn (or thoughts alone) carries nothing a chat target can take
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        field_name = self.profile.reasoning_field
        if field_name and (thoughts or (calls and self.profile.reasoning_echo)):
            # DeepSeek rejects a tool-call turn without it, even when there was no reasoning text.
            message[field_name] = "".join(thoughts)
        self.messages.append(message)

    def _call(self, call: Mapping[str, Any], turn: int, n: int, j: int) -> dict[str, Any]:
        name = call.get("name")
        if not isinstance(name, str) or not name:
            raise TranslationError("functionCall needs a name", f"parts[{j}].functionCall")
        chat_id = self._chat_id(call.get("id"), name, f"call_{turn}_{n}")
        self.pending.append((name, chat_id, bool(client_call_id(call.get("id"), name))))
        args = call.get("args")
        return {
            "id": chat_id,
            "type": "function",
            "function": {
                "name": upstream_tool_name(name, self.profile.tool_name_max),
                "arguments": encode_tool_input(args if args is not None else {}),
            },
        }

    def _chat_id(self, given: Any, name: str, fallback: str) -> str:
        call_id = client_call_id(given, name) or fallback
        if self.profile.tool_call_id_len:
            return openai_tool_id(call_id, self.profile.tool_call_id_len)
        return call_id

    def _user(self, parts: list[Any], turn: int) -> None:
        content: list[dict[str, Any]] = []
        images: list[dict[str, Any]] = []
        answered = 0
        for j, part in enumerate(parts):
            if not isinstance(part, Mapping):
                raise TranslationError("every part must be an object", f"parts[{j}]")
            response = part.get("functionResponse")
            try:
                if isinstance(response, Mapping):
                    self.messages.append(self._result(response, turn, answered, images))
                    answered += 1
                elif isinstance(part.get("text"), str):
                    if part.get("thought") is not True:
                        content.append({"type": "text", "text": part["text"]})
                elif part.get("inlineData") is not None:
                    content.append(_inline(part["inlineData"], self.profile))
                elif part.get("fileData") is not None:
                    content.append(_file(part["fileData"], self.profile))
                elif not _ignorable(part):
                    raise TranslationError(
                        f"part {_kind(part)!r} is not supported by a chat-completions target"
                    )
            except TranslationError as exc:
                raise exc.within(f"parts[{j}]") from None
        if images:
            content[:0] = [{"type": "text", "text": TOOL_IMAGES_NOTE}, *images]
        if content:
            self.messages.append({"role": "user", "content": collapse_text(content)})

    def _result(
        self, response: Mapping[str, Any], turn: int, n: int, images: list[dict[str, Any]]
    ) -> dict[str, Any]:
        name = response.get("name")
        name = name if isinstance(name, str) else ""
        given = client_call_id(response.get("id"), name)
        chat_id = self._answered(self._chat_id(given, name, "") if given else "", name)
        if chat_id is None:
            chat_id = self._chat_id(given, name, f"call_{turn}_{n}")
        text = function_response_text(response)
        for k, part in enumerate(response.get("parts") or ()):  # multimodal function responses
            data = part.get("inlineData") if isinstance(part, Mapping) else None
            if data is None:
                raise TranslationError(
                    "functionResponse parts other than inlineData are not supported",
                    f"functionResponse.parts[{k}]",
                )
            images.append(_inline(data, self.profile))
        return {"role": "tool", "tool_call_id": chat_id, "content": text}

    def _answered(self, wanted: str, name: str) -> str | None:
        """The pending call a functionResponse answers: the one with its id, else the first call of that
        name that came without an id (a client makes one up for those)."""
        pending = self.pending
        for k, (_, chat_id, _given) in enumerate(pending):
            if wanted and chat_id == wanted:
                del pending[k]
                return chat_id
        for k, (pending_name, chat_id, given) in enumerate(pending):
            if pending_name == name and not given:
                del pending[k]
                return chat_id
        return None


def function_response_text(response: Mapping[str, Any]) -> str:
    """The text a chat target gets for a functionResponse: `output` (or the whole object) as text; an
    `error` key (how Gemini clients report a failed call) as TOOL_ERROR_PREFIX + its text."""
    payload = response.get("response")
    if not isinstance(payload, Mapping):
        return "" if payload is None else _as_text(payload)
    if "error" in payload and payload["error"] not in (None, ""):
        return TOOL_ERROR_PREFIX + _as_text(payload["error"])
    if "output" in payload:
        return _as_text(payload["output"])
    if "content" in payload and len(payload) == 1:
        return _as_text(payload["content"])
    return _as_text(payload) if payload else ""


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, Mapping) and isinstance(v.get("text"), str) for v in value)
    ):
        return "\n".join(v["text"] for v in value)
    return orjson.dumps(value).decode()


def _ignorable(part: Mapping[str, Any]) -> bool:
    """A part that carries nothing for a chat target: only metadata (thoughtSignature, videoMetadata...)."""
    return not any(key in part for key in _CONTENT_KEYS)


def _kind(part: Mapping[str, Any]) -> str:
    return next((key for key in part if key not in ("thought", "thoughtSignature")), "empty")


def _inline(data: Any, profile: Profile) -> dict[str, Any]:
    if not isinstance(data, Mapping) or not isinstance(data.get("data"), str):
        raise TranslationError("inlineData needs mimeType and base64 data")
    mime = str(data.get("mimeType") or "").lower()
    payload = data["data"]
    if mime.startswith("image/"):
        if not profile.images:
            raise TranslationError(f"images are not supported by {profile.kind} targets")
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{payload}"}}
    if mime == "application/pdf":
        if not profile.pdf:
            raise TranslationError(f"PDF documents are not supported by {profile.kind} targets")
        file = {"file_data": f"data:{mime};base64,{payload}"}
        if data.get("displayName"):
            file["filename"] = str(data["displayName"])
        return {"type": "file", "file": file}
    if mime in _AUDIO:
        return {"type": "input_audio", "input_audio": {"data": payload, "format": _AUDIO[mime]}}
    if mime.startswith("text/") or mime in ("application/json", "application/xml"):
        try:
            return {
                "type": "text",
                "text": base64.b64decode(payload, validate=False).decode("utf-8", "replace"),
            }
        except (binascii.Error, ValueError):
            raise TranslationError("inlineData is not valid base64") from None
    raise TranslationError(
        f"inlineData of type {mime or 'unknown'!r} is not supported by a chat-completions target"
    )


def _file(data: Any, profile: Profile) -> dict[str, Any]:
    uri = data.get("fileUri") if isinstance(data, Mapping) else None
    mime = str(data.get("mimeType") or "").lower() if isinstance(data, Mapping) else ""
    if (
        isinstance(uri, str)
        and uri.startswith(("http://", "https://"))
        and (mime.startswith("image/") or not mime)
    ):
        if not profile.images:
            raise TranslationError(f"images are not supported by {profile.kind} targets")
        return {"type": "image_url", "image_url": {"url": uri}}
    raise TranslationError(
        "fileData (a file stored at Google) is not supported; send the bytes as inlineData"
    )


# ----------------------------------------------------------------------------------------------- tools


def _tools(tools: Any, profile: Profile, names: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for k, tool in enumerate(tools if isinstance(tools, list) else ()):
        if not isinstance(tool, Mapping):
            raise TranslationError("every tool must be an object", f"tools[{k}]")
        declarations = tool.get("functionDeclarations")
        if declarations is None:
            continue  # a Google-hosted tool (HOSTED_TOOLS): dropped
        if not isinstance(declarations, list):
            raise TranslationError("'functionDeclarations' must be a list", f"tools[{k}]")
        for d, decl in enumerate(declarations):
            where = f"tools[{k}].functionDeclarations[{d}]"
            name = decl.get("name") if isinstance(decl, Mapping) else None
            if not isinstance(name, str) or not name:
                raise TranslationError("every function declaration needs a name", where)
            upstream = upstream_tool_name(name, profile.tool_name_max)
            if upstream in seen:
                continue
            seen.add(upstream)
            if upstream != name:
                names[upstream] = name
            function: dict[str, Any] = {"name": upstream}
            if decl.get("description"):
                function["description"] = decl["description"]
            schema = decl.get("parametersJsonSchema")
            if schema is None and decl.get("parameters") is not None:
                schema = openapi_to_json_schema(decl["parameters"])
            function["parameters"] = schema if isinstance(schema, Mapping) and schema else EMPTY_SCHEMA
            out.append({"type": "function", "function": function})
    return out


def openapi_to_json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-subset Schema as JSON Schema: `type` lower-cased ("OBJECT" -> "object"),
    `nullable: true` -> a "null" type, `propertyOrdering` and `example` dropped. Copies only what changes."""
    if isinstance(schema, list):
        return [openapi_to_json_schema(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for name, value in schema.items():
        if name in _SCHEMA_DROPPED:
            continue
        key: str = _SCHEMA_KEYS.get(name) or name
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key in _SCHEMA_NESTED and isinstance(value, Mapping):
            out[key] = {k: openapi_to_json_schema(v) for k, v in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf", "not", "additionalProperties", "prefixItems"):
            out[key] = openapi_to_json_schema(value)
        else:
            out[key] = value
    if schema.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str) and kind != "null":
            out["type"] = [kind, "null"]
        elif "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    return out


def _tool_choice(tool_config: Any, out: dict[str, Any], profile: Profile) -> None:
    calling = tool_config.get("functionCallingConfig") if isinstance(tool_config, Mapping) else None
    if not isinstance(calling, Mapping):
        return
    mode = str(calling.get("mode") or "").upper()
    if mode in ("AUTO", "VALIDATED"):
        out["tool_choice"] = "auto"
    elif mode == "NONE":
        out["tool_choice"] = "none"
    elif mode == "ANY":
        allowed = [
            upstream_tool_name(str(n), profile.tool_name_max)
            for n in calling.get("allowedFunctionNames") or ()
        ]
        if len(allowed) == 1:
            out["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}}
            return
        out["tool_choice"] = "required"
        if allowed:
            narrowed = [t for t in out["tools"] if t["function"]["name"] in allowed]
            if narrowed:
                out["tools"] = narrowed


# ----------------------------------------------------------------------------------------------- generation


def _generation(config: Mapping[str, Any], out: dict[str, Any], profile: Profile, cap: int | None) -> None:
    max_tokens = config.get("maxOutputTokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        out[profile.max_tokens_field] = capped(max_tokens, profile.max_tokens_cap, cap)
    for source, target in (("temperature", "temperature"), ("topP", "top_p"), ("seed", "seed"),
                           ("presencePenalty", "presence_penalty"), ("frequencyPenalty", "frequency_penalty")):  # fmt: skip
        if config.get(source) is not None:
            out[target] = config[source]
    if profile.top_k and config.get("topK") is not None:
        out["top_k"] = config["topK"]
    stop = config.get("stopSequences")
    if isinstance(stop, list) and stop:
        out["stop"] = list(stop)
    fmt = _response_format(config)
    if fmt is not None:
        out["response_format"] = fmt


def _response_format(config: Mapping[str, Any]) -> dict[str, Any] | None:
    schema = config.get("responseJsonSchema")
    if schema is None:
        schema = config.get("_responseJsonSchema")  # the JS SDK's name for it in some versions
    if schema is None:
        schema = config.get("responseSchema")
    if schema is not None:  # Gemini CLI writes even its JSON Schema with OpenAPI's upper-case types
        schema = openapi_to_json_schema(schema)
    mime = str(config.get("responseMimeType") or "").lower()
    if schema is not None and mime in ("application/json", ""):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    if mime == "application/json":
        return {"type": "json_object"}
    return None


def _thinking(thinking: Mapping[str, Any], out: dict[str, Any], profile: Profile) -> None:
    level = thinking.get("thinkingLevel")
    budget = thinking.get("thinkingBudget")
    wanted: str | None = None
    if isinstance(level, str) and level.lower() in _LEVELS:
        wanted = _LEVELS[level.lower()]
    elif isinstance(budget, int) and not isinstance(budget, bool) and budget >= 0:
        wanted = "none" if budget == 0 else budget_effort(budget)
    if wanted is None:
        return
    if profile.thinking_toggle:
        out["thinking"] = {"type": "disabled" if wanted == "none" else "enabled"}
    set_reasoning_effort(out, wanted, profile)

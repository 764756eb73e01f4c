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

Contents become messages in `gemini_contents` (with how tool-call ids are paired).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.proxy.profiles import Profile
from app.proxy.translate.anthropic_response import upstream_tool_name
from app.proxy.translate.errors import TranslationError
from app.proxy.translate.gemini_contents import contents_to_messages
from app.proxy.translate.gemini_contents import function_response_text as function_response_text  # old path
from app.proxy.translate.pivot import EMPTY_SCHEMA, budget_effort, capped, set_reasoning_effort

# Tool kinds Google runs on its side; dropped, never refused (an agent cannot know the target lacks them).
HOSTED_TOOLS = frozenset({
    "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext", "computerUse", "fileSearch",
    "googleMaps", "retrieval", "enterpriseWebSearch", "mcpServers",
})  # fmt: skip
# Set by the proxy on the parsed body of a streamGenerateContent call without `alt=sse`, which Google
# answers with one JSON array of chunks (served here as an array of the one whole answer).
ARRAY_KEY = "_downshift_json_array"
_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
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

    out: dict[str, Any] = {"model": model, "messages": contents_to_messages(body, profile)}

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

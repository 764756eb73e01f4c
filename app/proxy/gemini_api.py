"""The Gemini API at the proxy's door: `POST /v1beta/models/{model}:{method}` read into the request dict the
pipeline serves, with the mistakes Google itself refuses turned into a clear 400 in Google's error shape.

Unlike the other three APIs, the model name and whether to stream sit in the URL, not in the body, so
they are put into the parsed body here (`model`, `stream`) and every later step (routing, the log, task
grouping, the translators) reads them where it reads them for the others. A role name (`default`) or
any Gemini model name (`gemini-2.5-pro`, which routes like any unknown name) can stand in the path.

Google's JSON mapping accepts proto field names (`system_instruction`) as well as lowerCamelCase
(`systemInstruction`), and the Python SDK sends some nested fields that way (`parameters_json_schema`,
`thinking_config.include_thoughts`). The request's own field names are renamed to lowerCamelCase here,
once, walking only the request's structure: tool arguments, function responses and schemas keep their
keys as the client wrote them.
"""

from __future__ import annotations

from typing import Any

from app.proxy import validate
from app.proxy.errors import ProxyError
from app.proxy.translate.gemini_request import ARRAY_KEY

# Request field names (proto spelling -> JSON spelling) by the object they appear in.
_FIELDS = {
    "top": ("system_instruction", "generation_config", "tool_config", "safety_settings", "cached_content",
            "generate_content_request"),
    "part": ("function_call", "function_response", "inline_data", "file_data", "executable_code",
             "code_execution_result", "thought_signature", "video_metadata", "tool_call", "tool_response"),
    "blob": ("mime_type", "display_name", "file_uri"),
    "tool": ("function_declarations", "google_search", "google_search_retrieval", "code_execution", "url_context",
             "computer_use", "file_search", "google_maps", "enterprise_web_search", "mcp_servers"),
    "declaration": ("parameters_json_schema", "response_json_schema"),
    "tool_config": ("function_calling_config",),
    "calling": ("allowed_function_names",),
    "generation": ("max_output_tokens", "top_p", "top_k", "candidate_count", "stop_sequences", "presence_penalty",
                   "frequency_penalty", "response_mime_type", "response_schema", "response_json_schema",
                   "thinking_config", "response_logprobs", "response_modalities", "media_resolution", "speech_config"),
    "thinking": ("include_thoughts", "thinking_budget", "thinking_level"),
}  # fmt: skip
_CAMEL = {
    snake: snake.split("_")[0] + "".join(w.title() for w in snake.split("_")[1:])
    for names in _FIELDS.values()
    for snake in names
}
_RENAMES = {kind: {snake: _CAMEL[snake] for snake in names} for kind, names in _FIELDS.items()}
# every key that makes a part need renaming: its own fields, and those of the blobs inside it
_PART_NAMES = frozenset((*_FIELDS["part"], "inlineData", "fileData"))
METHODS = frozenset({"generateContent", "streamGenerateContent", "countTokens"})


def split_target(target: str) -> tuple[str, str]:
    """(model, method) from the path after `models/`: `default:streamGenerateContent`."""
    model, sep, method = target.rpartition(":")
    if not sep or method not in METHODS:
        raise ProxyError(
            404,
            "unknown_endpoint",
            f"models/{target[:200]} is not a Gemini method Downshift serves "
            "(generateContent, streamGenerateContent, countTokens)",
        )
    if model.startswith("models/"):  # a client that put the resource name where the id goes
        model = model[len("models/") :]
    if not model.strip() or len(model) > validate.MAX_MODEL_CHARS:
        raise ProxyError(
            400,
            "bad_request",
            f"the model name in the path must be 1 to {validate.MAX_MODEL_CHARS} characters",
        )
    return model, method


def parse_body(
    body: bytes, model: str, *, stream: bool = False, array: bool = False, count: bool = False
) -> dict[str, Any]:
    """The request body as a dict carrying `model` and `stream`; a clear 400 for what Google refuses too."""
    data = validate.json_object(body, "expected a JSON object with 'contents'")
    camel_case(data)
    if count and data.get("contents") is None and isinstance(data.get("generateContentRequest"), dict):
        data = data["generateContentRequest"]  # countTokens takes either form
        camel_case(data)
    contents = data.get("contents")
    if contents is None:
        raise ProxyError(400, "bad_request", "'contents' is required", param="contents")
    if (
        type(contents) is not list
        or not contents
        or type(contents[0]) is not dict
        or type(contents[-1]) is not dict
    ):
        raise ProxyError(
            400, "bad_request", "'contents' must be a non-empty list of Content objects", param="contents"
        )
    tools = data.get("tools")
    if tools is not None and (type(tools) is not list or not all(type(t) is dict for t in tools)):
        raise ProxyError(400, "bad_request", "'tools' must be a list of Tool objects", param="tools")
    config = data.get("generationConfig")
    if config is not None:
        if type(config) is not dict:
            raise ProxyError(
                400, "bad_request", "'generationConfig' must be an object", param="generationConfig"
            )
        validate.token_limit("generationConfig.maxOutputTokens", config.get("maxOutputTokens"))
    data["model"] = model
    data["stream"] = stream
    if array:
        data[ARRAY_KEY] = True
    return data


def camel_case(data: dict[str, Any]) -> None:
    """Rename the request's proto-spelled field names to lowerCamelCase, in place (see the module doc).
    Per part one set test decides: a 200-turn conversation costs well under 0.1 ms."""
    _rename(data, "top")
    contents = data.get("contents")
    _parts(contents if type(contents) is list else ())
    system = data.get("systemInstruction")
    if type(system) is dict:
        _parts((system,))
    for tool in _dicts(data.get("tools")):
        _rename(tool, "tool")
        for declaration in _dicts(tool.get("functionDeclarations")):
            _rename(declaration, "declaration")
    config = data.get("toolConfig")
    if isinstance(config, dict):
        _rename(config, "tool_config")
        if isinstance(config.get("functionCallingConfig"), dict):
            _rename(config["functionCallingConfig"], "calling")
    config = data.get("generationConfig")
    if isinstance(config, dict):
        _rename(config, "generation")
        if isinstance(config.get("thinkingConfig"), dict):
            _rename(config["thinkingConfig"], "thinking")


def _parts(contents: Any) -> None:
    names = _PART_NAMES
    for content in contents:
        parts = content.get("parts") if type(content) is dict else None
        if type(parts) is list:
            for part in parts:
                if type(part) is dict and not names.isdisjoint(part):
                    _part(part)


def _part(part: dict[str, Any]) -> None:
    _rename(part, "part")
    for key in ("inlineData", "fileData"):
        if isinstance(part.get(key), dict):
            _rename(part[key], "blob")


def _rename(obj: dict[str, Any], kind: str) -> None:
    renames = _RENAMES[kind]
    for key in [k for k in obj if k in renames]:
        obj.setdefault(renames[key], obj.pop(key))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if type(v) is dict] if type(value) is list else []

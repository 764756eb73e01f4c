"""Tool-call reliability checks: did the model call a declared tool, with JSON that fits its schema?

Everything here is format-independent: the proxy extracts the declared tools and the emitted calls from
whichever wire API it saw (helpers below) and asks `check_calls`. This runs on every proxied response,
so it does no work when nothing was declared, and compiled schema validators are cached by the
schema's canonical bytes: a 40-tool request compiles each schema once, not once per call.

Validation uses fastjsonschema (compiled to Python code: 1-10 us per check against 18-320 us for
jsonschema's interpreter on Claude Code's tool schemas), falling back to jsonschema for schemas it
cannot compile. String `format`s are not enforced: providers do not enforce them either, so a
"uri" that is a relative path is not counted as a model failure.

Text-form detection flags a tool call the model wrote into its message text instead of emitting a
structured call, a common open-weight failure when the serving stack's tool parser does not match the
model's template. Formats recognised (see the vLLM / llama.cpp tool parsers for the originals):

- reserved-token forms, flagged whatever name they carry: Kimi K2 (`<|tool_calls_section_begin|>`,
  `functions.NAME:0<|tool_call_argument_begin|>`), DeepSeek V3/V3.1 (`<｜tool▁call▁begin｜>`),
  gpt-oss harmony (`<|channel|>commentary to=functions.NAME`), Mistral (`[TOOL_CALLS]`), Llama 3.x
  (`<|python_tag|>`);
- markup forms, flagged only when they name a declared tool (case-insensitive), so prose about tool
  syntax is not a failure: Hermes / Qwen 2.5 / Qwen3 (`<tool_call>{"name": ..., "arguments": ...}`),
  Qwen3-Coder and Llama 3.1 (`<function=NAME>`), GLM 4.5/4.6 (`<tool_call>NAME<arg_key>`), MiniMax M2
  and Claude-style XML (`<invoke name="NAME">`), bare or fenced JSON objects
  (`{"name": NAME, "arguments"|"parameters"|"input": ...}`), Llama 4 pythonic (`[NAME(a=1)]`).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import fastjsonschema
import orjson

Kind = Literal["ok", "invalid_json", "unknown_tool", "schema", "text_form"]

DETAIL_MAX = 200
"""Details are stored per call: keep them short and never echo a whole argument payload."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A structured call as emitted: `arguments` is the raw JSON text (reassembled from stream deltas)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class CallCheck:
    """The verdict on one call; `call_id` is None for a call found written in the message text."""

    kind: Kind
    name: str
    call_id: str | None = None
    detail: str = ""


# --------------------------------------------------------------------------- validators


Validator = Callable[[Any], str | None]  # returns None when valid, else a short detail

_CACHE_MAX = 512
_cache: OrderedDict[bytes, Validator] = OrderedDict()
_cache_lock = threading.Lock()

# fastjsonschema enforces string formats by default; accept every known one instead.
_ANY_FORMAT = {
    name: (lambda _value: True)
    for name in (
        "date-time",
        "date",
        "time",
        "email",
        "idn-email",
        "hostname",
        "idn-hostname",
        "ipv4",
        "ipv6",
        "uri",
        "uri-reference",
        "iri",
        "iri-reference",
        "uri-template",
        "json-pointer",
        "relative-json-pointer",
        "regex",
        "duration",
        "uuid",
    )
}


def _short(text: str) -> str:
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"


def _fast_validator(schema: Mapping[str, Any]) -> Validator:
    compiled = fastjsonschema.compile(dict(schema), formats=_ANY_FORMAT, use_default=False)

    def validate(instance: Any) -> str | None:
        try:
            compiled(instance)
        except fastjsonschema.JsonSchemaValueException as exc:
            return _fast_detail(exc)
        return None

    return validate


def _fast_detail(exc: fastjsonschema.JsonSchemaValueException) -> str:
    """Rewrite `data.a.b must be integer` as `field 'a.b': must be integer`."""
    message = exc.message or "does not match the schema"
    path = [str(p) for p in (exc.path or [])[1:]]
    name = exc.name or "data"
    if message.startswith(name):
        message = message[len(name) :].strip()
    if exc.rule == "required" and isinstance(exc.rule_definition, list):
        missing = [
            key for key in exc.rule_definition if not isinstance(exc.value, dict) or key not in exc.value
        ]
        where = f" in '{'.'.join(path)}'" if path else ""
        return _short(f"missing required field {', '.join(repr(m) for m in missing)}{where}")
    where = f"field '{'.'.join(path)}'" if path else "arguments"
    return _short(f"{where}: {message}")


def _slow_validator(schema: Mapping[str, Any]) -> Validator:
    import jsonschema  # the fallback: imported for the first schema fastjsonschema cannot compile (~2 MB)

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    validator = cls(schema)

    def validate(instance: Any) -> str | None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
        if error is None:
            return None
        path = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "required":
            return _short(f"missing required field{' in ' + repr(path) if path else ''}: {error.message}")
        return _short(f"{'field ' + repr(path) if path else 'arguments'}: {error.message}")

    return validate


def _unusable_schema(reason: str) -> Validator:
    def validate(_instance: Any) -> str | None:
        return None

    validate.unusable = reason  # type: ignore[attr-defined]
    return validate


def validator_for(schema: Mapping[str, Any]) -> Validator:
    """A cached validator for `schema`; a schema no validator accepts checks nothing (never blames the model)."""
    key = hashlib.blake2b(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    try:
        built = _fast_validator(schema)
    except Exception:  # noqa: BLE001 - fastjsonschema raises assorted errors on drafts it lacks
        try:
            built = _slow_validator(schema)
        except Exception as exc:  # noqa: BLE001 - the client's schema is broken: nothing to check against
            built = _unusable_schema(str(exc))
    with _cache_lock:
        _cache[key] = built
        if len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    return built


# --------------------------------------------------------------------------- structured calls


def check_call(declared: Mapping[str, Mapping[str, Any] | None], call: ToolCall) -> CallCheck:
    """Classify one structured call. A declared tool whose schema is None (server tools) is name-checked only."""
    if call.name not in declared:
        return CallCheck("unknown_tool", call.name, call.id, _short(f"'{call.name}' is not a declared tool"))
    text = call.arguments.strip()
    if not text:
        args: Any = {}  # several providers stream no argument bytes at all for a no-parameter call
    else:
        try:
            args = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return CallCheck("invalid_json", call.name, call.id, _short(str(exc)))
    if isinstance(args, str):
        return CallCheck(
            "schema", call.name, call.id, "arguments are a JSON string, not an object (double-encoded?)"
        )
    if not isinstance(args, dict):
        return CallCheck(
            "schema", call.name, call.id, f"arguments must be a JSON object, got {type(args).__name__}"
        )
    schema = declared[call.name]
    if schema:
        problem = validator_for(schema)(args)
        if problem:
            return CallCheck("schema", call.name, call.id, problem)
    return CallCheck("ok", call.name, call.id)


def check_calls(
    declared: Mapping[str, Mapping[str, Any] | None],
    calls: Sequence[ToolCall],
    content: str | None = None,
) -> list[CallCheck]:
    """Verdicts for every structured call, then one `text_form` verdict per tool call found in `content`."""
    if not declared and not calls:
        return []
    results = [check_call(declared, call) for call in calls]
    if content and declared:
        results.extend(detect_text_form(content, declared.keys()))
    return results


# --------------------------------------------------------------------------- text-form calls

_NAME = r"[A-Za-z_][\w.\-]*"
_RESERVED_HINTS = (
    "<|tool_call",
    "<｜tool▁call",
    "<|channel|>",
    "to=functions.",
    "[TOOL_CALLS]",
    "<|python_tag|>",
)
_MARKUP_HINTS = ("<tool_call", "<function=", "<invoke", '"name"', "'name'", "(")

_KIMI = re.compile(
    r"<\|tool_call_begin\|>\s*(?:functions\.)?(" + _NAME + r"?)(?::\d+)?\s*<\|tool_call_argument_begin\|>"
)
_KIMI_SECTION = "<|tool_calls_section_begin|>"
_DEEPSEEK = re.compile(
    r"<｜tool▁call▁begin｜>\s*(?:function\s*<｜tool▁sep｜>\s*("
    + _NAME
    + r")|("
    + _NAME
    + r")\s*<｜tool▁sep｜>)"
)
_DEEPSEEK_SECTION = "<｜tool▁calls▁begin｜>"
_HARMONY = re.compile(
    r"(?:<\|channel\|>\s*\w*\s*|<\|start\|>assistant\s*)to=functions\.("
    + _NAME
    + r")|commentary\s+to=functions\.("
    + _NAME
    + r")"
)
_MISTRAL = re.compile(
    r"\[TOOL_CALLS\]\s*(?:\[\s*\{\s*\"name\"\s*:\s*\"("
    + _NAME
    + r")\"|("
    + _NAME
    + r")\s*\[(?:ARGS|CALL_ID)\])"
)
_PYTHON_TAG = re.compile(
    r"<\|python_tag\|>\s*(?:\{\s*\"name\"\s*:\s*\"(" + _NAME + r")\"|(" + _NAME + r")\s*(?:\.call)?\s*\()"
)

_HERMES = re.compile(r"<tool_call>\s*(\{)", re.S)
_FUNCTION_TAG = re.compile(r"<function=(" + _NAME + r")>")
_GLM = re.compile(r"<tool_call>\s*(" + _NAME + r")\s*(?:<arg_key>|</tool_call>|\n)")
_INVOKE = re.compile(r"<invoke\s+name=[\"'](" + _NAME + r")[\"']")
_JSON_NAME = re.compile(r"\{\s*[\"']name[\"']\s*:\s*[\"'](" + _NAME + r")[\"']")
_PYTHONIC = re.compile(r"^\s*\[\s*(" + _NAME + r")\((.*)\)\s*\]\s*$", re.S)
_ARG_KEYS = ("arguments", "parameters", "input", "args")

_decoder = json.JSONDecoder()


def detect_text_form(content: str, declared_names: Iterable[str]) -> list[CallCheck]:
    """Tool calls written as text in `content` (see the module docstring for the formats and the rule)."""
    if not content:
        return []
    reserved = any(hint in content for hint in _RESERVED_HINTS)
    markup = any(hint in content for hint in _MARKUP_HINTS)
    if not reserved and not markup:
        return []
    lookup = {name.lower(): name for name in declared_names}
    found: list[CallCheck] = []
    seen: set[tuple[str, int]] = set()

    def add(style: str, name: str | None, pos: int, require_declared: bool) -> None:
        raw = name or ""
        canonical = lookup.get(raw.lower())
        if require_declared and canonical is None:
            return
        key = (canonical or raw, pos)
        if key in seen:
            return
        seen.add(key)
        note = "" if canonical or not raw else " (not a declared tool)"
        found.append(
            CallCheck("text_form", canonical or raw, None, f"{style} tool call written in message text{note}")
        )

    if reserved:
        for m in _KIMI.finditer(content):
            add("Kimi K2", m.group(1), m.start(), False)
        if not any(c.detail.startswith("Kimi") for c in found) and _KIMI_SECTION in content:
            add("Kimi K2", None, content.index(_KIMI_SECTION), False)
        before = len(found)
        for m in _DEEPSEEK.finditer(content):
            add("DeepSeek", m.group(1) or m.group(2), m.start(), False)
        if len(found) == before and _DEEPSEEK_SECTION in content:
            add("DeepSeek", None, content.index(_DEEPSEEK_SECTION), False)
        for m in _HARMONY.finditer(content):
            add("gpt-oss harmony", m.group(1) or m.group(2), m.start(), False)
        for m in _MISTRAL.finditer(content):
            add("Mistral", m.group(1) or m.group(2), m.start(), False)
        for m in _PYTHON_TAG.finditer(content):
            add("Llama python_tag", m.group(1) or m.group(2), m.start(), False)

    if markup and lookup:
        for m in _HERMES.finditer(content):
            obj = _json_at(content, m.start(1))
            if isinstance(obj, dict) and isinstance(obj.get("name"), str):
                add("Hermes/Qwen <tool_call>", obj["name"], m.start(), True)
        for m in _FUNCTION_TAG.finditer(content):
            add("<function=...>", m.group(1), m.start(), True)
        for m in _GLM.finditer(content):
            add("GLM <tool_call>", m.group(1), m.start(), True)
        for m in _INVOKE.finditer(content):
            add("XML <invoke>", m.group(1), m.start(), True)
    if (
        markup and lookup and not found
    ):  # bare JSON and pythonic lists are fallbacks: the forms above own their JSON
        for m in _JSON_NAME.finditer(content):
            if m.group(1).lower() not in lookup:
                continue
            obj = _json_at(content, m.start())
            if isinstance(obj, dict) and any(k in obj for k in _ARG_KEYS):
                add("JSON", m.group(1), m.start(), True)
        m = _PYTHONIC.match(content)
        if m:
            add("pythonic", m.group(1), m.start(), True)
    return found


def _json_at(text: str, pos: int) -> Any:
    """The JSON value starting at `pos`, or None (a single-quoted dict is tried as a Python literal too)."""
    try:
        return _decoder.raw_decode(text, pos)[0]
    except ValueError:
        pass
    try:
        end = _matching_brace(text, pos)
        return json.loads(text[pos:end].replace("'", '"')) if end else None
    except ValueError:
        return None


def _matching_brace(text: str, pos: int) -> int | None:
    depth = 0
    for i in range(pos, min(len(text), pos + 100_000)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


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
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
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


# --------------------------------------------------------------------------- failed tool results

DEFAULT_ERROR_PATTERNS: tuple[str, ...] = (
    "error:",
    "error -",
    "traceback (most recent call last)",
    "exit code",
    "exit status",
    "exited with",
    "failed",
    "fatal:",
    "command not found",
    "no such file or directory",
    "permission denied",
    "<tool_use_error>",
)
ERROR_WINDOW = 300


def failed_results(
    request_body: Mapping[str, Any],
    api: str,
    patterns: Sequence[str] = DEFAULT_ERROR_PATTERNS,
    window: int = ERROR_WINDOW,
    fresh: Callable[[str], bool] | None = None,
) -> list[tuple[str, str]]:
    """(tool_call_id, reason) for each tool result in the request that reports a failure.

    Anthropic (`api="anthropic"`): a `tool_result` block with `is_error: true`, and nothing else. Gemini
    (`"gemini"`): a `functionResponse` whose `response` has an `error` key (how Gemini clients report a
    failed call), else the text rule below on its `output`.
    OpenAI chat (`"openai"`, `role: tool` messages) and Responses (`"responses"`, `function_call_output`
    and `custom_tool_call_output` items) carry no error flag, so a text rule decides, chosen to avoid
    false positives: only the first `window` characters are read, case-insensitively, and a pattern
    counts only at the start of a line (after whitespace or a `[`/`(`), so a file that merely contains
    the word "error:" mid-line is not a failure. A match followed by zero (`exit code: 0`,
    `failed: 0`) reports success and does not count. Without `fresh`, every result is returned; with it,
    only results whose id `fresh(id)` accepts are read at all (the proxy passes the ids it has not judged
    yet: agents resend the whole history every turn).
    """
    if api == "anthropic":
        return _failed_anthropic(request_body, fresh)
    matcher = _line_start_matcher(tuple(patterns))
    if api == "gemini":
        return _failed_gemini(request_body, matcher, window, fresh)
    found: list[tuple[str, str]] = []
    if api == "responses":
        items = request_body.get("input")
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and item.get("type") in (
                "function_call_output",
                "custom_tool_call_output",
            ):
                call_id = str(item.get("call_id") or "")
                if fresh is not None and not fresh(call_id):
                    continue
                reason = _text_failure(_as_text(item.get("output")), matcher, window)
                if reason:
                    found.append((call_id, reason))
        return found
    for message in request_body.get("messages") or ():
        if isinstance(message, dict) and message.get("role") == "tool":
            call_id = str(message.get("tool_call_id") or "")
            if fresh is not None and not fresh(call_id):
                continue
            reason = _text_failure(_as_text(message.get("content")), matcher, window)
            if reason:
                found.append((call_id, reason))
    return found


def _failed_anthropic(body: Mapping[str, Any], fresh: Callable[[str], bool] | None = None) -> list[tuple[str, str]]:
    found = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in content:
            if (
                isinstance(block, dict)
                and block.get("type") == "tool_result"
                and block.get("is_error") is True
            ):
                call_id = str(block.get("tool_use_id") or "")
                if fresh is not None and not fresh(call_id):
                    continue
                first = _as_text(block.get("content")).strip().splitlines()
                found.append(
                    (
                        call_id,
                        _short("is_error" + (f": {first[0]}" if first else "")),
                    )
                )
    return found


def _failed_gemini(
    body: Mapping[str, Any], matcher: re.Pattern[str], window: int, fresh: Callable[[str], bool] | None
) -> list[tuple[str, str]]:
    found = []
    for content in body.get("contents") or ():
        parts = content.get("parts") if isinstance(content, dict) and content.get("role") != "model" else None
        for part in parts if isinstance(parts, list) else ():
            result = part.get("functionResponse") if isinstance(part, dict) else None
            if not isinstance(result, dict):
                continue
            call_id = gemini_call_id(result.get("id"), result.get("name"))
            if fresh is not None and not fresh(call_id):
                continue
            response = result.get("response")
            if not isinstance(response, dict):
                continue
            error = response.get("error")
            if error not in (None, ""):
                first = (error if isinstance(error, str) else json.dumps(error)).strip().splitlines()
                found.append((call_id, _short("error" + (f": {first[0]}" if first else ""))))
                continue
            output = response.get("output", response)
            text = output if isinstance(output, str) else _as_text(output) or json.dumps(output, default=str)
            reason = _text_failure(text, matcher, window)
            if reason:
                found.append((call_id, reason))
    return found


def gemini_call_id(given: Any, name: Any) -> str:
    """A functionResponse id as the provider issued it: Gemini CLI puts `NAME__` before ids it was given
    (the proxy's translator takes it off the same way, so both sides agree)."""
    if not isinstance(given, str):
        return ""
    prefix = f"{name.strip()}__" if isinstance(name, str) and name else None
    if prefix and given.startswith(prefix) and len(given) > len(prefix):
        return given[len(prefix) :]
    return given


def _as_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text") or ""
            for p in content
            if isinstance(p, dict) and p.get("type") in ("text", "input_text", "output_text")
        )
    return ""


_matchers: dict[tuple[str, ...], re.Pattern[str]] = {}


def _line_start_matcher(patterns: tuple[str, ...]) -> re.Pattern[str]:
    pattern = _matchers.get(patterns)
    if pattern is None:
        alternatives = "|".join(re.escape(p.lower()) for p in sorted(patterns, key=len, reverse=True))
        pattern = re.compile(r"^[ \t\[(]*(" + alternatives + r")(?P<rest>[^\n]*)", re.M)
        _matchers[patterns] = pattern
    return pattern


_ZERO = re.compile(r"^[\s:=]*0\b")


def _text_failure(text: str, matcher: re.Pattern[str], window: int) -> str | None:
    head = text[:window].lower()
    m = matcher.search(head)  # the first indicator decides: "exit code: 0" up front means success
    if m is None or _ZERO.match(m.group("rest")):
        return None
    return _short(f"matched {m.group(1)!r}: {text[m.start(1) : m.end()].strip()}")

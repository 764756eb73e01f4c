"""Tool-call reliability checks: did the model call a declared tool, with JSON that fits its schema?

Everything here is format-independent: the proxy extracts the declared tools and the emitted calls from
whichever wire API it saw (helpers below) and asks `check_calls`. This runs on every proxied response,
so it does no work when nothing was declared, and compiled schema validators are cached by the
schema's canonical bytes: a 40-tool request compiles each schema once, not once per call.

Validation uses fastjsonschema (compiled to Python code: 1-10 us per check against 18-320 us for
jsonschema's interpreter on Claude Code's tool schemas), falling back to jsonschema for schemas it
cannot compile and for schemas over FAST_MAX_BYTES. Schemas are untrusted input: see "validators" below. String `format`s are not enforced: providers do not enforce them either, so a
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

import asyncio
import concurrent.futures
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

Kind = Literal["ok", "unchecked", "invalid_json", "unknown_tool", "schema", "text_form"]
NOT_FAILURES = frozenset({"ok", "unchecked"})
"""`unchecked`: the call's schema could not be used (remote `$ref`, too large, broken, too slow to compile)."""

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
#
# Tool schemas come from the agent's request, and agents load them from any MCP server: they are untrusted
# input. Only local `#...` references are resolved; nothing is ever fetched (fastjsonschema's default would
# fetch a `$ref` with urllib: SSRF, local file reads, an event loop frozen on a slow URL or a FIFO). A schema
# over SCHEMA_MAX_BYTES is not compiled, one over FAST_MAX_BYTES goes to jsonschema (see there), compilation
# runs on a worker thread and is waited for at most COMPILE_TIMEOUT_S, a `pattern` that could backtrack
# catastrophically is never run, and a schema that cannot be used gives the verdict "unchecked", never a
# failure of the model.


Validator = Callable[[Any], str | None]  # returns None when valid, else a short detail

SCHEMA_MAX_BYTES = 256 * 1024
FAST_MAX_BYTES = 8 * 1024
"""fastjsonschema turns a schema into ~24x its size of Python source and exec()s it, and CPython compiles
source holding the GIL (~0.1 s for 13 KB of schema on a busy 2-core machine): a thread cannot keep that off
the event loop. Larger schemas use jsonschema's interpreter (pure Python: the loop keeps running)."""
COMPILE_TIMEOUT_S = 2.0
_CACHE_MAX = 512
_cache: OrderedDict[bytes, Validator] = OrderedDict()
_cache_lock = threading.Lock()
_compiling: dict[bytes, concurrent.futures.Future[Validator]] = {}
_compiler: concurrent.futures.ThreadPoolExecutor | None = None
_REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")

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


class RemoteRefError(Exception):
    """A schema asked for a document outside itself; it is never fetched."""


def _refuse(uri: str) -> Any:
    raise RemoteRefError(f"refers to {uri[:100]!r}, which is not fetched")


class _NoFetch(dict):  # type: ignore[type-arg]
    """fastjsonschema's `handlers`: it fetches with urllib any scheme without a handler, so this one claims
    every scheme (http, https, file, ftp, data, none) and refuses them all."""

    def __contains__(self, _scheme: object) -> bool:
        return True

    def __getitem__(self, _scheme: str) -> Callable[[str], Any]:
        return _refuse


_NO_FETCH = _NoFetch()


def _short(text: str) -> str:
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"


def _fast_validator(schema: Mapping[str, Any]) -> Validator:
    compiled = fastjsonschema.compile(schema, handlers=_NO_FETCH, formats=_ANY_FORMAT, use_default=False)

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
    from jsonschema_specifications import REGISTRY as SPECIFICATIONS
    from referencing import Registry

    # jsonschema's default registry still fetches unknown URIs with urllib (deprecated, but on): never.
    registry = SPECIFICATIONS.combine(Registry(retrieve=_refuse))  # type: ignore[call-arg]
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    validator = cls(schema, registry=registry)

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

    validate.unusable = _short(reason)  # type: ignore[attr-defined]
    return validate


def unusable_reason(validator: Validator) -> str | None:
    """Why a validator checks nothing (the schema could not be used), or None for a working one."""
    return getattr(validator, "unusable", None)


def _external_ref(schema: Any) -> str | None:
    """The first reference that is not local (`#...`): such a schema is not checked at all."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _REF_KEYS and isinstance(value, str) and not value.startswith("#"):
                    return value
                if isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    return None


def _without_patterns(schema: Any) -> tuple[Any, bool]:
    """The schema with its `pattern` keywords taken out, and whether it has `patternProperties`.

    Python's regex engine holds the GIL while it matches and cannot be time-limited, and not only nested
    repetitions are slow: `^a*a*a*a*a*$` is polynomial, and an unanchored search is quadratic on a long
    argument. A hostile tool's pattern could freeze every agent's calls, so patterns are never run: the rest
    of the schema is checked without them. `patternProperties` decide which properties are allowed, so a
    schema with them cannot be checked without them (it is reported unchecked)."""
    if isinstance(schema, dict):
        has_pattern_props = "patternProperties" in schema
        out = {}
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                continue  # the keyword (a property named "pattern" has a schema, a dict, as its value)
            out[key], inner = _without_patterns(value)
            has_pattern_props |= inner
        return out, has_pattern_props
    if isinstance(schema, list):
        items = [_without_patterns(v) for v in schema]
        return [v for v, _ in items], any(flag for _, flag in items)
    return schema, False


def _build(canonical: bytes) -> Validator:
    """Compile a schema from its canonical bytes (a private copy: fastjsonschema rewrites `$ref`s in place)."""
    schema = orjson.loads(canonical)
    if not isinstance(schema, dict):
        return _unusable_schema("the schema is not a JSON object")
    ref = _external_ref(schema)
    if ref is not None:
        return _unusable_schema(f"the schema refers to {ref[:100]!r}, which is not fetched")
    schema, has_pattern_props = _without_patterns(schema)
    if has_pattern_props:
        return _unusable_schema(
            "the schema's patternProperties need its regular expressions, which are never run"
        )
    if len(canonical) <= FAST_MAX_BYTES:
        try:
            return _fast_validator(schema)
        except RemoteRefError as exc:  # a `#` reference made remote by an `$id`
            return _unusable_schema(f"the schema {exc}")
        except Exception:  # noqa: BLE001 - fastjsonschema raises assorted errors on drafts it lacks
            pass
    try:
        return _slow_validator(_without_patterns(orjson.loads(canonical))[0])  # a fresh copy: see above
    except Exception as exc:  # noqa: BLE001 - the client's schema is broken: nothing to check against
        return _unusable_schema(f"the schema cannot be used: {exc}")


def schema_key(schema: Mapping[str, Any]) -> tuple[bytes, bytes | None]:
    """(cache key, canonical bytes); the bytes are None when the schema is too large or not serialisable."""
    try:
        canonical = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return b"unserialisable", None
    if len(canonical) > SCHEMA_MAX_BYTES:
        return b"oversize", None
    return hashlib.blake2b(canonical, digest_size=16).digest(), canonical


def _lookup(schema: Mapping[str, Any]) -> tuple[bytes, bytes | None, Validator | None]:
    key, canonical = schema_key(schema)
    if canonical is None:
        return key, None, _unusable_schema(f"the schema is over {SCHEMA_MAX_BYTES // 1024} KB or not JSON")
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
    return key, canonical, found


def cached_validator(schema: Mapping[str, Any]) -> Validator | None:
    """The validator for `schema` if it is ready, without compiling anything (safe on the event loop)."""
    return _lookup(schema)[2]


def _compile_soon(key: bytes, canonical: bytes) -> concurrent.futures.Future[Validator]:
    """The compilation of one schema on the compiler threads (one at a time per schema), cached when done."""
    global _compiler
    with _cache_lock:
        future = _compiling.get(key)
        if future is not None:
            return future
        if _compiler is None:
            _compiler = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="downshift-schema")
        future = _compiler.submit(_build, canonical)
        _compiling[key] = future

    def done(f: concurrent.futures.Future[Validator]) -> None:
        try:
            built = f.result()
        except Exception as exc:  # noqa: BLE001 - _build catches what schemas raise; this is a last guard
            built = _unusable_schema(f"the schema cannot be used: {exc}")
        with _cache_lock:
            _compiling.pop(key, None)
            _cache[key] = built
            _cache.move_to_end(key)
            if len(_cache) > _CACHE_MAX:
                _cache.popitem(last=False)

    future.add_done_callback(done)
    return future


def _timed_out() -> Validator:
    return _unusable_schema(f"the schema took over {COMPILE_TIMEOUT_S:g} s to compile")


def validator_for(schema: Mapping[str, Any], timeout: float | None = None) -> Validator:
    """A cached validator for `schema`, compiled on a worker thread and waited for at most `timeout`
    (COMPILE_TIMEOUT_S). Blocking: the proxy calls `prepare` instead. A schema that cannot be used gives
    a validator that checks nothing (see `unusable_reason`): it never blames the model."""
    key, canonical, found = _lookup(schema)
    if found is not None:
        return found
    assert canonical is not None
    future = _compile_soon(key, canonical)
    try:
        return future.result(COMPILE_TIMEOUT_S if timeout is None else timeout)
    except concurrent.futures.TimeoutError:
        return _timed_out()  # not cached: the compilation goes on and is used when it ends


async def prepare(schemas: Iterable[Mapping[str, Any]], timeout: float | None = None) -> None:
    """Compile the schemas not cached yet off the event loop, waiting at most `timeout` in all: afterwards
    `check_calls(..., compile=False)` finds them (or reports "unchecked")."""
    waits = []
    for schema in schemas:
        key, canonical, found = _lookup(schema)
        if found is None and canonical is not None:
            waits.append(asyncio.wrap_future(_compile_soon(key, canonical)))
    if waits:
        await asyncio.wait(waits, timeout=COMPILE_TIMEOUT_S if timeout is None else timeout)


def called_schemas(
    declared: Mapping[str, Mapping[str, Any] | None], names: Iterable[str]
) -> list[Mapping[str, Any]]:
    """The schemas of the declared tools among `names` (only called tools are ever compiled)."""
    out = []
    for name in set(names):
        schema = declared.get(name)
        if schema:
            out.append(schema)
    return out


# --------------------------------------------------------------------------- structured calls


def check_call(
    declared: Mapping[str, Mapping[str, Any] | None], call: ToolCall, *, compile: bool = True
) -> CallCheck:
    """Classify one structured call. A declared tool whose schema is None (server tools) is name-checked only.
    With `compile=False` (on the event loop) a schema not compiled yet gives "unchecked"."""
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
        validator = validator_for(schema) if compile else cached_validator(schema)
        if validator is None:
            return CallCheck(
                "unchecked", call.name, call.id, "not checked: the schema was not compiled in time"
            )
        reason = unusable_reason(validator)
        if reason:
            return CallCheck("unchecked", call.name, call.id, _short(f"not checked: {reason}"))
        try:
            problem = validator(args)
        except Exception as exc:  # noqa: BLE001 - e.g. an unresolvable local reference met while validating
            return CallCheck(
                "unchecked", call.name, call.id, _short(f"not checked: {type(exc).__name__}: {exc}")
            )
        if problem:
            return CallCheck("schema", call.name, call.id, problem)
    return CallCheck("ok", call.name, call.id)


def check_calls(
    declared: Mapping[str, Mapping[str, Any] | None],
    calls: Sequence[ToolCall],
    content: str | None = None,
    *,
    compile: bool = True,
) -> list[CallCheck]:
    """Verdicts for every structured call, then one `text_form` verdict per tool call found in `content`."""
    if not declared and not calls:
        return []
    results = [check_call(declared, call, compile=compile) for call in calls]
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
    "error executing tool",  # Continue's CLI
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

    Three agent shapes are read before the text rule: a result that is JSON carrying `success` (Cline's
    CLI: an object, or a list of them for several commands; `success: false` fails, `true` succeeds
    whatever the text says) or only an `error` string (Cline's invalid-arguments answer); Qwen Code's
    shell report (`Command: ...` with an `Exit Code: N` line after the output, however long, and an
    `Error: (none)` line that is not an error); and a Unix diagnostic `prog: [arg: ]message` ending its
    line (`cat: x: No such file or directory`, as OpenCode returns a failed command's stderr).
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
                reason = _result_failure(_as_text(item.get("output")), matcher, window)
                if reason:
                    found.append((call_id, reason))
        return found
    for message in request_body.get("messages") or ():
        if isinstance(message, dict) and message.get("role") == "tool":
            call_id = str(message.get("tool_call_id") or "")
            if fresh is not None and not fresh(call_id):
                continue
            reason = _result_failure(_as_text(message.get("content")), matcher, window)
            if reason:
                found.append((call_id, reason))
    return found


def _failed_anthropic(
    body: Mapping[str, Any], fresh: Callable[[str], bool] | None = None
) -> list[tuple[str, str]]:
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
_NONE = re.compile(r"^[\s:=]*\(?none\)?\s*$")  # "Error: (none)": a field saying there was no error
_SHELL_DIAGNOSTIC = re.compile(
    r"^[ \t]*[\w.\-/]+: (?:[^\n]{1,200}?: )?(no such file or directory|permission denied|command not found)[ \t]*$",
    re.M,
)
_QWEN_EXIT = re.compile(r"\nExit Code: (-?\d+)\n")
_JSON_HINTS = ('"success"', '"error"')


def _result_failure(text: str, matcher: re.Pattern[str], window: int) -> str | None:
    """A tool result's failure reason, or None; the agent shapes first (see `failed_results`)."""
    start = text[:1]
    if start in ("{", "[") and any(hint in text[:window] for hint in _JSON_HINTS):
        verdict = _json_failure(text)
        if verdict is not None:
            return verdict or None  # "": the JSON said it succeeded
    if text.startswith("Command: "):  # Qwen Code's shell tool: the exit code decides
        tail = text[-window:]
        m = _QWEN_EXIT.search(tail)
        if m:
            return None if m.group(1) == "0" else _short(f"matched 'exit code': Exit Code: {m.group(1)}")
    return _text_failure(text, matcher, window)


def _json_failure(text: str) -> str | None:
    """For JSON tool results: a reason on failure, "" on success, None when the JSON says neither."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    if all(isinstance(item.get("success"), bool) for item in items):
        for item in items:
            if item["success"] is False:
                error = item.get("error")
                return _short("success: false" + (f": {error}" if isinstance(error, str) and error else ""))
        return ""
    if isinstance(value, dict) and set(value) == {"error"} and isinstance(value["error"], str):
        first = value["error"].strip().splitlines()
        return _short("error: " + (first[0] if first else ""))
    return None


def _text_failure(text: str, matcher: re.Pattern[str], window: int) -> str | None:
    head = text[:window].lower()
    for m in matcher.finditer(head):  # the first indicator decides: "exit code: 0" up front means success
        rest = m.group("rest")
        if _NONE.match(rest):
            continue  # "Error: (none)" names a field, not a failure: read on
        if _ZERO.match(rest):
            return None
        return _short(f"matched {m.group(1)!r}: {text[m.start(1) : m.end()].strip()}")
    m = _SHELL_DIAGNOSTIC.search(head)
    if m:
        return _short(f"matched {m.group(1)!r}: {text[m.start() : m.end()].strip()}")
    return None

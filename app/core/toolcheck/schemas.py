"""Schema checks: does a structured tool call's JSON fit the schema its tool declared?

This runs on every proxied response, so it does no work when nothing was declared, and compiled schema
validators are cached by the schema's canonical bytes: a 40-tool request compiles each schema once, not
once per call.

Validation uses fastjsonschema (compiled to Python code: 1-10 us per check against 18-320 us for
jsonschema's interpreter on Claude Code's tool schemas), falling back to jsonschema for schemas it
cannot compile and for schemas over FAST_MAX_BYTES. Schemas are untrusted input: see "validators" below.
String `format`s are not enforced: providers do not enforce them either, so a "uri" that is a relative
path is not counted as a model failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import fastjsonschema
import orjson

from app.core.toolcheck.text_form import detect_text_form
from app.core.toolcheck.verdicts import CallCheck, ToolCall, short_detail

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


class _NoFetch(dict[str, Callable[[str], Any]]):
    """fastjsonschema's `handlers`: it fetches with urllib any scheme without a handler, so this one claims
    every scheme (http, https, file, ftp, data, none) and refuses them all."""

    def __contains__(self, _scheme: object) -> bool:
        return True

    def __getitem__(self, _scheme: str) -> Callable[[str], Any]:
        return _refuse


_NO_FETCH = _NoFetch()


def _fast_validator(schema: dict[str, Any]) -> Validator:
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
        return short_detail(f"missing required field {', '.join(repr(m) for m in missing)}{where}")
    where = f"field '{'.'.join(path)}'" if path else "arguments"
    return short_detail(f"{where}: {message}")


def _slow_validator(schema: Mapping[str, Any]) -> Validator:
    import jsonschema  # the fallback: imported for the first schema fastjsonschema cannot compile (~2 MB)
    from jsonschema_specifications import REGISTRY as SPECIFICATIONS
    from referencing import Registry

    # jsonschema's default registry still fetches unknown URIs with urllib (deprecated, but on): never.
    # `retrieve` is the documented keyword (an attrs field alias); mypy's attrs plugin does not see aliases.
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
            return short_detail(
                f"missing required field{' in ' + repr(path) if path else ''}: {error.message}"
            )
        return short_detail(f"{'field ' + repr(path) if path else 'arguments'}: {error.message}")

    return validate


class _Unusable:
    """A validator that checks nothing, and says why: the schema could not be used (never the model's fault)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = short_detail(reason)

    def __call__(self, _instance: Any) -> str | None:
        return None


def _unusable_schema(reason: str) -> Validator:
    return _Unusable(reason)


def unusable_reason(validator: Validator) -> str | None:
    """Why a validator checks nothing (the schema could not be used), or None for a working one."""
    return validator.reason if isinstance(validator, _Unusable) else None


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
        return CallCheck(
            "unknown_tool", call.name, call.id, short_detail(f"'{call.name}' is not a declared tool")
        )
    text = call.arguments.strip()
    if not text:
        args: Any = {}  # several providers stream no argument bytes at all for a no-parameter call
    else:
        try:
            args = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return CallCheck("invalid_json", call.name, call.id, short_detail(str(exc)))
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
            return CallCheck("unchecked", call.name, call.id, short_detail(f"not checked: {reason}"))
        try:
            problem = validator(args)
        except Exception as exc:  # noqa: BLE001 - e.g. an unresolvable local reference met while validating
            return CallCheck(
                "unchecked", call.name, call.id, short_detail(f"not checked: {type(exc).__name__}: {exc}")
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

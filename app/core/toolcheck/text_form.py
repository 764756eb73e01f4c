"""Text-form detection: flags a tool call the model wrote into its message text instead of emitting a
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

import json
import re
from collections.abc import Iterable
from typing import Any

from app.core.toolcheck.verdicts import CallCheck

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
    found = _Found(declared_names)
    if reserved:
        _reserved_forms(content, found)
    if markup and found.lookup:
        _markup_forms(content, found)
        if not found.calls:  # bare JSON and pythonic lists are fallbacks: the forms above own their JSON
            _fallback_forms(content, found)
    return found.calls


class _Found:
    """The text-form calls found so far: one per (tool, position), so two patterns matching the same call
    count it once; a markup form counts only when it names a declared tool (`require_declared`)."""

    __slots__ = ("calls", "lookup", "seen")

    def __init__(self, declared_names: Iterable[str]) -> None:
        self.lookup = {name.lower(): name for name in declared_names}
        self.calls: list[CallCheck] = []
        self.seen: set[tuple[str, int]] = set()

    def add(self, style: str, name: str | None, pos: int, require_declared: bool) -> None:
        raw = name or ""
        canonical = self.lookup.get(raw.lower())
        if require_declared and canonical is None:
            return
        key = (canonical or raw, pos)
        if key in self.seen:
            return
        self.seen.add(key)
        note = "" if canonical or not raw else " (not a declared tool)"
        self.calls.append(
            CallCheck("text_form", canonical or raw, None, f"{style} tool call written in message text{note}")
        )


# Reserved-token forms whose name is in group 1 or 2, and markup forms whose name is in group 1.
_RESERVED_FORMS = ((_HARMONY, "gpt-oss harmony"), (_MISTRAL, "Mistral"), (_PYTHON_TAG, "Llama python_tag"))
_TAG_FORMS = ((_FUNCTION_TAG, "<function=...>"), (_GLM, "GLM <tool_call>"), (_INVOKE, "XML <invoke>"))


def _reserved_forms(content: str, found: _Found) -> None:
    """Reserved-token forms, flagged whatever name they carry (a section marker alone counts once)."""
    for m in _KIMI.finditer(content):
        found.add("Kimi K2", m.group(1), m.start(), False)
    if not any(c.detail.startswith("Kimi") for c in found.calls) and _KIMI_SECTION in content:
        found.add("Kimi K2", None, content.index(_KIMI_SECTION), False)
    before = len(found.calls)
    for m in _DEEPSEEK.finditer(content):
        found.add("DeepSeek", m.group(1) or m.group(2), m.start(), False)
    if len(found.calls) == before and _DEEPSEEK_SECTION in content:
        found.add("DeepSeek", None, content.index(_DEEPSEEK_SECTION), False)
    for pattern, style in _RESERVED_FORMS:
        for m in pattern.finditer(content):
            found.add(style, m.group(1) or m.group(2), m.start(), False)


def _markup_forms(content: str, found: _Found) -> None:
    """Markup forms, flagged only when they name a declared tool."""
    for m in _HERMES.finditer(content):
        obj = _json_at(content, m.start(1))
        if isinstance(obj, dict) and isinstance(obj.get("name"), str):
            found.add("Hermes/Qwen <tool_call>", obj["name"], m.start(), True)
    for pattern, style in _TAG_FORMS:
        for m in pattern.finditer(content):
            found.add(style, m.group(1), m.start(), True)


def _fallback_forms(content: str, found: _Found) -> None:
    """A bare JSON object naming a declared tool with arguments, or a whole message that is a pythonic list."""
    for m in _JSON_NAME.finditer(content):
        if m.group(1).lower() not in found.lookup:
            continue
        obj = _json_at(content, m.start())
        if isinstance(obj, dict) and any(k in obj for k in _ARG_KEYS):
            found.add("JSON", m.group(1), m.start(), True)
    pythonic = _PYTHONIC.match(content)
    if pythonic:
        found.add("pythonic", pythonic.group(1), pythonic.start(), True)


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

"""Failed tool results: which tool results an agent sent back report a failure (the call ran, but failed).

The model's call may fit its schema and still fail when run; agents report that in the next request, each
wire API its own way (see `failed_results`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from app.core.toolcheck.verdicts import short_detail

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
                        short_detail("is_error" + (f": {first[0]}" if first else "")),
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
                found.append((call_id, short_detail("error" + (f": {first[0]}" if first else ""))))
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
            return (
                None if m.group(1) == "0" else short_detail(f"matched 'exit code': Exit Code: {m.group(1)}")
            )
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
                return short_detail(
                    "success: false" + (f": {error}" if isinstance(error, str) and error else "")
                )
        return ""
    if isinstance(value, dict) and set(value) == {"error"} and isinstance(value["error"], str):
        first = value["error"].strip().splitlines()
        return short_detail("error: " + (first[0] if first else ""))
    return None


def _text_failure(text: str, matcher: re.Pattern[str], window: int) -> str | None:
    head = text[:window].lower()
    for m in matcher.finditer(head):  # the first indicator decides: "exit code: 0" up front means success
        rest = m.group("rest")
        if _NONE.match(rest):
            continue  # "Error: (none)" names a field, not a failure: read on
        if _ZERO.match(rest):
            return None
        return short_detail(f"matched {m.group(1)!r}: {text[m.start(1) : m.end()].strip()}")
    diagnostic = _SHELL_DIAGNOSTIC.search(head)
    if diagnostic:
        return short_detail(
            f"matched {diagnostic.group(1)!r}: {text[diagnostic.start() : diagnostic.end()].strip()}"
        )
    return None

"""Tool-call reliability checks: did the model call a declared tool, with JSON that fits its schema?

Everything here is format-independent: the proxy extracts the declared tools and the emitted calls from
whichever wire API it saw (`extract`) and asks `check_calls` (`schemas`), which also looks for calls the
model wrote as text (`text_form`). `failed_results` (`tool_results`) reads the agent's next request for
tool results that report a failure. `verdicts` holds the types they share. Import from here.
"""

from __future__ import annotations

from app.core.toolcheck.extract import (
    calls_anthropic,
    calls_openai,
    calls_responses,
    declared_anthropic,
    declared_openai,
    text_anthropic,
)
from app.core.toolcheck.schemas import (
    cached_validator,
    called_schemas,
    check_calls,
    prepare,
    unusable_reason,
    validator_for,
)
from app.core.toolcheck.text_form import detect_text_form
from app.core.toolcheck.tool_results import (
    DEFAULT_ERROR_PATTERNS,
    ERROR_WINDOW,
    failed_results,
    gemini_call_id,
)
from app.core.toolcheck.verdicts import NOT_FAILURES, CallCheck, ToolCall

__all__ = [
    "DEFAULT_ERROR_PATTERNS",
    "ERROR_WINDOW",
    "NOT_FAILURES",
    "CallCheck",
    "ToolCall",
    "cached_validator",
    "called_schemas",
    "calls_anthropic",
    "calls_openai",
    "calls_responses",
    "check_calls",
    "declared_anthropic",
    "declared_openai",
    "detect_text_form",
    "failed_results",
    "gemini_call_id",
    "prepare",
    "text_anthropic",
    "unusable_reason",
    "validator_for",
]

"""What a check says about one tool call: the call as emitted, the verdict, and which verdicts are failures.

Shared by the schema checks, the text-form detection and the probe/shadow/rollup code that count failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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


def short_detail(text: str) -> str:
    """A detail cut to DETAIL_MAX characters: details are stored with every call."""
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"

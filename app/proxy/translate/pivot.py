"""The pivot format (OpenAI chat completions), read and written the same way by every translator.

Each client API is translated to and from chat completions, so the same small questions come up in each
translator: what text content parts carry, where a provider put its reasoning, a fresh id, a max_tokens
clamped to the caps, which reasoning effort a target takes, what an error inside a stream says. Each has
one answer here, so the Anthropic, Responses and Gemini translators cannot drift apart (their copies had:
three `reasoning_text`s disagreed about an empty `reasoning_content`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from app.proxy.profiles import Profile, nearest_effort

EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}  # parameters of a tool that takes none
TOOL_IMAGES_NOTE = "Images returned by the tool results above:"  # heads the user turn carrying them


def random_id(prefix: str = "") -> str:
    """`prefix` + 24 random hex characters: the ids we mint for responses, messages, items and calls."""
    return prefix + os.urandom(12).hex()


def content_text(content: Any) -> str:
    """The text of a chat message's or delta's content: a string as is, text parts (Mistral) joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type", "text") == "text"
        )
    return ""


def reasoning_text(holder: Mapping[str, Any]) -> str:
    """Readable reasoning in a chat message, under either name providers use ("" when there is none).

    DeepSeek and vLLM say `reasoning_content`, OpenRouter and others `reasoning`; an empty one of the first
    does not hide the second.
    """
    text = holder.get("reasoning_content")
    if not isinstance(text, str) or not text:
        text = holder.get("reasoning")
    return text if isinstance(text, str) else ""


def collapse_text(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text-only content as one string: the form every OpenAI-compatible server and chat template accepts.

    Parts that are not text, or carry a `cache_control` mark, keep the list form.
    """
    texts: list[str] = []
    for part in parts:
        if part["type"] != "text" or "cache_control" in part:
            return parts
        texts.append(part["text"])
    return "\n\n".join(texts)


def capped(value: Any, *caps: int | None) -> int | None:
    """`value` (when an int) clamped to every cap that is set; with no value, the smallest cap, else None."""
    result = value if isinstance(value, int) and not isinstance(value, bool) else None
    for cap in caps:
        if cap is not None:
            result = cap if result is None else min(result, cap)
    return result


def budget_effort(budget: int) -> str:
    """The reasoning effort a thinking budget in tokens stands for (Anthropic's and Gemini's budgets)."""
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def set_reasoning_effort(out: dict[str, Any], wanted: str | None, profile: Profile) -> None:
    """`reasoning_effort` for a target that takes one: the nearest it accepts; "none" only where it says so."""
    accepted = profile.reasoning_efforts
    if wanted is None or not accepted or (wanted == "none" and "none" not in accepted):
        return
    effort = nearest_effort(wanted, accepted)
    if effort is not None:
        out["reasoning_effort"] = effort


def stream_error(error: Any) -> tuple[str, str]:
    """(kind, message) of the `error` a provider put in a stream chunk, an object or a bare string."""
    if isinstance(error, Mapping):
        kind = str(error.get("code") or error.get("type") or "server_error")
        message = error.get("message")
    else:
        kind, message = "server_error", error
    return kind, str(message or "the upstream reported an error")

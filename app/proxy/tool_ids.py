"""The log keeps each tool call under the id its client was given, not the id the upstream sent.

A later request reports a failed tool result under the client's id (`tool_use_id`, `tool_call_id`,
`call_id`), and the writer marks the earlier tool-call row holding that id. On a translated route the
two differ: a Messages client over a chat upstream sees `toolu_X` for the upstream's `call_X` (and the
reverse for a chat or Responses client over Anthropic), and a translator mints an id where the
upstream sent none. The observers watch the upstream's side, so their verdicts carry upstream ids;
`relabel` swaps in the client's.

The (upstream id, client id) pairs come from the translation itself, so they cannot drift from it:
stream translators note one pair as they open each call (`tool_ids`); for a whole answer the ids are
read from the upstream's body and from the translated one, which list the calls in the same order.
Same-format routes pass ids through and need nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.core.records import ToolCallResult


def whole_pairs(
    upstream_api: str, upstream: Mapping[str, Any], client_api: str, answer: Mapping[str, Any] | list[Any]
) -> list[tuple[str, str]]:
    """(upstream id, client id) for each tool call of a whole translated answer, in order."""
    return list(zip(_ids(upstream_api, upstream), _ids(client_api, answer), strict=False))


def _ids(api: str, body: Mapping[str, Any] | list[Any]) -> list[str]:
    if api == "gemini":  # a candidate's functionCall parts (the JSON-array form holds one whole answer)
        answer = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else body
        candidates = answer.get("candidates") if isinstance(answer, dict) else None
        first = (
            candidates[0]
            if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict)
            else {}
        )
        content = first.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        return [
            str((p.get("functionCall") or {}).get("id") or "")
            for p in _dicts(parts)
            if isinstance(p.get("functionCall"), dict)
        ]
    if not isinstance(body, Mapping):
        return []
    if api == "anthropic":
        return [str(b.get("id") or "") for b in _dicts(body.get("content")) if b.get("type") == "tool_use"]
    if api == "responses":
        kinds = ("function_call", "custom_tool_call")
        return [str(i.get("call_id") or "") for i in _dicts(body.get("output")) if i.get("type") in kinds]
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = first.get("message")
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    return [str(c.get("id") or "") for c in _dicts(calls)]


def _dicts(items: Any) -> Iterable[Mapping[str, Any]]:
    return (i for i in items if isinstance(i, dict)) if isinstance(items, list) else ()


def relabel(results: Sequence[ToolCallResult], pairs: Sequence[tuple[str, str]] | None) -> None:
    """Give each structured call's verdict the id its client saw.

    A call the upstream named is looked up by its id; calls it left unnamed take the ids the translator
    minted, in the order it opened them. A call written in the text has no id on either side."""
    if not pairs or not results:
        return
    by_id: dict[str, str] = {}
    unnamed: list[str] = []
    for upstream_id, client_id in pairs:
        if upstream_id:
            by_id.setdefault(upstream_id, client_id)
        else:
            unnamed.append(client_id)
    unnamed.reverse()
    for result in results:
        if result.kind == "text_form":
            continue
        if result.tool_call_id:
            result.tool_call_id = by_id.get(result.tool_call_id, result.tool_call_id)
        elif unnamed:
            result.tool_call_id = unnamed.pop()

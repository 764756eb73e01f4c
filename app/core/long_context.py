"""Context-aware routing: a preset's `long_context = { above_tokens = 60000, role = "plan" }` sends loop calls
whose prompt is over `above_tokens` to another role, for executors that fall apart in the back half of a
session (the scorecard shows where: app.core.queries.executors).

Counted cheaply, before the request goes out. Every token of a prompt comes from at least one byte of the
request body (bar a few hundred the counter adds for framing and tool-use prompts: SLACK), so a body of at
most `above_tokens - SLACK` bytes cannot be over the limit: most calls are decided by `len(body)` alone, with no parsing and no tokenizer. Only a body larger than that is counted with the
offline tokenizer (app.core.tokens: cl100k, an estimate for other models; see its accuracy notes); the
proxy runs that count on a worker thread, never on its event loop.

Only the loop is rerouted (calls whose natural route is the `default` role), as with escalation: side
calls (background, subagent, plan) and explicit provider/model targets keep their route.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from app.core.config import Config, LongContext
from app.core.routing import RoutingError, route

LOOP_ROLE = "default"
SLACK = 1024


def rule_for(config: Config, requested: str | None) -> LongContext | None:
    """The active preset's rule when it applies to this call (a loop call), else None."""
    preset = config.active_preset
    rule = preset.long_context if preset is not None else None
    if rule is None:
        return None
    try:
        natural = route(config, requested)
    except RoutingError:
        return None
    return rule if natural.role == LOOP_ROLE else None


def may_exceed(rule: LongContext, body_len: int) -> bool:
    """False when the body is too small to hold more than `above_tokens` tokens (no count needed). SLACK
    covers the tokens a count adds that are not in the body (Anthropic's tool-use prompt, message framing)."""
    return body_len + SLACK > rule.above_tokens


def prompt_tokens(data: dict[str, Any], client_api: str) -> int:
    """The request's prompt tokens by the offline counter. Blocking (the tokenizer): not for the event loop."""
    from app.core import tokens

    if client_api == "anthropic":
        return tokens.count_anthropic_request(data)
    if client_api == "openai":
        return tokens.count_openai_request(data)
    # Responses: instructions, input items and tools as text (no framing table exists for this API)
    parts = [data.get("instructions"), data.get("input"), data.get("tools")]
    return sum(tokens.count_text(p if isinstance(p, str) else orjson.dumps(p).decode()) for p in parts if p)


def is_long(rule: LongContext, data: dict[str, Any], body_len: int, client_api: str) -> bool:
    return may_exceed(rule, body_len) and prompt_tokens(data, client_api) > rule.above_tokens


def with_rule(config: Config, preset: str, above_tokens: int, role: str = "plan") -> Config:
    """`config` with the preset's long-context rule set (the scorecard's one-click fix)."""
    if preset not in config.presets:
        raise KeyError(f"no preset named {preset!r}")
    presets = dict(config.presets)
    presets[preset] = replace(presets[preset], long_context=LongContext(above_tokens, role))
    return replace(config, presets=presets)


def fix_for(config: Config, target: str, above_tokens: int, role: str = "plan") -> dict[str, Any] | None:
    """Where the one-click fix for `target` ("provider/model") would go: the active preset if its loop runs on
    that model, else the first preset whose loop does; None when no preset's loop runs on it. `usable` is
    False (with `why`) when that preset has no different model for `role` to send long prompts to."""
    names = [config.active, *(n for n in config.presets if n != config.active)]
    for name in names:
        preset = config.presets.get(name)
        if preset is None or str(preset.default) != target:
            continue
        other = preset.roles.get(role)
        usable = other is not None and other != preset.default
        current = preset.long_context
        return {
            "preset": name,
            "role": role,
            "above_tokens": above_tokens,
            "to": str(other) if other else None,
            "usable": usable,
            "already": current is not None and current.above_tokens <= above_tokens,
            "why": ""
            if usable
            else f"preset {name!r} has no {role} model of its own to send long prompts to",
        }
    return None

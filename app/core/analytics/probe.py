"""The executor check: a fixed battery of tool-use probes run against one candidate model.

"You pick by running your own loop on a real task and watching whether it drives the tools cleanly."
`downshift probe PROVIDER/MODEL` sends each probe straight to the provider with the provider's config
(base URL, API format, headers, key), not through the proxy: the proxy would fall back to another target
when the candidate fails, which is exactly what must not be hidden here, and probes must not count in
the call log, the budgets or the savings. Each tool call is judged by the same checks as proxied traffic
(`app.core.toolcheck`), and each probe's validity, latency and cost is stored in `probe_results`.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, insert

from app.core import toolcheck
from app.core.config import Config, Provider, Target
from app.core.pricing import price_call
from app.core.redact import redact_text
from app.core.storage.models import ProbeResult
from app.core.usage import normalize_anthropic, normalize_openai

MAX_TOKENS = 1024


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
    }


WEATHER = _tool("get_weather", "Current weather for one city.", {"city": {"type": "string"}}, ["city"])
EVENT = _tool(
    "create_event",
    "Create a calendar event.",
    {
        "title": {"type": "string"},
        "time": {
            "type": "object",
            "properties": {"start": {"type": "string"}, "end": {"type": "string"}},
            "required": ["start", "end"],
            "additionalProperties": False,
        },
        "attendees": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
                "required": ["name", "email"],
                "additionalProperties": False,
            },
        },
    },
    ["title", "time", "attendees"],
)
MODE = _tool(
    "set_mode",
    "Set the deployment mode.",
    {
        "mode": {"type": "string", "enum": ["fast", "safe", "off"]},
        "reason": {"type": "string", "minLength": 3},
    },
    ["mode", "reason"],
)
TICKET = _tool(
    "lookup_ticket",
    "Look up an incident ticket.",
    {"ticket_id": {"type": "string", "pattern": "^INC-[0-9]+$"}},
    ["ticket_id"],
)
READ = _tool("read_file", "Read a text file from the project.", {"path": {"type": "string"}}, ["path"])

SYSTEM = (
    "You are a coding agent. Use the provided tools whenever they can answer; do not describe calls in text."
)
NEEDLE = "INC-73914"
SECRET = "PELICAN-42"


def _long_document(lines: int = 2400) -> str:
    """About 25k tokens of log lines with one fact in the middle: tool use must survive a long context."""
    body = [
        f"{i:05d} worker-{i % 17} heartbeat ok, queue depth {i % 7}, latency {(i * 37) % 250} ms"
        for i in range(lines)
    ]
    body.insert(lines // 2, f"{lines // 2:05d} pager: the incident ticket for the outage is {NEEDLE}")
    return "\n".join(body)


@dataclass
class Turn:
    """What one response held: its verdicts and text, plus the exchange's cost and latency."""

    checks: list[toolcheck.CallCheck]
    calls: list[toolcheck.ToolCall]
    text: str
    latency_ms: float
    input_tokens: int
    output_tokens: int
    cost: float | None


Judge = Callable[[list[Turn]], str | None]  # None: passed, else why not


@dataclass
class Probe:
    name: str
    tools: list[dict[str, Any]]
    prompt: str
    judge: Judge
    tool_result: str | None = None  # multi-turn: the result fed back for every call of the first turn


@dataclass
class ProbeOutcome:
    probe: str
    passed: bool
    tool_calls: int
    tool_failures: int
    failure_kinds: dict[str, int]
    latency_ms: float | None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    detail: str = ""
    turns: list[Turn] = field(default_factory=list, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "turns"}


def _args(call: toolcheck.ToolCall) -> dict[str, Any]:
    try:
        value = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _first_problem(turn: Turn) -> str | None:
    if not turn.checks:
        return "no tool call" + (f" (answered: {turn.text[:80]!r})" if turn.text else "")
    bad = [c for c in turn.checks if c.kind not in toolcheck.NOT_FAILURES]
    return f"{bad[0].kind}: {bad[0].name}: {bad[0].detail}" if bad else None


def _expect(name: str, test: Callable[[list[dict[str, Any]]], str | None]) -> Judge:
    def judge(turns: list[Turn]) -> str | None:
        problem = _first_problem(turns[0])
        if problem:
            return problem
        args = [_args(c) for c in turns[0].calls if c.name == name]
        return test(args) if args else f"did not call {name}"

    return judge


def _cities(args: list[dict[str, Any]]) -> str | None:
    got = {str(a.get("city", "")).lower() for a in args}
    missing = [c for c in ("paris", "tokyo", "lima") if not any(c in g for g in got)]
    return f"{len(args)} call(s) in one turn, missing {', '.join(missing)}" if missing else None


def _multi_turn(turns: list[Turn]) -> str | None:
    problem = _first_problem(turns[0])
    if problem:
        return f"turn 1: {problem}"
    if len(turns) < 2:
        return "no second turn"
    second = turns[1]
    bad = [c for c in second.checks if c.kind not in toolcheck.NOT_FAILURES]
    if bad:
        return f"turn 2: {bad[0].kind}: {bad[0].detail}"
    return (
        None
        if SECRET in second.text or second.calls
        else f"turn 2 ignored the tool result ({second.text[:80]!r})"
    )


PROBES: tuple[Probe, ...] = (
    Probe(
        "single",
        [WEATHER],
        "What is the weather in Paris right now?",
        _expect(
            "get_weather", lambda a: None if "paris" in str(a[0].get("city", "")).lower() else "wrong city"
        ),
    ),
    Probe(
        "parallel",
        [WEATHER],
        "Get the current weather for Paris, Tokyo and Lima. Call the tool for all three at once.",
        _expect("get_weather", _cities),
    ),
    Probe(
        "nested",
        [EVENT],
        "Book 'Design review' tomorrow 10:00-11:00 with Ana (ana@example.com) and Bo (bo@example.com).",
        _expect(
            "create_event",
            lambda a: None if len(a[0].get("attendees") or []) == 2 else "expected 2 attendees",
        ),
    ),
    Probe(
        "enum_required",
        [MODE],
        "Our tests are failing: put the deployment in safe mode, and say why.",
        _expect("set_mode", lambda a: None if a[0].get("mode") == "safe" else f"mode {a[0].get('mode')!r}"),
    ),
    Probe(
        "long_context",
        [TICKET],
        _long_document() + "\n\nLook up the incident ticket mentioned in the log above.",
        _expect(
            "lookup_ticket",
            lambda a: None if a[0].get("ticket_id") == NEEDLE else f"ticket {a[0].get('ticket_id')!r}",
        ),
    ),
    Probe(
        "multi_turn",
        [READ],
        "Read notes.txt and tell me the secret word it contains.",
        _multi_turn,
        tool_result=f"The secret word is {SECRET}.",
    ),
)


def request_body(api: str, model: str, probe: Probe, history: list[dict[str, Any]]) -> dict[str, Any]:
    """One probe request in the provider's API (`anthropic` Messages, else chat completions)."""
    if api == "anthropic":
        tools = [
            {"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
            for t in probe.tools
        ]
        return {
            "model": model,
            "max_tokens": MAX_TOKENS,
            "system": SYSTEM,
            "messages": history,
            "tools": tools,
        }
    tools = [{"type": "function", "function": t} for t in probe.tools]
    return {
        "model": model,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "system", "content": SYSTEM}, *history],
        "tools": tools,
    }


class ProbeClient:
    """Speaks the provider's own API (OpenAI chat completions or Anthropic messages), non-streaming."""

    def __init__(
        self, config: Config, provider: Provider, model: str, key: str | None, http: httpx.Client
    ) -> None:
        self.config, self.provider, self.model, self.key, self.http = config, provider, model, key, http

    def _headers(self) -> dict[str, str]:
        from app.core.provider_models import auth_headers

        return {"Content-Type": "application/json", **auth_headers(self.provider, self.key)}

    def _secrets(self) -> list[str]:
        return [self.key] if self.key else []

    def body(self, probe: Probe, history: list[dict[str, Any]]) -> dict[str, Any]:
        return request_body(self.provider.api, self.model, probe, history)

    def send(self, probe: Probe, history: list[dict[str, Any]]) -> Turn:
        body = self.body(probe, history)
        path = "/messages" if self.provider.api == "anthropic" else "/chat/completions"
        started = time.perf_counter()
        resp = self.http.post(
            self.provider.base_url + path, content=orjson.dumps(body), headers=self._headers()
        )
        latency = (time.perf_counter() - started) * 1000
        if resp.status_code >= 400:  # masked before it is cut: no half key survives
            text = redact_text(resp.text, self._secrets()) or ""
            raise httpx.HTTPStatusError(
                f"HTTP {resp.status_code}: {text[:300]}", request=resp.request, response=resp
            )
        data = resp.json()
        declared = {t["name"]: t["parameters"] for t in probe.tools}
        if self.provider.api == "anthropic":
            content = data.get("content") or []
            calls, text = toolcheck.calls_anthropic(content), toolcheck.text_anthropic(content)
            usage = normalize_anthropic(data.get("usage") or {})
        else:
            message = (data.get("choices") or [{}])[0].get("message") or {}
            calls, text = toolcheck.calls_openai(message), message.get("content") or ""
            usage = normalize_openai(data.get("usage") or {}, self.provider.kind)
        text = redact_text(text, self._secrets()) or ""  # quoted (cut) in details: masked before it is cut
        cost = price_call(usage, self.config, self.provider, self.model).cost
        checks = toolcheck.check_calls(declared, calls, text)
        return Turn(checks, calls, text, latency, usage.prompt, usage.output, cost)

    def follow_up(self, probe: Probe, first: Turn) -> list[dict[str, Any]]:
        """The conversation after the first turn, with `probe.tool_result` answering every call."""
        user = {"role": "user", "content": probe.prompt}
        ids = [c.id or f"call_{i}" for i, c in enumerate(first.calls)]
        if self.provider.api == "anthropic":
            uses = [
                {"type": "tool_use", "id": i, "name": c.name, "input": _args(c)}
                for i, c in zip(ids, first.calls, strict=True)
            ]
            results = [{"type": "tool_result", "tool_use_id": i, "content": probe.tool_result} for i in ids]
            return [user, {"role": "assistant", "content": uses}, {"role": "user", "content": results}]
        calls = [
            {"id": i, "type": "function", "function": {"name": c.name, "arguments": c.arguments or "{}"}}
            for i, c in zip(ids, first.calls, strict=True)
        ]
        return [
            user,
            {"role": "assistant", "content": None, "tool_calls": calls},
            *({"role": "tool", "tool_call_id": i, "content": probe.tool_result} for i in ids),
        ]

    def run(self, probe: Probe) -> ProbeOutcome:
        turns: list[Turn] = []
        try:
            turns.append(self.send(probe, [{"role": "user", "content": probe.prompt}]))
            if probe.tool_result is not None and turns[0].calls and not _first_problem(turns[0]):
                turns.append(self.send(probe, self.follow_up(probe, turns[0])))
            problem = probe.judge(turns)
        except (httpx.HTTPError, ValueError) as exc:
            problem = f"request failed: {exc}"
        if problem:  # stored and printed: a provider's text (an error, an answer echoing the key) is masked
            problem = redact_text(problem, self._secrets())
        checks = [c for t in turns for c in t.checks]
        kinds: Counter[str] = Counter(c.kind for c in checks if c.kind not in toolcheck.NOT_FAILURES)
        costs = [t.cost for t in turns]
        return ProbeOutcome(
            probe=probe.name,
            passed=problem is None and bool(turns),
            tool_calls=len(checks),
            tool_failures=sum(kinds.values()),
            failure_kinds=dict(kinds),
            latency_ms=sum(t.latency_ms for t in turns) if turns else None,
            input_tokens=sum(t.input_tokens for t in turns),
            output_tokens=sum(t.output_tokens for t in turns),
            cost_usd=None if not turns or None in costs else sum(c or 0.0 for c in costs),
            detail=problem or "",
            turns=turns,
        )


def run_probes(
    config: Config, target: Target, key: str | None, *, timeout: float | None = None
) -> list[ProbeOutcome]:
    provider = config.providers.get(target.provider)
    if provider is None:
        raise KeyError(f"no provider named {target.provider!r} (have: {', '.join(config.providers)})")
    t = provider.timeouts
    limits = httpx.Timeout(timeout or t.first_byte, connect=t.connect)
    with httpx.Client(timeout=limits) as http:
        client = ProbeClient(config, provider, target.model, key, http)
        return [client.run(p) for p in PROBES]


def store(
    engine: Engine, target: Target, outcomes: list[ProbeOutcome], started_at: float | None = None
) -> str:
    run_id = uuid.uuid4().hex
    started_at = time.time() if started_at is None else started_at
    rows = [
        {
            "run_id": run_id,
            "target": str(target),
            "probe": o.probe,
            "started_at": started_at,
            "passed": o.passed,
            "tool_calls": o.tool_calls,
            "tool_failures": o.tool_failures,
            "failure_kinds": orjson.dumps(o.failure_kinds).decode() if o.failure_kinds else None,
            "latency_ms": o.latency_ms,
            "input_tokens": o.input_tokens,
            "output_tokens": o.output_tokens,
            "cost_usd": o.cost_usd,
            "detail": o.detail or None,
        }
        for o in outcomes
    ]
    with engine.begin() as conn:
        conn.execute(insert(ProbeResult), rows)
    return run_id


TYPICAL_OUTPUT = 150  # tokens a probe answer takes (a tool call or two, a sentence): the estimate's output
FOLLOW_UP_TOKENS = 120  # what a multi-turn probe's second request adds: the first turn's call and its result


@dataclass(frozen=True, slots=True)
class _Count:
    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    cost: float | None = None


@dataclass(frozen=True, slots=True)
class ProbeEstimate:
    """What the battery will cost before it runs: its prompt tokens counted offline, priced like a call."""

    requests: int
    input_tokens: int
    output_tokens: int  # typical answers
    max_output_tokens: int  # every answer at MAX_TOKENS
    cost_usd: float | None  # None: no known price for the model
    max_cost_usd: float | None
    price_source: str  # resolve_price's source: override | listed | table | local | unpriced

    def describe(self) -> str:
        """ "6 probes, 7 requests, about 26,100 input tokens: about $0.0081 (at most $0.015 ...)"."""
        head = (
            f"{len(PROBES)} probes, {self.requests} requests, about {self.input_tokens:,} input and "
            f"{self.output_tokens:,} output tokens"
        )
        if self.price_source == "local":
            return f"{head}: free (a local model)."
        if self.cost_usd is None or self.max_cost_usd is None:
            return f"{head}: no price is known for this model, so the cost cannot be estimated."
        return (
            f"{head}: about {_money(self.cost_usd)} (at most {_money(self.max_cost_usd)} if "
            f"every answer runs to {MAX_TOKENS:,} tokens), at {self.price_source} prices."
        )


def _money(value: float) -> str:
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if value >= 1 else f"${value:.3f}" if value >= 0.01 else f"${value:.5f}"


def estimate(config: Config, target: Target) -> ProbeEstimate:
    """The battery's cost at the model's price, before anything is sent. Blocking (the tokenizer): run it off
    the GUI thread. A multi-turn probe counts its follow-up request too."""
    from app.core import tokens
    from app.core.pricing import cost_at, resolve_price

    provider = config.providers.get(target.provider)
    if provider is None:
        raise KeyError(f"no provider named {target.provider!r} (have: {', '.join(config.providers)})")
    count = tokens.count_anthropic_request if provider.api == "anthropic" else tokens.count_openai_request
    bodies = [
        (p, count(request_body(provider.api, target.model, p, [{"role": "user", "content": p.prompt}])))
        for p in PROBES
    ]
    per_request = [n for _p, n in bodies] + [
        n + FOLLOW_UP_TOKENS for p, n in bodies if p.tool_result is not None
    ]
    requests = len(per_request)
    resolved = resolve_price(config, provider, target.model)
    typical, worst = requests * TYPICAL_OUTPUT, requests * MAX_TOKENS

    def cost(output_each: int) -> float | None:
        if resolved.price is None:
            return None
        # tiers apply per request
        return sum(cost_at(_Count(n, output_each), resolved.price) for n in per_request)

    return ProbeEstimate(
        requests, sum(per_request), typical, worst, cost(TYPICAL_OUTPUT), cost(MAX_TOKENS), resolved.source
    )

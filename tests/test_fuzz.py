"""Property-based fuzzing of the live proxy: real agent requests with random mutations, random JSON and
random bytes, thrown at every generation endpoint and count_tokens. A client mistake is never a 500 (a 5xx
may only be the upstream's own, and says so in the log), the proxy never goes down, and every request
leaves exactly one row."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import logged_calls
from fuzz_strategies import FUZZ_SETTINGS, RANDOM_BYTES, edited, random_json
from hypothesis import given
from hypothesis import strategies as st

from app.testing.agent_traffic import anthropic_agent_request, openai_agent_request

GOLDEN = Path(__file__).parent / "golden"
ENDPOINTS = ("/v1/chat/completions", "/v1/messages", "/v1/responses", "/v1/messages/count_tokens")


def _seeds() -> dict[str, list[dict[str, Any]]]:
    codex = json.loads((GOLDEN / "responses" / "codex_request.json").read_text())
    openai = [
        openai_agent_request(size_kb=2, tools=3, turns=3, seed=1),
        openai_agent_request(size_kb=2, tools=2, turns=2, stream=True, seed=2),
        {"model": "default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50},
    ]
    anthropic = [
        anthropic_agent_request(size_kb=2, tools=3, turns=3, seed=3),
        anthropic_agent_request(size_kb=2, tools=2, turns=2, stream=True, seed=4),
        {
            "model": "claude-3-5-haiku-latest",
            "max_tokens": 64,
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        },
    ]
    responses = [
        codex,
        {"model": "default", "input": "hi", "stream": True},
        {"model": "default", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}]},
    ]
    return {
        "/v1/chat/completions": openai,
        "/v1/messages": anthropic,
        "/v1/responses": responses,
        "/v1/messages/count_tokens": anthropic,
    }


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn, endpoint: str) -> bytes:
    """A real request for `endpoint` (or, sometimes, another one's) with 1-4 random edits anywhere in it."""
    pool = SEEDS[endpoint] if draw(st.integers(0, 4)) else SEEDS[draw(st.sampled_from(ENDPOINTS))]
    return edited(draw, draw(st.sampled_from(pool)))


KEYS = [
    "model",
    "messages",
    "input",
    "stream",
    "max_tokens",
    "tools",
    "system",
    "tool_choice",
    "metadata",
    "temperature",
]
BODIES = {
    "mutated": lambda endpoint: mutated(endpoint),
    "random_json": lambda endpoint: random_json(KEYS),
    "random_bytes": lambda endpoint: RANDOM_BYTES,
}


@pytest.mark.parametrize("kind", list(BODIES))
def test_fuzzed_requests_never_crash_and_are_all_logged(proxy, mock, token, core, kind) -> None:  # type: ignore[no-untyped-def]
    mock.default = _lenient_default()
    numbers = itertools.count()
    sent: dict[str, tuple[str, int, bytes]] = {}
    client = httpx.Client(base_url=proxy.url, timeout=30)

    @FUZZ_SETTINGS
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        endpoint = data.draw(st.sampled_from(ENDPOINTS))
        body = data.draw(BODIES[kind](endpoint))
        ua = f"fuzz/{kind}/{next(numbers)}"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "User-Agent": ua}
        if endpoint.startswith("/v1/messages"):
            headers["anthropic-version"] = "2023-06-01"
        r = client.post(endpoint, content=body, headers=headers)
        sent[ua] = (endpoint, r.status_code, body)
        if r.status_code < 500:
            assert r.status_code in (200, 400, 401, 402, 404, 413, 415, 422, 429) or r.status_code < 300, (
                r.status_code,
                body,
            )
        if r.status_code >= 400:  # every error in the caller's API shape
            error = r.json()
            if endpoint.startswith("/v1/messages"):
                assert error["type"] == "error" and error["error"]["message"], error
            else:
                assert error["error"]["message"], error

    try:
        run()
        assert client.get("/health").status_code == 200  # still up
    finally:
        client.close()
    rows = [r for r in logged_calls(core) if (r.get("user_agent") or "").startswith("fuzz/")]
    by_agent: dict[str, list[dict]] = {}
    for row in rows:
        by_agent.setdefault(row["user_agent"], []).append(row)
    assert set(by_agent) == set(sent)  # every request has a row...
    assert all(len(v) == 1 for v in by_agent.values())  # ...exactly one
    for ua, (endpoint, status, body) in sent.items():
        (row,) = by_agent[ua]
        assert row["status"] == status, (endpoint, body, row)
        assert row["error_kind"] != "internal_error", (endpoint, body, row["error_message"])
        if status >= 500:  # only ever the provider's own failure, passed on and labelled as such
            assert row["error_kind"].startswith("upstream_") or row["error_kind"] in (
                "bad_upstream_json",
                "connect_error",
            ), row
    assert not mock.errors
    if kind == "mutated":  # most edits leave a request the provider can serve: not everything was refused
        statuses = [status for _, status, _ in sent.values()]
        assert statuses.count(200) > len(statuses) // 4, statuses


def _lenient_default():  # type: ignore[no-untyped-def]
    """The mock's default echo reply, answered as text whatever the shape of the last message."""
    from app.testing.script import Reply

    return Reply(text="fuzzed answer")


def test_status_of_a_fuzzed_body_is_stable(proxy, token) -> None:  # type: ignore[no-untyped-def]
    """The same bad body twice gets the same refusal (no state leaks from one request into the next)."""
    body = b'{"model": "default", "messages": [{"role": "user", "content": {"x": [1, {"y": null}]}}], "tools": [{}]}'
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "anthropic-version": "2023-06-01",
    }
    for endpoint in ENDPOINTS:
        first = httpx.post(f"{proxy.url}{endpoint}", content=body, headers=headers).status_code
        second = httpx.post(f"{proxy.url}{endpoint}", content=body, headers=headers).status_code
        assert first == second and first != 500, endpoint

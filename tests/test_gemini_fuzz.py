"""Property-based fuzzing of the live Gemini endpoints, as tests/test_fuzz.py does for the other three APIs:
real Gemini requests (the golden ones, a Gemini CLI turn among them) with random edits, random JSON and
random bytes. A client mistake is never a 500, every error is in Google's shape, the proxy stays up, and
every request leaves exactly one row."""

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

from app.testing.script import Reply

GOLDEN = Path(__file__).parent / "golden" / "gemini"
PATHS = ("/v1beta/models/default:generateContent", "/v1beta/models/default:streamGenerateContent?alt=sse",
         "/v1beta/models/gemini-2.5-pro:streamGenerateContent", "/v1/models/plan:countTokens")  # fmt: skip
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 413: "INVALID_ARGUMENT",
                415: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED"}  # fmt: skip


def _seeds() -> list[dict[str, Any]]:
    seeds = []
    for path in sorted(GOLDEN.glob("req_*.json")):
        case = json.loads(path.read_text())
        if "raises" not in case:
            seeds.append({k: v for k, v in case["input"].items() if k not in ("model", "stream")})
    return seeds


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    return edited(draw, draw(st.sampled_from(SEEDS)))


KEYS = ["contents", "parts", "systemInstruction", "tools", "generationConfig", "toolConfig", "system_instruction",
        "generation_config"]  # fmt: skip
BODIES = {"mutated": mutated, "random_json": lambda: random_json(KEYS), "random_bytes": lambda: RANDOM_BYTES}


def test_seeds_are_served_as_they_are(proxy, mock, token) -> None:  # type: ignore[no-untyped-def]
    """The unmutated seeds are good requests: each one is answered 200 (else the fuzzing proves little)."""
    mock.default = Reply(text="fine")
    assert len(SEEDS) >= 5
    for seed in SEEDS:
        r = httpx.post(f"{proxy.url}{PATHS[0]}", json=seed, headers={"x-goog-api-key": token}, timeout=30)
        assert r.status_code == 200, (r.text, seed)


@pytest.mark.parametrize("kind", list(BODIES))
def test_fuzzed_gemini_requests_never_crash_and_are_all_logged(proxy, mock, token, core, kind) -> None:  # type: ignore[no-untyped-def]
    mock.default = Reply(text="fuzzed answer")
    numbers = itertools.count()
    sent: dict[str, tuple[str, int, bytes]] = {}
    client = httpx.Client(base_url=proxy.url, timeout=30)

    @FUZZ_SETTINGS
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(PATHS))
        body = data.draw(BODIES[kind]())
        ua = f"fuzz/{kind}/{next(numbers)}"
        r = client.post(path, content=body, headers={"x-goog-api-key": token, "Content-Type": "application/json",
                                                     "User-Agent": ua})  # fmt: skip
        sent[ua] = (path, r.status_code, body)
        assert r.status_code < 500 or r.status_code in (502, 503, 504), (r.status_code, body)
        if r.status_code >= 400:  # Google's error shape
            error = r.json()["error"]
            assert error["code"] == r.status_code and error["message"], error
            assert error["status"] == STATUS_NAMES.get(r.status_code, error["status"]), error

    try:
        run()
        assert client.get("/health").status_code == 200
    finally:
        client.close()
    rows = [r for r in logged_calls(core) if (r.get("user_agent") or "").startswith("fuzz/")]
    by_agent: dict[str, list[dict]] = {}
    for row in rows:
        by_agent.setdefault(row["user_agent"], []).append(row)
    assert set(by_agent) == set(sent) and all(len(v) == 1 for v in by_agent.values())
    for ua, (path, status, body) in sent.items():
        (row,) = by_agent[ua]
        assert row["status"] == status and row["client_api"] == "gemini", (path, body, row)
        assert row["error_kind"] != "internal_error", (path, body, row["error_message"])
    assert not mock.errors
    if kind == "mutated":
        statuses = [status for _, status, _ in sent.values()]
        assert statuses.count(200) > len(statuses) // 4, statuses

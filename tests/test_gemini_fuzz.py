"""Property-based fuzzing of the live Gemini endpoints, as tests/test_fuzz.py does for the other three APIs:
real Gemini requests (the golden ones, a Gemini CLI turn among them) with random edits, random JSON and
random bytes. A client mistake is never a 500, every error is in Google's shape, the proxy stays up, and
every request leaves exactly one row."""

from __future__ import annotations

import copy
import itertools
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import logged_calls
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz import JSON, _slots

from app.testing.script import Reply

GOLDEN = Path(__file__).parent / "golden" / "gemini"
PATHS = ("/v1beta/models/default:generateContent", "/v1beta/models/default:streamGenerateContent?alt=sse",
         "/v1beta/models/gemini-2.5-pro:streamGenerateContent", "/v1/models/plan:countTokens")  # fmt: skip
EXAMPLES = int(os.environ.get("DOWNSHIFT_FUZZ_EXAMPLES", "120"))
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
    body = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(body, [])
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        action = draw(st.sampled_from(["delete", "replace", "replace", "wrap", "empty", "stringify"]))
        if action == "delete":
            del container[key]
        elif action == "replace":
            container[key] = draw(JSON)
        elif action == "wrap":
            container[key] = [container[key]] if draw(st.booleans()) else {"value": container[key]}
        elif action == "empty":
            container[key] = type(container[key])() if isinstance(container[key], (dict, list, str)) else None
        else:
            container[key] = json.dumps(container[key])
    return json.dumps(body).encode()


def random_json() -> st.SearchStrategy[bytes]:
    keys = st.sampled_from(["contents", "parts", "systemInstruction", "tools", "generationConfig", "toolConfig",
                            "system_instruction", "generation_config"]) | st.text(max_size=8)  # fmt: skip
    return st.one_of(st.dictionaries(keys, JSON, max_size=6), JSON).map(lambda v: json.dumps(v).encode())


BODIES = {"mutated": mutated, "random_json": random_json, "random_bytes": lambda: st.binary(max_size=300)}


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

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
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

"""Hypothesis strategies shared by the proxy's fuzz tests (tests/test_fuzz.py, tests/test_gemini_fuzz.py): random
JSON leaves and containers, random edits of a real request, random JSON objects under plausible keys."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("DOWNSHIFT_FUZZ_EXAMPLES", "120"))  # more: DOWNSHIFT_FUZZ_EXAMPLES=5000
# every example is a real HTTP call: no deadline, no health check on slow data, nothing saved between runs
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
)

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "default",
            "plan",
            "user",
            "assistant",
            "tool",
            "system",
            "text",
            "tool_use",
            "tool_result",
            "function",
            "image",
            "input_text",
            "function_call",
            "{",
            "[]",
            "null",
        ]
    ),
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # a named function: Hypothesis inspects a lambda's source to check it recurses, and a multi-line one fails
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4))


JSON = st.recursive(LEAVES, _containers, max_leaves=10)
RANDOM_BYTES = st.binary(max_size=300)


def slots(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) inside a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((value, k))
            slots(v, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.append((value, i))
            slots(v, out)
    return out


def edited(draw: st.DrawFn, seed: Any) -> bytes:
    """A copy of the request `seed` with 1-4 random edits anywhere in it (inside an `st.composite`)."""
    body = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 4))):
        found = slots(body, [])
        if not found:
            break
        container, key = draw(st.sampled_from(found))
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


def random_json(keys: Iterable[str]) -> st.SearchStrategy[bytes]:
    """Random JSON, often an object under the API's own top-level keys (or random short ones)."""
    objects = st.dictionaries(st.sampled_from(list(keys)) | st.text(max_size=8), JSON, max_size=6)
    return st.one_of(objects, JSON).map(lambda v: json.dumps(v).encode())

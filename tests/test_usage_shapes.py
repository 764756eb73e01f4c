"""Where each provider puts its usage, whole and streamed, over real sockets: the mock upstream answers in
each provider's own shape (app.testing.script.UsageShape), the proxy logs the tokens the provider reported
and a cost equal to a hand calculation from the prices. Each test backs one row of docs/cost.md."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from conftest import logged_calls

from app.testing.script import Fault, Reply, Usage

MESSAGES = [{"role": "user", "content": "list the files"}]
TEXT = " ".join(f"word{i}" for i in range(12))
# USD per million tokens, set in the config for every provider's model below: input, output, cache read
P_IN, P_OUT, P_CACHED = 2.0, 8.0, 0.5
USAGE = Usage(prompt=12_000, completion=300, cached=4_000)  # what every provider below reports
EXPECTED_COST = ((12_000 - 4_000) * P_IN + 4_000 * P_CACHED + 300 * P_OUT) / 1e6

# provider kind -> the usage shape its streams use (docs/cost.md)
STREAM_SHAPES = {
    "openai": "openai",
    "deepseek": "deepseek",
    "groq": "groq",
    "moonshot": "moonshot",
    "together": "finish_chunk",
    "fireworks": "finish_chunk",
    "mistral": "finish_chunk",
    "vllm": "openai",
    "llamacpp": "finish_chunk",  # builds before Aug 2025; later ones send OpenAI's usage-only chunk
    "ollama": "openai",
}
KINDS = (*STREAM_SHAPES, "openrouter", "lmstudio", "anthropic")


def shapes_config(mock_url: str) -> str:
    providers = "".join(
        f'[[providers]]\nname = "{kind}"\nbase_url = "{mock_url}/v1"\nkind = "{kind}"\n'
        + ('api = "anthropic"\n' if kind == "anthropic" else "")
        + "timeouts = { connect = 2, first_byte = 2, idle = 1 }\n\n"
        for kind in KINDS
    )
    prices = "".join(
        f'[prices."{kind}/m-{kind}"]\ninput = {P_IN}\noutput = {P_OUT}\ncache_read = {P_CACHED}\n\n'
        for kind in KINDS
        if kind != "openrouter"  # an override would win over OpenRouter's bill (app.core.pricing order)
    )
    return f"""
[proxy]
host = "127.0.0.1"
port = 0

{providers}
[[presets]]
name = "shapes"
default = "openai/m-openai"

[[presets]]
name = "gateway"
default = "moonshot/m-moonshot"
fallback = ["groq/m-groq"]

[routing]
active = "gateway"
premium = "shapes"

{prices}"""


@pytest.fixture
def config_path(tmp_path: Path, mock) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(shapes_config(mock.base_url))
    return path


def chat(proxy, token: str, kind: str, *, stream: bool, **extra) -> tuple[int, list[dict]]:  # type: ignore[no-untyped-def]
    """One chat-completions call for `kind/m-kind`: (status, the chunks or the one answer)."""
    body = {"model": f"{kind}/m-{kind}", "messages": MESSAGES, "stream": stream, **extra}
    headers = {"Authorization": f"Bearer {token}"}
    if not stream:
        r = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=20)
        return r.status_code, [r.json()]
    with httpx.stream(
        "POST", f"{proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=20
    ) as r:
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    return r.status_code, [orjson.loads(x) for x in lines if x != "[DONE]"]


def assert_reported(row: dict, cost: float = EXPECTED_COST) -> None:
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (8_000, 4_000, 300)
    assert not row["usage_estimated"]
    assert row["cost_usd"] == pytest.approx(cost, rel=1e-9)


# ----------------------------------------------------------------------------------------------- streamed


@pytest.mark.parametrize("kind", list(STREAM_SHAPES))
def test_streamed_usage_is_read_where_each_provider_puts_it(proxy, mock, token, core, kind) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text=TEXT, usage=USAGE, usage_shape=STREAM_SHAPES[kind]))  # type: ignore[arg-type]
    status, chunks = chat(proxy, token, kind, stream=True)
    assert (
        status == 200
        and "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == TEXT
    )
    (row,) = logged_calls(core)
    assert row["outcome"] == "ok" and row["provider"] == kind
    assert_reported(row)
    assert row["cost_source"] == "override"


def test_llamacpp_newer_usage_only_chunk(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text=TEXT, usage=USAGE, usage_shape="openai"))
    assert chat(proxy, token, "llamacpp", stream=True)[0] == 200
    assert_reported(logged_calls(core)[0])


def test_mistral_is_not_sent_stream_options_and_still_reports(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text=TEXT, usage=USAGE, usage_shape="finish_chunk"))
    chat(proxy, token, "mistral", stream=True)
    assert "stream_options" not in mock.requests[-1].json  # Mistral refuses the field
    assert_reported(logged_calls(core)[0])


def test_openrouter_streamed_billed_cost(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text=TEXT, usage=USAGE, usage_shape="openrouter", cost=0.0311))
    chat(proxy, token, "openrouter", stream=True)
    (row,) = logged_calls(core)
    assert_reported(row, cost=0.0311)
    assert row["cost_source"] == "provider" and row["billed_cost_usd"] == pytest.approx(0.0311)


@pytest.mark.parametrize("stream", [True, False])
def test_openrouter_byok_cost_is_the_fee_plus_the_providers_charge(proxy, mock, token, core, stream) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text=TEXT, usage=USAGE, usage_shape="openrouter", cost=0.0004, upstream_cost=0.0196))
    chat(proxy, token, "openrouter", stream=stream)
    (row,) = logged_calls(core)
    assert_reported(row, cost=0.0004 + 0.0196)
    assert row["cost_source"] == "provider"


def test_anthropic_streamed_usage(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text=TEXT, usage=USAGE))
    body = {"model": "anthropic/m-anthropic", "max_tokens": 500, "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": token}, timeout=20
    ) as r:
        assert r.status_code == 200
        r.read()
    assert_reported(logged_calls(core)[0])


@pytest.mark.parametrize("kind", ["moonshot", "groq"])
def test_claude_code_on_kimi_or_groq_logs_the_reported_usage(proxy, mock, token, core, kind) -> None:  # type: ignore[no-untyped-def]
    """The article's main route: an Anthropic client (Claude Code) on an OpenAI-format cheap model."""
    mock.enqueue(Reply(text=TEXT, usage=USAGE, usage_shape=kind))  # type: ignore[arg-type]
    body = {"model": f"{kind}/m-{kind}", "max_tokens": 500, "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": token}, timeout=20
    ) as r:
        events = [orjson.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    (row,) = logged_calls(core)
    assert row["upstream_api"] == "openai"
    assert_reported(row)
    # and the client is told the same figures Claude Code budgets its context with
    (delta,) = [e for e in events if e.get("type") == "message_delta"]
    assert delta["usage"]["output_tokens"] == 300


# ----------------------------------------------------------------------------------------------- whole answers


@pytest.mark.parametrize("kind", [*STREAM_SHAPES, "openrouter", "lmstudio"])
def test_whole_answer_usage(proxy, mock, token, core, kind) -> None:  # type: ignore[no-untyped-def]
    shape = {"openrouter": "openrouter", "lmstudio": "openai"}.get(kind) or STREAM_SHAPES[kind]
    cost = 0.05 if kind == "openrouter" else None
    mock.enqueue(Reply(text=TEXT, usage=USAGE, usage_shape=shape, cost=cost))  # type: ignore[arg-type]
    assert chat(proxy, token, kind, stream=False)[0] == 200
    assert_reported(logged_calls(core)[0], cost=cost or EXPECTED_COST)


def test_anthropic_whole_answer_usage(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text=TEXT, usage=USAGE))
    body = {"model": "anthropic/m-anthropic", "max_tokens": 500, "messages": MESSAGES}
    assert (
        httpx.post(
            f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": token}, timeout=20
        ).status_code
        == 200
    )
    assert_reported(logged_calls(core)[0])


# ----------------------------------------------------------------------------------------------- estimated


def test_stream_without_usage_is_estimated_not_priced_as_known(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    """LM Studio (and servers that ignore stream_options) send no usage at all in streams."""
    mock.enqueue(Reply(text=TEXT, usage=USAGE, usage_shape="none"))
    assert chat(proxy, token, "lmstudio", stream=True)[0] == 200
    (row,) = logged_calls(core)
    sent = len(mock.requests[-1].body)
    assert row["outcome"] == "ok" and row["usage_estimated"]
    assert row["cost_source"] == "estimated"
    assert row["input_tokens"] == sent // 4 and row["output_tokens"] >= 12
    hand = (row["input_tokens"] * P_IN + row["output_tokens"] * P_OUT) / 1e6
    assert row["cost_usd"] == pytest.approx(hand, rel=1e-9)


def test_local_stream_without_usage_costs_nothing_but_says_its_tokens_are_estimated(
    proxy, mock, token, core, config_path
) -> None:  # type: ignore[no-untyped-def]
    config_path.write_text(
        config_path.read_text().replace('kind = "lmstudio"\n', 'kind = "lmstudio"\nlocal = true\n')
    )
    mock.enqueue(Reply(text=TEXT, usage_shape="none"))
    chat(proxy, token, "lmstudio", stream=True)
    (row,) = logged_calls(core)
    assert row["usage_estimated"] and row["cost_source"] == "local" and row["cost_usd"] == 0


@pytest.mark.parametrize("fault", ["reset_mid_stream", "truncate"])
def test_stream_cut_short_is_estimated(proxy, mock, token, core, fault) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Fault(fault, after_chunks=5, reply=Reply(text=TEXT, usage=USAGE, chunk_delay=0.05)))
    chat(proxy, token, "openai", stream=True)
    (row,) = logged_calls(core)
    assert row["outcome"] == "error" and row["usage_estimated"] and row["cost_source"] == "estimated"
    assert row["cost_usd"] == pytest.approx((row["input_tokens"] * P_IN + row["output_tokens"] * P_OUT) / 1e6)


def test_anthropic_stream_cut_after_message_start_is_estimated(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(
        Fault("reset_mid_stream", after_chunks=6, reply=Reply(text=TEXT, usage=USAGE, chunk_delay=0.05))
    )
    body = {"model": "anthropic/m-anthropic", "max_tokens": 500, "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": token}, timeout=20
    ) as r:
        r.read()
    (row,) = logged_calls(core)
    # the input is what message_start reported; the output is counted from the text that went by
    assert (row["input_tokens"], row["cache_read_tokens"]) == (8_000, 4_000)
    assert row["usage_estimated"] and row["cost_source"] == "estimated"


@pytest.mark.parametrize("kind", ["moonshot", "groq"])
def test_codex_on_kimi_or_groq_is_told_the_reported_usage(proxy, mock, token, core, kind) -> None:  # type: ignore[no-untyped-def]
    """A Responses client (Codex CLI) on an OpenAI-format model: the log and response.completed agree."""
    mock.enqueue(Reply(text=TEXT, usage=USAGE, usage_shape=kind))  # type: ignore[arg-type]
    body = {"model": f"{kind}/m-{kind}", "input": "list the files", "stream": True}
    with httpx.stream(
        "POST",
        f"{proxy.url}/v1/responses",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=20,
    ) as r:
        events = [orjson.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert_reported(logged_calls(core)[0])
    (done,) = [e for e in events if e.get("type") == "response.completed"]
    assert (
        done["response"]["usage"]["input_tokens"] == 12_000
        and done["response"]["usage"]["output_tokens"] == 300
    )


# ----------------------------------------------------------------------------------------------- failed attempts


def test_an_attempt_that_began_answering_then_failed_is_costed_and_counted(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    """Moonshot starts answering (three chunks) then sends an error event in the same read, before any byte
    reached the client: Groq serves the call. Moonshot bills the partial answer: the call's cost includes it."""
    words = " ".join(f"w{i}" for i in range(40))
    mock.enqueue(
        Fault("error_event", after_chunks=3, reply=Reply(text=words, usage=USAGE, usage_shape="moonshot")),
        Reply(text=TEXT, usage=USAGE, usage_shape="groq"),
    )
    body = {"model": "default", "max_tokens": 500, "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": token}, timeout=20
    ) as r:
        r.read()
    from app.core.queries.calls import call_detail

    (row,) = logged_calls(core)
    assert (row["outcome"], row["provider"], row["attempts"]) == ("ok", "groq", 2)
    first, second = call_detail(core.db, row["call_id"])["fallback"]
    assert first["target"] == "moonshot/m-moonshot" and first["error_kind"] == "upstream_stream_error"
    assert first["cost_source"] == "estimated" and first["output_tokens"] >= 2
    sent = len(mock.requests[0].body)
    assert first["input_tokens"] == sent // 4
    first_cost = (first["input_tokens"] * P_IN + first["output_tokens"] * P_OUT) / 1e6
    assert first["cost_usd"] == pytest.approx(first_cost, rel=1e-9)
    assert "cost_usd" not in second  # the serving attempt's figures are the call's own
    # the call: Groq's reported usage, plus the failed attempt's estimate, marked as such
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (8_000, 4_000, 300)
    assert row["cost_usd"] == pytest.approx(EXPECTED_COST + first_cost, rel=1e-9)
    assert row["usage_estimated"] and row["cost_source"] == "estimated"


def test_a_call_whose_every_attempt_broke_after_answering_costs_what_they_were_billed(
    proxy, mock, token, core
) -> None:  # type: ignore[no-untyped-def]
    words = " ".join(f"w{i}" for i in range(40))
    broken = Fault("error_event", after_chunks=3, reply=Reply(text=words, usage=USAGE))
    mock.enqueue(broken, broken)
    body = {"model": "default", "max_tokens": 500, "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": token}, timeout=20
    ) as r:
        r.read()
    (row,) = logged_calls(core)
    assert row["outcome"] == "error" and row["attempts"] == 2
    assert row["usage_estimated"] and row["cost_source"] == "estimated"
    assert row["output_tokens"] >= 4 and row["input_tokens"] > 0
    hand = (row["input_tokens"] * P_IN + row["output_tokens"] * P_OUT) / 1e6
    assert row["cost_usd"] == pytest.approx(hand, rel=1e-9)


def test_a_cancelled_call_is_estimated(proxy, mock, token, core) -> None:  # type: ignore[no-untyped-def]
    """The user hits Esc a few words in: the provider bills what it generated until then, never reported."""
    words = " ".join(f"w{i}" for i in range(60))
    mock.enqueue(Reply(text=words, usage=USAGE, stream_chunks=60, chunk_delay=0.05))
    body = {"model": "openai/m-openai", "messages": MESSAGES, "stream": True}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream(
        "POST", f"{proxy.url}/v1/chat/completions", json=body, headers=headers, timeout=20
    ) as r:
        for line in r.iter_lines():
            if "w3" in line:
                break
    (row,) = logged_calls(core)
    assert row["outcome"] == "cancelled" and row["usage_estimated"] and row["cost_source"] == "estimated"
    assert row["output_tokens"] >= 1  # counted in the few words that went by
    hand = (row["input_tokens"] * P_IN + row["output_tokens"] * P_OUT) / 1e6
    assert row["cost_usd"] == pytest.approx(hand, rel=1e-9)


@pytest.mark.parametrize("kind", ["close_mid_stream", "truncate"])
def test_a_whole_answer_that_broke_mid_read_is_billed_as_an_estimate(proxy, mock, token, core, kind) -> None:  # type: ignore[no-untyped-def]
    """A non-streamed answer is generated before it is sent: one that arrived (200) but broke mid-read was
    billed, though Groq then serves the call. Its output is unknown, so the attempt is an input-only estimate,
    and the call says its cost is estimated."""
    mock.enqueue(
        Fault(kind, reply=Reply(text=TEXT, usage=USAGE, usage_shape="moonshot")),
        Reply(text=TEXT, usage=USAGE, usage_shape="groq"),
    )
    body = {"model": "default", "max_tokens": 500, "messages": MESSAGES}
    r = httpx.post(f"{proxy.url}/v1/messages", json=body, headers={"x-api-key": token}, timeout=20)
    assert r.status_code == 200, r.text
    from app.core.queries.calls import call_detail

    (row,) = logged_calls(core)
    assert (row["outcome"], row["provider"], row["attempts"]) == ("ok", "groq", 2)
    first, _second = call_detail(core.db, row["call_id"])["fallback"]
    assert first["cost_source"] == "estimated" and first["input_tokens"] == len(mock.requests[0].body) // 4
    first_cost = first["input_tokens"] * P_IN / 1e6
    assert first["cost_usd"] == pytest.approx(first_cost, rel=1e-9)
    assert row["cost_usd"] == pytest.approx(EXPECTED_COST + first_cost, rel=1e-9)
    assert row["usage_estimated"] and row["cost_source"] == "estimated"

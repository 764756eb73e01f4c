"""The executor check against the mock provider: scripted good and bad answers, stored and queryable."""

from __future__ import annotations

import json

import pytest
from conftest import PREMIUM_KEY, PROVIDER_KEY

from app.cli import main as cli
from app.core.analytics.probe import NEEDLE, SECRET, run_probes, store
from app.core.config import Target
from app.core.queries.probes import latest_probes, probe_results
from app.testing.script import Reply, ToolCall

pytestmark = pytest.mark.both_backends  # on SQLite and on PostgreSQL (tests/conftest.py)

EVENT = {
    "title": "Design review",
    "time": {"start": "10:00", "end": "11:00"},
    "attendees": [{"name": "Ana", "email": "ana@example.com"}, {"name": "Bo", "email": "bo@example.com"}],
}


def good_answers(cost: float = 0.001) -> list[Reply]:
    calls = [
        [ToolCall("get_weather", {"city": "Paris"})],
        [ToolCall("get_weather", {"city": c}) for c in ("Paris", "Tokyo", "Lima")],
        [ToolCall("create_event", EVENT)],
        [ToolCall("set_mode", {"mode": "safe", "reason": "tests are failing"})],
        [ToolCall("lookup_ticket", {"ticket_id": NEEDLE})],
        [ToolCall("read_file", {"path": "notes.txt"})],
    ]
    return [
        *(Reply(tool_calls=c, cost=cost) for c in calls),
        Reply(text=f"The secret word is {SECRET}.", cost=cost),
    ]


def bad_answers() -> list[Reply]:
    return [
        Reply(tool_calls=[ToolCall("get_weather", '{"city": "Par')]),  # invalid JSON
        Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),  # one call where three were asked
        Reply(
            tool_calls=[ToolCall("create_event", {**EVENT, "attendees": [{"name": "Ana"}]})]
        ),  # schema: nested required
        Reply(tool_calls=[ToolCall("set_mode", {"mode": "turbo", "reason": "why not"})]),  # schema: enum
        Reply(text="", text_tool_call=ToolCall("lookup_ticket", {"ticket_id": NEEDLE})),  # written as text
        Reply(tool_calls=[ToolCall("read_file", {"path": "notes.txt"})]),
        Reply(text="I could not find anything."),  # ignores the tool result
    ]


def test_good_model_passes_every_probe_via_the_cli(core, mock, config_path, capsys) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(*good_answers())
    assert (
        cli(
            ["probe", "cheapco/qwen/qwen3-coder", "--json", "--config", str(config_path), "--db", core.db_url]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert (result["passed"], result["probes"], result["tool_calls"], result["tool_failures"]) == (6, 6, 8, 0)
    assert result["validity"] == 1.0
    by_probe = {r["probe"]: r for r in result["results"]}
    assert list(by_probe) == ["single", "parallel", "nested", "enum_required", "long_context", "multi_turn"]
    assert by_probe["multi_turn"]["cost_usd"] == pytest.approx(0.002) and by_probe["single"][
        "cost_usd"
    ] == pytest.approx(0.001)
    assert all(r["latency_ms"] > 0 for r in result["results"])
    sent = mock.requests
    assert all(r.path == "/v1/chat/completions" and r.api_key == PROVIDER_KEY for r in sent)
    assert sent[0].json["tools"][0]["function"]["name"] == "get_weather"
    assert len(sent[4].body) > 60_000  # the long-context probe
    assert (
        sent[6].json["messages"][-1]["role"] == "tool" and SECRET in sent[6].json["messages"][-1]["content"]
    )
    # stored beside the model, and found again by the query the GUI uses
    assert probe_results(core.db, "cheapco/qwen/qwen3-coder")["passed"] == 6
    summary = latest_probes(core.db)["cheapco/qwen/qwen3-coder"]
    assert (summary["passed"], summary["probes"], summary["validity"]) == (6, 6, 1.0)


def test_bad_answers_fail_with_the_reason_and_kind(core, mock, config_path, capsys) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(*bad_answers())
    target = Target("cheapco", "qwen/qwen3-coder")
    store(core.db, target, run_probes(core.config, target, PROVIDER_KEY))
    result = probe_results(core.db, str(target))
    assert result is not None and result["passed"] == 0
    by_probe = {r["probe"]: r for r in result["results"]}
    assert by_probe["single"]["failure_kinds"] == {"invalid_json": 1}
    assert "missing tokyo, lima" in by_probe["parallel"]["detail"]
    assert by_probe["nested"]["failure_kinds"] == {"schema": 1} and "email" in by_probe["nested"]["detail"]
    assert by_probe["enum_required"]["failure_kinds"] == {"schema": 1}
    assert by_probe["long_context"]["failure_kinds"] == {"text_form": 1}
    assert "ignored the tool result" in by_probe["multi_turn"]["detail"]
    assert (result["tool_calls"], result["tool_failures"]) == (6, 4)
    capsys.readouterr()
    mock.enqueue(*bad_answers())
    assert cli(["probe", "cheapco/qwen/qwen3-coder", "--config", str(config_path), "--db", core.db_url]) == 1
    assert "0/6 probes passed, tool-call validity 33%" in capsys.readouterr().out


def test_anthropic_provider_is_probed_in_its_own_format(core, mock) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(*good_answers())
    target = Target("premium", "claude-sonnet-4-6")
    outcomes = run_probes(core.config, target, PREMIUM_KEY)
    assert [o.passed for o in outcomes] == [True] * 6, [o.detail for o in outcomes]
    sent = mock.requests
    assert all(r.path == "/v1/messages" and r.api_key == PREMIUM_KEY for r in sent)
    assert sent[0].json["tools"][0]["input_schema"]["required"] == ["city"]
    results = sent[6].json["messages"][-1]["content"]
    assert results[0]["type"] == "tool_result" and SECRET in results[0]["content"]


def test_unknown_provider_and_unreachable_model(core, config_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli(["probe", "nobody/model", "--config", str(config_path), "--db", core.db_url]) == 2
    outcomes = run_probes(core.config, Target("deadco", "x"), None, timeout=2)
    assert not any(o.passed for o in outcomes) and "request failed" in outcomes[0].detail


def test_the_battery_cost_is_estimated_before_anything_is_sent(core, mock) -> None:  # type: ignore[no-untyped-def]
    """The estimate counts each probe's request offline (the long-context one is ~25k tokens) plus the multi-turn
    follow-up, and prices them at the model's price; nothing reaches the provider."""
    from app.core import tokens
    from app.core.analytics.probe import MAX_TOKENS, PROBES, ProbeClient, estimate
    from app.core.pricing import resolve_price

    target = Target("cheapco", "qwen/qwen3-coder")
    est = estimate(core.config, target)
    assert mock.requests == []
    provider = core.config.providers["cheapco"]
    client = ProbeClient(core.config, provider, target.model, None, None)  # type: ignore[arg-type]
    counts = [
        tokens.count_openai_request(client.body(p, [{"role": "user", "content": p.prompt}])) for p in PROBES
    ]
    assert est.requests == len(PROBES) + 1  # multi_turn sends a second request
    assert est.input_tokens > sum(counts) > 20_000
    price = resolve_price(core.config, provider, target.model).price
    assert price is not None and est.price_source in ("listed", "table")
    floor = (sum(counts) * price.input + est.requests * MAX_TOKENS * price.output) / 1e6
    assert est.max_cost_usd is not None and est.max_cost_usd >= floor > 0
    assert est.cost_usd is not None and 0 < est.cost_usd < est.max_cost_usd
    text = est.describe()
    assert text.startswith(f"6 probes, 7 requests, about {est.input_tokens:,} input") and "at most $" in text

    unknown = estimate(core.config, Target("cheapco", "no-such/model-xyz"))
    assert unknown.cost_usd is None and "cannot be estimated" in unknown.describe()
    with pytest.raises(KeyError):
        estimate(core.config, Target("nope", "m"))

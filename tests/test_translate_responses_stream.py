"""Chat chunks -> Responses streaming events: golden sequences, the openai SDK as referee, random splits.

Golden files live in tests/golden/responses/streams/; run with DOWNSHIFT_UPDATE_GOLDEN=1 to rewrite their
`events` after a deliberate change (and review the diff).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from app.proxy.translate.responses import (
    ChatToResponsesStream,
    chat_to_responses_response,
    responses_to_chat_request,
)

GOLDEN = Path(__file__).parent / "golden" / "responses" / "streams"
UPDATE = os.environ.get("DOWNSHIFT_UPDATE_GOLDEN") == "1"
_ID = re.compile(r"^(resp|msg|fc|ctc|rs|call)_[0-9a-f]{24}$")


def _event_classes() -> dict[str, Any]:
    union = (
        get_args(ResponseStreamEvent)[0]
        if get_origin(ResponseStreamEvent) is Annotated
        else ResponseStreamEvent
    )
    classes = {}
    for cls in get_args(union):
        for literal in get_args(cls.model_fields["type"].annotation):
            classes[literal] = cls
    return classes


EVENT_CLASSES = _event_classes()


def sdk_replay(events: list[dict[str, Any]]) -> Response | None:
    """Validate every event with the SDK's own model and replay them through its stream accumulator."""
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    final = None
    for event in events:
        model = EVENT_CLASSES[event["type"]].model_validate(event)
        state.handle_event(model)
        if event["type"] in ("response.completed", "response.incomplete", "response.failed"):
            final = Response.model_validate(event["response"])
    return final


def normalize(value: Any, ids: dict[str, str] | None = None) -> Any:
    """Generated ids become stable placeholders in order of appearance; timestamps become 0."""
    ids = {} if ids is None else ids
    if isinstance(value, dict):
        return {
            k: 0 if k in ("created_at", "completed_at") and isinstance(v, int) else normalize(v, ids)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalize(v, ids) for v in value]
    if isinstance(value, str) and _ID.match(value):
        if value not in ids:
            prefix = value.split("_", 1)[0]
            ids[value] = f"{prefix}_{sum(1 for v in ids.values() if v.startswith(prefix + '_')) + 1}"
        return ids[value]
    return value


def run(ctx: Any, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stream = ChatToResponsesStream(ctx)
    events = [e for chunk in chunks for e in stream.feed(chunk)]
    return events + stream.finish()


def check_invariants(events: list[dict[str, Any]]) -> None:
    """What any client relies on, whatever the content."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] in ("response.completed", "response.incomplete", "response.failed")
    added: dict[int, dict[str, Any]] = {}
    deltas: dict[int, list[str]] = {}
    for event in events:
        kind = event["type"]
        if kind == "response.output_item.added":
            assert event["output_index"] == len(added), "output indexes are handed out in order"
            added[event["output_index"]] = event["item"]
        elif kind.endswith(".delta"):
            assert added[event["output_index"]]["id"] == event["item_id"]
            deltas.setdefault(event["output_index"], []).append(event["delta"])
        elif kind == "response.output_item.done":
            item, first = event["item"], added[event["output_index"]]
            assert item["id"] == first["id"] and item["type"] == first["type"]
            if item["type"] in ("function_call", "custom_tool_call"):
                assert item["name"] and item["call_id"] and item["name"] == first["name"]
                assert item["call_id"] == first["call_id"]
            streamed = "".join(deltas.get(event["output_index"], []))
            if item["type"] == "message":
                assert streamed == item["content"][0]["text"]
            elif item["type"] == "reasoning":
                assert streamed == item["summary"][0]["text"]
            elif item["type"] == "custom_tool_call":
                assert streamed == item["input"]
            elif item["arguments"] != "{}" or streamed:
                assert streamed == item["arguments"]


# ------------------------------------------------------------------------------------------- golden streams


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_golden_stream(path: Path) -> None:
    case = json.loads(path.read_text())
    _, ctx = responses_to_chat_request(case["request"], model="upstream-model")
    events = run(ctx, case["chunks"])
    check_invariants(events)
    final = sdk_replay(events)
    assert final is not None
    got = normalize(events)
    if UPDATE:
        case["events"] = got
        path.write_text(json.dumps(case, indent=1, ensure_ascii=False) + "\n")
    assert got == case["events"]


def test_golden_files_cover_the_required_cases() -> None:
    names = {p.stem for p in GOLDEN.glob("*.json")}
    assert {
        "parallel_calls",
        "apply_patch",
        "namespace_call",
        "reasoning_then_text",
        "length_incomplete",
    } <= names


def _golden(name: str) -> tuple[Any, list[dict[str, Any]]]:
    case = json.loads((GOLDEN / f"{name}.json").read_text())
    _, ctx = responses_to_chat_request(case["request"], model="m")
    return ctx, run(ctx, case["chunks"])


def test_parallel_calls_keep_name_and_call_id_in_added_and_done() -> None:
    _, events = _golden("parallel_calls")
    calls = [
        e["item"]
        for e in events
        if e["type"] == "response.output_item.done" and e["item"]["type"] == "function_call"
    ]
    assert [(c["call_id"], c["name"], c["arguments"]) for c in calls] == [
        ("call_a", "exec_command", '{"cmd":"cat a.py"}'),
        ("call_b", "exec_command", '{"cmd":"cat b.py"}'),
        ("call_c", "update_plan", '{"plan":["read","fix"]}'),
    ]
    message_done = next(i for i, e in enumerate(events) if e["type"] == "response.output_item.done")
    first_call = next(
        i
        for i, e in enumerate(events)
        if e["type"] == "response.output_item.added" and e["output_index"] == 1
    )
    assert message_done < first_call, "the text item closes before the tool calls start"
    assert events[-1]["response"]["usage"]["input_tokens_details"]["cached_tokens"] == 1024


def test_apply_patch_streams_the_raw_patch() -> None:
    _, events = _golden("apply_patch")
    deltas = [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    item = events[-1]["response"]["output"][0]
    assert (
        item["type"] == "custom_tool_call" and item["name"] == "apply_patch" and item["call_id"] == "call_p"
    )
    assert item["input"].startswith("*** Begin Patch\n") and '"h\u00e9llo \\\\ world"' in item["input"]
    assert "\U0001f600" in item["input"]
    assert len(deltas) > 3 and "".join(deltas) == item["input"]
    assert not any(e["type"].startswith("response.function_call_arguments") for e in events)


def test_namespace_call_maps_back() -> None:
    _, events = _golden("namespace_call")
    item = events[-1]["response"]["output"][0]
    assert (item["name"], item["namespace"], item["arguments"]) == (
        "search_docs",
        "mcp__docs__",
        '{"query":"splitlines"}',
    )


def test_length_stop_is_incomplete() -> None:
    _, events = _golden("length_incomplete")
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["status"] == "incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["output"][0]["status"] == "incomplete"


def test_error_chunk_fails_the_response_with_partial_output() -> None:
    _, events = _golden("error_chunk")
    final = events[-1]
    assert final["type"] == "response.failed"
    assert final["response"]["error"] == {"code": "server_error", "message": "Upstream overloaded"}
    assert final["response"]["output"][0]["content"][0]["text"] == "Partial"
    assert final["response"]["output"][0]["status"] == "incomplete"


# ------------------------------------------------------------------------------------------- behaviour


def _ctx() -> Any:
    case = json.loads((GOLDEN / "text_usage.json").read_text())
    return responses_to_chat_request(case["request"], model="m")[1]


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **extra}


def test_start_is_sent_once_and_first() -> None:
    stream = ChatToResponsesStream(_ctx(), response_id="resp_fixed")
    first = stream.start()
    assert [e["type"] for e in first] == ["response.created", "response.in_progress"]
    assert first[0]["response"]["id"] == "resp_fixed" and first[0]["response"]["model"] == "gpt-5.1-codex"
    assert stream.start() == []
    assert stream.feed(_chunk({"content": "x"}))[0]["sequence_number"] == 2


def test_finish_without_any_chunk_is_a_valid_empty_response() -> None:
    events = ChatToResponsesStream(_ctx()).finish()
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.completed"]
    assert sdk_replay(events) is not None
    assert events[-1]["response"]["usage"] is None


def test_nothing_after_the_end() -> None:
    stream = ChatToResponsesStream(_ctx())
    stream.feed(_chunk({"content": "a"}, "stop"))
    assert stream.finish()[-1]["type"] == "response.completed"
    assert (
        stream.finish() == [] and stream.feed(_chunk({"content": "b"})) == [] and stream.error("x", "y") == []
    )


def test_error_mid_tool_call_maps_unknown_kinds_to_server_error() -> None:
    stream = ChatToResponsesStream(_ctx())
    events = stream.feed(
        _chunk(
            {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "exec_command", "arguments": "{"}}]}
        )
    )
    events += stream.error("stalled", "the upstream stopped sending for 30 s")
    check_invariants(events)
    sdk_replay(events)
    failed = events[-1]["response"]
    assert failed["error"] == {
        "code": "server_error",
        "message": "stalled: the upstream stopped sending for 30 s",
    }
    assert failed["output"][0]["status"] == "incomplete" and failed["output"][0]["arguments"] == "{"


def test_context_length_code_passes_through() -> None:
    stream = ChatToResponsesStream(_ctx())
    error = stream.error("context_length_exceeded", "too long")[-1]["response"]["error"]
    assert error == {"code": "context_length_exceeded", "message": "too long"}


def test_other_choices_are_ignored() -> None:
    stream = ChatToResponsesStream(_ctx())
    events = stream.feed(
        {"choices": [{"index": 1, "delta": {"content": "other"}}, {"index": 0, "delta": {"content": "mine"}}]}
    )
    events += stream.finish()
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "mine"


def test_reasoning_field_name_variant_and_refusal() -> None:
    stream = ChatToResponsesStream(_ctx())
    events = stream.feed(_chunk({"reasoning": "hmm"})) + stream.feed(_chunk({"refusal": "I can't."}, "stop"))
    output = (events + stream.finish())[-1]["response"]["output"]
    assert [i["type"] for i in output] == ["reasoning", "message"]
    assert output[0]["summary"][0]["text"] == "hmm" and output[1]["content"][0]["text"] == "I can't."


def test_a_call_whose_name_never_comes_is_still_reported() -> None:
    stream = ChatToResponsesStream(_ctx())
    events = stream.feed(_chunk({"tool_calls": [{"index": 0, "id": "c9", "function": {"arguments": "{}"}}]}))
    assert events[2:] == [], "not announced without a name"
    events += stream.finish()
    item = events[-1]["response"]["output"][0]
    assert (item["type"], item["call_id"], item["arguments"]) == ("function_call", "c9", "{}")


def test_missing_tool_call_id_gets_one() -> None:
    stream = ChatToResponsesStream(_ctx())
    stream.feed(
        _chunk(
            {"tool_calls": [{"index": 0, "function": {"name": "exec_command", "arguments": ""}}]},
            "tool_calls",
        )
    )
    item = stream.finish()[-1]["response"]["output"][0]
    assert item["call_id"].startswith("call_") and item["arguments"] == "{}"


def test_custom_tool_with_non_json_arguments_still_delivers_the_input() -> None:
    stream = ChatToResponsesStream(_ctx())
    events = stream.feed(
        _chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "p", "function": {"name": "apply_patch", "arguments": "*** Begin"}}
                ]
            }
        )
    )
    events += stream.feed(
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": " Patch\n"}}]}, "tool_calls")
    )
    events += stream.finish()
    check_invariants(events)
    assert events[-1]["response"]["output"][0]["input"] == "*** Begin Patch\n"


# ------------------------------------------------------------------------------------------- random splits

TOOL_NAMES = ["exec_command", "update_plan", "apply_patch", "mcp__docs__search_docs"]
# Characters JSON escapes (and a non-BMP one, escaped as a surrogate pair) are drawn often on purpose.
_chars = st.one_of(
    st.sampled_from('\n"\\\t/\x00\u00e9\U0001f600'), st.characters(blacklist_categories=("Cs",))
)
texts = st.text(_chars, max_size=40)


@st.composite
def answers(draw: st.DrawFn) -> dict[str, Any]:
    calls = []
    for n in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(TOOL_NAMES))
        if name == "apply_patch":
            args = (
                orjson.dumps({"input": draw(texts)}).decode()
                if draw(st.booleans())
                else json.dumps({"input": draw(texts)})
            )
        else:
            args = json.dumps({"cmd": draw(texts)}, ensure_ascii=draw(st.booleans()))
        calls.append({"id": f"call_{n}", "name": name, "arguments": args})
    return {
        "reasoning": draw(st.one_of(st.just(""), texts)),
        "content": draw(st.one_of(st.just(""), texts)),
        "calls": calls,
        "finish": draw(st.sampled_from(["stop", "tool_calls", "length"])),
        "usage": {
            "prompt_tokens": draw(st.integers(0, 10**6)),
            "completion_tokens": draw(st.integers(0, 10**5)),
        },
    }


def _split(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=6))))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


@st.composite
def chunked(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    answer = draw(answers())
    chunks = [_chunk({"role": "assistant"})]
    chunks += [_chunk({"reasoning_content": p}) for p in _split(draw, answer["reasoning"])]
    chunks += [_chunk({"content": p}) for p in _split(draw, answer["content"])]
    queues = []
    for index, call in enumerate(answer["calls"]):
        pieces = _split(draw, call["arguments"])
        head = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": pieces[0]},
        }
        queues.append([head] + [{"index": index, "function": {"arguments": p}} for p in pieces[1:]])
    started = 0
    while any(queues):  # interleave the calls' deltas; calls start in index order, each keeps its own order
        eligible = [i for i in range(min(started + 1, len(queues))) if queues[i]]
        index = draw(st.sampled_from(eligible))
        started = max(started, index + 1)
        chunks.append(_chunk({"tool_calls": [queues[index].pop(0)]}))
    chunks.append(_chunk(None, answer["finish"]))
    chunks.append({"choices": [], "usage": answer["usage"]})
    return answer, chunks


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunked())
def test_any_split_gives_the_whole_answer(case: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    answer, chunks = case
    ctx = _ctx()
    events = run(ctx, chunks)
    check_invariants(events)
    assert sdk_replay(events) is not None
    message: dict[str, Any] = {"role": "assistant", "content": answer["content"] or None}
    if answer["reasoning"]:
        message["reasoning_content"] = answer["reasoning"]
    if answer["calls"]:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in answer["calls"]
        ]
    whole = chat_to_responses_response(
        {
            "choices": [{"index": 0, "message": message, "finish_reason": answer["finish"]}],
            "usage": answer["usage"],
        },
        ctx,
    )
    streamed = events[-1]["response"]
    for response in (whole, streamed):
        response.pop("completed_at", None)
    assert normalize(streamed) == normalize(whole)
    calls = [i for i in streamed["output"] if i["type"] in ("function_call", "custom_tool_call")]
    for call, item in zip(answer["calls"], calls, strict=True):
        if call["name"] == "apply_patch":
            assert item["input"] == json.loads(call["arguments"])["input"]

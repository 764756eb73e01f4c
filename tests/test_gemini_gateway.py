"""The Gemini API gateway over real sockets: the official `google-genai` SDK against the proxy, routed to the
mock upstream in both upstream formats (chat completions for the `cheap` preset, Anthropic Messages for
`premium`): whole and streamed answers, a function-calling round trip, usage and cost in the log, failed
tool results attributed, task grouping without a session id, and every error in Google's own shape."""

from __future__ import annotations

import httpx
import orjson
import pytest
from conftest import logged_calls
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from app.testing.script import Fault, RecordedRequest, Reply, ToolCall, Usage

WRITE_FILE = types.FunctionDeclaration(
    name="write_file",
    description="Write a file",
    parameters_json_schema={
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["file_path", "content"],
    },
)
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)
TOOLS = [types.Tool(function_declarations=[WRITE_FILE])]
UPSTREAMS = ["openai", "anthropic"]
API_VERSION = "v1beta"  # Gemini CLI's; the SDK's own default (v1) is served the same way


@pytest.fixture(params=[API_VERSION, "v1"])
def gemini(request, proxy, token):  # type: ignore[no-untyped-def]
    """The SDK on v1beta (what Gemini CLI calls) and on its own default, v1, which it sends some nested
    fields to in their proto spelling (`parameters_json_schema`, `thinking_config.include_thoughts`)."""
    options = types.HttpOptions(base_url=proxy.url, api_version=request.param)
    return genai.Client(api_key=token, http_options=options)


@pytest.fixture(params=UPSTREAMS)
def upstream(request, core) -> str:  # type: ignore[no-untyped-def]
    """Which upstream format serves the call: the cheap preset (chat completions) or premium (Messages)."""
    if request.param == "anthropic":
        core.config_store.update(lambda c: c.with_active("premium"))
    return str(request.param)


def _upstream_path(upstream: str) -> str:
    return "/v1/messages" if upstream == "anthropic" else "/v1/chat/completions"


def test_generate_content(gemini, mock, core, upstream) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="Hi there", usage=Usage(prompt=120, completion=3, cached=100)))
    config = types.GenerateContentConfig(
        system_instruction="Be brief.", max_output_tokens=200, temperature=0.3, stop_sequences=["END"]
    )
    r = gemini.models.generate_content(model="default", contents="hello", config=config)
    assert r.text == "Hi there" and r.candidates[0].finish_reason == types.FinishReason.STOP
    usage = r.usage_metadata
    assert (usage.prompt_token_count, usage.cached_content_token_count) == (120, 100)
    assert (usage.candidates_token_count, usage.total_token_count) == (3, 123)
    assert r.model_version == "default"
    sent = mock.requests[-1]
    assert sent.path == _upstream_path(upstream)
    if upstream == "openai":
        assert sent.json["messages"][0] == {"role": "system", "content": "Be brief."}
        assert (sent.json["max_tokens"], sent.json["temperature"], sent.json["stop"]) == (200, 0.3, ["END"])
    else:
        assert sent.json["system"] == "Be brief." and sent.json["stop_sequences"] == ["END"]
        assert (sent.json["max_tokens"], sent.model) == (200, "claude-sonnet-4-6")
    (row,) = logged_calls(core)
    assert (row["client_api"], row["upstream_api"]) == ("gemini", upstream)
    assert row["endpoint"] in ("/v1beta/models/{model}:generateContent", "/v1/models/{model}:generateContent")
    assert row["requested_model"] == "default"
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (20, 100, 3)
    assert row["cost_usd"] and row["cost_usd"] > 0 and row["outcome"] == "ok" and not row["streamed"]


def test_stream_text_and_usage(gemini, mock, core, upstream) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="one two three", stream_chunks=3, usage=Usage(prompt=50, completion=3)))
    chunks = list(gemini.models.generate_content_stream(model="default", contents="count"))
    texts = [c.text for c in chunks if c.text]
    assert "".join(texts) == "one two three" and len(texts) == 3
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.candidates_token_count) == (50, 3)
    assert mock.requests[-1].json["stream"] is True
    (row,) = logged_calls(core)
    assert (
        row["streamed"] and row["outcome"] == "ok" and (row["input_tokens"], row["output_tokens"]) == (50, 3)
    )


def _agent(req: RecordedRequest) -> Reply:
    """A model that writes a file, then finishes once it sees the tool's result (either wire format)."""
    body = req.json
    if "system" in body or req.path == "/v1/messages":
        last = body["messages"][-1]
        content = last["content"]
        done = last["role"] == "user" and isinstance(content, list) and content[0]["type"] == "tool_result"
    else:
        done = body["messages"][-1]["role"] == "tool"
    if done:
        return Reply(text="Wrote it.", usage=Usage(prompt=300, completion=4))
    call = ToolCall("write_file", {"file_path": "hello.txt", "content": "hi"})
    return Reply(tool_calls=[call], usage=Usage(prompt=250, completion=12), stream_chunks=4)


@pytest.mark.parametrize("streamed", [False, True])
def test_function_calling_round_trip(gemini, mock, core, upstream, streamed) -> None:  # type: ignore[no-untyped-def]
    mock.default = _agent
    config = types.GenerateContentConfig(tools=TOOLS, automatic_function_calling=NO_AFC)
    contents: list[types.Content] = [types.Content(role="user", parts=[types.Part(text="write hello.txt")])]
    if streamed:
        chunks = list(
            gemini.models.generate_content_stream(model="default", contents=contents, config=config)
        )
        calls = [fc for c in chunks for fc in c.function_calls or ()]
    else:
        calls = gemini.models.generate_content(
            model="default", contents=contents, config=config
        ).function_calls
    (call,) = calls
    assert call.name == "write_file" and call.args == {"file_path": "hello.txt", "content": "hi"}
    assert call.id and call.id.startswith("toolu_" if upstream == "anthropic" else "call_")
    contents += [
        types.Content(role="model", parts=[types.Part(function_call=call)]),
        types.Content(
            role="user",
            parts=[types.Part(function_response=types.FunctionResponse(
                id=call.id, name="write_file", response={"output": "Successfully wrote hello.txt"}))],
        ),
    ]  # fmt: skip
    second = gemini.models.generate_content(model="default", contents=contents, config=config)
    assert second.text == "Wrote it."
    sent = mock.requests[-1].json
    if upstream == "openai":
        assistant, result = sent["messages"][-2:]
        assert assistant["tool_calls"][0]["id"] == call.id
        assert assistant["tool_calls"][0]["function"]["name"] == "write_file"
        assert result == {"role": "tool", "tool_call_id": call.id, "content": "Successfully wrote hello.txt"}
        assert sent["tools"][0]["function"]["parameters"] == WRITE_FILE.parameters_json_schema
    else:
        use = sent["messages"][-2]["content"][-1]
        result = sent["messages"][-1]["content"][0]
        assert (use["type"], use["id"], use["input"]) == (
            "tool_use",
            call.id,
            {"file_path": "hello.txt", "content": "hi"},
        )
        assert (result["type"], result["tool_use_id"]) == ("tool_result", call.id) and not result.get(
            "is_error"
        )
    rows = logged_calls(core)
    assert [(r["tool_calls"], r["tool_failures"]) for r in rows] == [(1, 0), (0, 0)]
    assert rows[0]["task_id"] == rows[1]["task_id"]  # same system prompt and first user turn: one task


def test_failed_tool_result_is_attributed(gemini, mock, core, upstream) -> None:  # type: ignore[no-untyped-def]
    """Gemini CLI reports a failed call as `response.error`, and echoes the id with `NAME__` in front."""
    mock.default = _agent
    config = types.GenerateContentConfig(tools=TOOLS, automatic_function_calling=NO_AFC)
    first = gemini.models.generate_content(model="default", contents="write hello.txt", config=config)
    (call,) = first.function_calls
    cli_id = f"write_file__{call.id}"
    model_turn = types.Content(role="model", parts=[types.Part(function_call=types.FunctionCall(
        id=cli_id, name="write_file", args=call.args), thought_signature=b"skip_thought_signature_validator")])  # fmt: skip
    failed = types.Content(role="user", parts=[types.Part(function_response=types.FunctionResponse(
        id=cli_id, name="write_file", response={"error": "Permission denied: hello.txt"}))])  # fmt: skip
    gemini.models.generate_content(
        model="default", contents=["write hello.txt", model_turn, failed], config=config
    )
    sent = mock.requests[-1].json
    if upstream == "openai":
        assert sent["messages"][-2]["tool_calls"][0]["id"] == call.id  # the provider sees its own id again
        assert sent["messages"][-1]["content"] == "[tool error] Permission denied: hello.txt"
    else:
        result = sent["messages"][-1]["content"][0]
        assert result["tool_use_id"] == call.id and result["is_error"] is True
    rows = logged_calls(core)
    with core.db.connect() as conn:
        marked = conn.exec_driver_sql(
            "SELECT tool_call_id, result_failed, result_reason FROM tool_calls"
        ).all()
    assert [(m[0], bool(m[1])) for m in marked] == [(call.id, True)]
    assert "Permission denied" in marked[0][2]
    assert len(rows) == 2


def test_any_gemini_model_name_routes_and_roles_route_by_name(gemini, mock, core) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="a"), Reply(text="b"))
    gemini.models.generate_content(model="gemini-2.5-flash-lite", contents="classify")
    assert mock.requests[-1].model == "qwen/qwen3-coder"  # an unknown name takes the default route
    gemini.models.generate_content(model="plan", contents="think")
    assert mock.requests[-1].model == "deepseek/deepseek-chat"
    rows = logged_calls(core)
    assert [(r["requested_model"], r["role"]) for r in rows] == [
        ("gemini-2.5-flash-lite", "default"),
        ("plan", "plan"),
    ]


def test_thoughts_and_tool_config(gemini, mock) -> None:  # type: ignore[no-untyped-def]
    """includeThoughts returns reasoning as thought parts; toolConfig ANY with one name forces it; the JSON
    response schema becomes response_format; parameters in Gemini's OpenAPI form become JSON Schema."""
    mock.enqueue(Reply(text="{}", reasoning="let me think"))
    legacy = types.FunctionDeclaration(
        name="read",
        parameters=types.Schema(
            type=types.Type.OBJECT, properties={"p": types.Schema(type=types.Type.STRING, nullable=True)}
        ),
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WRITE_FILE, legacy])],
        automatic_function_calling=NO_AFC,
        tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
            mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["read"])),
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=2048),
        response_mime_type="application/json",
        response_json_schema={"type": "object"},
    )  # fmt: skip
    r = gemini.models.generate_content(model="default", contents="go", config=config)
    parts = r.candidates[0].content.parts
    assert (parts[0].thought, parts[0].text) == (True, "let me think") and parts[1].text == "{}"
    sent = mock.requests[-1].json
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "read"}}
    assert sent["tools"][1]["function"]["parameters"] == {
        "type": "object", "properties": {"p": {"type": ["string", "null"]}}}  # fmt: skip
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": {"type": "object"}},
    }
    assert sent["reasoning_effort"] == "low"  # openrouter takes efforts; a 2048-token budget is a low one


def test_count_tokens(gemini, core) -> None:  # type: ignore[no-untyped-def]
    small = gemini.models.count_tokens(model="default", contents="hello")
    big = gemini.models.count_tokens(model="default", contents="hello " * 500)
    assert 0 < small.total_tokens < 20 and 450 < big.total_tokens < 700
    rows = logged_calls(core)
    assert [r["outcome"] for r in rows] == ["ok", "ok"]
    assert all(r["endpoint"].endswith("/models/{model}:countTokens") for r in rows)


# ----------------------------------------------------------------------------------------------- errors


def test_upstream_errors_reach_the_sdk_in_googles_shape(gemini, mock, upstream) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(status=400, error="maximum context length exceeded"))
    with pytest.raises(genai_errors.ClientError) as bad:
        gemini.models.generate_content(model="default", contents="x")
    assert (bad.value.code, bad.value.status) == (400, "INVALID_ARGUMENT")
    assert "context length" in bad.value.message
    mock.enqueue(Reply(status=429, error="slow down"), Reply(status=429, error="slow down"))
    with pytest.raises(genai_errors.ClientError) as limited:
        gemini.models.generate_content(model="premium", contents="x")
    assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")


def test_error_mid_stream_is_a_google_error_event(gemini, mock, core, upstream) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Fault("error_event", after_chunks=6, reply=Reply(text="a b c d e f g h", chunk_delay=0.05)))
    seen: list[str] = []
    with pytest.raises(genai_errors.APIError) as err:
        for chunk in gemini.models.generate_content_stream(model="default", contents="go"):
            seen.append(chunk.text or "")
    assert "".join(seen).startswith("a b")  # the text before the error reached the client
    # OpenAI's server_error is Google's 500; Anthropic's overloaded_error its 503
    wanted = (500, "INTERNAL") if upstream == "openai" else (503, "UNAVAILABLE")
    assert (err.value.code, err.value.status) == wanted
    (row,) = logged_calls(core)
    assert row["outcome"] == "error" and row["streamed"]


def test_proxy_errors_in_googles_shape(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    url = f"{proxy.url}/v1beta/models/default:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    cases = [
        (httpx.post(url, json=body), 401, "UNAUTHENTICATED", "x-goog-api-key"),
        (httpx.post(url, json=body, headers={"x-goog-api-key": "wrong"}), 401, "UNAUTHENTICATED", "invalid"),
        (httpx.post(url, content=b"{nope", headers={"x-goog-api-key": token}), 400, "INVALID_ARGUMENT", "JSON"),
        (httpx.post(url, json={"contents": []}, headers={"x-goog-api-key": token}), 400, "INVALID_ARGUMENT", "contents"),
        (httpx.post(f"{proxy.url}/v1beta/models/default:embedContent", json=body, headers={"x-goog-api-key": token}),
         404, "NOT_FOUND", "embedContent"),
        (httpx.post(url, json={**body, "generationConfig": {"candidateCount": 2}}, headers={"x-goog-api-key": token}),
         400, "INVALID_ARGUMENT", "candidateCount"),
        (httpx.get(f"{proxy.url}/v1beta/nothing", headers={"x-goog-api-key": token}), 404, "NOT_FOUND", "not an endpoint"),
    ]  # fmt: skip
    for response, status, name, words in cases:
        error = response.json()["error"]
        assert (response.status_code, error["code"], error["status"]) == (status, status, name), error
        assert words.lower() in error["message"].lower()
    rows = logged_calls(core)  # the two refusals (no token, a wrong one) are counted, not logged
    assert len(rows) == len(cases) - 2 and all(r["outcome"] == "error" and r["status"] != 401 for r in rows)


def test_key_as_query_parameter_and_json_array_stream(proxy, token, mock, core) -> None:  # type: ignore[no-untyped-def]
    """`?key=` is how Google's REST examples pass the key; streamGenerateContent without alt=sse answers
    with one JSON array."""
    mock.enqueue(Reply(text="hello back"))
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    r = httpx.post(
        f"{proxy.url}/v1beta/models/default:streamGenerateContent", params={"key": token}, json=body
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    (only,) = r.json()
    assert only["candidates"][0]["content"]["parts"] == [{"text": "hello back"}]
    assert "key" not in mock.requests[-1].path and mock.requests[-1].json["messages"] == [
        {"role": "user", "content": "hi"}
    ]
    # an explicit provider/model target, slashes and all, in the path
    mock.enqueue(Reply(text="from the small model"))
    r = httpx.post(
        f"{proxy.url}/v1beta/models/cheapco/qwen/qwen3-coder-30b:generateContent",
        params={"key": token},
        json=body,
    )
    assert r.status_code == 200 and mock.requests[-1].model == "qwen/qwen3-coder-30b"
    rows = logged_calls(core)
    assert [r["requested_model"] for r in rows] == ["default", "cheapco/qwen/qwen3-coder-30b"]
    assert all(token not in str(row) for row in rows)  # the ?key= never reaches the log
    # the ?key= form is for the Gemini endpoints only
    other = httpx.post(f"{proxy.url}/v1/chat/completions", params={"key": token},
                       json={"model": "default", "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
    assert other.status_code == 401


def test_sse_events_are_data_lines(proxy, token, mock) -> None:  # type: ignore[no-untyped-def]
    mock.enqueue(Reply(text="a b", usage=Usage(prompt=5, completion=2)))
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    r = httpx.post(f"{proxy.url}/v1beta/models/default:streamGenerateContent?alt=sse", json=body,
                   headers={"x-goog-api-key": token})  # fmt: skip
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [block for block in r.content.split(b"\n\n") if block]
    assert all(e.startswith(b"data: {") and b"\nevent:" not in e for e in events)
    chunks = [orjson.loads(e[6:]) for e in events]
    assert "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"]) == "a b"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"] == {
        "promptTokenCount": 5,
        "candidatesTokenCount": 2,
        "totalTokenCount": 7,
    }


@pytest.mark.parametrize("streamed", [False, True])
def test_parallel_and_unnamed_calls_are_attributed(gemini, mock, core, upstream, streamed) -> None:  # type: ignore[no-untyped-def]
    """Two calls the upstream left without an id: the client gets an id minted for each, reports the second
    one's failure under it, and the log marks exactly that call."""
    from app.core.queries.calls import call_detail

    args = [{"file_path": f"{n}.txt", "content": n} for n in ("a", "b")]
    mock.enqueue(
        Reply(tool_calls=[ToolCall("write_file", a, id="") for a in args], stream_chunks=3), Reply(text="ok")
    )
    config = types.GenerateContentConfig(tools=TOOLS, automatic_function_calling=NO_AFC)
    if streamed:
        chunks = list(
            gemini.models.generate_content_stream(model="default", contents="write both", config=config)
        )
        calls = [fc for c in chunks for fc in c.function_calls or ()]
    else:
        calls = gemini.models.generate_content(
            model="default", contents="write both", config=config
        ).function_calls
    ids = [c.id for c in calls]
    assert [c.args for c in calls] == args and all(ids) and len(set(ids)) == 2, ids
    responses = [types.Part(function_response=types.FunctionResponse(
        id=c.id, name="write_file", response={"error": "disk full"} if k else {"output": "ok"})) for k, c in enumerate(calls)]  # fmt: skip
    gemini.models.generate_content(model="default", config=config, contents=[
        types.Content(role="user", parts=[types.Part(text="write both")]),
        types.Content(role="model", parts=[types.Part(function_call=c) for c in calls]),
        types.Content(role="user", parts=responses)])  # fmt: skip
    rows = logged_calls(core)
    tool_rows = call_detail(core.db, rows[0]["call_id"])["tool_call_rows"]
    assert [t["tool_call_id"] for t in tool_rows] == ids  # the log holds the ids the client was given
    assert [t["tool_call_id"] for t in tool_rows if t["result_failed"]] == [ids[1]]

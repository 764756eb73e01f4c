"""A failed tool result counts against the call that made the tool call, on every ingress x upstream pair.

Turn 1: the model (the mock upstream) emits a tool call, the client reads the id it was given. Turn 2: the
client sends that call's failed result back under that id (`is_error` for Anthropic clients, an output the
text rule reads as a failure for chat and Responses clients). The log must mark turn 1's tool-call row and
the model's tool failure rate must count it, whatever translation stood between the two sides: a
translated route hands the client `toolu_...` for an upstream `call_...` (or the reverse).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from analytics_support import settled

from app.core.queries import dashboard
from app.core.queries.calls import call_detail
from app.testing.ports import dead_url
from app.testing.script import Reply, ToolCall

PARAMS = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
PATCH = "*** Begin Patch\n*** Add File: a.py\n+print(1)\n*** End Patch\n"
FAILED_TEXT = "Error: no such file or directory: a.py"  # a failure under the text rule
UPSTREAMS = {
    "chat": ("default", "qwen/qwen3-coder"),
    "anthropic": ("premium/claude-sonnet-4-6", "claude-sonnet-4-6"),
}


def _sse(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    events = []
    for line in response.text.splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            events.append(json.loads(line[5:]))
    return events


class Client:
    """Talks to the proxy the way one API's clients do, and reads the tool-call id back as they would."""

    def __init__(
        self,
        proxy,
        token: str,
        api: str,
        model: str,
        stream: bool,
        custom: bool = False,
        params: dict[str, Any] = PARAMS,
    ) -> None:  # type: ignore[no-untyped-def]
        self.proxy, self.token, self.params = proxy, token, params
        self.api, self.model, self.stream, self.custom = api, model, stream, custom

    def post(self, body: dict[str, Any]) -> httpx.Response:
        body = {"model": self.model, "stream": self.stream, **body}
        if self.api == "anthropic":
            return httpx.post(
                f"{self.proxy.url}/v1/messages",
                json={"max_tokens": 1000, **body},
                timeout=20,
                headers={"x-api-key": self.token, "anthropic-version": "2023-06-01"},
            )
        path = "/v1/responses" if self.api == "responses" else "/v1/chat/completions"
        return httpx.post(
            f"{self.proxy.url}{path}",
            json=body,
            timeout=20,
            headers={"Authorization": f"Bearer {self.token}"},
        )

    def tools(self) -> list[dict[str, Any]]:
        if self.api == "anthropic":
            return [{"name": "read_file", "input_schema": self.params}]
        if self.api == "responses":
            if self.custom:
                return [
                    {
                        "type": "custom",
                        "name": "apply_patch",
                        "description": "Edit files.",
                        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/s"},
                    }
                ]
            return [{"type": "function", "name": "read_file", "parameters": self.params}]
        return [{"type": "function", "function": {"name": "read_file", "parameters": self.params}}]

    def first_turn(self) -> list[str]:
        """Ask; return the tool-call ids the client was given."""
        key = "input" if self.api == "responses" else "messages"
        response = self.post({key: [{"role": "user", "content": "read a.py"}], "tools": self.tools()})
        if self.stream:
            return self._id_from_stream(_sse(response))
        assert response.status_code == 200, response.text
        data = response.json()
        if self.api == "anthropic":
            return [b["id"] for b in data["content"] if b["type"] == "tool_use"]
        if self.api == "responses":
            return self._call_ids(
                [i for i in data["output"] if i["type"] in ("function_call", "custom_tool_call")]
            )
        return [call["id"] for call in data["choices"][0]["message"]["tool_calls"]]

    def _id_from_stream(self, events: list[dict[str, Any]]) -> list[str]:
        if self.api == "anthropic":
            return [
                e["content_block"]["id"]
                for e in events
                if e.get("type") == "content_block_start" and e["content_block"]["type"] == "tool_use"
            ]
        if self.api == "responses":
            return self._call_ids(
                [
                    e["item"]
                    for e in events
                    if e.get("type") == "response.output_item.done"
                    and e["item"]["type"] in ("function_call", "custom_tool_call")
                ]
            )
        return [
            c["id"]
            for e in events
            for ch in e.get("choices") or ()
            for c in ch["delta"].get("tool_calls") or ()
            if c.get("id")
        ]

    def _call_ids(self, items: list[dict[str, Any]]) -> list[str]:
        assert {i["type"] for i in items} == {"custom_tool_call" if self.custom else "function_call"}
        return [i["call_id"] for i in items]

    def results(self, tool_ids: list[str], failing: str) -> httpx.Response:
        """Turn 2: the calls in the history and their results, `failing`'s reporting a failure, each under
        the id the client saw."""
        if self.api == "anthropic":
            uses = [
                {"type": "tool_use", "id": i, "name": "read_file", "input": {"path": "a.py"}}
                for i in tool_ids
            ]
            results = [
                {
                    "type": "tool_result",
                    "tool_use_id": i,
                    "is_error": i == failing,
                    "content": "File does not exist." if i == failing else "print(1)",
                }
                for i in tool_ids
            ]
            messages = [
                {"role": "user", "content": "read a.py"},
                {"role": "assistant", "content": uses},
                {"role": "user", "content": results},
            ]
            return self.post({"messages": messages, "tools": self.tools()})
        if self.api == "responses":
            items: list[dict[str, Any]] = [{"role": "user", "content": "read a.py"}]
            for i in tool_ids:
                if self.custom:
                    items.append(
                        {"type": "custom_tool_call", "call_id": i, "name": "apply_patch", "input": PATCH}
                    )
                    items.append(
                        {
                            "type": "custom_tool_call_output",
                            "call_id": i,
                            "output": "error: patch did not apply" if i == failing else "Done!",
                        }
                    )
                else:
                    items.append(
                        {
                            "type": "function_call",
                            "call_id": i,
                            "name": "read_file",
                            "arguments": '{"path": "a.py"}',
                        }
                    )
                    items.append(
                        {
                            "type": "function_call_output",
                            "call_id": i,
                            "output": FAILED_TEXT if i == failing else "print(1)",
                        }
                    )
            return self.post({"input": items, "tools": self.tools()})
        calls = [
            {"id": i, "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}
            for i in tool_ids
        ]
        messages = [
            {"role": "user", "content": "read a.py"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            *(
                {"role": "tool", "tool_call_id": i, "content": FAILED_TEXT if i == failing else "print(1)"}
                for i in tool_ids
            ),
        ]
        return self.post({"messages": messages, "tools": self.tools()})


def _run(
    proxy,
    mock,
    token,
    core,
    ingress: str,
    upstream: str,
    stream: bool,
    *,
    custom: bool = False,  # type: ignore[no-untyped-def]
    ids: tuple[str | None, ...] = (None,),
    failing: int = 0,
    params: dict[str, Any] = PARAMS,
    kind: str = "ok",
) -> list[str]:
    """Turn 1 makes one tool call per entry of `ids` (None: the upstream's own style of id, "": an empty
    id), turn 2 reports the result of call `failing` as failed. Returns the ids the client saw."""
    model, upstream_model = UPSTREAMS[upstream]
    client = Client(proxy, token, ingress, model, stream, custom, params)
    if custom:
        calls = [ToolCall("apply_patch", {"input": PATCH}, id=i) for i in ids]
    else:
        calls = [ToolCall("read_file", {"path": "a.py"}, id=i) for i in ids]
    mock.enqueue(Reply(tool_calls=calls, stream_chunks=3), Reply(text="Sorry, the file is missing."))
    seen = client.first_turn()
    assert len(seen) == len(ids) == len(set(seen)) and all(seen), seen
    assert all(i.startswith("toolu_") == (ingress == "anthropic") for i in seen), seen
    response = client.results(seen, seen[failing])
    assert response.status_code == 200, response.text
    if stream:
        _sse(response)
    rows = settled(core)
    assert len(rows) == 2 and all(r["outcome"] == "ok" for r in rows), rows
    tool_rows = call_detail(core.db, rows[0]["call_id"])["tool_call_rows"]
    assert [t["kind"] for t in tool_rows] == [kind] * len(ids)
    marked = [t["tool_call_id"] for t in tool_rows if t["result_failed"]]
    assert marked, (
        f"turn 1's call was not marked failed (client saw {seen}, log holds {[t['tool_call_id'] for t in tool_rows]})"
    )
    assert marked == [seen[failing]]  # the call whose result failed, under the id the client saw
    assert [t["tool_call_id"] for t in tool_rows] == seen
    assert call_detail(core.db, rows[1]["call_id"])["tool_call_rows"] == []
    rel = dashboard.reliability(core.db)
    by_model = rel["models"][upstream_model]
    assert (by_model["tool_calls"], by_model["failed"], by_model["by_kind"]["result_failed"]) == (
        len(ids),
        1,
        1,
    )
    assert by_model["failure_rate"] == pytest.approx(1 / len(ids))
    assert rel["total"]["failed"] == 1
    assert dashboard.tiles(core.db, since=time.time() - 3600)["tool_failure_rate"] == pytest.approx(
        1 / len(ids)
    )
    return seen


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("upstream", ["chat", "anthropic"])
@pytest.mark.parametrize("ingress", ["openai", "anthropic", "responses"])
def test_failed_result_is_attributed_to_the_call_that_made_it(
    proxy, mock, token, core, ingress, upstream, stream
) -> None:  # type: ignore[no-untyped-def]
    _run(proxy, mock, token, core, ingress, upstream, stream)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("upstream", ["chat", "anthropic"])
def test_failed_custom_tool_output_is_attributed(proxy, mock, token, core, upstream, stream) -> None:  # type: ignore[no-untyped-def]
    """Codex's apply_patch: a custom tool bridged to a function upstream, its output sent back as
    `custom_tool_call_output` under the `call_id` of the `custom_tool_call` item."""
    _run(proxy, mock, token, core, "responses", upstream, stream, custom=True)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("ingress", ["openai", "anthropic", "responses"])
def test_parallel_calls_only_the_failed_one_is_marked(proxy, mock, token, core, ingress, stream) -> None:  # type: ignore[no-untyped-def]
    """Three calls in one answer, the second's result fails: that call's row, and no other, is marked."""
    upstream = "anthropic" if ingress == "openai" else "chat"  # each over a translated route
    _run(proxy, mock, token, core, ingress, upstream, stream, ids=(None, None, None), failing=1)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("ingress", ["anthropic", "responses"])
def test_calls_the_upstream_left_unnamed_get_the_minted_ids(
    proxy, mock, token, core, ingress, stream
) -> None:  # type: ignore[no-untyped-def]
    """A chat server that sends empty tool-call ids: the translator mints the ids the client sees, and the
    log keeps those, so a failure reported under one is still attributed."""
    seen = _run(proxy, mock, token, core, ingress, "chat", stream, ids=("", ""), failing=1)
    assert mock.requests[0].json["model"] == "qwen/qwen3-coder" and len(set(seen)) == 2


@pytest.mark.parametrize("ingress", ["openai", "anthropic"])
def test_a_failed_result_counts_against_an_unchecked_call(proxy, mock, token, core, ingress) -> None:  # type: ignore[no-untyped-def]
    """A tool whose schema could not be checked (here it refers outside itself) is "unchecked", not failed;
    when its result then comes back failed, that failure is the model's call failing like any other."""
    remote = {"type": "object", "properties": {"path": {"$ref": dead_url("/path.json")}}}
    _run(proxy, mock, token, core, ingress, "chat", False, params=remote, kind="unchecked")

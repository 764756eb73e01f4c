"""The three answer translators (to Anthropic, Responses and Gemini clients) read the chat-completions pivot
the same way: a whole answer and the same answer streamed carry the same reasoning, text and usage,
whichever field or shape the provider used (`translate/pivot.py` holds the one reading of each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.proxy.translate import anthropic, gemini, responses
from app.proxy.translate.gemini_request import GeminiContext
from app.proxy.translate.responses_request import ResponsesContext

Seen = tuple[str, str]  # (reasoning, text) a client received


def _anthropic_whole(message: dict[str, Any]) -> Seen:
    out = anthropic.openai_to_anthropic_response(_completion(message), model="claude")
    return _join(out["content"], "thinking", "thinking"), _join(out["content"], "text", "text")


def _anthropic_stream(chunks: list[dict[str, Any]]) -> Seen:
    stream = anthropic.OpenAIToAnthropicStream(model="claude")
    events = [e for c in chunks for e in stream.feed(c)] + stream.finish()
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    return _join(deltas, "thinking_delta", "thinking"), _join(deltas, "text_delta", "text")


def _responses_whole(message: dict[str, Any]) -> Seen:
    out = responses.chat_to_responses_response(_completion(message), ResponsesContext(model="m"))
    reasoning = "".join(s["text"] for i in out["output"] if i["type"] == "reasoning" for s in i["summary"])
    text = "".join(c["text"] for i in out["output"] if i["type"] == "message" for c in i["content"])
    return reasoning, text


def _responses_stream(chunks: list[dict[str, Any]]) -> Seen:
    stream = responses.ChatToResponsesStream(ResponsesContext(model="m"))
    events = [e for c in chunks for e in stream.feed(c)] + stream.finish()
    reasoning = "".join(e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta")
    return reasoning, "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def _gemini_parts(chunks: list[dict[str, Any]]) -> Seen:
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"] if "text" in p]
    return "".join(p["text"] for p in parts if p.get("thought")), "".join(
        p["text"] for p in parts if not p.get("thought")
    )


def _gemini_whole(message: dict[str, Any]) -> Seen:
    return _gemini_parts(
        [gemini.chat_to_gemini_response(_completion(message), GeminiContext("m", thoughts=True))]
    )


def _gemini_stream(chunks: list[dict[str, Any]]) -> Seen:
    stream = gemini.ChatToGeminiStream(GeminiContext("m", thoughts=True))
    return _gemini_parts([e for c in chunks for e in stream.feed(c)] + stream.finish())


def _join(blocks: list[dict[str, Any]], kind: str, key: str) -> str:
    return "".join(b[key] for b in blocks if b["type"] == kind)


def _completion(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "created": 1,
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}],
    }


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **extra}]}


CLIENTS: dict[str, tuple[Callable[[dict[str, Any]], Seen], Callable[[list[dict[str, Any]]], Seen]]] = {
    "anthropic": (_anthropic_whole, _anthropic_stream),
    "responses": (_responses_whole, _responses_stream),
    "gemini": (_gemini_whole, _gemini_stream),
}
ANSWERS = {  # the provider's message, and what every client must see of it
    "empty reasoning_content beside reasoning": ({"reasoning_content": "", "reasoning": "plan", "content": "ok"}, ("plan", "ok")),
    "reasoning under OpenRouter's name": ({"reasoning": "plan", "content": "ok"}, ("plan", "ok")),
    "content parts (Mistral)": ({"content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]}, ("", "hello")),
}  # fmt: skip


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("case", ANSWERS)
def test_whole_and_streamed_answers_carry_the_same_reasoning_and_text(client: str, case: str) -> None:
    message, seen = ANSWERS[case]
    whole, streamed = CLIENTS[client]
    assert whole(message) == seen
    assert streamed([_chunk({"role": "assistant"}), _chunk(message), _chunk({}, "stop")]) == seen


def _output_tokens(client: str, chunks: list[dict[str, Any]]) -> int | None:
    if client == "anthropic":
        stream = anthropic.OpenAIToAnthropicStream(model="claude")
        events = [e for c in chunks for e in stream.feed(c)] + stream.finish()
        return int(next(e for e in events if e["type"] == "message_delta")["usage"]["output_tokens"])
    if client == "responses":
        rstream = responses.ChatToResponsesStream(ResponsesContext(model="m"))
        revents = [e for c in chunks for e in rstream.feed(c)] + rstream.finish()
        usage = revents[-1]["response"]["usage"]
        return None if usage is None else int(usage["output_tokens"])
    gstream = gemini.ChatToGeminiStream(GeminiContext("m"))
    gevents = [e for c in chunks for e in gstream.feed(c)] + gstream.finish()
    metadata = gevents[-1].get("usageMetadata")
    return None if metadata is None else int(metadata["candidatesTokenCount"])


USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
USAGE_PLACES = {  # where providers put a stream's usage
    "last chunk (stream_options)": [_chunk({"content": "hi"}), _chunk({}, "stop"), {"id": "c", "choices": [], "usage": USAGE}],
    "x_groq (Groq)": [_chunk({"content": "hi"}), {"id": "c", "choices": [], "x_groq": {"usage": USAGE}}, _chunk({}, "stop")],
    "the finishing choice (Moonshot)": [_chunk({"content": "hi"}), _chunk({}, "stop", usage=USAGE)],
}  # fmt: skip


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("place", USAGE_PLACES)
def test_streamed_usage_reaches_the_client_wherever_the_provider_put_it(client: str, place: str) -> None:
    assert _output_tokens(client, USAGE_PLACES[place]) == 7

"""Request validation (app.proxy.validate) at every ingress: the same client mistake is refused with the same
words whichever API the client spoke, Gemini's (model and method in the path) included, each in its own
error shape. The per-field cases are in tests/test_bad_input.py."""

from __future__ import annotations

import httpx
import pytest
from conftest import logged_calls

from app.proxy import validate
from app.proxy.errors import ProxyError

INGRESS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "responses": "/v1/responses",
    "count_tokens": "/v1/messages/count_tokens",
    "gemini": "/v1beta/models/default:generateContent",
    "gemini_count": "/v1beta/models/default:countTokens",
}


def message(ingress: str, r: httpx.Response) -> str:
    body = r.json()
    if ingress in ("anthropic", "count_tokens"):
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    elif ingress.startswith("gemini"):
        assert body["error"]["status"] == "INVALID_ARGUMENT" and body["error"]["code"] == 400
    else:
        assert body["error"]["type"] == "invalid_request_error"
    text = body["error"]["message"]
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize(
    ("body", "start"),
    [
        (b"", "the request body is empty; expected a JSON object"),
        (b'{"model": ', "the request body is not valid JSON: "),
        (b"[1, 2]", "the request body must be a JSON object"),
    ],
    ids=["empty", "malformed", "not_an_object"],
)
def test_every_ingress_refuses_a_bad_body_in_the_same_words(proxy, token, core, body, start) -> None:  # type: ignore[no-untyped-def]
    headers = {
        "Authorization": f"Bearer {token}",
        "x-api-key": token,
        "x-goog-api-key": token,
        "anthropic-version": "2023-06-01",
        "Content-Type": "application/json",
    }
    for ingress, path in INGRESS.items():
        r = httpx.post(f"{proxy.url}{path}", content=body, headers=headers, timeout=30)
        assert r.status_code == 400, (ingress, r.text)
        assert message(ingress, r).startswith(start), (ingress, r.text)
    rows = logged_calls(core)
    assert len(rows) == len(INGRESS) and {row["status"] for row in rows} == {400}


def test_a_maximum_output_is_checked_the_same_way_for_every_api() -> None:
    for name, value in (
        ("max_tokens", 0),
        ("generationConfig.maxOutputTokens", 10**12),
        ("max_output_tokens", 1.5),
    ):
        with pytest.raises(ProxyError) as caught:
            validate.token_limit(name, value)
        assert (caught.value.status, caught.value.param) == (400, name)
        assert caught.value.message.startswith(f"'{name}' must be a whole number from 1 to ")
    validate.token_limit("max_tokens", None)
    validate.token_limit("max_tokens", validate.MAX_TOKENS_LIMIT)


def test_request_checks_only_the_ends_of_a_conversation() -> None:
    """O(1) in the conversation's length: an odd item in the middle is left to the translators."""
    middle = [{"role": "user", "content": "a"}, 7, {"role": "user", "content": "b"}]
    assert validate.request(
        b'{"model": "m", "messages": %b}' % str(middle).replace("'", '"').encode(), "openai"
    )
    with pytest.raises(ProxyError, match="non-empty list of message objects"):
        validate.request(b'{"model": "m", "messages": [7]}', "anthropic")
    with pytest.raises(ProxyError, match="a string or a list of input items"):
        validate.request(b'{"model": "m", "input": 7}', "responses")
    counted = validate.request(b'{"model": "m", "messages": [{}], "max_tokens": 0}', "anthropic", count=True)
    assert counted["max_tokens"] == 0  # count_tokens takes no maximum output

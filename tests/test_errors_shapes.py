"""One error module (app.proxy.errors): the same upstream failure gives the same message, cut at the same
length, whatever API the client spoke (chat completions, Messages, Responses, Gemini), in that API's own
error shape; and the log row says the same."""

from __future__ import annotations

import httpx
import pytest
from conftest import logged_calls

from app.proxy import errors
from app.proxy.translate.anthropic import openai_error_to_anthropic
from app.proxy.translate.gemini import chat_error_to_gemini
from app.proxy.translate.responses import chat_error_to_responses
from app.testing.script import Reply

GATEWAY_PAGE = (
    "<html><body><h1>400 Bad Request</h1>" + "the gateway said no. " * 300 + "</body></html>"
).encode()
LONG = "x" * 5000


def call(proxy, token: str, api: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    """One generation call in `api`, to the `cheap` preset's OpenAI-format target."""
    if api == "gemini":
        return httpx.post(
            f"{proxy.url}/v1beta/models/default:generateContent",
            headers={"x-goog-api-key": token},
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
            timeout=30,
        )
    if api == "responses":
        url, body = "/v1/responses", {"model": "default", "input": "hi"}
    elif api == "anthropic":
        url, body = (
            "/v1/messages",
            {"model": "default", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
        )
    else:
        url, body = (
            "/v1/chat/completions",
            {"model": "default", "messages": [{"role": "user", "content": "hi"}]},
        )
    headers = {"Authorization": f"Bearer {token}", "x-api-key": token, "anthropic-version": "2023-06-01"}
    return httpx.post(f"{proxy.url}{url}", headers=headers, json=body, timeout=30)


def message_of(api: str, r: httpx.Response) -> str:
    body = r.json()
    if api == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    elif api == "gemini":
        assert body["error"]["code"] == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    else:
        assert body["error"]["type"] == "invalid_request_error"
    message = body["error"]["message"]
    assert isinstance(message, str)
    return message


APIS = ("openai", "anthropic", "responses", "gemini")


@pytest.mark.parametrize(
    ("upstream_body", "expected"),
    [
        (GATEWAY_PAGE, GATEWAY_PAGE.decode()[: errors.MESSAGE_MAX_CHARS]),
        (b"", "upstream error (HTTP 400)"),
        (
            b'{"detail": [{"loc": ["body", "messages", 0], "msg": "field required"}]}',
            "messages.0: field required",
        ),
    ],
    ids=["gateway_page", "empty", "fastapi_detail"],
)
def test_the_same_upstream_failure_reads_the_same_in_every_client_shape(  # type: ignore[no-untyped-def]
    proxy, mock, token, core, upstream_body, expected
) -> None:
    seen = {}
    for api in APIS:
        mock.enqueue(Reply(status=400, error=upstream_body))
        r = call(proxy, token, api)
        assert r.status_code == 400, (api, r.text)
        seen[api] = message_of(api, r)
    assert seen == dict.fromkeys(APIS, expected)
    rows = logged_calls(core)
    assert [(row["client_api"], row["error_message"]) for row in rows] == [(api, expected) for api in APIS]


def test_one_cut_length_for_text_in_every_shape() -> None:
    text = LONG.encode()
    cut = "x" * errors.MESSAGE_MAX_CHARS
    assert errors.upstream_error_message(text, 502) == cut
    assert errors.error_message(502, text) == cut
    assert openai_error_to_anthropic(502, text)["error"]["message"] == cut
    assert chat_error_to_responses(502, text)["error"]["message"] == cut
    assert chat_error_to_gemini(502, text)["error"]["message"] == cut
    assert errors.anthropic_error_to_openai(502, text)["error"]["message"] == cut


def test_error_types_per_shape() -> None:
    assert [errors.error_type(api, 429) for api in APIS] == [
        "rate_limit_error",
        "rate_limit_error",
        "rate_limit_exceeded",
        "RESOURCE_EXHAUSTED",
    ]
    assert [errors.error_type(api, 599) for api in APIS] == [
        "server_error",
        "api_error",
        "server_error",
        "INTERNAL",
    ]
    assert [errors.error_type(api, 418) for api in APIS] == [
        "invalid_request_error",
        "invalid_request_error",
        "invalid_request_error",
        "INVALID_ARGUMENT",
    ]


def test_old_import_paths_still_work() -> None:
    from app.proxy.translate import errors as translate_errors

    assert translate_errors.openai_error_to_anthropic is errors.openai_error_to_anthropic
    assert translate_errors.error_message is errors.error_message
    assert translate_errors.anthropic_error_type("stalled") == "timeout_error"
    assert issubclass(translate_errors.TranslationError, ValueError)

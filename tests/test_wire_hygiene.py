"""Compressed request bodies: one that does not decode, or in an encoding Downshift cannot read, is a 4xx in
the caller's own API shape (never a 500 or aiohttp's plain text), a valid one works, and a small body that
inflates past the size limit is a 413. No answer names the server's or its libraries' versions."""

from __future__ import annotations

import gzip
import socket
import zlib

import httpx
import orjson
import pytest
from conftest import logged_calls

CHAT = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
BODIES = {"/v1/chat/completions": CHAT, "/v1/messages": {**CHAT, "max_tokens": 10}}


def post(proxy, token: str, path: str, body: bytes, encoding: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(
        f"{proxy.url}{path}",
        content=body,
        timeout=10,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": encoding,
        },
    )


def assert_caller_shape(path: str, r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    data = r.json()
    if path == "/v1/messages":
        assert data["type"] == "error" and data["error"]["type"] == "invalid_request_error" or status == 413
        return data["error"]["message"]
    assert set(data["error"]) >= {"message", "type", "code"}
    return data["error"]["message"]


@pytest.mark.parametrize("path", list(BODIES))
def test_bodies_that_do_not_decode_get_a_400_in_the_callers_shape(proxy, token, core, mock, path) -> None:  # type: ignore[no-untyped-def]
    good = orjson.dumps(BODIES[path])
    cases = [
        ("gzip", b"this is not gzip", 400),
        ("gzip", gzip.compress(good)[:-12], 400),  # cut short
        ("deflate", b"\x00\x01garbage", 400),
        ("x-gzip", b"\x1f\x8b\x08\x00junk", 400),
        ("br", b"anything", 415),
        ("zstd", b"anything", 415),
        ("gzip, mystery", good, 415),
    ]
    for encoding, body, status in cases:
        message = assert_caller_shape(path, post(proxy, token, path, body, encoding), status)
        assert "Content-Encoding" in message or "encoding" in message.lower(), message
    assert mock.requests == []
    for encoding, body in (
        ("gzip", gzip.compress(good)),
        ("deflate", zlib.compress(good)),
        ("identity", good),
        ("deflate", zlib.compress(good)[2:-4]),
    ):  # raw deflate, as some clients send it
        assert post(proxy, token, path, body, encoding).status_code == 200, encoding
    rows = logged_calls(core)  # authenticated calls: each has its row, none an internal error
    assert len(rows) == len(cases) + 4 and not any(r["status"] == 500 for r in rows)


def test_a_body_that_inflates_past_the_limit_is_413(proxy, token, core) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    core.config_store.save(replace(core.config, max_body_mb=1))
    bomb = gzip.compress(b'{"model": "default", "messages": [], "pad": "' + b"a" * 5_000_000 + b'"}')
    assert len(bomb) < 20_000
    r = post(proxy, token, "/v1/chat/completions", bomb, "gzip")
    assert r.status_code == 413 and "decoded request body" in r.json()["error"]["message"]


def test_no_answer_names_versions(proxy, token) -> None:  # type: ignore[no-untyped-def]
    answers = [
        httpx.get(f"{proxy.url}/health"),
        httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT),  # 401
        httpx.post(
            f"{proxy.url}/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {token}"}
        ),
        httpx.post(
            f"{proxy.url}/v1/chat/completions", content=b"{", headers={"Authorization": f"Bearer {token}"}
        ),
        httpx.get(f"{proxy.url}/nowhere", headers={"Authorization": f"Bearer {token}"}),
    ]
    with socket.create_connection(("127.0.0.1", proxy.port)) as raw:  # malformed HTTP: aiohttp's own 400
        raw.sendall(b"GARBAGE / HTTP/9.9\r\n\r\n")
        raw.settimeout(5)
        low_level = raw.recv(65536).decode("latin-1")
    assert low_level.startswith("HTTP/1.") and " 400 " in low_level.splitlines()[0]
    for text in [low_level, *(f"{r.headers}\n{r.text}" for r in answers)]:
        lowered = text.lower()
        assert "aiohttp" not in lowered and "python/" not in lowered, text
    assert all(r.headers.get("server") == "Downshift" for r in answers)

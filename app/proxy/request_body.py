"""A request's body, read under the configured size limit and decoded here rather than by aiohttp.

aiohttp's own body limit is off (`client_max_size` is huge) so that a change of `proxy.max_body_mb` applies
to the next request; a body that is too large, stalls, does not decode or is not JSON becomes a ProxyError,
answered in the caller's API shape and logged like any call.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from aiohttp import web

from app.proxy.errors import ProxyError
from app.proxy.guard import BodyTimeout

_Decoder = Callable[[], "zlib._Decompress"]


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, within `limit` bytes before and after decoding; JSON content types only."""
    content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
    if content_type not in (
        "application/json",
        "",
        "text/plain",
        "application/x-json",
    ) and not content_type.endswith("+json"):
        raise ProxyError(
            415,
            "bad_content_type",
            f"expected a JSON body (Content-Type: application/json), got {content_type[:100]!r}",
        )
    length = request.content_length
    if length is not None and length > limit:
        raise ProxyError(
            413,
            "too_large",
            f"the request body ({length} bytes) is over the {limit} byte limit (proxy.max_body_mb)",
            headers={"Connection": "close"},
        )
    chunks = []
    size = 0
    content = request.content
    while True:
        try:
            chunk = await content.readany()
        except RuntimeError as exc:  # aiohttp's "Connection closed.": the client went away mid-body
            raise ProxyError(499, "client_disconnected", "the client closed the connection") from exc
        except BodyTimeout as exc:
            raise ProxyError(
                408,
                "body_timeout",
                f"the request body stopped arriving: {exc}",
                headers={"Connection": "close"},
            ) from None
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise ProxyError(
                413,
                "too_large",
                f"the request body is over the {limit} byte limit (proxy.max_body_mb)",
                headers={"Connection": "close"},
            )
        chunks.append(chunk)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    encoding = request.headers.get("Content-Encoding")
    return body if encoding is None else decode_body(body, encoding, limit)


def decode_body(body: bytes, header: str, limit: int) -> bytes:
    """A compressed request body, decoded here rather than by aiohttp so that a body that does not decode,
    or an encoding we cannot read, is a 400/415 in the caller's shape (aiohttp answers those with a 500 or
    a plain-text 400); the decoded size is held to the same limit as a plain body (no zip bombs)."""
    for name in reversed([part.strip().lower() for part in header.split(",") if part.strip()]):
        if name == "identity":
            continue
        decoders: list[_Decoder]
        if name in ("gzip", "x-gzip"):
            decoders = [lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)]
        elif name == "deflate":  # zlib-wrapped as the RFC says, or raw deflate as some clients send
            decoders = [zlib.decompressobj, lambda: zlib.decompressobj(-zlib.MAX_WBITS)]
        else:
            raise ProxyError(
                415,
                "unsupported_encoding",
                f"Content-Encoding {name[:50]!r} is not supported: send the "
                "body uncompressed, or gzip or deflate",
            )
        body = _inflate(body, name, decoders, limit)
    return body


def _inflate(body: bytes, name: str, decoders: list[_Decoder], limit: int) -> bytes:
    problem = "no data"
    for make in decoders:
        decoder = make()
        try:
            out = decoder.decompress(body, limit + 1)
        except zlib.error as exc:
            problem = str(exc)
            continue
        if len(out) > limit or decoder.unconsumed_tail:
            raise ProxyError(
                413,
                "too_large",
                f"the decoded request body is over the {limit} byte limit (proxy.max_body_mb)",
                headers={"Connection": "close"},
            )
        if decoder.eof:
            return out
        problem = "the compressed data ends early"
    raise ProxyError(
        400, "bad_encoding", f"the request body does not decode as {name} (Content-Encoding): {problem}"
    )

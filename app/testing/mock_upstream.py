"""A real HTTP server that impersonates an LLM provider, scripted from tests, benchmarks and the demo.

It speaks OpenAI chat completions and Anthropic Messages over real sockets, so the proxy is exercised
exactly as in production: its HTTP client, SSE parsing, timeouts and error paths all see real bytes.
Tests script it from their own thread; the server runs on a private event loop (or in the caller's
loop via `start_async`). Run standalone for benchmarks: `python -m app.testing.mock_upstream --port 9000`.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import inspect
import itertools
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson
from aiohttp import web

from app.testing import wire
from app.testing.script import FAULT_KINDS, Fault, RecordedRequest, Reply, Script, ToolCall, Usage

__all__ = [
    "DEFAULT_MODELS",
    "ECHO_KEY_MODES",
    "FAULT_KINDS",
    "Fault",
    "MockUpstream",
    "RecordedRequest",
    "Reply",
    "ToolCall",
    "Usage",
    "main",
]

DEFAULT_MODELS = wire.DEFAULT_MODELS
GENERATION_PATHS = frozenset({"/v1/chat/completions", "/v1/messages"})
_MID_STREAM = frozenset(
    {"reset_mid_stream", "close_mid_stream", "truncate", "stall_mid_stream", "malformed_sse", "error_event"}
)
_JSON = "application/json"
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_Answer = Callable[[web.Request, RecordedRequest, int], Awaitable[web.StreamResponse]]
# A provider that echoes the key it was sent (several do, in error messages), in every spelling and position.
ECHO_KEY_MODES = (
    "error_raw",  # 401, JSON error message and a field holding the key as sent
    "error_unicode",  # 401, the key written as JSON \u00XX escapes
    "error_slashes",  # 500 (retryable: the fallback is tried too), the key with its slashes escaped (\/)
    "error_mixed",  # 403, escaped and plain characters mixed, and the key inside a JSON string inside the JSON
    "error_text",  # 502, a text/plain body with the key as sent
    "headers",  # 429, the key in Retry-After and other response headers
    "sse_error",  # a stream that starts, then an error event quoting the key (\u-escaped and as sent)
    "text",  # a 200 answer whose text quotes the key
)
_BROKEN_EVENT = {
    "openai": b'data: {"id":"chatcmpl-broken","choices":[{"index":0,"delta":{"content":"unterminat\n\n',
    "anthropic": b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"ty\n\n',
}


class MockUpstream:
    """A scripted provider. Queue `Reply`/`Fault` items (or callables deciding per request); each
    generation request takes the next one, falling back to `default` when the queue is empty."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        require_key: str | None = None,
        default: Script | None = None,
        models: Iterable[Mapping[str, Any]] | None = None,
        always_stream_usage: bool = False,
        max_recorded: int | None = 1000,
        echo_key: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.latency = latency  # seconds added before answering any request (network round trip)
        self.require_key = require_key  # None: accept any credential
        self.models: list[Mapping[str, Any]] = list(DEFAULT_MODELS if models is None else models)
        self.always_stream_usage = always_stream_usage  # OpenRouter-style: usage chunk even if not asked
        self.errors: list[BaseException] = []  # exceptions raised by scripted callables
        self.echo_key = (
            echo_key  # one of ECHO_KEY_MODES: every request is answered echoing its key (None: off)
        )
        self._cond = threading.Condition()
        self._queue: deque[tuple[str | None, Script]] = deque()
        self._requests: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self._default: Script = default if default is not None else Reply()
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ scripting (any thread)

    @property
    def base_url(self) -> str:
        if self._runner is None:
            raise RuntimeError("MockUpstream is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def default(self) -> Script:
        with self._cond:
            return self._default

    @default.setter
    def default(self, item: Script) -> None:
        with self._cond:
            self._default = item

    def enqueue(self, *items: Script, endpoint: str | None = None) -> None:
        """Queue answers in order. Without `endpoint` they go to the next generation requests
        (chat completions or messages); with it (e.g. "/v1/models") only to requests on that path."""
        with self._cond:
            self._queue.extend((endpoint, item) for item in items)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the received requests, oldest first."""
        with self._cond:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._cond:
            return self._requests[-1] if self._requests else None

    def clear(self) -> None:
        """Forget queued answers, recorded requests and callable errors (the default stays)."""
        with self._cond:
            self._queue.clear()
            self._requests.clear()
            self.errors.clear()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least `count` requests were recorded (since the last clear)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"got {len(self._requests)} requests, expected {count}")
            return list(self._requests)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> MockUpstream:
        """Serve from a background thread with its own event loop."""
        if self._runner is not None or self._thread is not None:
            raise RuntimeError("MockUpstream already started")
        loop = asyncio.new_event_loop()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:  # report bind errors etc. to the starting thread
                ready.set_exception(exc)
                loop.close()
                return
            ready.set_result(None)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name=f"mock-upstream:{self.port}", daemon=True)
        self._thread.start()
        try:
            ready.result(timeout=10)
        except BaseException:
            self._thread.join(5)
            self._thread = None
            raise
        return self

    def stop(self) -> None:
        """Stop the background server; in-flight responses are cut off."""
        if self._thread is None:
            if self._runner is not None:
                raise RuntimeError("started with start_async(); use stop_async()")
            return
        loop, thread = self._loop, self._thread
        assert loop is not None
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            self._thread = None

    async def start_async(self) -> MockUpstream:
        """Serve from the running event loop (for async tests and the CLI)."""
        if self._runner is not None:
            raise RuntimeError("MockUpstream already started")
        await self._start()
        return self

    async def stop_async(self) -> None:
        await self._stop()

    def __enter__(self) -> MockUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> MockUpstream:
        return await self.start_async()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_async()

    async def _start(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._loop = asyncio.get_running_loop()
        self._runner = runner

    async def _stop(self) -> None:
        runner, self._runner = self._runner, None
        for task in list(self._tasks):  # stalls and slow streams end now, not after their delays
            task.cancel()
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------ endpoints

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._guarded(request, "openai", self._generate)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._guarded(request, "anthropic", self._generate)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        return await self._guarded(request, "anthropic", self._answer_count)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return await self._guarded(request, _guess_api(request), self._answer_models)

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request, _guess_api(request))
        return self._json(404, wire.not_found_body(rec.api, request.method, request.path), rec.api, 0, {})

    async def _guarded(self, request: web.Request, api: str, answer: _Answer) -> web.StreamResponse:
        """Record, apply latency and auth, then answer; tracked so stop() can cut it short."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            rec = await self._record(request, api)
            seq = next(self._seq)
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if self.require_key is not None and rec.api_key != self.require_key:
                return self._json(401, wire.error_body(api, 401, None, _request_id(seq)), api, seq, {})
            mode = self.echo_key
            if mode is not None and rec.api_key:
                return await self._echo_key(request, rec, seq, mode)
            return await answer(request, rec, seq)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _echo_key(
        self, request: web.Request, rec: RecordedRequest, seq: int, mode: str
    ) -> web.StreamResponse:
        """Answer with the credential that came in, spelled and placed the way `mode` says (ECHO_KEY_MODES)."""
        if mode not in ECHO_KEY_MODES:
            raise ValueError(f"unknown echo_key mode {mode!r} (one of {', '.join(ECHO_KEY_MODES)})")
        key, api = rec.api_key or "", rec.api
        headers = {"x-echo-key": key, "www-authenticate": f'Bearer realm="api", error="invalid_token {key}"'}
        generation = rec.path in GENERATION_PATHS
        if mode == "text" and generation:
            reply = Reply(text=f"The key you sent is {key} and escaped {_slashes(key)}", headers=headers)
            return await self._respond(request, rec, seq, reply, None, *self._renderers(rec, reply, seq))
        if mode == "sse_error" and generation and rec.stream:
            reply = Reply(text="partial answer before the error", headers=headers)
            event = _echo_error_event(api, f"invalid key {_unicode(key)} (sent: {key})")
            _, events = self._renderers(rec, reply, seq)
            assert events is not None
            return await self._stream(
                request, api, seq, reply, Fault("error_event", after_chunks=2), events(), error_event=event
            )
        message = "Incorrect API key provided: @KEY@. You can find your API key at https://example.com."
        status = {
            "error_raw": 401,
            "error_unicode": 401,
            "error_slashes": 500,
            "error_mixed": 403,
            "error_text": 502,
            "headers": 429,
        }.get(mode, 401)
        if mode == "error_text":
            text = f"upstream rejected the key {key}"
            return web.Response(status=status, text=text, content_type="text/plain", headers=headers)
        if mode == "headers":
            headers = {**headers, "retry-after": key, "retry-after-ms": key}
            message = "rate limited"
        body = wire.error_body(api, status, message, _request_id(seq))
        if mode == "error_raw":
            data = orjson.loads(body)
            data["key"] = key
            body = orjson.dumps(data)
        if mode == "error_mixed":
            inner = orjson.dumps({"error": {"message": "@KEY@"}}).decode()
            body = wire.error_body(api, status, f"{message} upstream said: {inner}", _request_id(seq))
        spelled = {
            "error_unicode": _unicode(key),
            "error_slashes": _slashes(key),
            "error_mixed": _mixed(key),
        }.get(mode, key)
        body = body.replace(b"@KEY@", spelled.encode())
        return self._json(status, body, api, seq, headers)

    def _renderers(
        self, rec: RecordedRequest, reply: Reply, seq: int
    ) -> tuple[Callable[[], bytes], Callable[[], list[wire.Event]] | None]:
        p = wire.plan(reply, rec, seq)
        if rec.api == "anthropic":
            return (lambda: wire.anthropic_body(p)), (lambda: wire.anthropic_events(p))
        opts = rec.json.get("stream_options") if isinstance(rec.json, dict) else None
        usage = self.always_stream_usage or (isinstance(opts, dict) and bool(opts.get("include_usage")))
        return (lambda: wire.openai_body(p)), (lambda: wire.openai_events(p, usage))

    async def _answer_count(self, request: web.Request, rec: RecordedRequest, seq: int) -> web.StreamResponse:
        body = orjson.dumps({"input_tokens": max(1, len(rec.body) // 4)})
        return await self._answer_fixed(request, rec, seq, body)

    async def _answer_models(
        self, request: web.Request, rec: RecordedRequest, seq: int
    ) -> web.StreamResponse:
        return await self._answer_fixed(
            request, rec, seq, wire.models_body(self.models, rec.api == "anthropic")
        )

    async def _answer_fixed(
        self, request: web.Request, rec: RecordedRequest, seq: int, body: bytes
    ) -> web.StreamResponse:
        """Endpoints with a fixed answer; only items queued for their path can change it."""
        item = self._take(rec.path)
        reply, fault = await self._resolve(item if item is not None else Reply(), rec, Reply())
        return await self._respond(request, rec, seq, reply, fault, lambda: body, None)

    async def _generate(self, request: web.Request, rec: RecordedRequest, seq: int) -> web.StreamResponse:
        if not isinstance(rec.json, dict):
            body = wire.error_body(rec.api, 400, "Request body must be a JSON object.", _request_id(seq))
            return self._json(400, body, rec.api, seq, {})
        item, default = self._take(rec.path), self.default
        reply, fault = await self._resolve(item if item is not None else default, rec, default)
        p = wire.plan(reply, rec, seq)
        if rec.api == "anthropic":
            return await self._respond(
                request,
                rec,
                seq,
                reply,
                fault,
                lambda: wire.anthropic_body(p),
                lambda: wire.anthropic_events(p),
            )
        opts = rec.json.get("stream_options")
        usage = self.always_stream_usage or (isinstance(opts, dict) and bool(opts.get("include_usage")))
        return await self._respond(
            request, rec, seq, reply, fault, lambda: wire.openai_body(p), lambda: wire.openai_events(p, usage)
        )

    # ------------------------------------------------------------ script resolution

    def _take(self, path: str) -> Script | None:
        generation = path in GENERATION_PATHS
        with self._cond:
            for i, (endpoint, item) in enumerate(self._queue):
                if endpoint == path or (endpoint is None and generation):
                    del self._queue[i]
                    return item
        return None

    async def _resolve(
        self, item: Script, rec: RecordedRequest, fallback: Script
    ) -> tuple[Reply, Fault | None]:
        """Turn a queue item into the reply to render and the fault (if any) to break it with."""
        item = await self._call(item, rec)
        if not isinstance(item, Fault):
            return item, None
        inner = await self._call(item.reply if item.reply is not None else fallback, rec)
        return (inner if isinstance(inner, Reply) else Reply()), item

    async def _call(self, item: Script, rec: RecordedRequest) -> Reply | Fault:
        if isinstance(item, Reply | Fault):
            return item
        try:
            result = item(rec)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # the test's script failed: answer 500 and keep the error for the test
            return self._script_error(exc, f"mock script raised {type(exc).__name__}: {exc}")
        if not isinstance(result, Reply | Fault):
            error = TypeError(f"script returned {type(result).__name__}, not Reply or Fault")
            return self._script_error(error, str(error))
        return result

    def _script_error(self, exc: BaseException, message: str) -> Reply:
        with self._cond:
            self.errors.append(exc)
        return Reply(status=500, error=message)

    # ------------------------------------------------------------ responding

    async def _respond(
        self,
        request: web.Request,
        rec: RecordedRequest,
        seq: int,
        reply: Reply,
        fault: Fault | None,
        body: Callable[[], bytes],
        events: Callable[[], list[wire.Event]] | None,
    ) -> web.StreamResponse:
        """Send `reply` (rendered lazily by `body`/`events`), broken the way `fault` says."""
        kind = fault.kind if fault else None
        if kind == "refuse":
            if request.transport is not None:
                request.transport.close()
            return web.Response()  # never written: aiohttp finds the connection closed
        if fault is not None and kind == "stall_before_headers":
            await asyncio.sleep(fault.duration)
        if kind == "malformed_json":
            await _delay(reply.first_byte_delay)
            return self._json(
                200,
                b'{"id": "broken", "choices": [{"index": 0, "message": {"content": "',
                rec.api,
                seq,
                reply.headers,
            )
        if reply.status >= 300:
            await _delay(reply.first_byte_delay)
            return self._json(
                reply.status,
                wire.error_body(rec.api, reply.status, reply.error, _request_id(seq)),
                rec.api,
                seq,
                reply.headers,
            )
        if events is not None and rec.stream:
            return await self._stream(request, rec.api, seq, reply, fault, events())
        await _delay(reply.first_byte_delay)
        if kind == "error_event":
            return self._json(
                500, wire.error_body(rec.api, 500, None, _request_id(seq)), rec.api, seq, reply.headers
            )
        if fault is not None and kind in _MID_STREAM:
            return await self._broken_body(request, rec.api, seq, reply, fault, body())
        return self._json(200, body(), rec.api, seq, reply.headers)

    def _json(self, status: int, body: bytes, api: str, seq: int, extra: Mapping[str, str]) -> web.Response:
        headers = {"Content-Type": _JSON, _id_header(api): _request_id(seq), **extra}
        return web.Response(status=status, body=body, headers=headers)

    async def _broken_body(
        self, request: web.Request, api: str, seq: int, reply: Reply, fault: Fault, body: bytes
    ) -> web.StreamResponse:
        """A non-streaming answer cut in half: Content-Length promises the whole body."""
        resp = web.StreamResponse(
            headers={"Content-Type": _JSON, _id_header(api): _request_id(seq), **reply.headers}
        )
        half = len(body) // 2
        if fault.kind == "malformed_sse":  # no stream to corrupt: send a short, well-framed broken body
            resp.content_length = half
            await resp.prepare(request)
            await resp.write(body[:half])
            return resp
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[:half])
        if fault.kind == "stall_mid_stream":
            await asyncio.sleep(fault.duration)
            await resp.write(body[half:])
        elif fault.kind == "reset_mid_stream":
            _reset(request)
        else:  # close_mid_stream, truncate
            _close(request)
        return resp

    async def _stream(
        self,
        request: web.Request,
        api: str,
        seq: int,
        reply: Reply,
        fault: Fault | None,
        events: list[wire.Event],
        error_event: bytes | None = None,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={**_SSE_HEADERS, _id_header(api): _request_id(seq), **reply.headers}
        )
        await resp.prepare(request)
        await _delay(reply.first_byte_delay)
        cut = min(fault.after_chunks, len(events)) if fault and fault.kind in _MID_STREAM else -1
        delay = reply.chunk_delay
        buf: list[bytes] = []
        for i in range(len(events) + 1):
            if i == cut:
                assert fault is not None
                if fault.kind == "error_event":  # the error goes out with the events before it, as one write
                    await resp.write_eof(b"".join(buf) + (error_event or wire.stream_error_event(api)))
                    return resp
                if buf:
                    await resp.write(b"".join(buf))
                    buf.clear()
                if fault.kind == "reset_mid_stream":
                    _reset(request)
                    return resp
                if fault.kind == "close_mid_stream":
                    _close(request)
                    return resp
                if fault.kind == "truncate":
                    await resp.write_eof()
                    return resp
                if fault.kind == "stall_mid_stream":
                    await asyncio.sleep(fault.duration)
                else:  # malformed_sse
                    buf.append(_BROKEN_EVENT[api])
            if i == len(events):
                break
            data, timed = events[i]
            if timed and delay > 0:
                if buf:
                    await resp.write(b"".join(buf))
                    buf.clear()
                await asyncio.sleep(delay)
            buf.append(data)
        await resp.write_eof(b"".join(buf))
        return resp

    # ------------------------------------------------------------ recording

    async def _record(self, request: web.Request, api: str) -> RecordedRequest:
        body = await request.read()
        parsed: Any = None
        if body:
            with contextlib.suppress(orjson.JSONDecodeError):
                parsed = orjson.loads(body)
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            json=parsed,
            time=time.monotonic(),
            api=api,  # type: ignore[arg-type]
        )
        with self._cond:
            self._requests.append(rec)
            self._cond.notify_all()
        return rec


def _unicode(text: str) -> str:
    """Every character as a JSON \\u escape (valid inside a JSON string)."""
    return "".join(f"\\u{ord(c):04x}" for c in text)


def _slashes(text: str) -> str:
    return text.replace("/", "\\/")


def _mixed(text: str) -> str:
    """Escaped and plain characters alternating, slashes escaped, upper-case hex; inside a JSON string that is
    itself inside a JSON string, so every backslash is doubled."""
    spelled = "".join(f"\\u{ord(c):04X}" if i % 2 else ("\\/" if c == "/" else c) for i, c in enumerate(text))
    return spelled.replace("\\", "\\\\")


def _echo_error_event(api: str, message: str) -> bytes:
    """A mid-stream error event; `message` is already JSON-escaped text (may hold \\u escapes)."""
    if api == "anthropic":
        return (
            b'event: error\ndata: {"type":"error","error":{"type":"authentication_error","message":"'
            + message.encode()
            + b'"}}\n\n'
        )
    return (
        b'data: {"error":{"message":"'
        + message.encode()
        + b'","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}\n\n'
    )


async def _delay(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def _guess_api(request: web.Request) -> str:
    headers = request.headers
    return "anthropic" if "anthropic-version" in headers or "x-api-key" in headers else "openai"


def _request_id(seq: int) -> str:
    return f"req_mock{seq:08d}"


def _id_header(api: str) -> str:
    return "request-id" if api == "anthropic" else "x-request-id"


def _close(request: web.Request) -> None:
    """End the connection after what was written, leaving the HTTP message incomplete."""
    if request.transport is not None:
        request.transport.close()


def _reset(request: web.Request) -> None:
    """Abort with a TCP RST (SO_LINGER 0), the way a crashed upstream or a middlebox drops a stream."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        linger = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    transport.abort()


# ---------------------------------------------------------------- standalone server


def main(argv: list[str] | None = None) -> int:
    """Run the mock on a fixed port until interrupted (benchmarks point a proxy at it)."""
    parser = argparse.ArgumentParser(prog="python -m app.testing.mock_upstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering any request")
    parser.add_argument("--first-byte-ms", type=float, default=0.0, help="delay before the first body byte")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between streamed deltas")
    parser.add_argument(
        "--stream-chunks", type=int, default=None, help="deltas per reply (default: per word)"
    )
    parser.add_argument("--text", default=None, help="fixed reply text (default: echo the last user message)")
    parser.add_argument("--require-key", default=None, help="answer 401 unless this API key is sent")
    args = parser.parse_args(argv)

    mock = MockUpstream(
        host=args.host,
        port=args.port,
        latency=args.latency_ms / 1000,
        require_key=args.require_key,
        max_recorded=100,
    )
    mock.default = Reply(
        text=args.text,
        stream_chunks=args.stream_chunks,
        first_byte_delay=args.first_byte_ms / 1000,
        chunk_delay=args.chunk_delay_ms / 1000,
    )

    async def serve() -> None:
        stop = asyncio.Event()
        if sys.platform != "win32":  # also when started in the background, where SIGINT is ignored
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        async with mock:
            print(f"mock upstream listening on {mock.base_url}", flush=True)
            await stop.wait()

    runner_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        runner_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=runner_factory) as runner:
            runner.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

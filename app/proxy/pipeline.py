"""One proxied call from start to log row: parse, route, forward (with fallback), answer, record.

Every call that reaches here leaves exactly one row in the call log, whether it succeeded, failed,
was refused or was cancelled by the client hanging up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from app.core.config import Config, Provider, Target
from app.core.engine import Core
from app.core.records import Attempt, CallRecord
from app.core.routing import Route, RoutingError, route
from app.proxy import accounting, sse
from app.proxy.adapters import Adapter, Context, adapter_for
from app.proxy.errors import ProxyError, error_json, upstream_error_message
from app.proxy.observe import observer_for
from app.proxy.translate.errors import TranslationError
from app.proxy.upstream import UpstreamClient, UpstreamFailure, iter_body, read_body

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
# Client headers worth passing to a same-format upstream; never the client's credentials.
_FORWARD_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta")


class Pipeline:
    def __init__(self, core: Core, client: UpstreamClient) -> None:
        self.core = core
        self.client = client
        self.seen = accounting.SeenIds()

    # ------------------------------------------------------------------------------------------- entry

    async def handle(self, request: web.Request, client_api: str, body: bytes, rec: CallRecord) -> web.StreamResponse:
        """Serve one call whose body is already read and authenticated. `rec` is logged by the caller."""
        config = self.core.config
        data = self._parse(body, client_api)
        rec.requested_model = data.get("model") if isinstance(data.get("model"), str) else None
        rec.streamed = bool(data.get("stream"))
        rec.session_key = session_key(request, data)
        if config.store_bodies:
            rec.request_body = accounting.redacted_body(body, config.body_max_bytes)
        forced = self.core.policy.before(rec, data, config)
        try:
            chosen = route(config, rec.requested_model, force_role=forced)
        except RoutingError as exc:
            raise ProxyError(400, "no_route", str(exc)) from None
        rec.preset, rec.role = chosen.preset, chosen.role
        accounting.note_tool_results(rec, data, client_api, config, self.seen)
        return await self._forward(request, client_api, data, chosen, config, rec)

    async def count_tokens(self, request: web.Request, body: bytes, rec: CallRecord) -> web.StreamResponse:
        """Anthropic `count_tokens`: asked of the target when it speaks Messages, else counted locally.

        Claude Code uses this figure to decide when to compact, so the local count includes the system
        prompt, tools and tool blocks (see app.core.tokens for the tokenizer and its accuracy)."""
        config = self.core.config
        data = self._parse(body, "anthropic")
        rec.requested_model = data.get("model") if isinstance(data.get("model"), str) else None
        try:
            chosen = route(config, rec.requested_model)
        except RoutingError as exc:
            raise ProxyError(400, "no_route", str(exc)) from None
        rec.preset, rec.role = chosen.preset, chosen.role
        target = chosen.targets[0]
        provider = config.providers[target.provider]
        self._set_target(rec, provider, target)
        if provider.api == "anthropic":
            payload = orjson.dumps({**data, "model": target.model})
            rec.attempts.append(Attempt(str(target)))
            try:
                resp = await self.client.send(provider, "/messages/count_tokens", payload, self._headers(request, provider))
                try:
                    raw = await read_body(resp, provider.timeouts.idle)
                finally:
                    resp.release()
            except UpstreamFailure as exc:
                raise ProxyError(504 if exc.kind == "timeout" else 502, exc.kind, exc.message) from None
            rec.attempts[-1].status = resp.status
            rec.finish("ok" if resp.status < 400 else "error", resp.status)
            return web.Response(status=resp.status, body=raw, content_type="application/json")
        from app.core.tokens import count_anthropic_request

        counted = count_anthropic_request(data)
        rec.finish("ok", 200)
        return web.Response(body=orjson.dumps({"input_tokens": counted}), content_type="application/json")

    def _parse(self, body: bytes, client_api: str) -> dict[str, Any]:
        if not body:
            raise ProxyError(400, "bad_request", "the request body is empty; expected a JSON object")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ProxyError(400, "bad_json", f"the request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ProxyError(400, "bad_request", "the request body must be a JSON object")
        model = data.get("model")
        if model is not None and not isinstance(model, str):
            raise ProxyError(400, "bad_request", "'model' must be a string", param="model")
        field = "input" if client_api == "responses" else "messages"
        if field not in data:
            raise ProxyError(400, "bad_request", f"'{field}' is required", param=field)
        if client_api != "responses" and not isinstance(data[field], list):
            raise ProxyError(400, "bad_request", f"'{field}' must be a list", param=field)
        stream = data.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise ProxyError(400, "bad_request", "'stream' must be true or false", param="stream")
        return data

    # ------------------------------------------------------------------------------------------- forwarding

    async def _forward(
        self, request: web.Request, client_api: str, data: dict[str, Any], chosen: Route, config: Config, rec: CallRecord
    ) -> web.StreamResponse:
        last_error: tuple[int, bytes, dict[str, str]] | None = None
        last_failure: UpstreamFailure | None = None
        targets = chosen.targets
        for index, target in enumerate(targets):
            provider = config.providers.get(target.provider)
            if provider is None:
                continue
            adapter = adapter_for(client_api, provider.api)
            if adapter is None:
                raise ProxyError(400, "unsupported", f"cannot serve a {client_api} request from a {provider.api} provider")
            ctx = Context(requested_model=rec.requested_model or "")
            try:
                upstream_body = adapter.prepare(data, target.model, provider, ctx)
            except TranslationError as exc:
                raise ProxyError(400, "unsupported", str(exc)) from None
            payload = orjson.dumps(upstream_body)
            attempt = Attempt(str(target))
            rec.attempts.append(attempt)
            self._set_target(rec, provider, target)
            started = rec.elapsed_ms()
            is_last = index == len(targets) - 1
            try:
                resp = await self.client.send(provider, adapter.upstream_path, payload, self._headers(request, provider))
            except UpstreamFailure as exc:
                attempt.error_kind, attempt.error_message = exc.kind, exc.message
                attempt.duration_ms = rec.elapsed_ms() - started
                last_failure, last_error = exc, None
                continue
            attempt.status = resp.status
            if resp.status >= 400:
                try:
                    err_body = await read_body(resp, provider.timeouts.idle)
                except UpstreamFailure:
                    err_body = b""
                finally:
                    resp.release()
                attempt.error_kind = f"http_{resp.status}"
                attempt.error_message = upstream_error_message(err_body)
                attempt.duration_ms = rec.elapsed_ms() - started
                headers = {k: v for k, v in resp.headers.items() if k.lower() in ("retry-after",)}
                if resp.status in (401, 403) and not provider.local and self.core.provider_key(provider.name) is None:
                    hint = f"{provider.name} refused the call and Downshift has no key for it: `downshift key set {provider.name}`"
                    attempt.error_message = f"{hint} ({attempt.error_message})"
                    err_body = orjson.dumps({"error": {"message": attempt.error_message, "type": "authentication_error"}})
                last_error, last_failure = (resp.status, adapter.error_from_upstream(resp.status, err_body), headers), None
                if resp.status in RETRYABLE_STATUS and not is_last:
                    continue
                break
            try:
                if rec.streamed:
                    return await self._relay_stream(request, adapter, ctx, resp, provider, upstream_body, rec, config)
                return await self._relay_whole(request, adapter, ctx, resp, provider, upstream_body, rec, config)
            finally:
                attempt.duration_ms = rec.elapsed_ms() - started
                resp.release()
        if last_error is not None:
            status, body, headers = last_error
            rec.error_kind = f"upstream_{status}"
            rec.error_message = upstream_error_message(body)
            rec.finish("error", status)
            return web.Response(status=status, body=body, content_type="application/json", headers=headers)
        if last_failure is not None:
            status = 504 if last_failure.kind == "timeout" else 502
            raise ProxyError(status, last_failure.kind, last_failure.message)
        raise ProxyError(400, "no_route", "no configured provider can serve this request")

    @staticmethod
    def _set_target(rec: CallRecord, provider: Provider, target: Target) -> None:
        rec.provider, rec.upstream_api, rec.upstream_model = provider.name, provider.api, target.model

    def _headers(self, request: web.Request, provider: Provider) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept-Encoding": "gzip, deflate"}
        headers.update(provider.headers)
        key = self.core.provider_key(provider.name)
        if provider.api == "anthropic":
            headers["anthropic-version"] = request.headers.get("anthropic-version", "2023-06-01")
            beta = request.headers.get("anthropic-beta")
            if beta:
                headers["anthropic-beta"] = beta
            if key:
                headers["x-api-key"] = key
        elif key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    # ------------------------------------------------------------------------------------------- answers

    async def _relay_whole(
        self,
        request: web.Request,
        adapter: Adapter,
        ctx: Context,
        resp: aiohttp.ClientResponse,
        provider: Provider,
        upstream_body: dict[str, Any],
        rec: CallRecord,
        config: Config,
    ) -> web.StreamResponse:
        raw = await read_body(resp, provider.timeouts.idle)
        rec.mark_first_byte()
        observer = observer_for(provider.api)
        try:
            data = orjson.loads(raw)
            observer.on_response(data)
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            rec.error_kind, rec.error_message = "bad_upstream_json", "the provider's answer is not valid JSON"
            raise ProxyError(502, "bad_upstream_json", f"{provider.name} returned an answer that is not valid JSON") from None
        out = raw if adapter.passthrough else orjson.dumps(adapter.respond(data, ctx))  # type: ignore[misc]
        response = web.Response(status=200, body=out, content_type="application/json")
        await response.prepare(request)
        await response.write_eof()
        rec.bytes_out = len(out)
        rec.finish("ok", 200)
        accounting.settle(rec, observer, upstream_body, provider, config)
        if config.store_bodies:
            rec.response_body = accounting.redacted_body(out, config.body_max_bytes)
        return response

    async def _relay_stream(
        self,
        request: web.Request,
        adapter: Adapter,
        ctx: Context,
        resp: aiohttp.ClientResponse,
        provider: Provider,
        upstream_body: dict[str, Any],
        rec: CallRecord,
        config: Config,
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        observer = observer_for(provider.api)
        translator = None if adapter.stream is None else adapter.stream(ctx)
        parser = sse.SSEParser()
        upstream_is_openai = provider.api == "openai"
        strip_usage = ctx.strip_usage_chunk
        sent = 0
        finished = False
        try:
            async for chunk in iter_body(resp, provider.timeouts.idle):
                rec.mark_first_byte()
                out: list[bytes] = []
                for event in parser.feed(chunk):
                    if event.data == sse.DONE:
                        finished = True
                        if translator is None:
                            out.append(event.raw)
                        continue
                    try:
                        obj = orjson.loads(event.data)
                    except orjson.JSONDecodeError:
                        raise UpstreamFailure("bad_upstream_sse", "the provider sent a malformed stream event") from None
                    if not isinstance(obj, dict):
                        continue
                    observer.on_event(obj)
                    if translator is not None:
                        produced = translator.feed(obj)
                        if produced:
                            out.append(adapter.encode(produced))
                    elif not (strip_usage and upstream_is_openai and not obj.get("choices") and obj.get("usage")):
                        out.append(event.raw)
                    if not upstream_is_openai and obj.get("type") == "message_stop":
                        finished = True
                if out:
                    data = b"".join(out)
                    await response.write(data)
                    sent += len(data)
            if observer.error is not None:
                raise UpstreamFailure("upstream_stream_error", str(observer.error.get("message") or observer.error))
            if not finished:
                raise UpstreamFailure("truncated", "the provider's stream ended before it was complete")
            if translator is not None:
                tail = adapter.encode(translator.finish()) + adapter.done()
                await response.write(tail)
                sent += len(tail)
            rec.finish("ok", 200)
        except UpstreamFailure as exc:
            rec.error_kind, rec.error_message = exc.kind, exc.message
            tail = self._stream_error(adapter, translator, exc, finished)
            with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionResetError):
                await response.write(tail)
                sent += len(tail)
            rec.finish("error", 200)
        except (ConnectionError, aiohttp.ClientConnectionResetError, asyncio.CancelledError) as exc:
            rec.error_kind, rec.error_message = "client_disconnected", "the client closed the connection mid-stream"
            rec.finish("cancelled", 499)
            rec.bytes_out = sent
            accounting.settle(rec, observer, upstream_body, provider, config)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return response
        rec.bytes_out = sent
        accounting.settle(rec, observer, upstream_body, provider, config)
        with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionResetError):
            await response.write_eof()
        return response

    @staticmethod
    def _stream_error(adapter: Adapter, translator: Any, exc: UpstreamFailure, finished: bool) -> bytes:
        """A well-formed error in the client's protocol after bytes were already sent."""
        if translator is not None:
            return adapter.encode(translator.error(exc.kind, exc.message))
        if exc.kind == "upstream_stream_error":  # the provider's own error event already went through
            return sse.OPENAI_DONE if adapter.client_api == "openai" and not finished else b""
        if adapter.client_api == "anthropic":
            return sse.encode_named({"type": "error", "error": {"type": "api_error", "message": exc.message}})
        return sse.encode_data(orjson.loads(error_json("openai", 502, exc.message, code=exc.kind))) + sse.OPENAI_DONE


def session_key(request: web.Request, data: dict[str, Any]) -> str | None:
    """The agent's own session id, where it sends one: a stable key for grouping calls into tasks."""
    headers = request.headers
    explicit = headers.get("X-Downshift-Task")
    if explicit:
        return f"task:{explicit}"
    for name in ("x-claude-code-session-id", "session-id", "session_id", "thread-id"):
        value = headers.get(name)
        if value:
            return f"session:{value}"
    metadata = data.get("metadata")
    if isinstance(metadata, dict):
        user_id = metadata.get("user_id")
        if isinstance(user_id, str) and "session" in user_id:
            try:
                parsed = orjson.loads(user_id)
                if isinstance(parsed, dict) and parsed.get("session_id"):
                    return f"session:{parsed['session_id']}"
            except orjson.JSONDecodeError:
                marker = user_id.rfind("session_")
                if marker >= 0:
                    return f"session:{user_id[marker + 8:]}"
    return None

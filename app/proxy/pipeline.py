"""One proxied call from start to log row: parse, route, forward (with fallback), answer, record.

Every call that reaches here leaves exactly one row in the call log, whether it succeeded, failed,
was refused or was cancelled by the client hanging up.

Failures before any byte reached the client (connection refused, no headers in time, a retryable status,
a broken or unreadable answer, a stream that broke before its first event) move on to the preset's next
target. A retryable status on the last target with a `Retry-After` (or `retry-after-ms`) of at most
RETRY_AFTER_MAX_S is retried once on the same target after that wait; a longer wait goes back to the
client with the header. Failures after bytes were sent end the stream with an error in the client's own
protocol, and the log row keeps the usage seen so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from app.core import long_context
from app.core.config import Config, LongContext, Provider, Target
from app.core.engine import Core
from app.core.records import Attempt, CallRecord
from app.core.redact import known_secrets, mask_secrets, redact_text, scrub_known
from app.core.routing import Route, RoutingError, route
from app.proxy import accounting, gemini_api, sse, tool_ids
from app.proxy.adapters import Adapter, Context, adapter_for
from app.proxy.errors import ProxyError, error_json, upstream_error_message
from app.proxy.observe import observer_for
from app.proxy.profiles import Profile
from app.proxy.shadow import ShadowRunner
from app.proxy.translate.errors import TranslationError
from app.proxy.translate.gemini import gemini_to_chat_request
from app.proxy.upstream import UpstreamClient, UpstreamFailure, iter_body, read_body

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
RETRY_AFTER_MAX_S = 2.0  # the longest Retry-After honoured by waiting (once, when no fallback target is left)
MAX_TOKENS_LIMIT = 10_000_000  # above any model's output limit: a larger value is a client mistake
MAX_MODEL_CHARS = 256
MAX_EVENT_BYTES = 16 * 1024 * 1024  # one upstream SSE event larger than this is a provider gone wrong
_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_SLOW_FAILURES = frozenset({"timeout", "stalled"})
# countTokens counts the request as a target that takes everything would get it (images, PDFs, thoughts).
GEMINI_COUNT_PROFILE = Profile(pdf=True)
# Client headers worth passing to a same-format upstream; never the client's credentials.
_FORWARD_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta")


class _Retry(Exception):
    """An attempt failed before any byte reached the client: the next target may still serve the call."""

    def __init__(self, failure: UpstreamFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class Pipeline:
    def __init__(self, core: Core, client: UpstreamClient) -> None:
        self.core = core
        self.client = client
        self.seen = accounting.SeenIds()
        self.shadow = ShadowRunner(
            core
        )  # off unless the preset has a shadow rule; threads start on first use

    # ------------------------------------------------------------------------------------------- entry

    async def handle(
        self,
        request: web.Request,
        client_api: str,
        body: bytes,
        rec: CallRecord,
        data: dict[str, Any] | None = None,
    ) -> web.StreamResponse:
        """Serve one call whose body is already read and authenticated (and parsed, when `data` is given).
        `rec` is logged by the caller."""
        config = self.core.config
        if data is None:
            data = self._parse(body, client_api)
        rec.requested_model = data["model"]
        rec.streamed = data.get("stream") is True
        rec.session_key = session_key(request, data)
        if config.store_bodies:
            rec.request_body = accounting.clip_body(body, config.body_max_bytes)  # redacted by the log writer
        forced = self._policy_before(rec, data, config)
        if (
            forced is None
            and (preset := config.active_preset) is not None
            and preset.long_context is not None
        ):
            forced = await self._long_context(preset.long_context, rec, data, len(body), client_api, config)
        try:
            chosen = route(config, rec.requested_model, force_role=forced)
        except RoutingError as exc:
            raise ProxyError(400, "no_route", str(exc)) from None
        rec.preset, rec.role = chosen.preset, chosen.role
        try:
            return await self._forward(request, client_api, data, chosen, config, rec)
        finally:  # after the answer went out (or the call failed): never on the way to the first byte
            try:
                accounting.note_tool_results(rec, data, client_api, config, self.seen)
            except Exception:  # bookkeeping on an odd request must not cost the call anything
                log.warning("could not read the tool results of call %s", rec.call_id, exc_info=True)

    def _policy_before(self, rec: CallRecord, data: dict[str, Any], config: Config) -> str | None:
        try:
            return self.core.policy.before(rec, data, config)
        except ProxyError:
            raise
        except Exception:  # a bug in the analytics must not stop the call
            log.exception("call policy failed for call %s; serving it without", rec.call_id)
            return None

    async def _long_context(
        self,
        rule: LongContext,
        rec: CallRecord,
        data: dict[str, Any],
        body_len: int,
        client_api: str,
        config: Config,
    ) -> str | None:
        """The role a preset's long-context rule sends this call to, or None. Decided by the body's length for
        most calls; a body that may be over the limit is counted on a worker thread (app.core.long_context)."""
        if not long_context.may_exceed(rule, body_len) or not long_context.rule_for(
            config, rec.requested_model
        ):
            return None
        try:
            loop = asyncio.get_running_loop()
            long = await loop.run_in_executor(None, long_context.is_long, rule, data, body_len, client_api)
        except Exception:  # an odd body the counter cannot read keeps its normal route
            log.warning("could not count the prompt of call %s", rec.call_id, exc_info=True)
            return None
        if long:  # a provider's block budget applies to the provider the rule sends the call to
            self.core.policy.budgets.check(
                config,
                rec.started_at,
                lambda: route(config, rec.requested_model, force_role=rule.role).targets[0].provider,
            )
            return rule.role
        return None

    async def count_tokens(self, request: web.Request, body: bytes, rec: CallRecord) -> web.StreamResponse:
        """Anthropic `count_tokens`: asked of the target when it speaks Messages, else counted locally.

        Claude Code uses this figure to decide when to compact, so the local count includes the system
        prompt, tools and tool blocks (see app.core.tokens for the tokenizer and its accuracy)."""
        config = self.core.config
        data = self._parse(body, "anthropic", count=True)
        rec.requested_model = data["model"]
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
                resp = await self.client.send(
                    provider, "/messages/count_tokens", payload, self._headers(request, provider)
                )
                try:
                    raw = await read_body(resp, provider.timeouts.idle)
                finally:
                    resp.release()
            except UpstreamFailure as exc:
                raise ProxyError(504 if exc.kind in _SLOW_FAILURES else 502, exc.kind, exc.message) from None
            rec.attempts[-1].status = resp.status
            if resp.status >= 400:
                raw = accounting.redact(raw, self._secrets(provider))
                rec.error_kind, rec.error_message = f"upstream_{resp.status}", upstream_error_message(raw)
            else:
                raw = scrub_known(raw, self._known(provider))
            rec.finish("ok" if resp.status < 400 else "error", resp.status)
            return web.Response(status=resp.status, body=raw, content_type="application/json")
        if not accounting.tokenizer_ready():  # loading takes ~0.3-1 s of CPU: never on the event loop
            await asyncio.get_running_loop().run_in_executor(None, accounting.load_tokenizer)
        from app.core.tokens import count_anthropic_request

        try:
            counted = count_anthropic_request(data)
        except Exception as exc:  # only a malformed request gets here
            log.warning("could not count the tokens of call %s", rec.call_id, exc_info=True)
            raise ProxyError(400, "bad_request", f"the request could not be read: {exc}") from None
        rec.finish("ok", 200)
        return web.Response(body=orjson.dumps({"input_tokens": counted}), content_type="application/json")

    async def handle_gemini(self, request: web.Request, body: bytes, rec: CallRecord) -> web.StreamResponse:
        """A Gemini API call: the model and the method come from the path (`models/{model}:{method}`)."""
        model, method = gemini_api.split_target(request.match_info["target"])
        rec.endpoint = f"{request.path[: request.path.index('/models/')]}/models/{{model}}:{method}"
        if method == "countTokens":
            return await self.count_gemini_tokens(body, model, rec)
        stream = method == "streamGenerateContent"
        array = stream and request.query.get("alt") != "sse"  # Google's other stream form: one JSON array
        data = gemini_api.parse_body(body, model, stream=stream and not array, array=array)
        return await self.handle(request, "gemini", body, rec, data)

    async def count_gemini_tokens(self, body: bytes, model: str, rec: CallRecord) -> web.StreamResponse:
        """Gemini `countTokens`, counted locally on the request as the routed target would get it (no
        provider has this endpoint); Gemini CLI reads it to decide when to compress the history."""
        data = gemini_api.parse_body(body, model, count=True)
        rec.requested_model = model
        try:
            chosen = route(self.core.config, model)
        except RoutingError as exc:
            raise ProxyError(400, "no_route", str(exc)) from None
        rec.preset, rec.role = chosen.preset, chosen.role
        target = chosen.targets[0]
        provider = self.core.config.providers.get(target.provider)
        if provider is not None:
            self._set_target(rec, provider, target)
        try:
            chat, _ = gemini_to_chat_request(data, model=target.model, profile=GEMINI_COUNT_PROFILE)
        except TranslationError as exc:
            raise ProxyError(400, "unsupported", str(exc)) from None
        if not accounting.tokenizer_ready():  # loading takes ~0.3-1 s of CPU: never on the event loop
            await asyncio.get_running_loop().run_in_executor(None, accounting.load_tokenizer)
        from app.core.tokens import count_openai_request

        counted = count_openai_request(chat)
        rec.finish("ok", 200)
        return web.Response(body=orjson.dumps({"totalTokens": counted}), content_type="application/json")

    def _parse(self, body: bytes, client_api: str, *, count: bool = False) -> dict[str, Any]:
        """The request as a dict, with the mistakes every API refuses turned into a clear 400."""
        if not body:
            raise ProxyError(400, "bad_request", "the request body is empty; expected a JSON object")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ProxyError(400, "bad_json", f"the request body is not valid JSON: {exc}") from None
        if type(data) is not dict:
            raise ProxyError(400, "bad_request", "the request body must be a JSON object")
        model = data.get("model")
        if model is None:
            raise ProxyError(
                400,
                "bad_request",
                "'model' is required (a Downshift role such as 'default', or provider/model)",
                param="model",
            )
        if type(model) is not str or not model.strip() or len(model) > MAX_MODEL_CHARS:
            raise ProxyError(
                400,
                "bad_request",
                f"'model' must be a non-empty string of at most {MAX_MODEL_CHARS} characters",
                param="model",
            )
        field = "input" if client_api == "responses" else "messages"
        items = data.get(field)
        if items is None:
            raise ProxyError(400, "bad_request", f"'{field}' is required", param=field)
        if client_api == "responses":
            if type(items) is not str and (type(items) is not list or not _all_dicts(items)):
                raise ProxyError(
                    400, "bad_request", "'input' must be a string or a list of input items", param="input"
                )
        elif type(items) is not list or not items or not _all_dicts(items):
            raise ProxyError(
                400, "bad_request", f"'{field}' must be a non-empty list of message objects", param=field
            )
        stream = data.get("stream")
        if stream is not None and type(stream) is not bool:
            raise ProxyError(400, "bad_request", "'stream' must be true or false", param="stream")
        tools = data.get("tools")
        if tools is not None and (type(tools) is not list or not _all_dicts(tools)):
            raise ProxyError(400, "bad_request", "'tools' must be a list of tool objects", param="tools")
        if not count:
            for name in _TOKEN_FIELDS:
                value = data.get(name)
                if value is not None and (type(value) is not int or not 1 <= value <= MAX_TOKENS_LIMIT):
                    raise ProxyError(
                        400,
                        "bad_request",
                        f"'{name}' must be a whole number from 1 to {MAX_TOKENS_LIMIT}, "
                        f"got {str(value)[:40]}",
                        param=name,
                    )
        return data

    # ------------------------------------------------------------------------------------------- forwarding

    async def _forward(
        self,
        request: web.Request,
        client_api: str,
        data: dict[str, Any],
        chosen: Route,
        config: Config,
        rec: CallRecord,
    ) -> web.StreamResponse:
        last_error: tuple[int, bytes, dict[str, str]] | None = None
        last_failure: UpstreamFailure | None = None
        targets = chosen.targets
        retried = False
        i = 0
        while i < len(targets):
            target = targets[i]
            is_last = i == len(targets) - 1
            i += 1
            provider = config.providers.get(target.provider)
            if provider is None:
                continue
            adapter = adapter_for(client_api, provider.api)
            if adapter is None:
                raise ProxyError(
                    400, "unsupported", f"cannot serve a {client_api} request from a {provider.api} provider"
                )
            ctx = Context(requested_model=rec.requested_model or "")
            upstream_body, payload = self._prepare(adapter, data, target, provider, ctx, rec)
            attempt = Attempt(str(target))
            rec.attempts.append(attempt)
            self._set_target(rec, provider, target)
            started = rec.elapsed_ms()
            try:
                resp = await self.client.send(
                    provider, adapter.upstream_path, payload, self._headers(request, provider)
                )
            except UpstreamFailure as exc:
                attempt.error_kind, attempt.error_message = exc.kind, exc.message
                attempt.duration_ms = rec.elapsed_ms() - started
                last_failure, last_error = exc, None
                continue
            attempt.status = resp.status
            if resp.status >= 400:
                last_error, last_failure = await self._upstream_error(resp, provider, adapter, attempt), None
                attempt.duration_ms = rec.elapsed_ms() - started
                if resp.status in RETRYABLE_STATUS:
                    if not is_last:
                        continue
                    wait = retry_after(resp.headers)
                    if not retried and wait is not None and wait <= RETRY_AFTER_MAX_S:
                        retried = True
                        await asyncio.sleep(wait)
                        i -= 1  # the same target, once more
                        continue
                break
            clean = False
            try:
                if rec.streamed:
                    answer = await self._relay_stream(
                        request, adapter, ctx, resp, provider, upstream_body, len(payload), rec, config
                    )
                else:
                    answer = await self._relay_whole(
                        request, adapter, ctx, resp, provider, upstream_body, len(payload), rec, config
                    )
                clean = True
                self.shadow.offer(
                    rec, upstream_body, provider.api, config
                )  # the answer is out: evaluation only
                return answer
            except _Retry as exc:
                attempt.error_kind, attempt.error_message = exc.failure.kind, exc.failure.message
                last_failure, last_error = exc.failure, None
                continue
            finally:
                attempt.duration_ms = rec.elapsed_ms() - started
                if clean:
                    resp.release()
                else:  # broken, abandoned or cancelled: drop the connection so the provider stops generating
                    resp.close()
        accounting.settle_failed_attempts(rec)  # no target served the call: what its attempts were billed
        if last_error is not None:
            status, body, headers = last_error
            rec.error_kind = f"upstream_{status}"
            rec.error_message = upstream_error_message(body)
            rec.finish("error", status)
            return web.Response(status=status, body=body, content_type="application/json", headers=headers)
        if last_failure is not None:
            raise ProxyError(
                504 if last_failure.kind in _SLOW_FAILURES else 502, last_failure.kind, last_failure.message
            )
        raise ProxyError(502, "no_route", "no configured provider can serve this request")

    def _prepare(
        self,
        adapter: Adapter,
        data: dict[str, Any],
        target: Target,
        provider: Provider,
        ctx: Context,
        rec: CallRecord,
    ) -> tuple[dict[str, Any], bytes]:
        try:
            upstream_body = adapter.prepare(data, target.model, provider, ctx)
            return upstream_body, orjson.dumps(upstream_body)
        except TranslationError as exc:
            raise ProxyError(400, "unsupported", str(exc)) from None
        except ProxyError:
            raise
        except Exception as exc:  # the body is the only input here: an odd shape the translator cannot read
            log.warning("could not prepare call %s for %s", rec.call_id, provider.name, exc_info=True)
            raise ProxyError(
                400, "bad_request", f"the request could not be read ({type(exc).__name__}: {exc})"
            ) from None

    async def _upstream_error(
        self, resp: aiohttp.ClientResponse, provider: Provider, adapter: Adapter, attempt: Attempt
    ) -> tuple[int, bytes, dict[str, str]]:
        """The provider's error answer, keys masked (some echo the key they refused), in the client's shape."""
        try:
            err_body = await read_body(resp, provider.timeouts.idle)
        except UpstreamFailure:
            err_body = b""
        finally:
            resp.release()
        secrets = self._secrets(provider)
        err_body = accounting.redact(
            err_body, secrets
        )  # every spelling of the key: the message is decoded below
        attempt.error_kind = f"http_{resp.status}"
        attempt.error_message = upstream_error_message(err_body)
        headers = {
            k: redact_text(v, secrets) or ""
            for k, v in resp.headers.items()
            if k.lower() in ("retry-after", "retry-after-ms")
        }
        if resp.status in (401, 403) and not provider.local and self.core.provider_key(provider.name) is None:
            hint = f"{provider.name} refused the call and Downshift has no key for it: `downshift key set {provider.name}`"
            attempt.error_message = f"{hint} ({attempt.error_message})"
            err_body = orjson.dumps(
                {"error": {"message": attempt.error_message, "type": "authentication_error"}}
            )
        return resp.status, adapter.error_from_upstream(resp.status, err_body), headers

    def _secrets(self, provider: Provider) -> list[bytes]:
        """Exact secret values that must never be echoed back or logged: the key sent, the local token."""
        out = []
        key = self.core.provider_key(provider.name)
        if key:
            out.append(key.encode())
        token = self.core.credentials.token  # held by the core, kept current by the proxy's gate
        if token:
            out.append(token.encode())
        return out

    def _known(self, provider: Provider) -> tuple[bytes, ...]:
        """`_secrets` in the form the success path's `scrub_known` takes."""
        return known_secrets(self._secrets(provider))

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

    @staticmethod
    def _bill_broken_answer(
        rec: CallRecord, observer: Any, provider: Provider, config: Config, payload_len: int
    ) -> None:
        """A whole answer that arrived (status 200) but broke or could not be read was generated, and so
        billed, though the next target serves the call: cost the attempt from its usage when the body was
        readable, else as an estimate from the request (its output is unknown, and the figure says so)."""
        accounting.cost_attempt(
            rec.attempts[-1], observer, provider, config, rec.upstream_model or "", payload_len
        )

    async def _relay_whole(
        self,
        request: web.Request,
        adapter: Adapter,
        ctx: Context,
        resp: aiohttp.ClientResponse,
        provider: Provider,
        upstream_body: dict[str, Any],
        payload_len: int,
        rec: CallRecord,
        config: Config,
    ) -> web.StreamResponse:
        observer = observer_for(provider.api)
        try:
            raw = await read_body(resp, provider.timeouts.idle)
        except UpstreamFailure as exc:
            self._bill_broken_answer(rec, observer, provider, config, payload_len)
            raise _Retry(exc) from None
        rec.mark_first_byte()
        try:
            data = orjson.loads(raw)
            if type(data) is not dict:
                raise TypeError("not an object")
            observer.on_response(data)
            answer = None if adapter.passthrough else adapter.respond(data, ctx)  # type: ignore[misc]
            out = raw if answer is None else orjson.dumps(answer)
        except orjson.JSONDecodeError:
            self._bill_broken_answer(rec, observer, provider, config, payload_len)
            raise _Retry(
                UpstreamFailure(
                    "bad_upstream_json", f"{provider.name} returned an answer that is not valid JSON"
                )
            ) from None
        except Exception as exc:  # valid JSON of an unexpected shape
            log.warning("unreadable answer from %s for call %s", provider.name, rec.call_id, exc_info=True)
            self._bill_broken_answer(rec, observer, provider, config, payload_len)
            raise _Retry(
                UpstreamFailure(
                    "bad_upstream_json",
                    f"{provider.name} returned an answer Downshift cannot read ({type(exc).__name__})",
                )
            ) from None
        # before the answer goes out: a client that has it all hangs up, which would cancel the wait
        await accounting.prepare_checks(observer, upstream_body, provider)
        out = scrub_known(out, self._known(provider))  # a provider echoing its key: literal forms only
        response = web.Response(status=200, body=out, content_type="application/json")
        await response.prepare(request)
        await response.write_eof()
        rec.bytes_out = len(out)
        rec.finish("ok", 200)
        accounting.settle(rec, observer, upstream_body, provider, config, payload_len)
        if answer is not None and rec.tool_calls:
            tool_ids.relabel(
                rec.tool_calls, tool_ids.whole_pairs(provider.api, data, adapter.client_api, answer)
            )
        if config.store_bodies:
            rec.response_body = accounting.clip_body(out, config.body_max_bytes)  # redacted by the log writer
        return response

    async def _relay_stream(
        self,
        request: web.Request,
        adapter: Adapter,
        ctx: Context,
        resp: aiohttp.ClientResponse,
        provider: Provider,
        upstream_body: dict[str, Any],
        payload_len: int,
        rec: CallRecord,
        config: Config,
    ) -> web.StreamResponse:
        """Events as they come. The client's headers go out with the first bytes worth sending, so a stream
        that breaks before then can still fall back to the next target."""
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        observer = observer_for(provider.api)
        translator = None if adapter.stream is None else adapter.stream(ctx)
        parser = sse.SSEParser()
        upstream_is_openai = provider.api == "openai"
        strip_usage = ctx.strip_usage_chunk
        sent = 0
        finished = False
        prepared = False
        checks_ready = False  # the called tools' schemas are compiled (app.core.toolcheck.prepare)
        known = self._known(provider)
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
                        raise UpstreamFailure(
                            "bad_upstream_sse", "the provider sent a malformed stream event"
                        ) from None
                    if type(obj) is not dict:
                        continue
                    try:
                        observer.on_event(obj)
                        if translator is not None:
                            produced = translator.feed(obj)
                            if produced:
                                out.append(adapter.encode(produced))
                        elif not (
                            strip_usage and upstream_is_openai and not obj.get("choices") and obj.get("usage")
                        ):
                            out.append(event.raw)
                    except Exception as exc:  # an event of a shape nobody expects
                        log.warning(
                            "unreadable stream event from %s for call %s",
                            provider.name,
                            rec.call_id,
                            exc_info=True,
                        )
                        raise UpstreamFailure(
                            "bad_upstream_sse",
                            f"the provider sent a stream event Downshift cannot read ({type(exc).__name__})",
                        ) from None
                    if not upstream_is_openai and obj.get("type") == "message_stop":
                        finished = True
                if (
                    len(parser.pending()) > MAX_EVENT_BYTES
                ):  # no event boundary in sight: not a stream we can relay
                    raise UpstreamFailure(
                        "bad_upstream_sse", f"the provider sent a stream event over {MAX_EVENT_BYTES} bytes"
                    )
                if observer.error is not None:
                    if not prepared:
                        raise UpstreamFailure("upstream_stream_error", _error_text(observer.error, known))
                    out = [mask_secrets(b"".join(out), known)]  # the provider's error event, passed on below
                if finished and not checks_ready:  # before the last event goes out (see _relay_whole)
                    checks_ready = True
                    await accounting.prepare_checks(observer, upstream_body, provider)
                if out:
                    data = scrub_known(b"".join(out), known)  # a provider echoing its key: literal forms only
                    if not prepared:
                        await response.prepare(request)
                        prepared = True
                    await response.write(data)
                    sent += len(data)
            if observer.error is not None:
                raise UpstreamFailure("upstream_stream_error", _error_text(observer.error, known))
            if not finished and upstream_is_openai and observer.finish_reason is not None:
                finished = True  # a complete answer from a provider that does not send [DONE]
            if not finished:
                raise UpstreamFailure("truncated", "the provider's stream ended before it was complete")
            if not checks_ready:
                checks_ready = True
                await accounting.prepare_checks(observer, upstream_body, provider)
            tail = adapter.encode(translator.finish()) + adapter.done() if translator is not None else b""
            tail = scrub_known(tail, known)  # a Responses stream repeats the whole text in its last event
            if not prepared:
                await response.prepare(request)
                prepared = True
            if tail:
                await response.write(tail)
                sent += len(tail)
            rec.finish("ok", 200)
        except UpstreamFailure as exc:
            if not prepared:
                if observer.began():  # billed for what it generated, though the next target serves the call
                    accounting.cost_attempt(
                        rec.attempts[-1], observer, provider, config, rec.upstream_model or "", payload_len
                    )
                raise _Retry(exc) from None
            rec.error_kind, rec.error_message = exc.kind, exc.message
            tail = scrub_known(self._stream_error(adapter, translator, exc, finished), known)
            with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionResetError):
                await response.write(tail)
                sent += len(tail)
            rec.finish("error", 200)
        except (ConnectionError, aiohttp.ClientConnectionResetError, asyncio.CancelledError) as exc:
            rec.error_kind, rec.error_message = (
                "client_disconnected",
                "the client closed the connection mid-stream",
            )
            rec.finish("cancelled", 499)
            rec.bytes_out = sent
            accounting.settle(rec, observer, upstream_body, provider, config, payload_len)
            if translator is not None:
                tool_ids.relabel(rec.tool_calls, translator.tool_ids)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return response
        rec.bytes_out = sent
        accounting.settle(rec, observer, upstream_body, provider, config, payload_len)
        if translator is not None:
            tool_ids.relabel(rec.tool_calls, translator.tool_ids)
        with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionResetError):
            await response.write_eof()
        return response

    @staticmethod
    def _stream_error(adapter: Adapter, translator: Any, exc: UpstreamFailure, finished: bool) -> bytes:
        """A well-formed error in the client's protocol after bytes were already sent."""
        if translator is not None:
            with contextlib.suppress(Exception):
                return adapter.encode(translator.error(exc.kind, exc.message)) + adapter.done()
        if (
            exc.kind == "upstream_stream_error" and translator is None
        ):  # the provider's own error event went through
            return sse.OPENAI_DONE if adapter.client_api == "openai" and not finished else b""
        if adapter.client_api == "anthropic":
            return sse.encode_named({"type": "error", "error": {"type": "api_error", "message": exc.message}})
        return (
            sse.encode_data(orjson.loads(error_json("openai", 502, exc.message, code=exc.kind)))
            + sse.OPENAI_DONE
        )


def _all_dicts(items: list[Any]) -> bool:
    """The first and last items are JSON objects: O(1) whatever the length of the conversation. Odd items
    in between are found by the translators (a 400) or by the provider (its own 400, passed on)."""
    return not items or (type(items[0]) is dict and type(items[-1]) is dict)


def _error_text(error: dict[str, Any], secrets: tuple[bytes, ...]) -> str:
    """A mid-stream error event's message, decoded then masked (before it is cut: no half key survives)."""
    message = error.get("message") if isinstance(error, dict) else None
    return (redact_text(str(message or error), secrets) or "")[:500]


def retry_after(headers: Any) -> float | None:
    """Seconds the provider asks to wait (Retry-After as seconds or an HTTP date, or retry-after-ms)."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def session_key(request: web.Request, data: dict[str, Any]) -> str | None:
    """The agent's own session id, where it sends one: a stable key for grouping calls into tasks."""
    headers = request.headers
    explicit = headers.get("X-Downshift-Task")
    if explicit:
        return f"task:{explicit}"
    # Claude Code, Codex (session-id, thread-id), OpenCode (x-session-id: ses_..., one per run)
    for name in ("x-claude-code-session-id", "session-id", "session_id", "thread-id", "x-session-id"):
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
                    return f"session:{user_id[marker + 8 :]}"
    return None

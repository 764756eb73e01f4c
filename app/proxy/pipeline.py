"""One proxied call from start to log row: parse, route, forward (with fallback), answer, record.

Read top to bottom, one call goes: `handle` (validated by app.proxy.validate, checked by the call policy,
routed) -> `_forward` (the preset's targets in order) -> `_try` (one target: prepare, send, and on an answer
build a `Leg`, app.proxy.leg) -> a relay (`_relay_whole`, `_StreamRelay`, `_relay_count`) that sends the
answer back in the client's API and settles the log row (app.proxy.accounting). Anthropic `count_tokens`
takes the same path, so it gets the same fallback.

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
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from app.core import long_context
from app.core.analytics.budgets import BLOCK_STATUS, BudgetExceeded
from app.core.config import Config, LongContext, Provider, Target
from app.core.engine import Core
from app.core.records import Attempt, CallRecord
from app.core.redact import known_secrets, mask_secrets, redact_text, scrub_known
from app.core.routing import Route, RoutingError, route
from app.proxy import accounting, gemini_api, sse, tool_ids, validate
from app.proxy.adapters import COUNT_PATH, Adapter, Context, StreamTranslator, adapter_for, count_adapter_for
from app.proxy.errors import ProxyError, cut_message, error_json, upstream_error_message
from app.proxy.leg import Leg
from app.proxy.observe import observer_for
from app.proxy.profiles import Profile
from app.proxy.shadow import ShadowRunner
from app.proxy.translate.errors import TranslationError
from app.proxy.translate.gemini import gemini_to_chat_request
from app.proxy.upstream import UpstreamClient, UpstreamFailure, iter_body, read_body

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
# A provider answering these to `/messages/count_tokens` has no such endpoint (many Anthropic-compatible
# gateways): the count is made here rather than handing Claude Code an error it cannot act on.
NO_COUNT_ENDPOINT = frozenset({404, 405, 501})
RETRY_AFTER_MAX_S = 2.0  # the longest Retry-After honoured by waiting (once, when no fallback target is left)
MAX_EVENT_BYTES = 16 * 1024 * 1024  # one upstream SSE event larger than this is a provider gone wrong
_SLOW_FAILURES = frozenset({"timeout", "stalled"})
# countTokens counts the request as a target that takes everything would get it (images, PDFs, thoughts).
GEMINI_COUNT_PROFILE = Profile(pdf=True)
_CLIENT_GONE = (ConnectionError, aiohttp.ClientConnectionResetError)


def budget_refusal(exc: BudgetExceeded) -> ProxyError:
    """The core's refusal as the client's error: HTTP 402 `budget_exceeded` (logged with that kind)."""
    return ProxyError(BLOCK_STATUS, BudgetExceeded.KIND, exc.message)


class _Retry(Exception):
    """An attempt failed before any byte reached the client: the next target may still serve the call."""

    def __init__(self, failure: UpstreamFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass(slots=True)
class _ErrorAnswer:
    """A provider's error answer (status >= 400), already in the client's shape and with keys masked."""

    status: int
    body: bytes
    headers: dict[str, str]  # the Retry-After headers passed on to the client
    upstream_headers: Mapping[str, str]  # all of them, case-insensitive: read for the wait before a retry


class Pipeline:
    def __init__(self, core: Core, client: UpstreamClient, secrets_executor: Executor | None = None) -> None:
        self.core = core
        # keys not held in memory are read here, never on the event loop (a locked keyring can take seconds)
        self.secrets_executor = secrets_executor
        self.client = client
        self.seen = accounting.SeenIds()
        # off unless the preset has a shadow rule; threads start on first use
        self.shadow = ShadowRunner(core)

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
            data = validate.request(body, client_api)
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
        chosen = _route(config, rec, forced)
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
        except BudgetExceeded as exc:
            raise budget_refusal(exc) from None
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
            try:
                self.core.policy.budgets.check(
                    config,
                    rec.started_at,
                    lambda: route(config, rec.requested_model, force_role=rule.role).targets[0].provider,
                )
            except BudgetExceeded as exc:
                raise budget_refusal(exc) from None
            return rule.role
        return None

    async def count_tokens(self, request: web.Request, body: bytes, rec: CallRecord) -> web.StreamResponse:
        """Anthropic `count_tokens`: asked of the first target that speaks Messages and answers, else counted
        locally once a target that does not speak it comes up (`_forward`, `count=True`).

        Claude Code uses this figure to decide when to compact, so the local count includes the system
        prompt, tools and tool blocks (see app.core.tokens for the tokenizer and its accuracy)."""
        config = self.core.config
        data = validate.request(body, "anthropic", count=True)
        rec.requested_model = data["model"]
        chosen = _route(config, rec)
        return await self._forward(request, "anthropic", data, chosen, config, rec, count=True)

    async def _count_locally(
        self, data: dict[str, Any], rec: CallRecord, provider: Provider, target: Target
    ) -> web.StreamResponse:
        """An Anthropic `count_tokens` served by a target without that endpoint: counted here."""
        _set_target(rec, provider, target)
        await accounting.ensure_tokenizer()
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
        config = self.core.config  # one snapshot: the route and its provider from the same config
        target = _route(config, rec).targets[0]
        provider = config.providers.get(target.provider)
        if provider is not None:
            _set_target(rec, provider, target)
        try:
            chat, _ = gemini_to_chat_request(data, model=target.model, profile=GEMINI_COUNT_PROFILE)
        except TranslationError as exc:
            raise ProxyError(400, "unsupported", str(exc)) from None
        await accounting.ensure_tokenizer()
        from app.core.tokens import count_openai_request

        counted = count_openai_request(chat)
        rec.finish("ok", 200)
        return web.Response(body=orjson.dumps({"totalTokens": counted}), content_type="application/json")

    # ------------------------------------------------------------------------------------------- forwarding

    async def _forward(
        self,
        request: web.Request,
        client_api: str,
        data: dict[str, Any],
        chosen: Route,
        config: Config,
        rec: CallRecord,
        *,
        count: bool = False,
    ) -> web.StreamResponse:
        """The route's targets in order until one serves the call (see the module doc for what moves on)."""
        last: UpstreamFailure | _ErrorAnswer | None = None
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
            adapter = _adapter(client_api, provider, count)
            if adapter is None:  # a count on a target without a count endpoint
                return await self._count_locally(data, rec, provider, target)
            outcome = await self._try(request, adapter, data, target, provider, config, rec)
            if isinstance(outcome, web.StreamResponse):
                return outcome
            last = outcome
            if count and isinstance(outcome, _ErrorAnswer) and outcome.status in NO_COUNT_ENDPOINT:
                return await self._count_locally(data, rec, provider, target)
            if isinstance(outcome, UpstreamFailure) or (outcome.status in RETRYABLE_STATUS and not is_last):
                continue
            if outcome.status in RETRYABLE_STATUS and not retried:
                wait = retry_after(outcome.upstream_headers)
                if wait is not None and wait <= RETRY_AFTER_MAX_S:
                    retried = True
                    await asyncio.sleep(wait)
                    i -= 1  # the same target, once more
                    continue
            break
        return _unserved(rec, last)

    async def _try(
        self,
        request: web.Request,
        adapter: Adapter,
        data: dict[str, Any],
        target: Target,
        provider: Provider,
        config: Config,
        rec: CallRecord,
    ) -> web.StreamResponse | UpstreamFailure | _ErrorAnswer:
        """One target's attempt: the answer sent to the client, or why this target could not serve it."""
        ctx = Context(requested_model=rec.requested_model or "")
        upstream_body, payload = self._prepare(adapter, data, target, provider, ctx, rec)
        attempt = Attempt(str(target))
        rec.attempts.append(attempt)
        _set_target(rec, provider, target)
        # The key is read once per attempt: the held keys may be re-read while it runs (a key set in another
        # terminal), and what the provider echoes is the key it was sent.
        held = self.core.credentials
        key = (
            held.provider_key(provider.name)
            if held.holds(provider.name)
            else await self._read_key(provider.name)
        )
        secrets = self._secrets(key)
        started = rec.elapsed_ms()
        try:
            resp = await self.client.send(
                provider, adapter.upstream_path, payload, self._headers(request, provider, key)
            )
        except UpstreamFailure as exc:
            attempt.error_kind, attempt.error_message = exc.kind, exc.message
            attempt.duration_ms = rec.elapsed_ms() - started
            return exc
        attempt.status = resp.status
        if resp.status >= 400:
            error = await self._upstream_error(resp, provider, adapter, attempt, key is None, secrets)
            attempt.duration_ms = rec.elapsed_ms() - started
            return error
        counting = adapter.path == COUNT_PATH
        clean = False
        try:  # from here the answer's body belongs to this attempt: released, or closed if not read through
            leg = Leg(
                request=request,
                rec=rec,
                config=config,
                target=target,
                provider=provider,
                adapter=adapter,
                ctx=ctx,
                upstream_body=upstream_body,
                payload_len=len(payload),
                attempt=attempt,
                resp=resp,
                observer=observer_for(provider.api),
                known=known_secrets(secrets),
            )
            if counting:
                answer = await _relay_count(leg)
            elif rec.streamed:
                answer = await _StreamRelay(leg).run()
            else:
                answer = await _relay_whole(leg)
            clean = True
            if not counting:  # the answer is out: evaluation only
                self.shadow.offer(rec, upstream_body, provider.api, config)
            return answer
        except _Retry as exc:
            attempt.error_kind, attempt.error_message = exc.failure.kind, exc.failure.message
            return exc.failure
        finally:
            attempt.duration_ms = rec.elapsed_ms() - started
            if clean:
                resp.release()
            else:  # broken, abandoned or cancelled: drop the connection so the provider stops generating
                resp.close()

    async def _read_key(self, name: str) -> str | None:
        """A key not held in memory yet (first use, or just set from the window): read on the keyring thread,
        so a slow keyring delays this call only, never the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.secrets_executor, self.core.credentials.provider_key, name)

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
        self,
        resp: aiohttp.ClientResponse,
        provider: Provider,
        adapter: Adapter,
        attempt: Attempt,
        keyless: bool,
        secrets: list[bytes],
    ) -> _ErrorAnswer:
        """The provider's error answer, keys masked (some echo the key they refused), in the client's shape."""
        try:
            err_body = await read_body(resp, provider.timeouts.idle)
        except UpstreamFailure:
            err_body = b""
        finally:
            resp.release()
        # every spelling of the key: the message is decoded below
        err_body = accounting.redact(err_body, secrets)
        attempt.error_kind = f"http_{resp.status}"
        attempt.error_message = upstream_error_message(err_body, resp.status)
        headers = {
            k: redact_text(v, secrets) or ""
            for k, v in resp.headers.items()
            if k.lower() in ("retry-after", "retry-after-ms")
        }
        if resp.status in (401, 403) and not provider.local and keyless:
            hint = f"{provider.name} refused the call and Downshift has no key for it: `downshift key set {provider.name}`"
            attempt.error_message = f"{hint} ({attempt.error_message})"
            err_body = orjson.dumps(
                {"error": {"message": attempt.error_message, "type": "authentication_error"}}
            )
        return _ErrorAnswer(
            resp.status, adapter.error_from_upstream(resp.status, err_body), headers, resp.headers
        )

    def _secrets(self, key: str | None) -> list[bytes]:
        """Exact secret values that must never be echoed back or logged: the key sent, the local token."""
        out = []
        if key:
            out.append(key.encode())
        token = self.core.credentials.token  # held by the core, kept current by the proxy's gate
        if token:
            out.append(token.encode())
        return out

    def _headers(self, request: web.Request, provider: Provider, key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept-Encoding": "gzip, deflate"}
        headers.update(provider.headers)
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


def _route(config: Config, rec: CallRecord, forced: str | None = None) -> Route:
    """The call's targets (its preset and role go to the log row), or a 400 that says why there are none."""
    try:
        chosen = route(config, rec.requested_model, force_role=forced)
    except RoutingError as exc:
        raise ProxyError(400, "no_route", str(exc)) from None
    rec.preset, rec.role = chosen.preset, chosen.role
    return chosen


def _adapter(client_api: str, provider: Provider, count: bool) -> Adapter | None:
    """The adapter between the client's API and this provider's; None only for a count to count locally."""
    if count:
        return count_adapter_for(provider.api)
    adapter = adapter_for(client_api, provider.api)
    if adapter is None:
        raise ProxyError(
            400, "unsupported", f"cannot serve a {client_api} request from a {provider.api} provider"
        )
    return adapter


def _set_target(rec: CallRecord, provider: Provider, target: Target) -> None:
    rec.provider, rec.upstream_api, rec.upstream_model = provider.name, provider.api, target.model


def _unserved(rec: CallRecord, last: UpstreamFailure | _ErrorAnswer | None) -> web.StreamResponse:
    """No target served the call: the last provider's error answer, or the last failure as a 502/504."""
    accounting.settle_failed_attempts(rec)  # what its attempts were billed
    if isinstance(last, _ErrorAnswer):
        rec.error_kind = f"upstream_{last.status}"
        rec.error_message = upstream_error_message(last.body, last.status)
        rec.finish("error", last.status)
        return web.Response(
            status=last.status, body=last.body, content_type="application/json", headers=last.headers
        )
    if last is not None:
        raise ProxyError(504 if last.kind in _SLOW_FAILURES else 502, last.kind, last.message)
    raise ProxyError(502, "no_route", "no configured provider can serve this request")


# ----------------------------------------------------------------------------------------------- answers


async def _relay_whole(leg: Leg) -> web.StreamResponse:
    """A whole (non-streamed) answer: read, watched, translated when the client speaks another API, sent."""
    rec, provider, config = leg.rec, leg.provider, leg.config
    try:
        raw = await read_body(leg.resp, provider.timeouts.idle)
    except UpstreamFailure as exc:
        accounting.cost_attempt(leg)  # generated, so billed: see _read_whole
        raise _Retry(exc) from None
    rec.mark_first_byte()
    data, answer, out = _read_whole(leg, raw)
    # before the answer goes out: a client that has it all hangs up, which would cancel the wait
    await accounting.prepare_checks(leg)
    out = scrub_known(out, leg.known)  # a provider echoing its key: literal forms only
    response = web.Response(status=200, body=out, content_type="application/json")
    await response.prepare(leg.request)
    await response.write_eof()
    rec.bytes_out = len(out)
    rec.finish("ok", 200)
    try:
        await accounting.count_seen(leg)  # off the event loop, the answer already sent
    finally:
        accounting.settle(leg)
    if answer is not None and rec.tool_calls:
        pairs = tool_ids.whole_pairs(provider.api, data, leg.adapter.client_api, answer)
        tool_ids.relabel(rec.tool_calls, pairs)
    if config.store_bodies:
        rec.response_body = accounting.clip_body(out, config.body_max_bytes)  # redacted by the log writer
    return response


def _read_whole(leg: Leg, raw: bytes) -> tuple[dict[str, Any], Any, bytes]:
    """(the provider's answer, the client's when translated else None, the bytes to send). An answer that
    came (status 200) but cannot be read was generated, and so billed, though the next target serves the
    call: the attempt is costed from its usage when the body was readable, else estimated from the request
    (its output is unknown, and the figure says so)."""
    provider = leg.provider
    try:
        data = orjson.loads(raw)
        if type(data) is not dict:
            raise TypeError("not an object")
        leg.observer.on_response(data)
        respond = leg.adapter.respond
        answer = None if respond is None else respond(data, leg.ctx)
        return data, answer, raw if answer is None else orjson.dumps(answer)
    except orjson.JSONDecodeError:
        accounting.cost_attempt(leg)
        message = f"{provider.name} returned an answer that is not valid JSON"
    except Exception as exc:  # valid JSON of an unexpected shape
        log.warning("unreadable answer from %s for call %s", provider.name, leg.rec.call_id, exc_info=True)
        accounting.cost_attempt(leg)
        message = f"{provider.name} returned an answer Downshift cannot read ({type(exc).__name__})"
    raise _Retry(UpstreamFailure("bad_upstream_json", message))


async def _relay_count(leg: Leg) -> web.StreamResponse:
    """An Anthropic `count_tokens` answer, as the provider sent it (counting is free: nothing to settle)."""
    try:
        raw = await read_body(leg.resp, leg.provider.timeouts.idle)
    except UpstreamFailure as exc:
        raise _Retry(exc) from None
    rec = leg.rec
    rec.mark_first_byte()
    out = scrub_known(raw, leg.known)
    rec.bytes_out = len(out)
    rec.finish("ok", leg.resp.status)
    return web.Response(status=leg.resp.status, body=out, content_type="application/json")


class _StreamRelay:
    """A streamed answer, event by event. The client's headers go out with the first bytes worth sending,
    so a stream that breaks before then can still fall back to the next target."""

    __slots__ = (
        "leg", "response", "parser", "sent", "finished", "prepared", "checks_ready", "drop_usage", "openai_upstream"
    )  # fmt: skip

    def __init__(self, leg: Leg) -> None:
        self.leg = leg
        self.response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        self.parser = sse.SSEParser()
        stream = leg.adapter.stream
        leg.translator = None if stream is None else stream(leg.ctx)
        self.sent = 0
        self.finished = False  # the provider said the answer is complete
        self.prepared = False  # the client has its headers: no fallback from here on
        self.checks_ready = False  # the called tools' schemas are compiled (app.core.toolcheck.prepare)
        # an OpenAI-format usage chunk the proxy asked for and the client did not (adapters._prepare_openai)
        self.openai_upstream = leg.provider.api == "openai"
        self.drop_usage = leg.ctx.strip_usage_chunk and self.openai_upstream

    async def run(self) -> web.StreamResponse:
        leg = self.leg
        rec, observer, translator = leg.rec, leg.observer, leg.translator
        response, parser, known = self.response, self.parser, leg.known
        try:
            async for chunk in iter_body(leg.resp, leg.provider.timeouts.idle):
                rec.mark_first_byte()
                out = self._passthrough(chunk) if translator is None else self._translated(chunk, translator)
                # no event boundary in sight: not a stream to relay
                if len(parser.pending()) > MAX_EVENT_BYTES:
                    raise UpstreamFailure(
                        "bad_upstream_sse", f"the provider sent a stream event over {MAX_EVENT_BYTES} bytes"
                    )
                if observer.error is not None:
                    out = self._error_event(observer.error, out)
                if self.finished and not self.checks_ready:  # before the last event goes out (_relay_whole)
                    self.checks_ready = True
                    await accounting.prepare_checks(leg)
                if out:
                    data = scrub_known(b"".join(out), known)  # a provider echoing its key: literal forms only
                    if not self.prepared:
                        await response.prepare(leg.request)
                        self.prepared = True
                    await response.write(data)
                    self.sent += len(data)
            await self._end()
        except UpstreamFailure as exc:
            await self._broken(exc)
        except (*_CLIENT_GONE, asyncio.CancelledError) as exc:
            rec.error_kind = "client_disconnected"
            rec.error_message = "the client closed the connection mid-stream"
            rec.finish("cancelled", 499)
            await self._count_then_settle()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return response
        try:
            with contextlib.suppress(*_CLIENT_GONE):
                await response.write_eof()  # the client has its whole answer before the accounting
        finally:
            await self._count_then_settle()  # whatever happened: the row gets its figures
        return response

    def _passthrough(self, chunk: bytes) -> list[bytes]:
        """Events relayed as the provider sent them (the client speaks its API), watched on the way."""
        out: list[bytes] = []
        observer, drop_usage, openai_upstream = self.leg.observer, self.drop_usage, self.openai_upstream
        for event in self.parser.feed(chunk):
            if event.data == sse.DONE:
                self.finished = True
                out.append(event.raw)
                continue
            try:
                obj = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise _malformed() from None
            if type(obj) is not dict:
                continue
            try:
                observer.on_event(obj)
            except Exception as exc:  # an event of a shape nobody expects
                raise self._unreadable(exc) from None
            if not (drop_usage and not obj.get("choices") and obj.get("usage")):
                out.append(event.raw)
            if not openai_upstream and obj.get("type") == "message_stop":  # how Anthropic's streams end
                self.finished = True
        return out

    def _translated(self, chunk: bytes, translator: StreamTranslator) -> list[bytes]:
        """Events translated into the client's API, watched on the way in the provider's."""
        out: list[bytes] = []
        observer, encode, openai_upstream = self.leg.observer, self.leg.adapter.encode, self.openai_upstream
        for event in self.parser.feed(chunk):
            if event.data == sse.DONE:
                self.finished = True
                continue
            try:
                obj = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                raise _malformed() from None
            if type(obj) is not dict:
                continue
            try:
                observer.on_event(obj)
                produced = translator.feed(obj)
                if produced:
                    out.append(encode(produced))
            except Exception as exc:  # an event of a shape nobody expects
                raise self._unreadable(exc) from None
            if not openai_upstream and obj.get("type") == "message_stop":
                self.finished = True
        return out

    def _unreadable(self, exc: Exception) -> UpstreamFailure:
        leg = self.leg
        log.warning(
            "unreadable stream event from %s for call %s", leg.provider.name, leg.rec.call_id, exc_info=True
        )
        return UpstreamFailure(
            "bad_upstream_sse",
            f"the provider sent a stream event Downshift cannot read ({type(exc).__name__})",
        )

    def _error_event(self, error: dict[str, Any], out: list[bytes]) -> list[bytes]:
        """The provider's own error event: a failure before the first byte (the next target may serve the
        call), passed on (keys masked) once bytes went out."""
        known = self.leg.known
        if not self.prepared:
            raise UpstreamFailure("upstream_stream_error", _error_text(error, known))
        return [mask_secrets(b"".join(out), known)]

    async def _end(self) -> None:
        """The provider's stream ended: a complete answer gets its tail (a translator's last events)."""
        leg = self.leg
        observer, translator = leg.observer, leg.translator
        if observer.error is not None:
            raise UpstreamFailure("upstream_stream_error", _error_text(observer.error, leg.known))
        if not self.finished and self.openai_upstream and observer.finish_reason is not None:
            self.finished = True  # a complete answer from a provider that does not send [DONE]
        if not self.finished:
            raise UpstreamFailure("truncated", "the provider's stream ended before it was complete")
        if not self.checks_ready:
            self.checks_ready = True
            await accounting.prepare_checks(leg)
        adapter = leg.adapter
        tail = adapter.encode(translator.finish()) + adapter.done() if translator is not None else b""
        tail = scrub_known(tail, leg.known)  # a Responses stream repeats the whole text in its last event
        if not self.prepared:
            await self.response.prepare(leg.request)
            self.prepared = True
        if tail:
            await self.response.write(tail)
            self.sent += len(tail)
        leg.rec.finish("ok", 200)

    async def _broken(self, exc: UpstreamFailure) -> None:
        """The stream failed: before the first byte, on to the next target (billed for what the provider
        generated); after it, ended with an error in the client's own protocol."""
        leg, rec = self.leg, self.leg.rec
        if not self.prepared:
            if leg.observer.began():
                try:
                    await accounting.count_seen(leg)  # off the event loop
                finally:
                    accounting.cost_attempt(leg)
            raise _Retry(exc) from None
        rec.error_kind, rec.error_message = exc.kind, exc.message
        tail = scrub_known(_stream_error(leg.adapter, leg.translator, exc, self.finished), leg.known)
        with contextlib.suppress(*_CLIENT_GONE):
            await self.response.write(tail)
            self.sent += len(tail)
        rec.finish("error", 200)

    async def _count_then_settle(self) -> None:
        """Settle, once a long answer without usage has had its output counted off the event loop."""
        try:
            await accounting.count_seen(self.leg)
        finally:
            self._settle()

    def _settle(self) -> None:
        """Tokens, cost and tool-call verdicts, the verdicts under the ids the client saw."""
        leg = self.leg
        leg.rec.bytes_out = self.sent
        accounting.settle(leg)
        if leg.translator is not None:
            tool_ids.relabel(leg.rec.tool_calls, leg.translator.tool_ids)


def _malformed() -> UpstreamFailure:
    return UpstreamFailure("bad_upstream_sse", "the provider sent a malformed stream event")


def _stream_error(
    adapter: Adapter, translator: StreamTranslator | None, exc: UpstreamFailure, finished: bool
) -> bytes:
    """A well-formed error in the client's protocol after bytes were already sent."""
    if translator is not None:
        with contextlib.suppress(Exception):
            return adapter.encode(translator.error(exc.kind, exc.message)) + adapter.done()
    if exc.kind == "upstream_stream_error" and translator is None:  # the provider's error event went through
        return sse.OPENAI_DONE if adapter.client_api == "openai" and not finished else b""
    if adapter.client_api == "anthropic":
        return sse.encode_named({"type": "error", "error": {"type": "api_error", "message": exc.message}})
    return (
        sse.encode_data(orjson.loads(error_json("openai", 502, exc.message, code=exc.kind))) + sse.OPENAI_DONE
    )


def _error_text(error: dict[str, Any], secrets: tuple[bytes, ...]) -> str:
    """A mid-stream error event's message, decoded then masked (before it is cut: no half key survives)."""
    message = error.get("message") if isinstance(error, dict) else None
    return cut_message(redact_text(str(message or error), secrets) or "")


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

"""The proxy's HTTP front: routes, and what happens to each request around the pipeline.

The same `ProxyServer` runs headless (`downshift serve`) and inside the GUI, on an asyncio loop of its own
thread (`ProxyThread`, app.proxy.runner). Who may call is decided by the gate (app.proxy.auth: Host, Origin,
the local or a member token; see SECURITY.md), the body is read by app.proxy.request_body, the call itself is
served by app.proxy.pipeline. This module routes, gives every call that passed the gate a log row and an
answer in the caller's API shape, whatever happens, and serves the few endpoints that are not calls:
`/health` answers without the token (liveness only: status and paused, nothing else) but still behind the
Host and Origin checks.

Secrets are the core's (`core.credentials`); before each call the server asks whether the store changed
(one comparison, a `stat` at most every few hundred ms) so a key set in another terminal applies at once.
The keyring is read on a thread of the server's own (`secrets_executor`), never the loop's default executor,
where tokenizer loading and long-context counting could hold a reload up; calls wait for one shared reload
at most KEYS_RELOAD_WAIT_S (a locked Secret Service can take seconds), then go on with the keys held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import orjson
from aiohttp import web, web_response

from app.core.config import ROLES
from app.core.engine import CALL_CONFIG, Core
from app.core.envexport import DEBUG_PREFIX
from app.core.records import CallRecord
from app.core.redact import redact_text
from app.core.secrets import SecretStoreError
from app.proxy.auth import AccessGate
from app.proxy.errors import ProxyError, error_json
from app.proxy.guard import ConnectionGuard
from app.proxy.pipeline import Pipeline
from app.proxy.request_body import read_body
from app.proxy.runner import ProxyThread
from app.proxy.upstream import UpstreamClient

__all__ = ["DEBUG_KEY", "STATUS_PATH", "ProxyServer", "ProxyThread"]

log = logging.getLogger(__name__)

# aiohttp sends `Server: Python/3.x aiohttp/3.y` on every answer, its own 400s for malformed HTTP included;
# a version tells an attacker which advisories to try. The module global is what it falls back on (not
# exported by aiohttp, hence set through the module's namespace).
vars(web_response)["SERVER_SOFTWARE"] = "Downshift"

DEBUG_KEY = web.RequestKey("downshift_debug_record", CallRecord)
STATUS_PATH = "/downshift/status"  # refusal counts for `downshift doctor`; behind the token
COUNT_TOKENS = "/v1/messages/count_tokens"
_KNOWN_ENDPOINTS = frozenset(
    {
        "/v1/chat/completions",
        "/chat/completions",
        "/v1/messages",
        COUNT_TOKENS,
        "/v1/responses",
        "/responses",
        "/v1/models",
        "/health",
        STATUS_PATH,
    }
)
_GET_ONLY = frozenset({"/v1/models", "/health", STATUS_PATH})
# (path, client API, endpoint logged): served as they are and, for `downshift env --debug`, under /debug
_CALL_ROUTES = (
    ("/v1/chat/completions", "openai", "/v1/chat/completions"),
    ("/chat/completions", "openai", "/v1/chat/completions"),
    ("/v1/messages", "anthropic", "/v1/messages"),
    (COUNT_TOKENS, "anthropic", COUNT_TOKENS),
    ("/v1/responses", "responses", "/v1/responses"),
    ("/responses", "responses", "/v1/responses"),
)
_NO_LIMIT = 1 << 40  # aiohttp's own body limit is off: `read_body` applies the configured one, live

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """What a handler serves: the client's API and the endpoint its rows name ("unknown": no endpoint)."""

    api: str
    endpoint: str
    debug: bool = False  # a /debug route: answers name the preset, role and model that served them

    @property
    def unknown(self) -> bool:
        return self.endpoint == "unknown"

    @property
    def google(self) -> bool:
        return self.api == "gemini"

    def shape(self, path: str) -> str:
        """The API shape errors are answered in (for no endpoint: guessed from the path)."""
        if self.unknown:
            return _shape_of(path)
        return self.api if self.api in ("anthropic", "gemini") else "openai"


class ProxyServer:
    """An aiohttp application over a Core. Use `ProxyThread` to run it in the background."""

    def __init__(self, core: Core, clock: Callable[[], float] = time.time) -> None:
        self.core = core
        # stamps each call's start, which task grouping and escalation compare with the idle gap (tests move it)
        self.clock = clock
        self.client = UpstreamClient()
        self.paused = False
        # keyring reads (keys, the local token): one named thread of their own, shut down with the server
        self.secrets_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="downshift-secrets")
        self.pipeline = Pipeline(core, self.client, self.secrets_executor)
        self.gate = AccessGate(core, self.secrets_executor)
        self.refusals = self.gate.refusals
        self.members = self.gate.members
        self.guard = ConnectionGuard()
        self._keys_reload: asyncio.Future[None] | None = None
        self._keys_reload_deadline = 0.0  # time.monotonic() after which calls stop waiting for that reload
        self._keys_reload_late = False  # the reload overran the wait (logged once)
        self.app = web.Application(client_max_size=_NO_LIMIT)
        self._add_routes(self.app.router)
        self.app.on_response_prepare.append(self._cors)
        self.app.on_cleanup.append(self._cleanup)
        core.serving()  # team mode: this machine's crashed calls marked; shipping to [team] ledger started

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        for prefix, debug in (("", False), (DEBUG_PREFIX, True)):
            for path, api, endpoint in _CALL_ROUTES:
                router.add_post(prefix + path, self._endpoint(Route(api, endpoint, debug)))
            for version in ("/v1beta", "/v1"):  # the Gemini API: model and method in the path
                route = Route("gemini", version + "/models", debug)
                router.add_post(prefix + version + "/models/{target:.+}", self._endpoint(route))
            router.add_get(prefix + "/v1/models", self._models)
        router.add_get("/health", self._health)
        router.add_get(STATUS_PATH, self._status)
        router.add_get("/downshift/session/{session_id}", self._session)
        router.add_route("*", "/{tail:.*}", self._endpoint(Route("openai", "unknown")))

    def _max_body(self) -> int:
        return int(self.core.config.max_body_mb * 1024 * 1024)

    # ------------------------------------------------------------------------------------------- token

    def token(self) -> str:
        """The local token (held by the core; read from the store when unknown). Blocking: not for the loop."""
        return self.gate.token()

    def reset_token(self) -> None:
        """Forget the held token: the next request reads the store again (the GUI calls this on rotation)."""
        self.core.credentials.forget_token()

    KEYS_RELOAD_WAIT_S = 2.0  # the longest a call waits for changed keys before going out with the held ones

    def _fresh_secrets(self) -> asyncio.Future[None] | None:
        """The re-read of the held keys under way when the secret store changed (another process set a key),
        else None. Per call: a comparison, and a `stat` at most every KEYS_RECHECK_S. Concurrent calls share
        the one reload."""
        credentials = self.core.credentials
        now = time.monotonic()
        if self._keys_reload is None and credentials.changed(now):
            reload = asyncio.get_running_loop().run_in_executor(self.secrets_executor, credentials.reload)
            self._keys_reload = reload
            self._keys_reload_deadline = now + self.KEYS_RELOAD_WAIT_S
            self._keys_reload_late = False
            reload.add_done_callback(self._keys_reloaded)
        return self._keys_reload

    async def _await_secrets(self, reload: asyncio.Future[None]) -> None:
        """Wait for the shared reload until its deadline; past it, the call goes out with the held keys (the
        reload goes on and its keys serve the calls after it lands). Never cancels nor raises from it."""
        remaining = self._keys_reload_deadline - time.monotonic()
        if remaining > 0:
            await asyncio.wait((reload,), timeout=remaining)
        if not reload.done() and not self._keys_reload_late:
            self._keys_reload_late = True
            log.warning(
                "re-reading the provider keys takes over %.0f s (a locked keyring?); calls go on with the keys "
                "held until it finishes",
                self.KEYS_RELOAD_WAIT_S,
            )

    def _keys_reloaded(self, done: asyncio.Future[None]) -> None:
        self._keys_reload = None
        if not done.cancelled() and done.exception() is not None:  # reload keeps old keys itself; a bug here
            log.warning("re-reading the keys failed", exc_info=done.exception())
        elif self._keys_reload_late:
            log.warning("the provider keys were re-read; calls use them from now on")

    async def _cleanup(self, _app: web.Application) -> None:
        await self.client.close()
        # a keyring read still hanging is left to finish on its own thread; nothing waits for it
        self.secrets_executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------------------------------- calls

    def _endpoint(self, route: Route) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            pinned = CALL_CONFIG.set(self.core.config_store.current())  # the call's config: one stat per call
            try:
                reload = self._fresh_secrets()
                if reload is not None:  # this call goes out with the keys as they are now (bounded wait)
                    await self._await_secrets(reload)
                return await self._serve(request, route)
            finally:
                CALL_CONFIG.reset(pinned)

        return handler

    async def _serve(self, request: web.Request, route: Route) -> web.StreamResponse:
        """One request: the gate first (a refused request is counted, never logged: a web page could write
        rows), then a log row and an answer in the caller's shape whatever happens."""
        shape = route.shape(request.path)
        gate_error: ProxyError | None = None
        member: str | None = None
        try:
            if route.unknown and request.method == "OPTIONS":
                return self.gate.preflight(request)
            member = await self.gate.check(request, route.google or shape == "gemini")
        except ProxyError as exc:
            if exc.status in (401, 403):
                return self.gate.refuse(shape, exc)
            # the token store or the ledger failed, or a member is over their rate: logged (the member's)
            gate_error, member = exc, exc.member
        rec = self._record(request, route, shape, member)
        self.core.writer.started(rec)
        try:
            if gate_error is not None:
                raise gate_error
            return await self._answer(request, route, rec)
        except ProxyError as exc:
            rec.error_kind, rec.error_message = exc.kind, exc.message
            rec.finish("cancelled" if exc.status == 499 else "error", exc.status)
            body = error_json(shape, exc.status, exc.message, code=exc.kind, param=exc.param)
            return _json_response(body, exc.status, exc.headers)
        except SecretStoreError as exc:  # the keyring went away (locked, D-Bus gone): say so, not 500
            rec.error_kind, rec.error_message = "keyring_unavailable", str(exc)
            rec.finish("error", 503)
            message = f"Downshift cannot read a key it needs: {exc}"
            return _json_response(error_json(shape, 503, message, code="keyring_unavailable"), 503)
        except asyncio.CancelledError:
            if rec.outcome == "in_flight":
                rec.error_kind, rec.error_message = "client_disconnected", "the client closed the connection"
                rec.finish("cancelled", 499)
            raise
        except Exception as exc:  # a bug must still produce an answer and a row
            log.exception("unexpected failure serving %s", route.endpoint)
            message = redact_text(f"{type(exc).__name__}: {exc}", self.core.secret_values()) or ""
            rec.error_kind, rec.error_message = "internal_error", message
            rec.finish("error", 500)
            return _json_response(error_json(shape, 500, "Downshift internal error: " + message), 500)
        finally:
            self._finished(rec)

    def _record(self, request: web.Request, route: Route, shape: str, member: str | None) -> CallRecord:
        rec = CallRecord(
            client_api=shape if route.unknown else route.api, endpoint=route.endpoint, started_at=self.clock()
        )
        if route.unknown:
            rec.endpoint = request.path[:64]
        rec.member = member
        rec.user_agent = request.headers.get("User-Agent", "")[:200] or None
        if route.debug:
            request[DEBUG_KEY] = rec  # read by _cors when the answer's headers go out
        return rec

    async def _answer(self, request: web.Request, route: Route, rec: CallRecord) -> web.StreamResponse:
        if self.paused and not route.unknown:
            raise ProxyError(
                503, "paused", "Downshift is paused; resume it from the tray or `downshift serve`"
            )
        body = await read_body(request, self._max_body())
        rec.bytes_in = len(body)
        if route.unknown:
            raise _not_an_endpoint(request)
        if route.endpoint == COUNT_TOKENS:
            return await self.pipeline.count_tokens(request, body, rec)
        if route.google:
            return await self.pipeline.handle_gemini(request, body, rec)
        return await self.pipeline.handle(request, route.api, body, rec)

    def _finished(self, rec: CallRecord) -> None:
        """The call's end: outcome settled, budgets and escalation told, the row queued, listeners told."""
        if rec.outcome == "in_flight":
            rec.finish("error" if (rec.status or 200) >= 400 else "ok")
        try:
            self.core.policy.after(rec)
        except Exception:  # the analytics must not cost the call its row
            log.exception("call policy failed after call %s", rec.call_id)
        self.core.writer.finished(rec)
        self.core.events.emit("call_finished", rec)

    # ------------------------------------------------------------------------------------------- not calls

    async def _cors(self, request: web.Request, response: web.StreamResponse) -> None:
        """Every answer's last headers: CORS for an allowed Origin, and on /debug routes the route taken."""
        rec = request.get(DEBUG_KEY)
        if rec is not None:
            headers = response.headers
            for name, value in (
                ("X-Downshift-Preset", rec.preset),
                ("X-Downshift-Role", rec.role),
                ("X-Downshift-Provider", rec.provider),
                ("X-Downshift-Model", rec.upstream_model),
            ):
                if value:
                    headers[name] = value
        origin = request.headers.get("Origin")
        if origin is not None and origin in self.core.config.allowed_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"

    async def _models(self, request: web.Request) -> web.StreamResponse:
        try:
            await self.gate.check(request)
        except ProxyError as exc:
            return (
                self.gate.refuse("openai", exc)
                if exc.status in (401, 403)
                else _error_response("openai", exc)
            )
        config = self.core.config
        created = int(time.time())
        data = []
        preset = config.active_preset
        if preset is not None:
            for role in ROLES:  # every role resolves (an unset one falls back to default)
                data.append(
                    {
                        "id": role,
                        "object": "model",
                        "created": created,
                        "owned_by": f"downshift:{preset.name}",
                        "target": str(preset.target_for(role)),
                    }
                )
        seen = set()
        for p in config.presets.values():
            for target in (*p.roles.values(), *p.fallback):
                if str(target) not in seen:
                    seen.add(str(target))
                    data.append(
                        {
                            "id": str(target),
                            "object": "model",
                            "created": created,
                            "owned_by": target.provider,
                        }
                    )
        return web.Response(
            body=orjson.dumps({"object": "list", "data": data}), content_type="application/json"
        )

    async def _session(self, request: web.Request) -> web.StreamResponse:
        """The status line's figures for one agent session, for other status bars to poll (tmux, prompts,
        editors). Token required; not logged as a call (a bar polls it every few seconds). Read off the
        event loop: it is a few indexed reads of the log."""
        try:
            await self.gate.check(request)
            db_url = self.core.db_url
            if not db_url.startswith("sqlite:///"):
                raise ProxyError(501, "unsupported", "session figures are read from a SQLite call log only")
        except ProxyError as exc:
            return (
                self.gate.refuse("openai", exc)
                if exc.status in (401, 403)
                else _error_response("openai", exc)
            )
        from app import statusline

        config = self.core.config
        settings = {
            "routing": {"active": config.active},
            "budgets": [
                {"period": b.period, "limit_usd": b.limit_usd, "provider": b.provider} for b in config.budgets
            ],
        }
        session_id = request.match_info["session_id"]
        try:
            figures = await asyncio.get_running_loop().run_in_executor(
                None, statusline.session_figures, db_url[len("sqlite:///") :], session_id, settings
            )
        except Exception as exc:  # a locked or half-migrated log: say so in the API's shape
            message = f"the call log cannot be read: {type(exc).__name__}: {exc}"
            return web.Response(
                status=503,
                body=error_json("openai", 503, message, code="log_unavailable"),
                content_type="application/json",
            )
        return web.Response(body=orjson.dumps(figures), content_type="application/json")

    async def _health(self, request: web.Request) -> web.StreamResponse:
        """Liveness without the token (used by `downshift doctor`, the demo, benchmarks); Host/Origin still apply."""
        try:
            self.gate.check_origin(request)
        except ProxyError as exc:
            return self.gate.refuse("openai", exc)
        return web.Response(
            body=orjson.dumps({"status": "ok", "paused": self.paused}), content_type="application/json"
        )

    async def _status(self, request: web.Request) -> web.StreamResponse:
        """What `downshift doctor` shows about a running proxy: refused requests by reason, connections. Needs the token."""
        try:
            await self.gate.check(request)
        except ProxyError as exc:
            return (
                self.gate.refuse("openai", exc)
                if exc.status in (401, 403)
                else _error_response("openai", exc)
            )
        return web.Response(
            body=orjson.dumps({"refused": self.refusals.snapshot(), "connections": self.guard.snapshot()}),
            content_type="application/json",
        )


def _json_response(body: bytes, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _error_response(shape: str, exc: ProxyError) -> web.Response:
    return _json_response(error_json(shape, exc.status, exc.message, code=exc.kind), exc.status, exc.headers)


def _not_an_endpoint(request: web.Request) -> ProxyError:
    """405 for a known path with the wrong method, 404 for any other path."""
    if request.path in _KNOWN_ENDPOINTS:
        return ProxyError(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.path}",
            headers={"Allow": "GET" if request.path in _GET_ONLY else "POST"},
        )
    return ProxyError(
        404,
        "unknown_endpoint",
        f"{request.method} {request.path[:200]} is not an endpoint of "
        "Downshift (it serves /v1/chat/completions, /v1/messages, /v1/responses, /v1/models, "
        "/v1beta/models/MODEL:generateContent)",
    )


def _shape_of(path: str) -> str:
    """The API shape of an error for a path that is no endpoint (the client's API, guessed from the path)."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    return "gemini" if path.startswith("/v1beta/") else "openai"

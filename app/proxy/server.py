"""The proxy's HTTP front: routes, authentication, request limits, and the thread that runs it all.

The same `ProxyServer` runs headless (`downshift serve`) and inside the GUI, on an asyncio loop of its own
thread: start it, wait until it listens, read its port, stop it with one thread-safe call.

Every request passes the same gate before anything else happens (see SECURITY.md): a Host that is not a
loopback name or address gets 403 (DNS rebinding), so does a browser `Origin` that is not allowed (and a
CORS preflight from one); then the local token, compared in constant time. The token is re-read from the
keyring every TOKEN_REFRESH_S seconds off the event loop, and at once (at most once a second) when a
client presents a different one, so `downshift token rotate` applies to a running proxy without a
restart and the old token stops working within seconds. `/health` answers without the token (liveness
only: status and paused, nothing else) but still behind the Host and Origin checks.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiohttp import web, web_response

from app.core import runtime
from app.core.config import ROLES, is_loopback_host
from app.core.engine import CALL_CONFIG, Core
from app.core.envexport import DEBUG_PREFIX
from app.core.records import CallRecord
from app.core.secrets import SecretStoreError
from app.proxy import accounting
from app.proxy.errors import ProxyError, error_json
from app.proxy.guard import BodyTimeout, ConnectionGuard, Refusals
from app.proxy.member_gate import MemberGate
from app.proxy.pipeline import Pipeline
from app.proxy.upstream import UpstreamClient

log = logging.getLogger(__name__)

# aiohttp sends `Server: Python/3.x aiohttp/3.y` on every answer, its own 400s for malformed HTTP included;
# a version tells an attacker which advisories to try. The module global is what it falls back on.
web_response.SERVER_SOFTWARE = "Downshift"

DEBUG_KEY = web.RequestKey("downshift_debug_record", CallRecord)
_KNOWN_ENDPOINTS = frozenset(
    {
        "/v1/chat/completions",
        "/chat/completions",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/responses",
        "/responses",
        "/v1/models",
        "/health",
        "/downshift/status",
    }
)
STATUS_PATH = "/downshift/status"  # refusal counts for `downshift doctor`; behind the token
_SAME_SITE = frozenset({"none", "same-origin"})
_CORS_HEADERS = (
    "authorization, x-api-key, x-goog-api-key, content-type, anthropic-version, anthropic-beta, openai-beta"
)
_NO_LIMIT = 1 << 40  # aiohttp's own body limit is off: `_read_body` applies the configured one, live


class ProxyServer:
    """An aiohttp application over a Core. Use `ProxyThread` to run it in the background."""

    TOKEN_REFRESH_S = 5.0  # how stale the cached token may get (rotation from another process)
    TOKEN_RECHECK_S = 1.0  # at most this often, a mismatching token makes us re-read the store at once

    def __init__(self, core: Core, clock: Callable[[], float] = time.time) -> None:
        self.core = core
        # stamps each call's start, which task grouping and escalation compare with the idle gap (tests move it)
        self.clock = clock
        self.client = UpstreamClient()
        self.pipeline = Pipeline(core, self.client)
        self.paused = False
        self._token: str | None = None
        self._token_read_at = 0.0
        self._token_recheck_at = 0.0
        self._token_refreshing = False
        self._hosts: dict[str, bool] = {}
        self.refusals = Refusals()
        self.guard = ConnectionGuard()
        self.members = MemberGate(core)  # team gateway: member tokens (app.proxy.member_gate)
        self.app = web.Application(client_max_size=_NO_LIMIT)
        self.app.router.add_post("/v1/chat/completions", self._endpoint("openai", "/v1/chat/completions"))
        self.app.router.add_post("/chat/completions", self._endpoint("openai", "/v1/chat/completions"))
        self.app.router.add_post("/v1/messages", self._endpoint("anthropic", "/v1/messages"))
        self.app.router.add_post(
            "/v1/messages/count_tokens", self._endpoint("anthropic", "/v1/messages/count_tokens")
        )
        self.app.router.add_post("/v1/responses", self._endpoint("responses", "/v1/responses"))
        self.app.router.add_post("/responses", self._endpoint("responses", "/v1/responses"))
        for version in ("/v1beta", "/v1"):  # the Gemini API: model and method in the path
            self.app.router.add_post(
                version + "/models/{target:.+}", self._endpoint("gemini", version + "/models")
            )
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get(STATUS_PATH, self._status)
        self.app.router.add_get("/downshift/session/{session_id}", self._session)
        # The same endpoints under /debug (`downshift env --debug`): answers name the preset, role and model
        # that served them (X-Downshift-*). Off by default: some agents echo or log response headers.
        for path, api, endpoint in (
            ("/v1/chat/completions", "openai", "/v1/chat/completions"),
            ("/chat/completions", "openai", "/v1/chat/completions"),
            ("/v1/messages", "anthropic", "/v1/messages"),
            ("/v1/messages/count_tokens", "anthropic", "/v1/messages/count_tokens"),
            ("/v1/responses", "responses", "/v1/responses"),
            ("/responses", "responses", "/v1/responses"),
        ):
            self.app.router.add_post(DEBUG_PREFIX + path, self._endpoint(api, endpoint, debug=True))
        for version in ("/v1beta", "/v1"):
            self.app.router.add_post(
                DEBUG_PREFIX + version + "/models/{target:.+}",
                self._endpoint("gemini", version + "/models", debug=True),
            )
        self.app.router.add_get(DEBUG_PREFIX + "/v1/models", self._models)
        self.app.router.add_route("*", "/{tail:.*}", self._endpoint("openai", "unknown"))
        self.app.on_response_prepare.append(self._cors)
        self.app.on_cleanup.append(self._cleanup)
        self.extra_routes: list[Callable[[web.Application], None]] = []
        # the log writer warns through the app's notices and masks the keys we know in stored bodies
        writer = core.writer
        writer.notify = lambda title, message: core.events.emit("notice", (title, message))
        writer.secrets = self._secret_values
        core.serving()  # team mode: this machine's crashed calls marked; shipping to [team] ledger started

    def _max_body(self) -> int:
        return int(self.core.config.max_body_mb * 1024 * 1024)

    # ------------------------------------------------------------------------------------------- token

    def token(self) -> str:
        """The local token (cached; read from the store when unknown). Blocking: not for the event loop."""
        if self._token is None:
            self._read_token()
        assert self._token is not None
        return self._token

    def reset_token(self) -> None:
        """Forget the cached token: the next request reads the store again (the GUI calls this on rotation)."""
        self._token = None

    def _read_token(self) -> str:
        token = self.core.token()
        self._token, self._token_read_at = token, time.monotonic()
        self.pipeline.local_token = token
        return token

    def _refresh_token(self) -> None:
        try:
            self._read_token()
        except Exception:  # keep the cached token; the next refresh tries again
            log.warning("could not re-read the local token", exc_info=True)
        finally:
            self._token_refreshing = False

    async def _current_token(self) -> str:
        token = self._token
        if token is None:
            return await asyncio.get_running_loop().run_in_executor(None, self._read_token)
        if time.monotonic() - self._token_read_at > self.TOKEN_REFRESH_S and not self._token_refreshing:
            self._token_refreshing = True
            asyncio.get_running_loop().run_in_executor(None, self._refresh_token)
        return token

    def _secret_values(self) -> Iterable[bytes]:
        """For the log writer's thread: every provider key Downshift holds, and the local token."""
        out = []
        for name in list(self.core.config.providers):
            key = self.core.provider_key(name)
            if key:
                out.append(key.encode())
        if self._token:
            out.append(self._token.encode())
        return out

    async def _cleanup(self, _app: web.Application) -> None:
        await self.client.close()

    # ------------------------------------------------------------------------------------------- guards

    def _check_origin(self, request: web.Request) -> None:
        """403 for requests a web page could make: a Host that is not loopback (DNS rebinding), a browser
        Origin that is not allowed, a cross-site fetch without Origin. Before anything else is done."""
        headers = request.headers
        config = self.core.config
        if not config.allow_remote:
            host = headers.get("Host")
            if host is not None:
                ok = self._hosts.get(host)
                if ok is None:
                    ok = is_loopback_host(_host_name(host))
                    if len(self._hosts) > 256:
                        self._hosts.clear()
                    self._hosts[host] = ok
                if not ok:
                    raise ProxyError(
                        403,
                        "forbidden_host",
                        f"requests for host {host[:100]!r} are refused; Downshift "
                        "serves localhost only (proxy.allow_remote)",
                    )
        origin = headers.get("Origin")
        if origin is not None:
            if origin not in config.allowed_origins:
                raise ProxyError(
                    403,
                    "forbidden_origin",
                    f"requests from web pages ({origin[:100]}) are refused (proxy.allowed_origins)",
                )
        elif headers.get("Sec-Fetch-Site", "none") not in _SAME_SITE:
            raise ProxyError(403, "forbidden_origin", "cross-site requests from web pages are refused")

    async def _check_access(self, request: web.Request, google: bool = False) -> str | None:
        """Loopback Host only (DNS rebinding), no foreign browser Origin, and the local token or a member token
        (a team gateway; returns the member's name). For the Gemini API (`google`) the token is also taken
        where Google's clients put their key: `x-goog-api-key` or `?key=`."""
        self._check_origin(request)
        presented = _presented_token(request, google)
        if presented is None:
            where = "'x-goog-api-key'" if google else "'Authorization: Bearer' or 'x-api-key'"
            raise ProxyError(401, "missing_token", f"missing token: send the Downshift token as {where}")
        if self.members.applies(presented):
            return await self.members.check(presented)
        try:
            token = await self._current_token()
        except SecretStoreError as exc:
            raise ProxyError(
                503, "token_unavailable", f"Downshift cannot read its local token: {exc}"
            ) from None
        given = presented.encode("utf-8", "surrogateescape")
        if hmac.compare_digest(given, token.encode()):
            return None
        now = time.monotonic()
        if now - self._token_recheck_at >= self.TOKEN_RECHECK_S:  # rotated since we last looked?
            self._token_recheck_at = now
            try:
                token = await asyncio.get_running_loop().run_in_executor(None, self._read_token)
            except SecretStoreError as exc:
                raise ProxyError(
                    503, "token_unavailable", f"Downshift cannot read its local token: {exc}"
                ) from None
            if hmac.compare_digest(given, token.encode()):
                return None
        raise ProxyError(401, "bad_token", "invalid Downshift token (see `downshift env` or the Export page)")

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

    def _preflight(self, request: web.Request) -> web.StreamResponse:
        """A CORS preflight: 204 for an allowed Origin, refused (counted) otherwise. Not a call: no row."""
        self._check_origin(request)
        if request.headers.get("Origin") is None:
            raise ProxyError(403, "forbidden_origin", "CORS preflight without an Origin is refused")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": _CORS_HEADERS,
                "Access-Control-Max-Age": "600",
            },
        )

    def _refuse(self, shape: str, exc: ProxyError) -> web.StreamResponse:
        """A 401/403 from the gate: counted by reason in memory, answered in the caller's shape, not logged."""
        self.refusals.add(exc.kind)
        return web.Response(
            status=exc.status,
            body=error_json(shape, exc.status, exc.message, code=exc.kind),
            content_type="application/json",
            headers=exc.headers,
        )

    # ------------------------------------------------------------------------------------------- handlers

    def _endpoint(
        self, api: str, endpoint: str, *, debug: bool = False
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        known_shape = None if endpoint == "unknown" else api if api in ("anthropic", "gemini") else "openai"
        google = api == "gemini"

        async def handler(request: web.Request) -> web.StreamResponse:
            pinned = CALL_CONFIG.set(self.core.config_store.current())  # the call's config: one stat per call
            try:
                return await serve(request)
            finally:
                CALL_CONFIG.reset(pinned)

        async def serve(request: web.Request) -> web.StreamResponse:
            shape = known_shape or _shape_of(request.path)
            gate_error: ProxyError | None = None
            member: str | None = None
            try:  # the gate first: a refused request is counted, never logged (a web page could write rows)
                if endpoint == "unknown" and request.method == "OPTIONS":
                    return self._preflight(request)
                member = await self._check_access(request, google or shape == "gemini")
            except ProxyError as exc:
                if exc.status not in (401, 403):
                    # the token store or the ledger failed, or a member is over their rate: logged (the member's)
                    gate_error, member = exc, exc.member
                else:
                    return self._refuse(shape, exc)
            rec = CallRecord(
                client_api=api if endpoint != "unknown" else shape, endpoint=endpoint, started_at=self.clock()
            )
            rec.member = member
            rec.user_agent = request.headers.get("User-Agent", "")[:200] or None
            if debug:
                request[DEBUG_KEY] = rec  # read by _cors when the answer's headers go out
            writer = self.core.writer
            writer.started(rec)
            try:
                if endpoint == "unknown":
                    rec.endpoint = request.path[:64]
                if gate_error is not None:
                    raise gate_error
                if self.paused and endpoint != "unknown":
                    raise ProxyError(
                        503, "paused", "Downshift is paused; resume it from the tray or `downshift serve`"
                    )
                body = await _read_body(request, self._max_body())
                rec.bytes_in = len(body)
                if endpoint == "unknown":
                    if request.path in _KNOWN_ENDPOINTS:
                        raise ProxyError(
                            405,
                            "method_not_allowed",
                            f"{request.method} is not allowed on {request.path}",
                            headers={
                                "Allow": "GET"
                                if request.path in ("/v1/models", "/health", STATUS_PATH)
                                else "POST"
                            },
                        )
                    raise ProxyError(
                        404,
                        "unknown_endpoint",
                        f"{request.method} {request.path[:200]} is not an endpoint of "
                        "Downshift (it serves /v1/chat/completions, /v1/messages, /v1/responses, /v1/models, "
                        "/v1beta/models/MODEL:generateContent)",
                    )
                if endpoint == "/v1/messages/count_tokens":
                    response = await self.pipeline.count_tokens(request, body, rec)
                elif google:
                    response = await self.pipeline.handle_gemini(request, body, rec)
                else:
                    response = await self.pipeline.handle(request, api, body, rec)
            except ProxyError as exc:
                rec.error_kind, rec.error_message = exc.kind, exc.message
                rec.finish("cancelled" if exc.status == 499 else "error", exc.status)
                return web.Response(
                    status=exc.status,
                    body=error_json(shape, exc.status, exc.message, code=exc.kind, param=exc.param),
                    content_type="application/json",
                    headers=exc.headers,
                )
            except SecretStoreError as exc:  # the keyring went away (locked, D-Bus gone): say so, not 500
                rec.error_kind, rec.error_message = "keyring_unavailable", str(exc)
                rec.finish("error", 503)
                return web.Response(
                    status=503,
                    body=error_json(
                        shape, 503, f"Downshift cannot read a key it needs: {exc}", code="keyring_unavailable"
                    ),
                    content_type="application/json",
                )
            except asyncio.CancelledError:
                if rec.outcome == "in_flight":
                    rec.error_kind, rec.error_message = (
                        "client_disconnected",
                        "the client closed the connection",
                    )
                    rec.finish("cancelled", 499)
                raise
            except Exception as exc:  # a bug must still produce an answer and a row
                log.exception("unexpected failure serving %s", endpoint)
                message = accounting.redact_text(f"{type(exc).__name__}: {exc}", self._secret_values()) or ""
                rec.error_kind, rec.error_message = "internal_error", message
                rec.finish("error", 500)
                return web.Response(
                    status=500,
                    body=error_json(shape, 500, "Downshift internal error: " + message),
                    content_type="application/json",
                )
            finally:
                if rec.outcome == "in_flight":
                    rec.finish("error" if (rec.status or 200) >= 400 else "ok")
                try:
                    self.core.policy.after(rec)
                except Exception:  # the analytics must not cost the call its row
                    log.exception("call policy failed after call %s", rec.call_id)
                writer.finished(rec)
                self.core.events.emit("call_finished", rec)
            return response

        return handler

    async def _models(self, request: web.Request) -> web.StreamResponse:
        try:
            await self._check_access(request)
        except ProxyError as exc:
            return self._refuse("openai", exc) if exc.status in (401, 403) else _error_response("openai", exc)
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
            await self._check_access(request)
            db_url = self.core.db_url
            if not db_url.startswith("sqlite:///"):
                raise ProxyError(501, "unsupported", "session figures are read from a SQLite call log only")
        except ProxyError as exc:
            return self._refuse("openai", exc) if exc.status in (401, 403) else _error_response("openai", exc)
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
            self._check_origin(request)
        except ProxyError as exc:
            return self._refuse("openai", exc)
        return web.Response(
            body=orjson.dumps({"status": "ok", "paused": self.paused}), content_type="application/json"
        )

    async def _status(self, request: web.Request) -> web.StreamResponse:
        """What `downshift doctor` shows about a running proxy: refused requests by reason, connections. Needs the token."""
        try:
            await self._check_access(request)
        except ProxyError as exc:
            return self._refuse("openai", exc) if exc.status in (401, 403) else _error_response("openai", exc)
        return web.Response(
            body=orjson.dumps({"refused": self.refusals.snapshot(), "connections": self.guard.snapshot()}),
            content_type="application/json",
        )


def _error_response(shape: str, exc: ProxyError) -> web.Response:
    return web.Response(
        status=exc.status,
        body=error_json(shape, exc.status, exc.message, code=exc.kind),
        content_type="application/json",
        headers=exc.headers,
    )


async def _read_body(request: web.Request, limit: int) -> bytes:
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
    return body if encoding is None else _decode_body(body, encoding, limit)


def _decode_body(body: bytes, header: str, limit: int) -> bytes:
    """A compressed request body, decoded here rather than by aiohttp so that a body that does not decode,
    or an encoding we cannot read, is a 400/415 in the caller's shape (aiohttp answers those with a 500 or
    a plain-text 400); the decoded size is held to the same limit as a plain body (no zip bombs)."""
    for name in reversed([part.strip().lower() for part in header.split(",") if part.strip()]):
        if name == "identity":
            continue
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


def _inflate(body: bytes, name: str, decoders: list[Callable[[], Any]], limit: int) -> bytes:
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


def _host_name(host: str) -> str:
    """The name in a Host header, without the port ("[::1]:8765" -> "::1", "localhost:8765" -> "localhost")."""
    host = host.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _shape_of(path: str) -> str:
    """The API shape of an error for a path that is no endpoint (the client's API, guessed from the path)."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    return "gemini" if path.startswith("/v1beta/") else "openai"


def _presented_token(request: web.Request, google: bool = False) -> str | None:
    auth = request.headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    if not key and google:  # Google's clients: the header, or the `key` query parameter
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
    return key.strip() if key else None


class ProxyThread:
    """Runs a ProxyServer on its own thread and event loop: start, wait until ready, stop cleanly."""

    def __init__(
        self,
        core: Core,
        host: str | None = None,
        port: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self.server = ProxyServer(core, clock)
        config = core.config
        self.host = host or config.host
        self.requested_port = config.port if port is None else port
        self.port: int | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="downshift-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ProxyThread:
        remote = not is_loopback_host(self.host)
        if remote and not self.core.config.allow_remote:
            raise OSError(
                f"refusing to listen on {self.host}: set proxy.allow_remote = true to serve other machines"
            )
        try:
            self.server.token()  # read (or create) the local token now rather than on the first request
        except SecretStoreError as exc:
            log.warning("the local token cannot be read yet: %s", exc)
        try:  # the first call's cost would otherwise stall the event loop while the table loads
            from app.core import price_table

            price_table.default_table()
        except Exception:  # pricing says `unpriced` and tries again on the next call
            log.warning("the price table could not be loaded", exc_info=True)
        try:  # the premium model's measured cache split, for the savings of every call
            from app.core import premium_split

            premium_split.seed(self.core.db)
            from app.core import listed_prices

            listed_prices.lookup("", "")  # read the model lists' prices now, not on the first call
        except Exception:  # savings use each call's own split until the log can be read
            log.warning("the premium cache split could not be read from the log", exc_info=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the proxy did not start in time")
        if self.error is not None:
            raise self.error
        if remote:
            message = (
                f"Downshift listens on {self.host}:{self.port}: other machines can reach it (proxy.allow_remote). "
                "Anyone with the local token can spend your provider keys; the Host check against DNS "
                "rebinding is off."
            )
            log.warning(message)
            self.core.events.emit("notice", ("Proxy reachable from other machines", message))
        return self

    def _run(self) -> None:
        loop = _new_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the starter through `error`
            self.error = exc
        finally:
            self._ready.set()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._stopped.set()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        self._runner = web.AppRunner(
            self.server.app,
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=5.0,
            auto_decompress=False,
        )  # `_read_body` decodes, answering errors in the caller's shape
        await self._runner.setup()
        self.server.guard.install(self._runner.server)
        try:  # the guard's sweep stops however this ends (a port already taken included)
            site = web.TCPSite(self._runner, self.host, self.requested_port, reuse_address=True, backlog=1024)
            await site.start()
            sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
            self.port = sockets[0].getsockname()[1] if sockets else self.requested_port
            runtime.record(self.core.config_path, self.host, self.port)
            self._ready.set()
            try:
                await self._stop_event.wait()
            finally:
                runtime.clear(self.core.config_path, self.port)
        finally:
            self.server.guard.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Thread-safe: in-flight calls get `shutdown_timeout` to finish, then are logged as cancelled."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and hasattr(self, "_stop_event"):
            loop.call_soon_threadsafe(self._stop_event.set)
        self._thread.join(timeout)
        self.core.writer.flush(timeout)

    def call_soon(self, fn: Callable[[], object]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn)

    def __enter__(self) -> ProxyThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()

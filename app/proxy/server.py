"""The proxy's HTTP front: routes, authentication, request limits, and the thread that runs it all.

The same `ProxyServer` runs headless (`downshift serve`) and inside the GUI, on an asyncio loop of its own
thread: start it, wait until it listens, read its port, stop it with one thread-safe call.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import threading
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from app.core.config import ROLES
from app.core.engine import Core
from app.core.records import CallRecord
from app.proxy.errors import ProxyError, error_json
from app.proxy.pipeline import Pipeline
from app.proxy.upstream import UpstreamClient

log = logging.getLogger(__name__)

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class ProxyServer:
    """An aiohttp application over a Core. Use `ProxyThread` to run it in the background."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.client = UpstreamClient()
        self.pipeline = Pipeline(core, self.client)
        self.paused = False
        self._token: str | None = None
        self.app = web.Application(client_max_size=self._max_body())
        self.app.router.add_post("/v1/chat/completions", self._endpoint("openai", "/v1/chat/completions"))
        self.app.router.add_post("/chat/completions", self._endpoint("openai", "/v1/chat/completions"))
        self.app.router.add_post("/v1/messages", self._endpoint("anthropic", "/v1/messages"))
        self.app.router.add_post("/v1/messages/count_tokens", self._endpoint("anthropic", "/v1/messages/count_tokens"))
        self.app.router.add_post("/v1/responses", self._endpoint("responses", "/v1/responses"))
        self.app.router.add_post("/responses", self._endpoint("responses", "/v1/responses"))
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_route("*", "/{tail:.*}", self._endpoint("openai", "unknown"))
        self.app.on_cleanup.append(self._cleanup)
        self.extra_routes: list[Callable[[web.Application], None]] = []

    def _max_body(self) -> int:
        return int(self.core.config.max_body_mb * 1024 * 1024)

    def token(self) -> str:
        if self._token is None:
            self._token = self.core.token()
        return self._token

    def reset_token(self) -> None:
        self._token = None

    async def _cleanup(self, _app: web.Application) -> None:
        await self.client.close()

    # ------------------------------------------------------------------------------------------- guards

    def _check_access(self, request: web.Request, api: str) -> None:
        """Loopback Host only (DNS rebinding), no foreign browser Origin, and the local token."""
        config = self.core.config
        host = request.host.rsplit(":", 1)[0].strip("[]").lower() if request.host else ""
        if not config.allow_remote and not _is_loopback_host(host):
            raise ProxyError(403, "forbidden_host", f"requests for host {host!r} are refused; Downshift serves localhost only")
        origin = request.headers.get("Origin")
        if origin and origin not in config.allowed_origins:
            raise ProxyError(403, "forbidden_origin", f"requests from web pages ({origin}) are refused")
        presented = _presented_token(request)
        if presented is None:
            raise ProxyError(401, "missing_token", "missing token: send the Downshift token as 'Authorization: Bearer' or 'x-api-key'")
        if not hmac.compare_digest(presented.encode(), self.token().encode()):
            raise ProxyError(401, "bad_token", "invalid Downshift token (see `downshift env` or the Export page)")

    # ------------------------------------------------------------------------------------------- handlers

    def _endpoint(self, api: str, endpoint: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            shape = "anthropic" if api == "anthropic" or request.path.startswith("/v1/messages") else "openai"
            rec = CallRecord(client_api=api if endpoint != "unknown" else shape, endpoint=endpoint)
            rec.user_agent = request.headers.get("User-Agent", "")[:200] or None
            writer = self.core.writer
            writer.started(rec)
            try:
                self._check_access(request, api)
                if self.paused and endpoint != "unknown":
                    raise ProxyError(503, "paused", "Downshift is paused; resume it from the tray or `downshift serve`")
                body = await _read_body(request, self._max_body())
                rec.bytes_in = len(body)
                if endpoint == "unknown":
                    rec.endpoint = request.path[:64]
                    raise ProxyError(404, "unknown_endpoint", f"{request.method} {request.path} is not an endpoint of Downshift "
                                     "(it serves /v1/chat/completions, /v1/messages, /v1/responses, /v1/models)")
                if endpoint == "/v1/messages/count_tokens":
                    response = await self.pipeline.count_tokens(request, body, rec)
                else:
                    response = await self.pipeline.handle(request, api, body, rec)
            except ProxyError as exc:
                rec.error_kind, rec.error_message = exc.kind, exc.message
                rec.finish("error", exc.status)
                return web.Response(
                    status=exc.status,
                    body=error_json(shape, exc.status, exc.message, code=exc.kind, param=exc.param),
                    content_type="application/json",
                    headers=exc.headers,
                )
            except asyncio.CancelledError:
                if rec.outcome == "in_flight":
                    rec.error_kind, rec.error_message = "client_disconnected", "the client closed the connection"
                    rec.finish("cancelled", 499)
                raise
            except Exception as exc:  # a bug must still produce an answer and a row
                log.exception("unexpected failure serving %s", endpoint)
                rec.error_kind, rec.error_message = "internal_error", f"{type(exc).__name__}: {exc}"
                rec.finish("error", 500)
                return web.Response(
                    status=500, body=error_json(shape, 500, "Downshift internal error: " + str(exc)),
                    content_type="application/json",
                )
            finally:
                if rec.outcome == "in_flight":
                    rec.finish("error" if (rec.status or 200) >= 400 else "ok")
                self.core.policy.after(rec)
                writer.finished(rec)
                self.core.events.emit("call_finished", rec)
            return response

        return handler

    async def _models(self, request: web.Request) -> web.StreamResponse:
        try:
            self._check_access(request, "openai")
        except ProxyError as exc:
            return web.Response(status=exc.status, body=error_json("openai", exc.status, exc.message, code=exc.kind), content_type="application/json")
        config = self.core.config
        created = int(time.time())
        data = []
        preset = config.active_preset
        if preset is not None:
            for role in ROLES:  # every role resolves (an unset one falls back to default)
                data.append({"id": role, "object": "model", "created": created, "owned_by": f"downshift:{preset.name}",
                             "target": str(preset.target_for(role))})
        seen = set()
        for p in config.presets.values():
            for target in (*p.roles.values(), *p.fallback):
                if str(target) not in seen:
                    seen.add(str(target))
                    data.append({"id": str(target), "object": "model", "created": created, "owned_by": target.provider})
        return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")

    async def _health(self, _request: web.Request) -> web.StreamResponse:
        return web.Response(body=orjson.dumps({"status": "ok", "paused": self.paused}), content_type="application/json")


async def _read_body(request: web.Request, limit: int) -> bytes:
    content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip().lower()
    if content_type not in ("application/json", "", "text/plain", "application/x-json"):
        raise ProxyError(415, "bad_content_type", f"expected a JSON body (Content-Type: application/json), got {content_type!r}")
    if request.content_length is not None and request.content_length > limit:
        raise ProxyError(413, "too_large", f"the request body ({request.content_length} bytes) is over the {limit} byte limit")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ProxyError(413, "too_large", f"the request body is over the {limit} byte limit") from None


def _presented_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key else None


def _is_loopback_host(host: str) -> bool:
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ProxyThread:
    """Runs a ProxyServer on its own thread and event loop: start, wait until ready, stop cleanly."""

    def __init__(self, core: Core, host: str | None = None, port: int | None = None) -> None:
        self.core = core
        self.server = ProxyServer(core)
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
        if not self.core.config.allow_remote and not _is_loopback_host(self.host):
            raise OSError(f"refusing to listen on {self.host}: set proxy.allow_remote = true to serve other machines")
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the proxy did not start in time")
        if self.error is not None:
            raise self.error
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
        self._runner = web.AppRunner(self.server.app, handler_cancellation=True, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port, reuse_address=True, backlog=1024)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1] if sockets else self.requested_port
        self._ready.set()
        await self._stop_event.wait()

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

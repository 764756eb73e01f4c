"""The proxy's door: who may send it a request (see SECURITY.md).

Every request passes the same gate before anything else happens: a Host that is not a loopback name or
address gets 403 (DNS rebinding), so does a browser `Origin` that is not allowed (and a CORS preflight from
one); then the local token, compared in constant time, or a member token on a team gateway. Refusals are
counted by reason, never logged (a web page could otherwise write rows).

The token is the one the core holds (`core.credentials`). It is re-read from the store every
TOKEN_REFRESH_S seconds off the event loop, and at once (at most once a second) when a client presents a
different one, so `downshift token rotate` applies to a running proxy without a restart and the old token
stops working within seconds.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from aiohttp import web

from app.core.config import is_loopback_host
from app.core.secrets import SecretStoreError
from app.proxy.errors import ProxyError, error_json
from app.proxy.guard import Refusals
from app.proxy.member_gate import MemberGate

if TYPE_CHECKING:
    from app.core.engine import Core

log = logging.getLogger(__name__)

_SAME_SITE = frozenset({"none", "same-origin"})
_CORS_HEADERS = (
    "authorization, x-api-key, x-goog-api-key, content-type, anthropic-version, anthropic-beta, openai-beta"
)


class AccessGate:
    """Host, Origin and token checks for every request; the refusal counts `downshift doctor` shows."""

    TOKEN_REFRESH_S = 5.0  # how stale the held token may get (rotation from another process)
    TOKEN_RECHECK_S = 1.0  # at most this often, a mismatching token makes us re-read the store at once

    def __init__(self, core: Core, executor: Executor | None = None) -> None:
        self.core = core
        self.executor = executor  # where the store is read (the server's secrets thread; None: the default)
        self.refusals = Refusals()
        self.members = MemberGate(core)  # team gateway: member tokens (app.proxy.member_gate)
        self._hosts: dict[str, bool] = {}
        self._token_recheck_at = 0.0
        self._token_refreshing = False

    # ------------------------------------------------------------------------------------------- token

    def token(self) -> str:
        """The local token (held by the core; read from the store when unknown). Blocking: not for the loop."""
        credentials = self.core.credentials
        return credentials.token or credentials.read_token()

    def _refresh_token(self) -> None:
        try:
            self.core.credentials.read_token()
        except Exception:  # keep the held token; the next refresh tries again
            log.warning("could not re-read the local token", exc_info=True)
        finally:
            self._token_refreshing = False

    async def _current_token(self) -> str:
        credentials = self.core.credentials
        token = credentials.token
        if token is None:
            return await asyncio.get_running_loop().run_in_executor(self.executor, credentials.read_token)
        stale = time.monotonic() - credentials.token_read_at > self.TOKEN_REFRESH_S
        if stale and not self._token_refreshing:
            self._token_refreshing = True
            asyncio.get_running_loop().run_in_executor(self.executor, self._refresh_token)
        return token

    async def _reread_token(self) -> str:
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.executor, self.core.credentials.read_token
            )
        except SecretStoreError as exc:
            raise _token_unavailable(exc) from None

    # ------------------------------------------------------------------------------------------- checks

    def check_origin(self, request: web.Request) -> None:
        """403 for requests a web page could make: a Host that is not loopback (DNS rebinding), a browser
        Origin that is not allowed, a cross-site fetch without Origin. Before anything else is done."""
        headers = request.headers
        config = self.core.config
        host = headers.get("Host")
        if not config.allow_remote and host is not None and not self._loopback(host):
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

    def _loopback(self, host: str) -> bool:
        ok = self._hosts.get(host)
        if ok is None:
            ok = is_loopback_host(host_name(host))
            if len(self._hosts) > 256:
                self._hosts.clear()
            self._hosts[host] = ok
        return ok

    async def check(self, request: web.Request, google: bool = False) -> str | None:
        """Loopback Host only (DNS rebinding), no foreign browser Origin, and the local token or a member token
        (a team gateway; returns the member's name). For the Gemini API (`google`) the token is also taken
        where Google's clients put their key: `x-goog-api-key` or `?key=`."""
        self.check_origin(request)
        presented = presented_token(request, google)
        if presented is None:
            where = "'x-goog-api-key'" if google else "'Authorization: Bearer' or 'x-api-key'"
            raise ProxyError(401, "missing_token", f"missing token: send the Downshift token as {where}")
        if self.members.applies(presented):
            return await self.members.check(presented)
        try:
            token = await self._current_token()
        except SecretStoreError as exc:
            raise _token_unavailable(exc) from None
        given = presented.encode("utf-8", "surrogateescape")
        if hmac.compare_digest(given, token.encode()):
            return None
        now = time.monotonic()
        if now - self._token_recheck_at >= self.TOKEN_RECHECK_S:  # rotated since we last looked?
            self._token_recheck_at = now
            token = await self._reread_token()
            if hmac.compare_digest(given, token.encode()):
                return None
        raise ProxyError(401, "bad_token", "invalid Downshift token (see `downshift env` or the Export page)")

    def preflight(self, request: web.Request) -> web.StreamResponse:
        """A CORS preflight: 204 for an allowed Origin, refused (counted) otherwise. Not a call: no row."""
        self.check_origin(request)
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

    def refuse(self, shape: str, exc: ProxyError) -> web.StreamResponse:
        """A 401/403 from the gate: counted by reason in memory, answered in the caller's shape, not logged."""
        self.refusals.add(exc.kind)
        return web.Response(
            status=exc.status,
            body=error_json(shape, exc.status, exc.message, code=exc.kind),
            content_type="application/json",
            headers=exc.headers,
        )


def _token_unavailable(exc: SecretStoreError) -> ProxyError:
    return ProxyError(503, "token_unavailable", f"Downshift cannot read its local token: {exc}")


def host_name(host: str) -> str:
    """The name in a Host header, without the port ("[::1]:8765" -> "::1", "localhost:8765" -> "localhost")."""
    host = host.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def presented_token(request: web.Request, google: bool = False) -> str | None:
    auth = request.headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    if not key and google:  # Google's clients: the header, or the `key` query parameter
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
    return key.strip() if key else None

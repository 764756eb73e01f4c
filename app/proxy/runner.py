"""The thread a ProxyServer runs on: its own asyncio loop, started and stopped from any thread.

The same runner serves `downshift serve` (headless) and the GUI: start it, wait until it listens, read its
port, stop it with one thread-safe call. Imported through `app.proxy.server` as well (the public path).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from app.core import runtime
from app.core.config import is_loopback_host
from app.core.secrets import SecretStoreError

if TYPE_CHECKING:
    from app.core.engine import Core
    from app.proxy.server import ProxyServer

log = logging.getLogger(__name__)


class ProxyThread:
    """Runs a ProxyServer on its own thread and event loop: start, wait until ready, stop cleanly."""

    def __init__(
        self,
        core: Core,
        host: str | None = None,
        port: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from app.proxy.server import ProxyServer  # the server module re-exports this class

        self.core = core
        self.server: ProxyServer = ProxyServer(core, clock)
        config = core.config
        self.host = host or config.host
        self.requested_port = config.port if port is None else port
        self.port: int | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stop_event: asyncio.Event | None = None
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
        self._warm_up()
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

    def _warm_up(self) -> None:
        """What the first call would otherwise wait for on the event loop, read now on the starting thread."""
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
        self._stop_event = stop = asyncio.Event()
        self._runner = runner = web.AppRunner(
            self.server.app,
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=5.0,
            auto_decompress=False,
        )  # `read_body` decodes, answering errors in the caller's shape
        await runner.setup()
        guard = self.server.guard
        assert runner.server is not None  # set by setup()
        guard.install(runner.server)
        try:  # the guard's sweep stops however this ends (a port already taken included)
            site = web.TCPSite(runner, self.host, self.requested_port, reuse_address=True, backlog=1024)
            await site.start()
            addresses = runner.addresses  # (host, port, ...) of each bound socket
            self.port = int(addresses[0][1]) if addresses else self.requested_port
            runtime.record(self.core.config_path, self.host, self.port)
            self._ready.set()
            try:
                await stop.wait()
            finally:
                runtime.clear(self.core.config_path, self.port)
        finally:
            guard.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Thread-safe: in-flight calls get `shutdown_timeout` to finish, then are logged as cancelled."""
        loop, stop = self._loop, self._stop_event
        if loop is not None and not loop.is_closed() and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout)
        self.core.writer.flush(timeout)

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

"""What every page and the tray share: the core, the running proxy, the bridge and the background runner.

It also holds the few things pages must agree on: the model lists fetched from providers (the Providers
page fills them, the Presets page offers them), whether the proxy is paused, and one serial writer for
config changes, so a save never blocks the GUI thread and two saves never interleave.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.core.config import Config
from app.core.engine import Core
from app.ui.background import Background
from app.ui.bridge import CoreBridge

if TYPE_CHECKING:  # both load when first needed, not at start-up (httpx, aiohttp)
    from app.core.provider_models import ModelCache
    from app.proxy.server import ProxyThread


@dataclass
class UiContext:
    core: Core
    proxy: ProxyThread | None
    bridge: CoreBridge
    background: Background
    _models: ModelCache | None = field(default=None, repr=False)
    config_writer: Background | None = None  # one thread: saves happen in order

    @property
    def models(self) -> ModelCache:
        """Model lists fetched from providers (Providers page fills them, Presets page offers them);
        created on first use, which imports the HTTP client."""
        if self._models is None:
            from app.core.provider_models import ModelCache

            self._models = ModelCache()
        return self._models

    @property
    def base_url(self) -> str:
        from app.core.envexport import proxy_base_url

        config = self.core.config
        port = self.proxy.port if self.proxy and self.proxy.port else config.port
        return proxy_base_url(config.host, port)

    def token(self) -> str:
        """The token the running proxy accepts (read once from the keyring, then cached by the server).
        May touch the keyring: call it from a background job."""
        return self.proxy.server.token() if self.proxy else self.core.token()

    @property
    def paused(self) -> bool:
        return bool(self.proxy and self.proxy.server.paused)

    def set_paused(self, paused: bool) -> None:
        if self.proxy is not None and self.proxy.server.paused != paused:
            self.proxy.server.paused = paused
            self.bridge.pausedChanged.emit(paused)

    def restart_proxy(self, on_done: Callable[[Any], Any], on_error: Callable[[Exception], Any]) -> None:
        """Move the embedded proxy to the port now in the config, without a gap: a new proxy starts on the
        new port first (off the GUI thread); once it listens it takes over, and the old one stops taking
        calls and drains the ones in flight (they finish, or are logged as cancelled) in the background.
        If the new port cannot be had, the old proxy keeps serving and `on_error` says why."""
        old, core = self.proxy, self.core
        paused = bool(old and old.server.paused)

        def start() -> Any:
            from app.proxy.server import ProxyThread

            new = ProxyThread(core)
            new.server.paused = paused
            return new.start()

        def swap(new: Any) -> None:
            from app.core.connect import reconnect_all

            self.proxy = new
            base = self.base_url
            self.write(lambda: reconnect_all(base), None, lambda exc: None)  # agents' files follow the port
            self.bridge.proxyChanged.emit()
            if old is not None:
                self.background.run(old.stop, None, lambda exc: None)
            on_done(new)

        self.background.run(start, swap, on_error)

    def write(
        self,
        job: Callable[[], Any],
        on_done: Callable[[Any], Any] | None = None,
        on_error: Callable[[Exception], Any] | None = None,
    ) -> None:
        """Run `job` (config saves, keyring writes) on the one writer thread, in submission order."""
        if self.config_writer is None:
            self.config_writer = Background(self.background, max_threads=1)
        self.config_writer.run(job, on_done, on_error)

    def update_config(
        self,
        change: Callable[[Config], Config],
        on_done: Callable[[Config], Any] | None = None,
        on_error: Callable[[Exception], Any] | None = None,
    ) -> None:
        """Apply `change` to the current config and save it (validated, atomic) off the GUI thread."""
        store = self.core.config_store
        self.write(lambda: store.update(change), on_done, on_error)

    def wait(self, msecs: int = 5000) -> bool:
        """Let queued jobs finish (at shutdown, and in tests)."""
        ok = self.background.wait(msecs)
        return (self.config_writer.wait(msecs) if self.config_writer else True) and ok

"""What every page and the tray share: the core, the running proxy, the bridge and the background runner."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.engine import Core
from app.proxy.server import ProxyThread
from app.ui.background import Background
from app.ui.bridge import CoreBridge


@dataclass
class UiContext:
    core: Core
    proxy: ProxyThread | None
    bridge: CoreBridge
    background: Background

    @property
    def base_url(self) -> str:
        from app.core.envexport import proxy_base_url

        config = self.core.config
        port = self.proxy.port if self.proxy and self.proxy.port else config.port
        return proxy_base_url(config.host, port)

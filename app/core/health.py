"""Is the active preset's server there at all? A cheap check for local servers, before the first call.

A fresh install (or one where the first-run assistant was skipped) routes to a local Ollama that may
not be running: the first call then fails with a 502 while everything else looks healthy. A TCP connect
to a local provider's port says so up front. Hosted providers are not probed (that would need a key and
cost a request); their failures show in the call log.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from app.core.config import Config


def local_server_down(config: Config, timeout: float = 0.5) -> str | None:
    """A sentence for the user when the active preset's default target is a local server that does not
    accept connections; None when it does, or when it is not local."""
    preset = config.active_preset
    if preset is None:
        return None
    target = preset.default
    provider = config.providers.get(target.provider)
    if provider is None or not provider.local:
        return None
    parts = urlsplit(provider.base_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError:
        return (
            f"The active preset {preset.name} sends calls to {provider.name} at {provider.base_url}, which is "
            f"not answering, so agents' calls will fail. Start {provider.name}, or set up a provider "
            "(Downshift > Set up a provider…)."
        )

"""Ask a provider which models it serves (the Providers page's "Test connection") and remember the answer.

The list feeds the Presets page's model picker, so it is cached on disk per provider: the picker works
offline and after a restart. Prices are kept when the listing has them (OpenRouter-style `pricing`).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from app.core.atomic_file import atomic_write
from app.core.config import Provider
from app.core.redact import redact_text
from app.paths import APP_NAME

if TYPE_CHECKING:  # imported when a provider is asked, not when the app's pages load
    import httpx


class ProviderCheckError(RuntimeError):
    """The provider could not be listed; the message says why, in words for the user."""


@dataclass(frozen=True)
class ModelInfo:
    id: str
    context_length: int | None = None
    input_per_m: float | None = None  # USD per million tokens, when the listing says
    output_per_m: float | None = None
    cache_read_per_m: float | None = None
    cache_write_per_m: float | None = None


@dataclass(frozen=True)
class ModelListing:
    provider: str
    models: tuple[ModelInfo, ...]
    latency_ms: float
    fetched_at: float

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.models]


def auth_headers(provider: Provider, key: str | None) -> dict[str, str]:
    headers = dict(provider.headers)
    if provider.api == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
        if key:
            headers["x-api-key"] = key
    elif key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _per_million(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number * 1_000_000 if number >= 0 else None


def parse_models(data: Any) -> tuple[ModelInfo, ...]:
    """OpenAI/Anthropic (`{"data": [...]}`) and Ollama-style (`{"models": [...]}`) listings."""
    items = data.get("data") if isinstance(data, Mapping) else None
    if items is None and isinstance(data, Mapping):
        items = data.get("models")
    if not isinstance(items, list):
        raise ProviderCheckError("the answer is not a model list (no 'data' array)")
    models = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        model_id = item.get("id") or item.get("name") or item.get("model")
        if not isinstance(model_id, str) or not model_id:
            continue
        raw_pricing = item.get("pricing")
        pricing: Mapping[str, Any] = raw_pricing if isinstance(raw_pricing, Mapping) else {}
        ctx = item.get("context_length") or item.get("max_context_length")
        models.append(
            ModelInfo(
                model_id,
                ctx if isinstance(ctx, int) else None,
                _per_million(pricing.get("prompt")),
                _per_million(pricing.get("completion")),
                _per_million(pricing.get("input_cache_read")),
                _per_million(pricing.get("input_cache_write")),
            )
        )
    return tuple(sorted(models, key=lambda m: m.id.lower()))


def _error_detail(response: httpx.Response, key: str | None) -> str:
    """The provider's own words, decoded then masked (some echo the key they refused), then cut."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
    else:
        err = body.get("error") if isinstance(body, Mapping) else None
        text = str(err.get("message") or err) if isinstance(err, Mapping) else str(err or body)
    return (redact_text(text, [key] if key else []) or "")[:200]


def fetch_models(
    provider: Provider,
    key: str | None,
    *,
    timeout: float = 15.0,
    transport: httpx.BaseTransport | None = None,
) -> ModelListing:
    """GET {base_url}/models with the account's key; raises ProviderCheckError with a readable reason (the key
    masked in every spelling: the reason is shown on the Providers page)."""
    try:
        return _fetch_models(provider, key, timeout, transport)
    except ProviderCheckError as exc:
        raise ProviderCheckError(redact_text(str(exc), [key] if key else []) or "") from None


def _connect_failure(exc: Exception) -> str:
    """Why a connection failed, in words (the socket error's "[Errno 111] ..." is shown on the Providers
    page and by `downshift providers test`)."""
    text = str(exc).lower()
    if "refused" in text:
        return "nothing answers at that address (connection refused)"
    if "name or service" in text or "nodename" in text or "getaddrinfo" in text or "name resolution" in text:
        return "the host name could not be found"
    if "ssl" in text or "certificate" in text or "tls" in text:
        return "the secure (TLS) connection failed"
    if "unreachable" in text:
        return "the network or host is unreachable"
    return "the connection failed"


def _fetch_models(
    provider: Provider, key: str | None, timeout: float, transport: httpx.BaseTransport | None
) -> ModelListing:
    import httpx

    url = provider.base_url.rstrip("/") + "/models"
    start = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout, transport=transport, follow_redirects=True) as client:
            response = client.get(url, headers=auth_headers(provider, key))
    except httpx.ConnectError as exc:
        hint = " Is the local server running?" if provider.local else ""
        raise ProviderCheckError(f"cannot connect to {url}: {_connect_failure(exc)}.{hint}") from None
    except httpx.TimeoutException:
        raise ProviderCheckError(f"{url} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise ProviderCheckError(
            f"{url}: the request failed ({str(exc).rstrip('.') or 'no answer'})"
        ) from None
    latency = (time.perf_counter() - start) * 1000
    if response.status_code in (401, 403):
        what = "no key is set" if not key else "the key was refused"
        raise ProviderCheckError(
            f"{provider.name}: {what} (HTTP {response.status_code}: {_error_detail(response, key)})"
        )
    if response.status_code >= 400:
        raise ProviderCheckError(
            f"{url} answered HTTP {response.status_code}: {_error_detail(response, key)}"
        )
    try:
        data = response.json()
    except ValueError:
        raise ProviderCheckError(f"{url} did not answer with JSON; is the base URL right?") from None
    return ModelListing(provider.name, parse_models(data), latency, time.time())


def default_cache_path() -> Path:
    """Where the model lists are kept (the proxy reads their prices from here: app.core.listed_prices)."""
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "models.json"


class ModelCache:
    """Model lists per provider, in one JSON file in the user cache folder; written from worker threads
    (right after a fetch) and read from the GUI, hence the lock."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_cache_path()
        self._data: dict[str, dict[str, Any]] | None = None
        self._lock = threading.RLock()

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._data is None:
            try:
                raw = json.loads(self.path.read_text("utf-8"))
                self._data = raw if isinstance(raw, dict) else {}
            except (OSError, ValueError):
                self._data = {}  # a missing or damaged cache is just an empty one
        return self._data

    def put(self, listing: ModelListing) -> None:
        with self._lock:
            data = self._load()
            data[listing.provider] = {
                "fetched_at": listing.fetched_at,
                "models": [asdict(m) for m in listing.models],
            }
            self._save(data)

    def _save(self, data: dict[str, dict[str, Any]]) -> None:
        with contextlib.suppress(OSError):  # the cache is a convenience; the listing is still in memory
            atomic_write(self.path, json.dumps(data).encode(), mode=0o644)
        from app.core import listed_prices

        listed_prices.invalidate()  # a proxy in this process prices the next call from the new list

    def models(self, provider: str) -> list[ModelInfo]:
        with self._lock:
            entry = self._load().get(provider) or {}
        out = []
        for m in entry.get("models", []):
            try:
                out.append(ModelInfo(**m))
            except TypeError:
                continue
        return out

    def fetched_at(self, provider: str) -> float | None:
        with self._lock:
            entry = self._load().get(provider)
        return entry.get("fetched_at") if entry else None

    def forget(self, provider: str) -> None:
        with self._lock:
            data = self._load()
            if data.pop(provider, None) is not None:
                self._save(data)

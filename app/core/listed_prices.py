"""Prices a provider lists for its own models (OpenRouter's `/models` `pricing`), used to cost its calls.

The Providers page and the first-run assistant keep each provider's model list, prices included, in the
model cache file (`app.core.provider_models.ModelCache`): the prices the user chose a model by. The proxy
costs a call from the same file without any network call: it is read once into a dict
{provider: {model: ListedPrice}}, and looked at again (one stat) at most every RECHECK_SECONDS, or at
once when this process writes the cache. A lookup is two dict probes.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from app.core.atomic_file import file_stamp

RECHECK_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ListedPrice:
    """USD per million tokens, as the provider's model list gave them, and the day the list was fetched."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    date: str = ""


_lock = threading.Lock()
_index: dict[str, dict[str, ListedPrice]] = {}
# the file the index was read from, and its stamp
_state: tuple[Path, tuple[int, int, int] | None] | None = None
_checked = 0.0


def invalidate() -> None:
    """Look at the file again on the next lookup (this process has just written it)."""
    global _checked
    _checked = 0.0


def read_index(path: Path) -> dict[str, dict[str, ListedPrice]]:
    """The priced models of every provider in a model cache file; a missing or damaged file has none."""
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, dict[str, ListedPrice]] = {}
    for provider, entry in raw.items() if isinstance(raw, dict) else ():
        if not isinstance(entry, dict):
            continue
        fetched = entry.get("fetched_at")
        date = _dt.date.fromtimestamp(fetched).isoformat() if isinstance(fetched, (int, float)) else ""
        priced = {}
        for m in entry.get("models") or ():
            if not isinstance(m, dict) or not isinstance(m.get("id"), str):
                continue
            inp, outp = m.get("input_per_m"), m.get("output_per_m")
            if isinstance(inp, (int, float)) and isinstance(outp, (int, float)):
                priced[m["id"]] = ListedPrice(
                    float(inp),
                    float(outp),
                    _num(m.get("cache_read_per_m")),
                    _num(m.get("cache_write_per_m")),
                    None,
                    date,
                )
        if priced:
            out[provider] = priced
    return out


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _current() -> dict[str, dict[str, ListedPrice]]:
    global _index, _state, _checked
    if _state is not None and time.monotonic() - _checked < RECHECK_SECONDS:
        return _index
    with _lock:
        from app.core.provider_models import default_cache_path

        path = default_cache_path()
        stamp = file_stamp(path)
        if _state != (path, stamp):
            _index = read_index(path) if stamp is not None else {}
            _state = (path, stamp)
        _checked = time.monotonic()
    return _index


def lookup(provider: str, model: str) -> ListedPrice | None:
    """The price `provider`'s own model list gives `model`, if the list was fetched and carries prices."""
    models = _current().get(provider)
    return models.get(model) if models else None

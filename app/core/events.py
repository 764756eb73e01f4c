"""Plain-Python events from the core (calls logged, config changed, warnings). The GUI's bridge turns
them into Qt signals; the headless runner just logs them. Listeners run on the emitting thread, so they
must be quick and must not touch widgets directly."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Listener = Callable[[Any], None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = defaultdict(list)
        self._lock = threading.Lock()

    def subscribe(self, name: str, listener: Listener) -> Callable[[], None]:
        """Listen for `name`; returns a function that unsubscribes."""
        with self._lock:
            self._listeners[name].append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners[name]:
                    self._listeners[name].remove(listener)

        return unsubscribe

    def emit(self, name: str, payload: Any = None) -> None:
        listeners = self._listeners.get(name)
        if not listeners:
            return
        for listener in list(listeners):
            try:
                listener(payload)
            except Exception:
                log.exception("listener for %s failed", name)

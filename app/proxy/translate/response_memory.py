"""The Responses a running proxy has answered, kept so `previous_response_id` can continue them.

The Responses API stores a response unless the request says `store: false`; a client may then send only the
new input with `previous_response_id`. Downshift keeps no server-side state on disk, so it keeps the most
recent stored responses (their input and output items) in memory, bounded by count and size, for the life of
the process. Codex CLI sends `store: false` and the whole conversation, so it never costs anything.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import orjson

MAX_RESPONSES = 1_000
MAX_BYTES = 64 * 1024 * 1024


class ResponseMemory:
    """Least recently used first out; thread-safe (headless proxies and tests may run several loops)."""

    def __init__(self, max_responses: int = MAX_RESPONSES, max_bytes: int = MAX_BYTES) -> None:
        self.max_responses = max_responses
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[list[dict[str, Any]], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def remember(self, response_id: str, items: list[dict[str, Any]]) -> None:
        """Keep a response's whole conversation: the input it continued plus its output items."""
        size = len(orjson.dumps(items))
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(response_id, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[response_id] = (items, size)
            self._bytes += size
            while len(self._items) > self.max_responses or self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def lookup(self, response_id: str) -> list[dict[str, Any]] | None:
        """The conversation up to and including that response, or None if it is not (or no longer) kept."""
        with self._lock:
            entry = self._items.get(response_id)
            if entry is None:
                return None
            self._items.move_to_end(response_id)
            return list(entry[0])

    def __len__(self) -> int:
        return len(self._items)


MEMORY = ResponseMemory()

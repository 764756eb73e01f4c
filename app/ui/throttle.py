"""Rate limits for the live pages: redraws at most so often, and never more than one query in flight.

Under a sustained load the writer reports new calls ten times a second; a page that queried on every
report would queue queries faster than SQLite answers them and the numbers would lag further and
further behind. `Throttle` caps how often a function runs (qutebrowser's misc/throttle.py pattern);
`SingleFlight` keeps one background job per page and either skips or coalesces the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QTimer

from app.ui.background import Background

log = logging.getLogger(__name__)


class Throttle(QObject):
    """Call `func` at once if it has not run for `delay_ms`, else once at the end of the window with the
    latest arguments. Calls in between are folded into that one, so nothing is lost but the repeats."""

    def __init__(self, func: Callable[..., Any], delay_ms: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._func = func
        self._delay_ms = delay_ms
        self._last_ms: float | None = None
        self._pending: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._fire_pending)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        now = time.monotonic() * 1000
        if self._pending is None and (self._last_ms is None or now - self._last_ms >= self._delay_ms):
            self._last_ms = now
            self._func(*args, **kwargs)
            return
        if self._pending is None:
            wait = self._delay_ms - (now - (self._last_ms or now))
            self._timer.start(max(0, int(wait)))
        self._pending = (args, kwargs)

    def _fire_pending(self) -> None:
        if self._pending is None:
            return
        args, kwargs = self._pending
        self._pending = None
        self._last_ms = time.monotonic() * 1000
        self._func(*args, **kwargs)

    def set_delay(self, delay_ms: int) -> None:
        self._delay_ms = delay_ms

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def cancel(self) -> None:
        self._timer.stop()
        self._pending = None


class SingleFlight(QObject):
    """One background job at a time. `run` starts a job unless one is running; then it either returns
    False (a periodic refresh skips its tick) or, with `queue_latest=True`, keeps the newest request
    and starts it when the running job ends (a filter change must not be lost)."""

    def __init__(self, background: Background, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.background = background
        self.running = False
        self.skipped = 0
        self._queued: (
            tuple[Callable[[], Any], Callable[[Any], None], Callable[[Exception], None] | None] | None
        ) = None

    def run(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[Exception], None] | None = None,
        *,
        queue_latest: bool = False,
    ) -> bool:
        if self.running:
            if queue_latest:
                self._queued = (fn, on_done, on_error)
            else:
                self.skipped += 1
            return False
        self.running = True
        self.background.run(
            fn, lambda result: self._finish(on_done, result), lambda exc: self._finish(on_error, exc)
        )
        return True

    def _finish(self, callback: Callable[[Any], None] | None, value: Any) -> None:
        self.running = False
        if not shiboken6.isValid(self):  # the page went away while its query ran
            return
        try:
            if callback is not None:
                callback(value)
            elif isinstance(value, Exception):
                log.warning("background query failed: %s", value)
        finally:
            if self._queued is not None:
                queued, self._queued = self._queued, None
                self.run(*queued)

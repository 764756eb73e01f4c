"""Run slow work (database queries, provider requests) off the GUI thread; get the result back on it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.fn, self.relay = fn, relay

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as exc:  # delivered to the GUI as a message, never a traceback
            log.debug("background job failed", exc_info=True)
            self.relay.failed.emit(exc)
        else:
            self.relay.done.emit(result)


class Background(QObject):
    """`run(fn, on_done, on_error)`: fn runs on a worker thread, the callbacks on the GUI thread."""

    def __init__(self, parent: QObject | None = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._live: set[_Relay] = set()

    def run(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        relay = _Relay()  # created on the GUI thread, so its signals are delivered there
        self._live.add(relay)

        def finish(_: object = None) -> None:
            self._live.discard(relay)
            relay.deleteLater()

        if on_done:
            relay.done.connect(on_done)
        if on_error:
            relay.failed.connect(on_error)
        else:
            relay.failed.connect(lambda exc: log.warning("background job failed: %s", exc))
        relay.done.connect(finish)
        relay.failed.connect(finish)
        self.pool.start(_Job(fn, relay))

    def wait(self, msecs: int = 5000) -> bool:
        return self.pool.waitForDone(msecs)

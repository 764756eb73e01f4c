"""Run slow work (database queries, provider requests) off the GUI thread; get the result back on it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import shiboken6
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


def callback_owner(callback: Callable[..., Any] | None) -> QObject | None:
    """The QObject a callback belongs to: a bound method's object, or the `self` a lambda or nested
    function captured (`lambda r: self.show(r)`). None when it belongs to no QObject."""
    if callback is None:
        return None
    bound = getattr(callback, "__self__", None)
    if isinstance(bound, QObject):
        return bound
    code, cells = getattr(callback, "__code__", None), getattr(callback, "__closure__", None) or ()
    for name, cell in zip(code.co_freevars if code else (), cells, strict=False):
        if name == "self":
            try:
                value = cell.cell_contents
            except ValueError:  # not bound yet
                return None
            return value if isinstance(value, QObject) else None
    return None


class Background(QObject):
    """`run(fn, on_done, on_error)`: fn runs on a worker thread, the callbacks on the GUI thread.

    A result is dropped, not delivered, when the QObject its callbacks belong to (`owner`, by default the
    one `callback_owner` finds) was deleted while the job ran: a dialog or page closed before its answer
    came. Delivering it would touch deleted widgets ("Internal C++ object already deleted")."""

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
        *,
        owner: QObject | None = None,
    ) -> None:
        relay = _Relay()  # created on the GUI thread, so its signals are delivered there
        self._live.add(relay)
        owner = owner or callback_owner(on_done) or callback_owner(on_error)

        def finish(_: object = None) -> None:
            self._live.discard(relay)
            relay.deleteLater()

        def deliver(callback: Callable[[Any], None], value: Any) -> None:
            if owner is not None and not shiboken6.isValid(owner):
                log.debug("result dropped: %s was deleted while its job ran", type(owner).__name__)
                return
            callback(value)

        if on_done:
            relay.done.connect(lambda result: deliver(on_done, result))
        if on_error:
            relay.failed.connect(lambda exc: deliver(on_error, exc))
        else:
            relay.failed.connect(lambda exc: log.warning("background job failed: %s", exc))
        relay.done.connect(finish)
        relay.failed.connect(finish)
        self.pool.start(_Job(fn, relay))

    def wait(self, msecs: int = 5000) -> bool:
        return self.pool.waitForDone(msecs)

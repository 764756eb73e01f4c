"""Start-up order for the desktop app: the window first, everything that can wait after its first frame.

`downshift` used to import and start everything (the proxy, the charts library, the first queries)
before the window appeared. Now `run_gui` holds a gate while it builds the window; the work that can
wait registers with `after_start` and runs once the window has painted its first frame (or at once
when the app starts in the tray), one piece per turn of the event loop so the window stays responsive.
With the gate open (tests, benchmarks, any code that builds pages itself) `after_start` runs its
callable straight away, exactly as before.

Imports that take a while (the proxy's aiohttp stack, pyqtgraph and numpy) can be done on a worker
thread first (`preload`), so the window keeps painting while they load; the object itself is then built
on the GUI thread from the already imported module.

`DOWNSHIFT_STARTUP_PROBE=1` prints one line per start-up milestone to stderr, `downshift-startup <name>
<unix time>`, for `bench/gui_start.py`: the window shown, its first frame painted, the proxy listening,
the dashboard's charts and first figures, start-up done.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer

log = logging.getLogger(__name__)

PROBE = bool(os.environ.get("DOWNSHIFT_STARTUP_PROBE"))
_seen: set[str] = set()


def mark(name: str) -> None:
    """A start-up milestone for the probe (once per name); free when the probe is off."""
    if PROBE and name not in _seen:
        _seen.add(name)
        print(f"downshift-startup {name} {time.time():.6f}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ the gate

_held = False
_waiting: list[Callable[[], None]] = []
_runner: QTimer | None = None
_pending = 0  # preloads still running (their `then` not yet called)
_when_idle: list[Callable[[], None]] = []


def hold(when_idle: Callable[[], None] | None = None) -> None:
    """From now until `release`, `after_start` queues its callables instead of running them. `when_idle`
    runs once the queue has run and every `preload` started meanwhile has finished."""
    global _held
    _held = True
    if when_idle is not None:
        _when_idle.append(when_idle)


def held() -> bool:
    return _held


def after_start(fn: Callable[[], None]) -> None:
    """Run `fn` once start-up is over: now if the gate is open, else after the window's first frame."""
    if not _held:
        fn()
        return
    _waiting.append(fn)


def release() -> None:
    """Open the gate: queued callables run in order, one per turn of the event loop."""
    global _held, _runner
    if not _held:
        return
    _held = False
    if _runner is None:
        _runner = QTimer()
        _runner.setSingleShot(True)
        _runner.setInterval(0)
        _runner.timeout.connect(_run_next)
    _runner.start()


def _run_next() -> None:
    if _waiting:
        fn = _waiting.pop(0)
        try:
            fn()
        except Exception:  # one step failing must not keep the others from running
            log.exception("start-up step failed")
    if _waiting and _runner is not None:
        _runner.start()
    else:
        _check_idle()


def _check_idle() -> None:
    if _held or _waiting or _pending or not _when_idle:
        return
    callbacks = list(_when_idle)
    _when_idle.clear()
    for fn in callbacks:
        fn()


def reset() -> None:
    """Forget queued work and open the gate (tests; a start that was abandoned)."""
    global _held, _pending
    _held = False
    _pending = 0
    _waiting.clear()
    _when_idle.clear()
    if _runner is not None:
        _runner.stop()


class FirstFrame(QObject):
    """Calls `on_frame` once, after `window` has painted for the first time (the turn of the event loop
    after its first Paint event, so the frame is on screen). Also marks the probe's milestones."""

    def __init__(self, window: QObject, on_frame: Callable[[], None]) -> None:
        super().__init__(window)
        self._on_frame: Callable[[], None] | None = on_frame
        window.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        kind = event.type()
        if kind == QEvent.Type.Show:
            mark("window-shown")
        elif kind == QEvent.Type.Paint and self._on_frame is not None:
            on_frame, self._on_frame = self._on_frame, None
            obj.removeEventFilter(self)

            def painted() -> None:
                mark("window-painted")
                on_frame()

            QTimer.singleShot(0, painted)
        return False


# ------------------------------------------------------------------------------------------------ imports


def preload(background: Any, modules: Iterable[str], then: Callable[[], None]) -> None:
    """Import `modules` on a worker thread of `background` (an `app.ui.background.Background`), then call
    `then` on the GUI thread. A module that fails to import there is left to `then`, which imports it
    again on the GUI thread and handles the error as it would have without the preload."""
    global _pending
    names = tuple(modules)

    def load() -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # reported where the GUI thread imports it for real
                log.debug("preloading %s failed", name, exc_info=True)

    def done(_: object = None) -> None:
        global _pending
        try:
            then()
        finally:
            _pending -= 1
            _check_idle()

    _pending += 1
    background.run(load, done, done)


# ------------------------------------------------------------------------------------------------ memory


def settle_memory() -> None:
    """Once start-up is over: move every object built so far (Qt wrappers, modules, the config, the
    charts) out of the garbage collector's reach. They live as long as the app, and without this every
    full collection, on whichever thread triggers it, walks all of them while holding the GIL, which
    stalls the GUI thread for 100-150 ms under load. Objects created later are collected as usual."""
    gc.freeze()
    mark("settled")


def unsettle() -> None:
    """Undo `settle_memory` (at exit, and for tests that run the app inside a longer-lived process)."""
    gc.unfreeze()

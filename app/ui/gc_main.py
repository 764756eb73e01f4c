"""Python's cyclic garbage collector, run on the GUI thread only, while the desktop app runs.

A Qt object caught in a reference cycle is destroyed by whichever thread the collector happens to run in.
When that was a worker thread (a background query), `~QObject` took Qt's connection lock and then waited for
the GIL, while the GUI thread held the GIL and waited for that lock inside `QObject::connect`: the app froze
(seen as a hung test: the worker in SQLAlchemy -> gc_collect_main -> QObject::~QObject -> GilState::acquire,
the GUI thread in QBasicMutex::lockInternal). So automatic collection is off while the window runs, and a
timer on the GUI thread collects with the same generational thresholds instead (as qutebrowser does).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 500


def collect_due() -> int:
    """Collect the oldest generation whose count is past its threshold (what automatic collection does)."""
    counts, thresholds = gc.get_count(), gc.get_threshold()
    for generation in (2, 1, 0):
        if counts[generation] > thresholds[generation]:
            return gc.collect(generation)
    return 0


class GuiThreadCollector(QObject):
    """Turns automatic collection off and collects from a GUI-thread timer; `stop` turns it back on."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.collect_due)
        self._timer.start(interval_ms)

    def collect_due(self) -> int:
        return collect_due()

    def stop(self) -> None:
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()

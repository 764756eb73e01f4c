"""The desktop app runs Python's cyclic garbage collector on the GUI thread only (app/ui/gc_main.py): a Qt
object destroyed by a collection on a worker thread deadlocked the GUI thread."""

from __future__ import annotations

import gc
import threading
import weakref

from app.ui.gc_main import GuiThreadCollector


class _Node:
    pass


def test_cycles_are_collected_by_the_gui_threads_timer_not_by_workers(qtbot) -> None:  # type: ignore[no-untyped-def]
    thresholds = gc.get_threshold()
    gc.set_threshold(10, 1, 1)
    gc.enable()  # as in a normal process (the suite's fixture turns it off around each test)
    collector = GuiThreadCollector(interval_ms=20)
    try:
        assert not gc.isenabled()  # no thread collects by itself, a worker included

        def churn() -> None:
            for _ in range(10_000):
                node = _Node()
                node.me = node  # a cycle: only the collector frees it

        seen_by_worker: list[weakref.ref[_Node]] = []
        node = _Node()
        node.me = node
        seen_by_worker.append(weakref.ref(node))
        del node
        worker = threading.Thread(target=churn)
        worker.start()
        worker.join()
        assert seen_by_worker[0]() is not None  # the worker's allocations collected nothing
        qtbot.waitUntil(lambda: seen_by_worker[0]() is None, timeout=3000)  # the GUI thread's timer did
    finally:
        collector.stop()
        restored = gc.isenabled()
        gc.disable()  # as the suite's fixture had it
        gc.set_threshold(*thresholds)
    assert restored  # stop() gives automatic collection back

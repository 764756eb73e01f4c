"""Start the desktop app exactly as `python -m app` does, and note when its first window is shown.

    BENCH_T0=<time.time() at spawn> BENCH_GUI_OUT=<file> python -m bench.gui_start [app options...]

The app has no "window shown" hook, so this wrapper creates the QApplication itself (the app's start-up
takes the existing instance: `QApplication.instance() or QApplication(...)`), watches it for the first
Show event of a top-level window, writes seconds-since-spawn to BENCH_GUI_OUT, and otherwise runs the
app untouched (the benchmark then reads its idle memory and stops it).
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    t0 = float(os.environ.get("BENCH_T0", time.time()))
    out = os.environ.get("BENCH_GUI_OUT")
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication, QWidget

    qapp = QApplication.instance() or QApplication([sys.argv[0]])

    class FirstWindow(QObject):
        done = False

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
            if not self.done and event.type() == QEvent.Type.Show and isinstance(obj, QWidget) and obj.isWindow():
                self.done = True
                seconds = time.time() - t0
                if out:
                    with open(out, "w") as f:
                        json.dump({"seconds": seconds, "window": type(obj).__name__,
                                   "title": obj.windowTitle()}, f)
            return False

    watcher = FirstWindow()
    qapp.installEventFilter(watcher)
    from app.cli import main as app_main

    return app_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())

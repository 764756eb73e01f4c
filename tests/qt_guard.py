"""Fails any test in which a deleted Qt object was touched ("Internal C++ object ... already deleted").

pytest-qt already fails a test when such a RuntimeError escapes into the Qt event loop. This catches the
rest: the ones that were caught and logged (a background job's error handler, a refresh's "query
failed" warning) or reached `sys.excepthook` / `sys.unraisablehook` outside pytest-qt's capture. They
always mean a late callback (a signal, timer or worker result) reached a page or dialog already closed.
Registered for the whole suite by conftest's `pytest_plugins`.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import pytest

DELETED = "already deleted"


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + "".join(traceback.format_exception(*record.exc_info))
        if DELETED in text:
            self.found.append(f"log {record.name}: {text}")


@pytest.fixture(autouse=True)
def no_deleted_qt_objects() -> Iterator[None]:
    collector = _Collector()
    root, ui = logging.getLogger(), logging.getLogger("app.ui")
    old_level = ui.level
    root.addHandler(collector)  # warnings from anywhere; the Qt layer's debug lines too (a job's failure)
    ui.setLevel(logging.DEBUG)
    previous_hook, previous_unraisable = sys.excepthook, sys.unraisablehook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if DELETED in str(value):
            collector.found.append("".join(traceback.format_exception(kind, value, tb)))
        previous_hook(kind, value, tb)

    def unraisable(info: Any) -> None:
        if DELETED in str(info.exc_value):
            collector.found.append(f"unraisable: {info.exc_value}")
        previous_unraisable(info)

    sys.excepthook, sys.unraisablehook = hook, unraisable
    try:
        yield
        qt = sys.modules.get("PySide6.QtCore")
        if qt is not None and qt.QCoreApplication.instance() is not None:
            qt.QCoreApplication.sendPostedEvents()  # late results of this test's jobs land in this test
    finally:
        sys.excepthook, sys.unraisablehook = previous_hook, previous_unraisable
        root.removeHandler(collector)
        ui.setLevel(old_level)
    if collector.found:
        pytest.fail("a deleted Qt object was used:\n" + "\n".join(collector.found), pytrace=False)

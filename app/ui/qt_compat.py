"""A guard against a PySide6 6.12 reference-count bug that kills the app on Python 3.11.

In PySide6 6.12.0, each call of a C++ method that returns void (`setText`, `processEvents`, ...) from
Python drops one reference to None too many. From Python 3.12 on None is immortal and nothing happens;
on 3.11 the count falls by thousands a minute and the process dies with "Fatal Python error:
none_dealloc: deallocating None" (measured: +1.00 lost reference per `QLabel.setText`). None is never
freed anyway, so lending it a huge reference count makes the leak harmless until PySide is fixed.
"""

from __future__ import annotations

import ctypes
import sys

_LOAN = 1 << 48  # ~2.8e14 calls before it could matter; Py_ssize_t holds 2**63
_done = False


def affected() -> bool:
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    import PySide6

    return tuple(PySide6.__version_info__[:2]) >= (6, 12)


def protect_none() -> None:
    """Idempotent; a no-op where None is immortal or PySide is not affected."""
    global _done
    if _done or not affected():
        return
    ctypes.c_ssize_t.from_address(id(None)).value += _LOAN  # ob_refcnt is a PyObject's first field
    _done = True

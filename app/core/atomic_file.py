"""One way to replace a file on disk: a temp file in the same folder, fsync, rename; and one way to tell it
was replaced (`file_stamp`).

The config and the price table both use it, so a reader (a running proxy re-reading either) never sees
half a file, and a crash mid-save leaves the old file whole.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write via a temp file in the same folder and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """(mtime_ns, size, inode), None when the file can't be stat'ed: one stat tells whether it changed since
    it was read (`atomic_write` gives every save a new inode, even within one mtime tick)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino

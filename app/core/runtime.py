"""Where the running proxy actually listens, for the commands that print it (`downshift env`).

The config holds the port the proxy should use; the proxy may be on another one (an "any free port"
setting, a port chosen when the configured one was taken, or a port change not applied yet). The
running proxy writes its address to a small file in the data dir, one per config file, and removes it
when it stops; a file whose process is gone is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from app import paths
from app.core.atomic_file import atomic_write

log = logging.getLogger(__name__)


def runtime_file(config_path: Path) -> Path:
    digest = hashlib.sha256(str(config_path.expanduser().resolve()).encode()).hexdigest()[:16]
    return paths.data_dir() / f"proxy-{digest}.json"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # Windows: signal 0 is not a probe there; trust the file
        return True
    return True


def record(config_path: Path, host: str, port: int) -> None:
    """Called by the proxy once it listens (and again after a restart on another port)."""
    path = runtime_file(config_path)
    try:
        data = {"pid": os.getpid(), "host": host, "port": port, "config": str(config_path)}
        atomic_write(path, json.dumps(data).encode(), mode=0o644)
    except OSError as exc:  # `env` falls back to the configured port
        log.warning("cannot record the proxy's address in %s: %s", path, exc)


def clear(config_path: Path, port: int | None) -> None:
    """Called when the proxy stops: remove the file if it still describes this process and port."""
    path = runtime_file(config_path)
    try:
        data = json.loads(path.read_text())
        if data.get("pid") == os.getpid() and data.get("port") == port:
            path.unlink()
    except (OSError, ValueError):
        pass


def listening(config_path: Path) -> tuple[str, int] | None:
    """(host, port) of the proxy running for this config, or None when none runs."""
    try:
        data = json.loads(runtime_file(config_path).read_text())
        pid, host, port = int(data["pid"]), str(data["host"]), int(data["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (host, port) if _alive(pid) else None

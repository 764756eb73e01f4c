"""`downshift serve`: the proxy without a window, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading

from app import __version__
from app.cli.args import AddCommand, whole_number
from app.cli.context import open_core


def cmd_serve(args: argparse.Namespace) -> int:
    from app.core.storage.dialect import display_url
    from app.proxy.server import ProxyThread

    core = open_core(args)
    core.events.subscribe(
        "config_error", lambda exc: print(f"downshift: config not applied: {exc}", file=sys.stderr)
    )
    proxy = ProxyThread(core, host=args.host, port=args.port)
    try:
        proxy.start()
    except OSError as exc:
        print(
            f"downshift: cannot listen on {args.host or core.config.host}:{args.port or core.config.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        core.close()
        return 1
    if not core.secrets.uses_keyring:
        print(
            f"downshift: no OS keyring found; secrets are kept in a {core.secrets.describe()}",
            file=sys.stderr,
        )
    if proxy.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"downshift: WARNING: listening on {proxy.host}, reachable from other machines", file=sys.stderr
        )
    gc.freeze()  # start-up objects live forever: keep them out of every later collection's scan
    print(
        f"Downshift {__version__} proxy on {proxy.url} (preset: {core.config.active or 'none'})", flush=True
    )
    print(f"  config: {core.config_path}\n  log:    {display_url(core.db_url)}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    print("stopping...", flush=True)
    proxy.stop()
    core.close()
    return 0


def register(add: AddCommand) -> None:
    p = add("serve", cmd_serve, "run the proxy headless (no window)")
    p.add_argument("--host", help="address to listen on (default from config: 127.0.0.1)")
    p.add_argument(
        "--port", type=whole_number(0, 65535), help="port (default from config: 8765; 0 picks a free one)"
    )

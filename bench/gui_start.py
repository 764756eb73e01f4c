"""Desktop app start-up: time from launch to the window on screen, and resident memory once idle.

    python -m bench.gui_start --runs 5                  # this checkout: median of 5 launches
    python -m bench.gui_start --runs 5 --root /tmp/old  # another checkout of the app, same measurement
    python -m bench.gui_start --runs 5 --pin 0          # pinned to CPU 0, as `python -m bench` runs it

Each run launches `python -m app` (offscreen unless a display is set) with a fresh config folder, a
config with one provider (so the first-run assistant stays closed) and a fresh call log. The launch goes
through this file's wrapper mode, which creates the QApplication first and watches it for the main
window's first Show event and its first Paint (the frame on screen). The app's own milestones come from
`DOWNSHIFT_STARTUP_PROBE=1` when the checkout has it (app/ui/startup.py): proxy listening, dashboard
charts built, first dashboard figures, start-up settled. Resident memory (RSS) is read 5 s after the
window is shown (`--idle`), when the app is idle: no calls, dashboard showing its figures.

Wrapper mode, as `python -m bench` uses it (bench/run.py):

    BENCH_T0=<time.time() at spawn> BENCH_GUI_OUT=<file> python -m bench.gui_start [app options...]

runs the app untouched and writes {"seconds": first Show, "painted_seconds": first Paint, "window",
"title"} (seconds since BENCH_T0) to BENCH_GUI_OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
[proxy]
host = "127.0.0.1"
port = 0

[[providers]]
name = "cheap"
base_url = "http://127.0.0.1:9/v1"
api = "openai"
kind = "openrouter"
api_key_env = "BENCH_UPSTREAM_KEY"

[[presets]]
name = "bench"
default = "cheap/qwen/qwen3-coder"

[routing]
active = "bench"
"""


# ------------------------------------------------------------------------------------------- wrapper


def wrap() -> int:
    t0 = float(os.environ.get("BENCH_T0", time.time()))
    out = os.environ.get("BENCH_GUI_OUT")
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication, QWidget

    qapp = QApplication.instance() or QApplication([sys.argv[0]])
    seen: dict[str, Any] = {}

    def write() -> None:
        if out:
            with open(out + ".tmp", "w") as f:
                json.dump(seen, f)
            os.replace(out + ".tmp", out)

    class FirstWindow(QObject):
        window: QWidget | None = None

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
            kind = event.type()
            if (
                self.window is None
                and kind == QEvent.Type.Show
                and isinstance(obj, QWidget)
                and obj.isWindow()
            ):
                self.window = obj
                seen.update(seconds=time.time() - t0, window=type(obj).__name__, title=obj.windowTitle())
                write()
            elif obj is self.window and kind == QEvent.Type.Paint and "painted_seconds" not in seen:
                seen["painted_seconds"] = time.time() - t0
                write()
                qapp.removeEventFilter(self)
            return False

    watcher = FirstWindow()
    qapp.installEventFilter(watcher)
    from app.cli import main as app_main

    return app_main(sys.argv[1:])


# -------------------------------------------------------------------------------------------- driver


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except Exception:  # noqa: BLE001 (best effort: a figure is missing, the run is not)
        return None


def one_run(root: Path, *, pin: int | None, idle: float, timeout: float = 30.0) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="downshift-gui-start-"))
    try:
        config = work / "config.toml"
        config.write_text(CONFIG)
        shown = work / "shown.json"
        env = {
            **os.environ,
            "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
            "DOWNSHIFT_STARTUP_PROBE": "1",
            "BENCH_GUI_OUT": str(shown),
            "BENCH_UPSTREAM_KEY": "sk-bench",
            "DOWNSHIFT_TOKEN": "bench-token",
            "PYTHONPATH": str(root),
        }
        for var, sub in (
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_DATA_HOME", "data"),
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_STATE_HOME", "state"),
        ):
            env[var] = str(work / sub)
        env.pop("DOWNSHIFT_DB_URL", None)
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--wrap",
            "--config",
            str(config),
            "--db",
            f"sqlite:///{work / 'log.db'}",
        ]
        if pin is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(pin), *cmd]
        err = open(work / "stderr.txt", "wb")  # noqa: SIM115
        env["BENCH_T0"] = repr(time.time())
        t0 = float(env["BENCH_T0"])
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=err)
        err.close()
        result: dict[str, Any] = {}
        try:
            deadline = time.monotonic() + timeout
            while not shown.exists() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.005)
            if not shown.exists():
                raise RuntimeError(
                    f"no window within {timeout:.0f} s: "
                    + (work / "stderr.txt").read_text(errors="replace")[-800:]
                )
            window = json.loads(shown.read_text())
            time.sleep(max(0.0, t0 + window["seconds"] + idle - time.time()))
            result["rss_mb"] = rss_mb(proc.pid)
            result.update(json.loads(shown.read_text()))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        milestones = {}
        for line in (work / "stderr.txt").read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "downshift-startup":
                milestones[parts[1]] = float(parts[2]) - t0
        result["milestones"] = milestones
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(root: Path, runs: int, *, pin: int | None = None, idle: float = 5.0) -> dict[str, Any]:
    results = [one_run(root, pin=pin, idle=idle) for _ in range(runs)]

    def med(values: list[float | None]) -> float | None:
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    names = sorted(
        {k for r in results for k in r["milestones"]},
        key=lambda k: med([r["milestones"].get(k) for r in results]) or 0,
    )
    return {
        "root": str(root),
        "runs": runs,
        "pin": pin,
        "idle_s": idle,
        "shown_s": med([r.get("seconds") for r in results]),
        "painted_s": med([r.get("painted_seconds") for r in results]),
        "rss_mb": med([r.get("rss_mb") for r in results]),
        "milestones_s": {k: med([r["milestones"].get(k) for r in results]) for k in names},
        "each": results,
    }


def report(m: dict[str, Any]) -> str:
    each = m["each"]
    lines = [
        f"{m['root']}: {m['runs']} launches"
        + (f", pinned to CPU {m['pin']}" if m["pin"] is not None else "")
        + " (median; each run in brackets)",
        "  window shown      {:6.0f} ms  [{}]".format(
            1000 * m["shown_s"], ", ".join(f"{1000 * r['seconds']:.0f}" for r in each)
        ),
        "  first frame       {:6.0f} ms  [{}]".format(
            1000 * (m["painted_s"] or 0), ", ".join(f"{1000 * r.get('painted_seconds', 0):.0f}" for r in each)
        ),
    ]
    for name, value in m["milestones_s"].items():
        if name not in ("window-shown", "window-painted") and value is not None:
            lines.append(
                f"  {name:<17s} {1000 * value:6.0f} ms  ["
                + ", ".join(
                    f"{1000 * r['milestones'][name]:.0f}" if name in r["milestones"] else "-" for r in each
                )
                + "]"
            )
    lines.append(
        "  RSS {:.0f} s after shown {:4.0f} MB  [{}]".format(
            m["idle_s"], m["rss_mb"] or 0, ", ".join(f"{r.get('rss_mb') or 0:.0f}" for r in each)
        )
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--wrap"]:
        return wrap_main(argv[1:])
    if (
        not argv
        or argv[0].startswith("--")
        and argv[0] in ("--runs", "--root", "--pin", "--idle", "--json", "-h", "--help")
    ):
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        parser.add_argument("--runs", type=int, default=5)
        parser.add_argument(
            "--root", type=Path, default=ROOT, help="checkout whose app to launch (default: this one)"
        )
        parser.add_argument("--pin", type=int, help="run the app on this CPU only (taskset)")
        parser.add_argument(
            "--idle", type=float, default=5.0, help="seconds after the window shows to read RSS"
        )
        parser.add_argument("--json", action="store_true")
        args = parser.parse_args(argv)
        m = measure(args.root.resolve(), max(1, args.runs), pin=args.pin, idle=args.idle)
        print(json.dumps(m) if args.json else report(m), flush=True)
        return 0
    return wrap_main(argv)  # bench/run.py: app options only


def wrap_main(app_args: list[str]) -> int:
    sys.argv = [sys.argv[0], *app_args]
    return wrap()


if __name__ == "__main__":
    raise SystemExit(main())
